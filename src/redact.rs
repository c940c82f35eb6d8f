//! Secret masking: no secret value ever leaves faultline (journal, console, files).
//!
//! Every resolved secret value is replaced by [`MASK`] wherever it appears inside a
//! string. Values shorter than [`MIN_SUBSTRING`] characters are masked only where a
//! whole string equals them: masking every "ab" inside every output would make
//! journals unreadable, and such short values are not secrets worth the name.

use serde_json::Value;
use std::borrow::Cow;

/// What a secret becomes.
pub const MASK: &str = "***";

/// Shortest secret masked inside longer strings.
pub const MIN_SUBSTRING: usize = 3;

/// Masks a fixed set of secret values.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these values (empty ones are ignored).
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        // Also the forms a secret takes inside URLs (error texts quote request URLs).
        let mut secrets: Vec<String> = values
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| {
                let pct = percent_encode(&s);
                let form = pct.replace("%20", "+");
                [s, pct, form]
            })
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Mask secrets inside a string.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if self.secrets.is_empty() {
            return Cow::Borrowed(s);
        }
        if self.secrets.iter().any(|x| x == s) {
            return Cow::Owned(MASK.to_string());
        }
        let mut out = Cow::Borrowed(s);
        for secret in self
            .secrets
            .iter()
            .filter(|x| x.chars().count() >= MIN_SUBSTRING)
        {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        out
    }

    /// [`Redactor::value`] of a value that is no longer needed: without secrets it is
    /// returned as is, not copied.
    pub fn into_value(&self, v: Value) -> Value {
        if self.secrets.is_empty() {
            v
        } else {
            self.value(&v)
        }
    }

    /// Mask secrets in every string (keys included) of a JSON value.
    pub fn value(&self, v: &Value) -> Value {
        if self.secrets.is_empty() {
            return v.clone();
        }
        match v {
            Value::String(s) => Value::String(self.text(s).into_owned()),
            Value::Number(n) if self.secrets.iter().any(|x| *x == n.to_string()) => {
                Value::String(MASK.into())
            }
            Value::Array(a) => Value::Array(a.iter().map(|v| self.value(v)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (self.text(k).into_owned(), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replace every literal value of an experiment's `secrets` block by [`MASK`]
/// (environment references stay: they name a variable, not a value).
pub fn mask_secret_block(experiment: &mut Value) {
    let Some(scopes) = experiment.get_mut("secrets").and_then(Value::as_object_mut) else {
        return;
    };
    for scope in scopes.values_mut() {
        let Some(entries) = scope.as_object_mut() else {
            continue;
        };
        for v in entries.values_mut() {
            let is_ref = v.as_object().is_some_and(|o| o.contains_key("type"));
            if is_ref {
                if let Some(d) = v.get_mut("default") {
                    *d = Value::String(MASK.into());
                }
            } else {
                *v = Value::String(MASK.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_inside_strings_keys_and_numbers() {
        let r = Redactor::new(["s3cr3t".to_string(), "12345".to_string(), "ab".to_string()]);
        assert_eq!(r.text("Bearer s3cr3t!"), "Bearer ***!");
        assert_eq!(
            r.value(&json!({"s3cr3t": [12345, "ab", "abc"]})),
            json!({"***": ["***", "***", "abc"]})
        );
        assert_eq!(
            r.into_value(json!({"s3cr3t": [12345, "ab", "abc"]})),
            json!({"***": ["***", "***", "abc"]})
        );
        let none = Redactor::new(Vec::<String>::new());
        assert_eq!(
            none.into_value(json!({"k": "s3cr3t"})),
            json!({"k": "s3cr3t"})
        );
    }

    #[test]
    fn url_encoded_forms_are_masked_too() {
        let r = Redactor::new(["canary spaced/1".to_string()]);
        assert_eq!(
            r.text("GET /q?k=canary%20spaced%2F1 failed"),
            "GET /q?k=*** failed"
        );
        assert_eq!(r.text("k=canary+spaced%2F1"), "k=***");
        assert_eq!(r.text("canary spaced/1"), "***");
    }

    #[test]
    fn secret_blocks_lose_their_literals() {
        let mut e = json!({"secrets": {"api": {"token": "x", "other": {"type": "env", "key": "K", "default": "d"}}}});
        mask_secret_block(&mut e);
        assert_eq!(e["secrets"]["api"]["token"], "***");
        assert_eq!(
            e["secrets"]["api"]["other"],
            json!({"type": "env", "key": "K", "default": "***"})
        );
    }
}
