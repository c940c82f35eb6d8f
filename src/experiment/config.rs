//! Resolving configuration and secrets: literals, environment variables, `--var`,
//! `--var-file`, in the Chaos Toolkit's order (overrides win over the experiment).
//!
//! Dynamic `{type: probe}` configuration needs providers, so it is returned as pending
//! and run by the runner once static configuration and secrets are known.

use super::model::*;
use super::{load::load_file, Problem};
use serde_json::{Map, Value};
use std::path::Path;

/// Values given on the command line or in var files.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Configuration keys to override (only keys the experiment declares are used).
    pub configuration: Map<String, Value>,
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
    /// Merge one var file: `.env` files add environment pairs; JSON/YAML files add
    /// their top-level `configuration` and `secrets`. Later files win.
    pub fn add_file(&mut self, path: &Path) -> Result<(), Problem> {
        let name = path.display().to_string();
        if path.extension().and_then(|e| e.to_str()) == Some("env") || name.ends_with(".env") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Problem::new("$", format!("cannot read var file {name}: {e}")))?;
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
                    return Err(p);
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
            p
        })?;
        let Some(obj) = doc.value.as_object() else {
            return Err(Problem::new(
                "$",
                format!(
                    "{name}: a var file must be an object with 'configuration' and/or 'secrets'"
                ),
            ));
        };
        for (k, v) in obj {
            match (k.as_str(), v) {
                ("configuration", Value::Object(m)) => self
                    .configuration
                    .extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
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
                ("configuration" | "secrets", _) => {
                    return Err(Problem::new(
                        format!("$.{k}"),
                        format!("{name}: '{k}' must be an object"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
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
        if let Some(v) = overrides.configuration.get(name) {
            out.configuration.insert(name.clone(), v.clone());
            continue;
        }
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
                Err(p) => problems.push(p),
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
        o.configuration.insert("over".into(), json!("z"));
        o.configuration
            .insert("undeclared".into(), json!("ignored"));
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
}
