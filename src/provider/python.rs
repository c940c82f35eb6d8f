//! The `python` provider: the Chaos Toolkit's `module`/`func`/`arguments` providers keep
//! working through a bridge that runs the function in a `python3` subprocess.
//!
//! The bridge receives `{module, func, arguments, configuration, secrets}` as JSON on
//! stdin, passes `configuration` and `secrets` only if the function declares those
//! parameters, as chaoslib does: `secrets` only when the provider lists scopes, and then
//! their keys flattened into one object (`{"token": ...}`, not `{"scope": {...}}`). It
//! writes `{"ok": result}` or `{"error": ...}` as
//! JSON on its real stdout (the function's own prints go to stderr). The interpreter is
//! `python3` on PATH, or `FAULTLINE_PYTHON`. The child runs in its own process group
//! like every process faultline starts.

use super::process::run_captured;
use super::{field, ActivityError, Ctx};
use serde_json::{Map, Value};

/// A typed `python` provider.
#[derive(Debug, Clone)]
pub struct PythonProvider {
    /// Module to import, e.g. `os.path`.
    pub module: String,
    /// Function in it, e.g. `exists`.
    pub func: String,
    /// Keyword arguments.
    pub arguments: Map<String, Value>,
    /// The most bytes kept of the function's printed output and of its result's JSON
    /// (`output_limit`), if set here.
    pub output_limit: Option<u64>,
    /// Whether the provider lists `secrets` scopes: only then does a function that
    /// declares `secrets` receive them, as with the Chaos Toolkit.
    pub declares_secrets: bool,
}

const BRIDGE: &str = r#"
import importlib, inspect, json, os, sys, traceback
# The reply goes on a private copy of fd 1; fd 1 itself now points at stderr, so the
# function's prints and its child processes' output cannot corrupt the reply.
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr
def enc(o):
    if isinstance(o, (bytes, bytearray)):
        return o.decode("utf-8", "replace")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)
def emit(d):
    out.write(json.dumps(d, default=enc))
    out.flush()
req = json.load(sys.stdin)
if os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())
name, fname = req["module"], req["func"]
try:
    mod = importlib.import_module(name)
except BaseException as e:
    emit({"error": "cannot import module '%s' (%s: %s)" % (name, type(e).__name__, e), "kind": "import"})
    sys.exit(0)
func = getattr(mod, fname, None)
if func is None or not callable(func):
    emit({"error": "module '%s' has no function '%s'" % (name, fname), "kind": "import"})
    sys.exit(0)
args = dict(req.get("arguments") or {})
try:
    sig = inspect.signature(func)
except (TypeError, ValueError):
    sig = None
if sig is not None:
    params = sig.parameters
    if "configuration" in params:
        args["configuration"] = req.get("configuration") or {}
    if "secrets" in params and req.get("secrets") is not None:
        args["secrets"] = req["secrets"]
    try:
        sig.bind(**args)
    except TypeError as e:
        emit({"error": "wrong arguments for %s.%s%s: %s" % (name, fname, sig, e), "kind": "arguments"})
        sys.exit(0)
try:
    result = func(**args)
except BaseException as e:
    emit({"error": "%s: %s" % (type(e).__name__, e), "traceback": traceback.format_exc(), "kind": "exception"})
    sys.exit(0)
emit({"ok": result})
"#;

impl PythonProvider {
    pub(super) fn from_map(m: &Map<String, Value>) -> Result<PythonProvider, String> {
        let text = |k: &str| match field(m, k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(v) => Err(format!("{k} must be a string, got {v}")),
            None => Err(format!("missing {k}")),
        };
        let arguments = match field(m, "arguments") {
            Some(Value::Object(a)) => a.clone(),
            Some(v) => return Err(format!("arguments must be an object, got {v}")),
            None => Map::new(),
        };
        Ok(PythonProvider {
            module: text("module")?,
            func: text("func")?,
            arguments,
            output_limit: super::output_limit(m)?,
            declares_secrets: m.contains_key("secrets"),
        })
    }

    /// What the function's `secrets` parameter gets, as the Chaos Toolkit passes it:
    /// the keys of the listed scopes, flattened into one object (a later scope's key
    /// wins), or nothing (`None`: the parameter keeps its default) when the provider
    /// lists no scopes.
    fn secrets(&self, ctx: &Ctx<'_>) -> Option<Map<String, Value>> {
        self.declares_secrets.then(|| {
            ctx.secrets
                .values()
                .filter_map(Value::as_object)
                .flat_map(|scope| scope.iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect()
        })
    }

    pub(super) async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        let python = std::env::var("FAULTLINE_PYTHON").unwrap_or_else(|_| "python3".into());
        if ctx.processes.which(&python).is_none() {
            return Err(ActivityError::invalid(format!(
                "the python provider needs a Python interpreter to run {}.{}, and '{python}' was not found on PATH (install python3, or set FAULTLINE_PYTHON)",
                self.module, self.func
            )));
        }
        let request = serde_json::json!({
            "module": self.module,
            "func": self.func,
            "arguments": self.arguments,
            "configuration": ctx.configuration,
            "secrets": self.secrets(ctx),
        });
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg("-c").arg(BRIDGE).envs(ctx.env.iter().cloned());
        let limit = ctx.output_limit;
        let out = run_captured(
            cmd,
            Some(request.to_string().into_bytes()),
            limit,
            ctx.processes,
        )
        .await
        .map_err(|e| ActivityError::new(format!("cannot start {python}: {e}")))?;
        let stderr = out.stderr.text();
        let stderr_cut = out.stderr.truncated().then(|| {
            format!(
                "{} of {}.{} (output_limit {limit} bytes)",
                out.stderr.describe("the printed output"),
                self.module,
                self.func
            )
        });
        if let Some(w) = &stderr_cut {
            ctx.warn(w.clone());
        }
        // The reply is one JSON document: a cut one cannot be read, so a result over
        // the limit is the activity's failure, said plainly.
        if out.stdout.truncated() {
            return Err(ActivityError::new(format!(
                "the result of {}.{} is {} bytes as JSON, over the output_limit of {limit} bytes: \
                 raise output_limit on the provider or in the settings file, or return less",
                self.module, self.func, out.stdout.total
            )));
        }
        let reply: Value = serde_json::from_str(out.stdout.text().trim()).map_err(|_| {
            let tail: String = stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            ActivityError::new(format!(
                "the python bridge for {}.{} ended without a result (exit {}): {}{}",
                self.module,
                self.func,
                out.status,
                tail,
                match &stderr_cut {
                    Some(w) => format!(" [the lines above end the kept part: {w}]"),
                    None => String::new(),
                }
            ))
        })?;
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            ctx.log(line);
        }
        match reply.get("error").and_then(Value::as_str) {
            Some(e)
                if matches!(
                    reply.get("kind").and_then(Value::as_str),
                    Some("import" | "arguments")
                ) =>
            {
                Err(ActivityError::invalid(e.to_string()))
            }
            Some(e) => Err(ActivityError {
                details: reply
                    .get("traceback")
                    .and_then(Value::as_str)
                    .map(|t| vec![t.to_string()])
                    .unwrap_or_default(),
                ..ActivityError::new(e.to_string())
            }),
            None => Ok(reply.get("ok").cloned().unwrap_or(Value::Null)),
        }
    }
}
