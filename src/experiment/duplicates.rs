//! Duplicate keys in an experiment: the Chaos Toolkit accepts them (Python's `json`
//! and PyYAML keep the last), so faultline does too, but says so, naming both places:
//! a duplicated key is almost always an editing mistake that silently drops a value.
//!
//! JSON is scanned directly (serde_json keeps no positions); YAML is read through
//! serde-saphyr with repeated keys passed through and every key's location kept.

use super::locate::{line_col, Scan};
use super::{Format, Problem};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::collections::HashMap;

/// One key written twice in the same object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The JSON path of the key.
    pub path: String,
    /// Line and column (from 1) of the first occurrence.
    pub first: (usize, usize),
    /// Line and column of the later one, whose value is used.
    pub later: (usize, usize),
}

impl Duplicate {
    /// The warning `validate` and `run` print.
    pub fn to_problem(&self) -> Problem {
        let mut p = Problem::new(
            &self.path,
            format!(
                "duplicate key: first at line {} column {}, again at line {} column {}; the last value is used, as the Chaos Toolkit does",
                self.first.0, self.first.1, self.later.0, self.later.1
            ),
        )
        .hint("remove one of the two, or rename it");
        p.line = Some(self.later.0);
        p.column = Some(self.later.1);
        p
    }
}

/// Every duplicated key of a document that parsed, in document order. A document
/// that cannot be walked (it did not parse) has none.
pub fn find(text: &str, format: Format) -> Vec<Duplicate> {
    match format {
        Format::Json => {
            let mut w = JsonWalk {
                scan: Scan {
                    b: text.as_bytes(),
                    i: 0,
                },
                text,
                found: Vec::new(),
                depth: 0,
            };
            w.value("$");
            w.found
        }
        Format::Yaml => {
            let options = serde_saphyr::options! {
                duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
            };
            serde_saphyr::from_str_with_options::<Walked>(text, options)
                .map(|w| w.0)
                .unwrap_or_default()
        }
    }
}

/// Deep enough for any experiment; deeper documents are not walked further (serde_json
/// refuses them anyway at 128 levels).
const MAX_DEPTH: usize = 128;

struct JsonWalk<'a> {
    scan: Scan<'a>,
    text: &'a str,
    found: Vec<Duplicate>,
    depth: usize,
}

impl JsonWalk<'_> {
    /// Walk one value at `i`; `None` when the text is not what a parsed document is.
    fn value(&mut self, path: &str) -> Option<()> {
        self.scan.ws();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let r = match *self.scan.b.get(self.scan.i)? {
            b'{' => self.object(path),
            b'[' => self.array(path),
            b'"' => self.scan.string().map(|_| ()),
            _ => {
                let s = &mut self.scan;
                while s.i < s.b.len()
                    && !matches!(s.b[s.i], b',' | b'}' | b']')
                    && !s.b[s.i].is_ascii_whitespace()
                {
                    s.i += 1;
                }
                Some(())
            }
        };
        self.depth -= 1;
        r
    }

    fn object(&mut self, path: &str) -> Option<()> {
        self.scan.i += 1;
        let mut seen: HashMap<String, usize> = HashMap::new();
        loop {
            self.scan.ws();
            match *self.scan.b.get(self.scan.i)? {
                b'}' => {
                    self.scan.i += 1;
                    return Some(());
                }
                b',' => {
                    self.scan.i += 1;
                    continue;
                }
                _ => {}
            }
            let at = self.scan.i;
            let key = self.scan.string()?;
            let child = child_path(path, &key);
            if let Some(first) = seen.get(&key) {
                let d = Duplicate {
                    path: child.clone(),
                    first: line_col(self.text, *first),
                    later: line_col(self.text, at),
                };
                self.found.push(d);
            }
            seen.insert(key, at);
            self.scan.ws();
            self.scan.i += 1; // ':'
            self.value(&child)?;
        }
    }

    fn array(&mut self, path: &str) -> Option<()> {
        self.scan.i += 1;
        let mut n = 0;
        loop {
            self.scan.ws();
            match *self.scan.b.get(self.scan.i)? {
                b']' => {
                    self.scan.i += 1;
                    return Some(());
                }
                b',' => {
                    self.scan.i += 1;
                    continue;
                }
                _ => {}
            }
            self.value(&format!("{path}[{n}]"))?;
            n += 1;
        }
    }
}

fn child_path(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

/// A YAML document walked for its keys: the duplicates found.
struct Walked(Vec<Duplicate>);

impl<'de> serde::Deserialize<'de> for Walked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Walked, D::Error> {
        let found = RefCell::new(Vec::new());
        Seed {
            path: "$".into(),
            found: &found,
        }
        .deserialize(d)?;
        Ok(Walked(found.into_inner()))
    }
}

struct Seed<'a> {
    path: String,
    found: &'a RefCell<Vec<Duplicate>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while seq
            .next_element_seed(Seed {
                path: format!("{}[{n}]", self.path),
                found: self.found,
            })?
            .is_some()
        {
            n += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
        while let Some(key) = map.next_key::<serde_saphyr::Spanned<serde_json::Value>>()? {
            let name = match &key.value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let at = (
                usize::try_from(key.referenced.line()).unwrap_or(0),
                usize::try_from(key.referenced.column()).unwrap_or(0),
            );
            let child = child_path(&self.path, &name);
            if let Some(first) = seen.get(&name) {
                self.found.borrow_mut().push(Duplicate {
                    path: child.clone(),
                    first: *first,
                    later: at,
                });
            }
            seen.insert(name, at);
            map.next_value_seed(Seed {
                path: child,
                found: self.found,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_duplicates_name_both_places() {
        let text = "{\n  \"title\": \"a\",\n  \"method\": [{\"name\": \"x\", \"name\": \"y\"}],\n  \"title\": \"b\"\n}";
        let d = find(text, Format::Json);
        assert_eq!(
            d,
            vec![
                Duplicate {
                    path: "$.method[0].name".into(),
                    first: (3, 15),
                    later: (3, 28),
                },
                Duplicate {
                    path: "$.title".into(),
                    first: (2, 3),
                    later: (4, 3),
                },
            ]
        );
        assert!(find("{\"a\": {\"a\": 1}, \"b\": [1, {\"a\": 2}]}", Format::Json).is_empty());
    }

    #[test]
    fn yaml_duplicates_name_both_places() {
        let text = "title: a\nmethod:\n  - name: x\n    type: action\n    name: y\ntitle: b\n";
        let d = find(text, Format::Yaml);
        assert_eq!(
            d,
            vec![
                Duplicate {
                    path: "$.method[0].name".into(),
                    first: (3, 5),
                    later: (5, 5),
                },
                Duplicate {
                    path: "$.title".into(),
                    first: (1, 1),
                    later: (6, 1),
                },
            ]
        );
        assert!(find("a: {a: 1}\nb: [1, {a: 2}]\n", Format::Yaml).is_empty());
        assert!(find("not: [valid\n", Format::Yaml).is_empty());
    }
}
