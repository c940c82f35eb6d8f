//! Resolving configuration and secrets: literals, environment variables, `--var`,
//! `--var-file`, in the Chaos Toolkit's order (overrides win over the experiment).
//!
//! A var file's configuration value may be a full declaration, as in the experiment
//! (`{"type": "env", "key": ...}`, a dynamic `{"type": "probe", ...}`: chaoslib issue
//! #252): it replaces the experiment's entry of that key and is resolved exactly as the
//! experiment's own would be (chaoslib's `load_configuration`).
//!
//! Dynamic `{type: probe}` configuration needs providers, so it is returned as pending
//! and run by the runner once static configuration and secrets are known.

use super::model::*;
use super::{load::load_file, locate::locate_all, Problem};
use serde_json::{Map, Value};
use std::path::Path;

/// Where a configuration override came from, for messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `--var KEY[:TYPE]=VALUE`: always a literal.
    Flag,
    /// A var file, with the entry's place in it when known.
    File {
        /// The file, as given.
        name: String,
        /// 1-based line of the entry in the file.
        line: Option<usize>,
        /// 1-based column of the entry in the file.
        column: Option<usize>,
    },
}

/// One configuration override: what replaces the experiment's entry of its key.
#[derive(Debug, Clone)]
pub struct Override {
    /// A literal, or a declaration checked like the experiment's.
    pub entry: ConfigEntry,
    /// Where it was given.
    pub source: Source,
}

/// Values given on the command line or in var files.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Configuration keys to override, in the order first given (a later value
    /// replaces an earlier one); only keys the experiment declares are used.
    pub configuration: Vec<(String, Override)>,
    /// Secrets to override, by scope.
    pub secrets: Map<String, Value>,
    /// `KEY=VALUE` pairs from `.env` files, for the environment.
    pub env: Vec<(String, String)>,
}

/// Parse `--var KEY=VALUE` or `--var KEY:TYPE=VALUE`.
pub fn parse_var(s: &str) -> Result<(String, Value), String> {
    let (lhs, value) = s
        .split_once('=')
        .ok_or_else(|| format!("--var '{s}' has no '=': use KEY=VALUE or KEY:TYPE=VALUE"))?;
    let (key, ty) = match lhs.split_once(':') {
        Some((k, t)) => {
            let ty = EnvVarType::parse(t).ok_or_else(|| {
                format!("--var '{s}': unknown type '{t}' (use str, int, float, bool or json)")
            })?;
            (k, Some(ty))
        }
        None => (lhs, None),
    };
    if key.is_empty() {
        return Err(format!("--var '{s}' has an empty key"));
    }
    let v = match ty {
        Some(t) => t.convert(value).map_err(|e| format!("--var '{s}': {e}"))?,
        None => Value::String(value.to_string()),
    };
    Ok((key.to_string(), v))
}

impl Overrides {
    /// Set (or replace) the override of configuration key `key`.
    pub fn set_config(&mut self, key: &str, entry: ConfigEntry, source: Source) {
        let o = Override { entry, source };
        match self.configuration.iter_mut().find(|(k, _)| k == key) {
            Some((_, existing)) => *existing = o,
            None => self.configuration.push((key.to_string(), o)),
        }
    }

    /// `--var KEY=VALUE`: a literal, over every var file.
    pub fn set_var(&mut self, key: &str, value: Value) {
        self.set_config(key, ConfigEntry::Literal(value), Source::Flag);
    }

    /// The override of configuration key `key`, if any.
    pub fn config(&self, key: &str) -> Option<&Override> {
        self.configuration
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, o)| o)
    }

    /// Merge one var file: `.env` files add environment pairs; JSON/YAML files add
    /// their top-level `configuration` and `secrets`. Later files win.
    ///
    /// Configuration values are checked like the experiment's `configuration`: a
    /// declaration that is not valid is refused here, every problem at once, each
    /// naming the file and the key, located in the file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), Vec<Problem>> {
        let name = path.display().to_string();
        if path.extension().and_then(|e| e.to_str()) == Some("env") || name.ends_with(".env") {
            let text = std::fs::read_to_string(path).map_err(|e| {
                vec![Problem::new(
                    "$",
                    format!("cannot read var file {name}: {e}"),
                )]
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let line = line.strip_prefix("export ").unwrap_or(line);
                let Some((k, v)) = line.split_once('=') else {
                    let mut p = Problem::new("$", format!("{name}: expected KEY=VALUE"));
                    p.line = Some(i + 1);
                    p.column = Some(1);
                    return Err(vec![p]);
                };
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(v);
                self.env.push((k.trim().to_string(), v.to_string()));
            }
            return Ok(());
        }
        let doc = load_file(path).map_err(|e| {
            let mut p = e.to_problem();
            p.message = format!("{name}: {}", p.message);
            vec![p]
        })?;
        let Some(obj) = doc.value.as_object() else {
            return Err(vec![Problem::new(
                "$",
                format!(
                    "{name}: a var file must be an object with 'configuration' and/or 'secrets'"
                ),
            )]);
        };
        let mut problems = Vec::new();
        for (k, v) in obj {
            match (k.as_str(), v) {
                ("configuration", Value::Object(m)) => {
                    for (key, value) in m {
                        let at = format!("$.configuration.{key}");
                        match super::parse::configuration_entry(value, &at) {
                            Ok(entry) => {
                                let mut here = [Problem::new(at, "")];
                                locate_all(&mut here, &doc.text, doc.format);
                                let [here] = here;
                                let source = Source::File {
                                    name: name.clone(),
                                    line: here.line,
                                    column: here.column,
                                };
                                self.set_config(key, entry, source);
                            }
                            Err(ps) => problems.extend(ps.into_iter().map(|mut p| {
                                p.message = format!("{name}: configuration '{key}': {}", p.message);
                                p
                            })),
                        }
                    }
                }
                ("secrets", Value::Object(m)) => {
                    for (scope, entries) in m {
                        match (self.secrets.get_mut(scope), entries) {
                            (Some(Value::Object(existing)), Value::Object(new)) => {
                                existing.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())))
                            }
                            _ => {
                                self.secrets.insert(scope.clone(), entries.clone());
                            }
                        }
                    }
                }
                ("configuration" | "secrets", _) => problems.push(Problem::new(
                    format!("$.{k}"),
                    format!("{name}: '{k}' must be an object"),
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            locate_all(&mut problems, &doc.text, doc.format);
            Err(problems)
        }
    }
}

/// Configuration and secrets ready for substitution.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Configuration key -> value.
    pub configuration: Map<String, Value>,
    /// Scope -> {key -> value}.
    pub secrets: Map<String, Value>,
    /// Dynamic configuration still to run, in declaration order.
    pub pending: Vec<(String, Activity)>,
}

/// The configuration and secrets of a run as they are now: the runner reads them for
/// each activity, and Python controls may change them between activities (as the
/// Chaos Toolkit's controls change its dicts in place). Clones share them.
#[derive(Clone, Default)]
pub struct LiveConfig {
    inner: std::sync::Arc<std::sync::RwLock<Snapshot>>,
}

/// One reading of a [`LiveConfig`]: cheap to take, never changes.
#[derive(Clone, Default, Debug)]
pub struct Snapshot {
    /// Configuration key -> value.
    pub configuration: std::sync::Arc<Map<String, Value>>,
    /// Scope -> {key -> value}.
    pub secrets: std::sync::Arc<Map<String, Value>>,
}

impl Snapshot {
    /// Substitution over this reading.
    pub fn vars(&self) -> super::substitute::Vars<'_> {
        super::substitute::Vars {
            configuration: &self.configuration,
            secrets: &self.secrets,
        }
    }

    /// `${}` substitution of a value.
    pub fn value(&self, v: &Value) -> Value {
        self.vars().value(v)
    }

    /// `${}` substitution of a string.
    pub fn text(&self, s: &str) -> String {
        self.vars().text(s)
    }
}

impl LiveConfig {
    /// The current configuration and secrets.
    pub fn get(&self) -> Snapshot {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace both.
    pub fn set(&self, configuration: Map<String, Value>, secrets: Map<String, Value>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Snapshot {
            configuration: configuration.into(),
            secrets: secrets.into(),
        };
    }

    /// Replace the configuration, the secrets, or both (`None` keeps it).
    pub fn replace(
        &self,
        configuration: Option<Map<String, Value>>,
        secrets: Option<Map<String, Value>>,
    ) {
        let mut w = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = configuration {
            w.configuration = c.into();
        }
        if let Some(s) = secrets {
            w.secrets = s.into();
        }
    }

    /// Set one configuration key.
    pub fn insert(&self, key: String, value: Value) {
        let mut w = self.inner.write().unwrap_or_else(|p| p.into_inner());
        std::sync::Arc::make_mut(&mut w.configuration).insert(key, value);
    }
}

fn env_value(
    what: &str,
    name: &str,
    key: &str,
    default: &Option<Value>,
    ty: Option<EnvVarType>,
    env: &dyn Fn(&str) -> Option<String>,
    path: &str,
) -> Result<Value, Problem> {
    match env(key) {
        Some(text) => match ty {
            Some(t) => t.convert(&text).map_err(|e| {
                Problem::new(
                    path,
                    format!("{what} '{name}': environment variable {key}: {e}"),
                )
            }),
            None => Ok(Value::String(text)),
        },
        None => match default {
            Some(d) => Ok(match (ty, d) {
                (Some(t), Value::String(s)) => t.convert(s).unwrap_or_else(|_| d.clone()),
                _ => d.clone(),
            }),
            None => Err(Problem::new(
                path,
                format!("{what} '{name}' reads environment variable {key}, which is not set"),
            )
            .hint(format!(
                "export {key}=..., add a \"default\", or pass --var {name}=..."
            ))),
        },
    }
}

/// A problem with an override's entry is in the var file that gave it: say which,
/// and where (so it is not located in the experiment).
fn from_source(mut p: Problem, source: Option<&Source>) -> Problem {
    if let Some(Source::File { name, line, column }) = source {
        p.message = format!("{name}: {}", p.message);
        p.line = *line;
        p.column = *column;
    }
    p
}

/// Resolve the experiment's configuration and secrets against overrides and the
/// environment. Every missing variable is reported at once.
pub fn resolve(
    exp: &Experiment,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut out = Resolved::default();
    for (name, entry) in &exp.configuration {
        let path = format!("$.configuration.{name}");
        // An override replaces the experiment's entry and is resolved in its place,
        // as chaoslib's `load_configuration` swaps a var file's declaration in (#252).
        let (entry, source) = match overrides.config(name) {
            Some(o) => (&o.entry, Some(&o.source)),
            None => (entry, None),
        };
        match entry {
            ConfigEntry::Literal(v) => {
                out.configuration.insert(name.clone(), v.clone());
            }
            ConfigEntry::Env {
                key,
                default,
                env_var_type,
            } => match env_value(
                "configuration",
                name,
                key,
                default,
                *env_var_type,
                env,
                &path,
            ) {
                Ok(v) => {
                    out.configuration.insert(name.clone(), v);
                }
                Err(p) => problems.push(from_source(p, source)),
            },
            ConfigEntry::Probe(a) => out.pending.push((name.clone(), (**a).clone())),
        }
    }
    for (scope, entries) in &exp.secrets {
        let mut m = Map::new();
        let over = overrides.secrets.get(scope).and_then(Value::as_object);
        for (name, entry) in entries {
            let path = format!("$.secrets.{scope}.{name}");
            if let Some(v) = over.and_then(|o| o.get(name)) {
                m.insert(name.clone(), v.clone());
                continue;
            }
            match entry {
                SecretEntry::Literal(v) => {
                    m.insert(name.clone(), v.clone());
                }
                SecretEntry::Env { key, default } => {
                    match env_value(
                        "secret",
                        &format!("{scope}.{name}"),
                        key,
                        default,
                        None,
                        env,
                        &path,
                    ) {
                        Ok(v) => {
                            m.insert(name.clone(), v);
                        }
                        Err(p) => problems.push(p),
                    }
                }
            }
        }
        out.secrets.insert(scope.clone(), Value::Object(m));
    }
    // Secret scopes only given by var files still count.
    for (scope, v) in &overrides.secrets {
        if !out.secrets.contains_key(scope) {
            out.secrets.insert(scope.clone(), v.clone());
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Every secret value, as text, for masking.
pub fn secret_values(secrets: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(m) => m.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    secrets.values().for_each(|v| walk(v, &mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exp(doc: Value) -> Experiment {
        super::super::parse(&doc).unwrap()
    }

    #[test]
    fn vars_parse_with_types() {
        assert_eq!(parse_var("a=1").unwrap(), ("a".into(), json!("1")));
        assert_eq!(parse_var("a:int=1").unwrap(), ("a".into(), json!(1)));
        assert_eq!(parse_var("a:bool=yes").unwrap(), ("a".into(), json!(true)));
        assert_eq!(
            parse_var("a:json={\"x\":[1]}").unwrap(),
            ("a".into(), json!({"x": [1]}))
        );
        assert!(parse_var("a:int=x").unwrap_err().contains("not an integer"));
        assert!(parse_var("novalue").is_err());
    }

    #[test]
    fn env_entries_defaults_types_and_overrides() {
        let e = exp(json!({"title": "t", "description": "d", "method": [],
            "configuration": {
                "port": {"type": "env", "key": "PORT", "env_var_type": "int"},
                "host": {"type": "env", "key": "HOST", "default": "localhost"},
                "lit": "x", "over": "y"},
            "secrets": {"api": {"token": {"type": "env", "key": "TOKEN"}}}}));
        let env = |k: &str| match k {
            "PORT" => Some("8080".to_string()),
            "TOKEN" => Some("tok".to_string()),
            _ => None,
        };
        let mut o = Overrides::default();
        o.set_var("over", json!("z"));
        o.set_var("undeclared", json!("ignored"));
        let r = resolve(&e, &o, &env).unwrap();
        assert_eq!(r.configuration["port"], json!(8080));
        assert_eq!(r.configuration["host"], json!("localhost"));
        assert_eq!(r.configuration["over"], json!("z"));
        assert!(!r.configuration.contains_key("undeclared"));
        assert_eq!(r.secrets["api"]["token"], json!("tok"));
    }

    #[test]
    fn missing_env_is_reported_with_a_hint() {
        let e = exp(json!({"title": "t", "description": "d", "method": [],
            "configuration": {"a": {"type": "env", "key": "NOPE_A"}},
            "secrets": {"s": {"b": {"type": "env", "key": "NOPE_B"}}}}));
        let p = resolve(&e, &Overrides::default(), &|_| None).unwrap_err();
        assert_eq!(p.len(), 2);
        assert!(p[0].hint.as_deref().unwrap().contains("--var a="));
    }

    /// A var file written to a fresh temporary directory, read into overrides (the
    /// directory removed again).
    fn read_var_file(name: &str, text: &str) -> Result<Overrides, Vec<Problem>> {
        let path = var_file(name, text);
        let mut o = Overrides::default();
        let r = o.add_file(&path);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        r.map(|()| o)
    }

    fn var_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("faultline-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn var_file_declarations_are_resolved_like_the_experiments() {
        // chaoslib's env_vars_issue252 fixture, plus a default and a type.
        let e = exp(json!({"title": "t", "description": "d", "method": [],
            "configuration": {"some_config_1": "hello", "some_config_2": "there",
                "port": "p", "host": "h", "lit": "l", "kept": "k"}}));
        let mut o = read_var_file(
            "issue252.json",
            &json!({"configuration": {
                "some_config_1": {"key": "PWD_LIKE", "type": "env"},
                "some_config_2": {"name": "some config 2", "type": "probe",
                    "provider": {"type": "python", "module": "os.path", "func": "exists",
                        "arguments": {"path": "${some_config_1}"}}},
                "port": {"type": "env", "key": "NOPE_PORT", "default": "8080",
                    "env_var_type": "int"},
                "host": {"type": "env", "key": "HOST_X", "default": "localhost"},
                "lit": {"no": "type"},
                "undeclared": {"type": "env", "key": "NOPE_UNDECLARED"}}})
            .to_string(),
        )
        .unwrap();
        let env = |k: &str| match k {
            "PWD_LIKE" => Some("/some/dir".to_string()),
            "HOST_X" => Some("example.org".to_string()),
            _ => None,
        };
        let r = resolve(&e, &o, &env).unwrap();
        assert_eq!(r.configuration["some_config_1"], json!("/some/dir"));
        assert_eq!(r.configuration["port"], json!(8080));
        assert_eq!(r.configuration["host"], json!("example.org"));
        assert_eq!(r.configuration["lit"], json!({"no": "type"}));
        assert_eq!(r.configuration["kept"], json!("k"));
        // The probe replaces the literal: run by the runner, not substituted raw.
        assert!(!r.configuration.contains_key("some_config_2"));
        assert_eq!(r.pending.len(), 1);
        assert_eq!(r.pending[0].0, "some_config_2");
        assert_eq!(r.pending[0].1.name, "some config 2");
        // A declaration for a key the experiment does not declare is not used.
        assert!(!r.configuration.contains_key("undeclared"));
        // --var wins over the file, as a literal.
        o.set_var("port", json!("9"));
        let r = resolve(&e, &o, &env).unwrap();
        assert_eq!(r.configuration["port"], json!("9"));
    }

    #[test]
    fn a_var_file_env_declaration_without_its_variable_names_the_file() {
        let e = exp(json!({"title": "t", "description": "d", "method": [],
            "configuration": {"token": {"type": "env", "key": "SET_IN_EXPERIMENT"}}}));
        let o = read_var_file(
            "missing.json",
            "{\n  \"configuration\": {\n    \"token\": {\"type\": \"env\", \"key\": \"NOPE_TOKEN\"}\n  }\n}\n",
        )
        .unwrap();
        let p = resolve(&e, &o, &|k| (k == "SET_IN_EXPERIMENT").then(|| "x".into())).unwrap_err();
        assert_eq!(p.len(), 1);
        let text = p[0].to_string();
        assert!(text.contains("missing.json"), "{text}");
        assert!(
            text.contains("'token'") && text.contains("NOPE_TOKEN"),
            "{text}"
        );
        // Located in the var file, not the experiment.
        assert_eq!((p[0].line, p[0].column), (Some(3), Some(5)), "{text}");
    }

    #[test]
    fn bad_var_file_declarations_are_refused_naming_file_and_key() {
        let problems = read_var_file(
            "bad.yaml",
            "configuration:\n  ok: 1\n  nokey:\n    type: env\n  typo:\n    type: envv\n    key: X\n  badtype:\n    type: env\n    key: X\n    env_var_type: integer-ish\n  probe:\n    type: probe\n    name: p\n",
        )
        .unwrap_err();
        let all: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{all:#?}");
        for (p, key) in problems.iter().zip(["nokey", "typo", "badtype", "probe"]) {
            let text = p.to_string();
            assert!(text.contains("bad.yaml"), "{text}");
            assert!(text.contains(&format!("configuration '{key}'")), "{text}");
            assert!(p.line.is_some(), "not located: {text}");
        }
        assert!(all[0].contains("missing required key 'key'"), "{}", all[0]);
        assert!(
            all[1].contains("unknown configuration type 'envv'"),
            "{}",
            all[1]
        );
        assert!(all[2].contains("unknown env_var_type"), "{}", all[2]);
        assert!(all[3].contains("provider"), "{}", all[3]);
    }
}
