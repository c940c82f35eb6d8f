//! The `python` provider: the Chaos Toolkit's `module`/`func`/`arguments` providers,
//! run by the run's Python worker ([`worker`]): one interpreter per run, modules
//! imported once and kept, as under `chaos run`.
//!
//! The function gets `configuration` and `secrets` only if it declares those
//! parameters, as chaoslib passes them: `secrets` only when the provider lists scopes,
//! and then their keys flattened into one object (`{"token": ...}`, not
//! `{"scope": {...}}`). Its prints come back with its result and go to the console.
//! The interpreter is `python3` on PATH, or `FAULTLINE_PYTHON`.

pub mod worker;

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
        let worker = &ctx.run.python;
        if !worker.is_running() && ctx.processes.which(worker.python()).is_none() {
            return Err(ActivityError::invalid(format!(
                "the python provider needs a Python interpreter to run {}.{}, and '{}' was not found on PATH (install python3, or set FAULTLINE_PYTHON)",
                self.module,
                self.func,
                worker.python()
            )));
        }
        let limit = ctx.output_limit;
        let mut request = Map::new();
        request.insert("op".into(), "call".into());
        request.insert("module".into(), self.module.clone().into());
        request.insert("func".into(), self.func.clone().into());
        request.insert("arguments".into(), Value::Object(self.arguments.clone()));
        request.insert(
            "configuration".into(),
            Value::Object((*ctx.configuration).clone()),
        );
        request.insert(
            "secrets".into(),
            self.secrets(ctx).map_or(Value::Null, Value::Object),
        );
        request.insert("limit".into(), limit.into());
        // The call's trace context: spans the function makes through Python's
        // `opentelemetry` join the run's trace under the activity.
        for (var, key) in [
            ("TRACEPARENT", "traceparent"),
            ("TRACESTATE", "tracestate"),
            ("BAGGAGE", "baggage"),
        ] {
            if let Some((_, v)) = ctx.env.iter().find(|(k, v)| k == var && !v.is_empty()) {
                request.insert(key.into(), Value::String(v.clone()));
            }
        }
        let what = format!("{}.{}", self.module, self.func);
        let reply = worker
            .call(request, &what)
            .await
            .map_err(|e| ActivityError::new(format!("{what}: {e}")))?;
        if let Some(n) = worker.take_notice() {
            ctx.warn(n);
        }
        for line in worker.take_stray() {
            if !line.trim().is_empty() {
                ctx.log(line);
            }
        }
        let printed = reply.get("output").and_then(Value::as_str).unwrap_or("");
        for line in printed.lines().filter(|l| !l.trim().is_empty()) {
            ctx.log(line);
        }
        let total = reply
            .get("output_total")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if total > limit {
            ctx.warn(format!(
                "the printed output cut to its first {limit} of {total} bytes of {what} (output_limit {limit} bytes)"
            ));
        }
        let error = reply.get("error").and_then(Value::as_str);
        match (error, reply.get("kind").and_then(Value::as_str)) {
            (None, _) => Ok(reply.get("ok").cloned().unwrap_or(Value::Null)),
            // The Chaos Toolkit's validation refuses these: the run treats them as an
            // unexpected error. (Wrong arguments are found by the pre-flight; past it,
            // with --no-validation, they fail the activity and the run goes on, as
            // under chaos.)
            (Some(e), Some("import")) => Err(ActivityError::invalid(e.to_string())),
            (Some(_), Some("too_large")) => Err(ActivityError::new(format!(
                "the result of {what} is {} bytes as JSON, over the output_limit of {limit} bytes: \
                 raise output_limit on the provider or in the settings file, or return less",
                reply.get("size").and_then(Value::as_u64).unwrap_or(0)
            ))),
            (Some(e), _) => Err(ActivityError {
                details: reply
                    .get("traceback")
                    .and_then(Value::as_str)
                    .map(|t| vec![t.to_string()])
                    .unwrap_or_default(),
                ..ActivityError::new(e.to_string())
            }),
        }
    }
}
