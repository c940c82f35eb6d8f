//! `${name}` substitution with the Chaos Toolkit's rules (Python's `string.Template`
//! `safe_substitute`, plus its "native type" trick).
//!
//! - `${name}` and `$name` are looked up in the configuration, then in the secrets of
//!   every scope;
//! - `$$` is a literal `$`;
//! - unknown names are left as they are;
//! - a string that is exactly one placeholder keeps the value's native type
//!   (`"${port}"` with `port: 8080` becomes the number 8080).

use serde_json::{Map, Value};
use std::sync::LazyLock;

static PATTERN: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?i)\$(?:(\$)|([_a-z][_a-z0-9]*)|\{([_a-z][_a-z0-9]*)\})")
        .expect("static regex")
});

/// Where placeholders are looked up: configuration first, then secrets.
pub struct Vars<'a> {
    /// Resolved configuration.
    pub configuration: &'a Map<String, Value>,
    /// Resolved secrets, by scope.
    pub secrets: &'a Map<String, Value>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.configuration.get(name).or_else(|| {
            self.secrets
                .values()
                .filter_map(Value::as_object)
                .find_map(|scope| scope.get(name))
        })
    }

    /// Substitute inside any JSON value (strings, lists and objects, recursively).
    pub fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => self.string(s),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), self.value(v))).collect())
            }
            other => other.clone(),
        }
    }

    /// Substitute inside one string; exact single placeholders keep their type.
    pub fn string(&self, s: &str) -> Value {
        if !s.contains('$') {
            return Value::String(s.to_string());
        }
        if let Some(c) = PATTERN.captures(s) {
            let whole = c.get(0).expect("group 0");
            if whole.start() == 0 && whole.end() == s.len() {
                if let Some(name) = c.get(2).or_else(|| c.get(3)) {
                    if let Some(v) = self.get(name.as_str()) {
                        return v.clone();
                    }
                }
            }
        }
        let out = PATTERN.replace_all(s, |c: &regex::Captures<'_>| {
            if c.get(1).is_some() {
                return "$".to_string();
            }
            let name = c
                .get(2)
                .or_else(|| c.get(3))
                .expect("a name group")
                .as_str();
            match self.get(name) {
                Some(v) => python_str(v),
                None => c[0].to_string(),
            }
        });
        Value::String(out.into_owned())
    }

    /// Substitute and render as text (for titles and messages).
    pub fn text(&self, s: &str) -> String {
        match self.string(s) {
            Value::String(s) => s,
            v => python_str(&v),
        }
    }
}

/// How Python's `str()` renders a value inside a larger string, which is what the
/// Chaos Toolkit produces (`"n=${flag}"` with `flag: true` gives `"n=True"`).
pub fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                }
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with<T>(f: impl FnOnce(&Vars<'_>) -> T) -> T {
        let c = json!({"port": 8080, "host": "h", "flag": true, "ratio": 1.0});
        let s = json!({"auth": {"token": "s3cr3t"}});
        let vars = Vars {
            configuration: c.as_object().unwrap(),
            secrets: s.as_object().unwrap(),
        };
        f(&vars)
    }

    #[test]
    fn exact_placeholder_keeps_native_type() {
        with(|v| {
            assert_eq!(v.string("${port}"), json!(8080));
            assert_eq!(v.string("$port"), json!(8080));
            assert_eq!(v.string("${flag}"), json!(true));
        });
    }

    #[test]
    fn embedded_placeholders_render_like_python() {
        with(|v| {
            assert_eq!(v.string("http://${host}:${port}/"), json!("http://h:8080/"));
            assert_eq!(v.string("f=${flag} r=$ratio"), json!("f=True r=1.0"));
        });
    }

    #[test]
    fn dollars_and_unknown_names() {
        with(|v| {
            assert_eq!(
                v.string("cost $$5 ${nope} $nope"),
                json!("cost $5 ${nope} $nope")
            );
            assert_eq!(v.string("${nope}"), json!("${nope}"));
        });
    }

    #[test]
    fn secrets_are_looked_up_after_configuration() {
        with(|v| {
            assert_eq!(
                v.value(&json!({"h": ["Bearer ${token}"]})),
                json!({"h": ["Bearer s3cr3t"]})
            );
        });
    }
}
