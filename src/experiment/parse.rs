//! One pure pass over a loaded document: every problem at once, or the typed model.
//!
//! Lenient like the Chaos Toolkit on what it does not know (unknown keys are kept and
//! ignored), strict on what it does: wrong types, missing keys, unknown provider types,
//! bad tolerances, unresolvable refs. Nothing here touches the environment, the network
//! or the file system; that is the job of running.

use super::model::*;
use super::Problem;
use crate::run::{HypothesisStrategy, RollbackStrategy};
use serde_json::Value;
use std::collections::HashMap;

/// Build the experiment, or report every problem found.
pub fn parse(doc: &Value) -> Result<Experiment, Vec<Problem>> {
    let mut c = Checker::default();
    let exp = c.experiment(doc);
    if c.problems.is_empty() {
        Ok(exp.expect("no problem means a built experiment"))
    } else {
        Err(c.problems)
    }
}

/// Parse a `runtime` block on its own (for settings files).
pub fn runtime(v: &Value, path: &str) -> Result<Runtime, Vec<Problem>> {
    let mut c = Checker::default();
    let rt = c.runtime(v, path);
    if c.problems.is_empty() {
        Ok(rt)
    } else {
        Err(c.problems)
    }
}

/// One configuration value outside an experiment (a `--var-file`'s), checked exactly
/// as the experiment's own `configuration` entries are; `path` locates its problems.
pub fn configuration_entry(v: &Value, path: &str) -> Result<ConfigEntry, Vec<Problem>> {
    let mut c = Checker::default();
    match c.config_entry(v, path) {
        Some(e) if c.problems.is_empty() => Ok(e),
        _ if c.problems.is_empty() => Err(vec![Problem::new(
            path,
            "not a valid configuration declaration",
        )]),
        _ => Err(c.problems),
    }
}

/// The last key of a JSON path (`$.method[1].provider.url` -> `url`).
fn last_key(path: &str) -> &str {
    let end = path.trim_end_matches(|c: char| c == ']' || c.is_ascii_digit() || c == '[');
    end.rsplit('.').next().unwrap_or(end)
}

/// What a well-known key holds, for hints.
fn key_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "title" => "a short sentence saying what the experiment checks",
        "description" => "a text explaining the experiment (it may be empty)",
        "name" => "a unique name for the activity (refs use it)",
        "type" => "the kind of thing declared (see the message for the accepted values)",
        "url" => "the full http(s) URL to call, e.g. \"http://127.0.0.1:8080/health\"",
        "path" => "the program to run, found on PATH (e.g. \"curl\") or an absolute path",
        "module" => "a python module, e.g. \"os.path\"",
        "func" => "a function of that module, e.g. \"exists\"",
        "key" => "the name of an environment variable",
        "provider" => {
            "an object saying what to run: {\"type\": \"http\" | \"process\" | \"python\", ...}"
        }
        "probes" => "a list of probes, each with a tolerance",
        "method" => "the list of activities to run",
        "rollbacks" => "a list of activities that undo the method",
        "tolerance" => "the value, list, range, regex, jsonpath or probe the output must match",
        "pattern" => "a regular expression (Python syntax)",
        "arguments" => "the provider's arguments",
        "headers" => "an object of header names to values",
        "timeout" => "a number of seconds",
        "output_limit" => {
            "the most bytes kept of each output stream or HTTP body, a whole number such as 1048576"
        }
        "background" => "true or false",
        "tags" => "a list of strings",
        "controls" => {
            "a list of {\"name\": ..., \"provider\": {\"type\": \"python\", \"module\": ...}}"
        }
        _ => return None,
    })
}

/// A hint for a problem raised without one: say what the key should hold.
fn default_hint(path: &str, msg: &str) -> String {
    let key = last_key(path);
    match key_hint(key) {
        Some(h) if msg.starts_with("missing") => format!("add \"{key}\": {h}"),
        Some(h) => format!("'{key}' is {h}"),
        None => "see docs/compatibility.md and the Chaos Toolkit's experiment format".to_string(),
    }
}

/// Error texts that span lines (regex errors draw a caret) on one line.
fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// True when a string will be substituted at run time, so its final type is unknown.
fn is_template(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('$'))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An activity slot before refs are resolved.
enum Slot {
    Defined(Box<Activity>),
    Ref { name: String, path: String },
    Broken,
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        let msg = msg.into();
        let hint = default_hint(path, &msg);
        self.problems.push(Problem::new(path, msg).hint(hint));
    }

    fn err_hint(&mut self, path: &str, msg: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem::new(path, msg).hint(hint));
    }

    fn wrong_type(&mut self, path: &str, expected: &str, got: &Value) {
        let key = last_key(path);
        let hint = match key_hint(key) {
            Some(h) => format!("'{key}' is {h}"),
            None => format!(
                "replace {} with {expected}",
                crate::experiment::tolerance::brief(got)
            ),
        };
        self.err_hint(
            path,
            format!("expected {expected}, found {}", type_name(got)),
            hint,
        );
    }

    /// A required string (non-empty when `non_empty`).
    fn req_str(&mut self, obj: &Object, key: &str, path: &str, non_empty: bool) -> Option<String> {
        let p = format!("{path}.{key}");
        match obj.get(key) {
            None => {
                self.err(&p, format!("missing required key '{key}'"));
                None
            }
            Some(Value::String(s)) if non_empty && s.trim().is_empty() => {
                self.err(&p, format!("'{key}' must not be empty"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                self.wrong_type(&p, "a string", v);
                None
            }
        }
    }

    fn opt_str(&mut self, obj: &Object, key: &str, path: &str) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                self.wrong_type(&format!("{path}.{key}"), "a string", v);
                None
            }
        }
    }

    fn opt_bool(&mut self, obj: &Object, key: &str, path: &str) -> Option<bool> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.wrong_type(&format!("{path}.{key}"), "true or false", v);
                None
            }
        }
    }

    /// A number of seconds (or a template), non-negative.
    /// A provider's `output_limit`: a non-negative whole number of bytes (or a template).
    fn output_limit(&mut self, m: &Object, path: &str) {
        let p = format!("{path}.output_limit");
        match m.get("output_limit") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some() => {}
            Some(v) if is_template(v) => {}
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => {}
            Some(Value::Number(n)) => self.err_hint(
                &p,
                format!("expected a non-negative whole number of bytes, found {n}"),
                "'output_limit' is the most bytes kept of each output stream or HTTP body, e.g. 1048576 (1 MiB)",
            ),
            Some(v) => self.wrong_type(&p, "a whole number of bytes", v),
        }
    }

    fn seconds(&mut self, v: &Value, path: &str) {
        let f = match v {
            Value::Number(n) => n.as_f64(),
            v if is_template(v) => return,
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match f {
            Some(f) => {
                if let Err(e) = crate::duration::seconds(f) {
                    self.err_hint(path, e, crate::duration::HINT);
                }
            }
            None => self.wrong_type(path, "a number of seconds", v),
        }
    }

    fn experiment(&mut self, doc: &Value) -> Option<Experiment> {
        let Some(obj) = doc.as_object() else {
            self.err_hint(
                "$",
                format!("an experiment must be an object, found {}", type_name(doc)),
                "an experiment starts with {\"title\": ..., \"description\": ..., \"method\": [...]}",
            );
            return None;
        };
        let title = self.req_str(obj, "title", "$", true);
        let description = self.req_str(obj, "description", "$", false);

        if let Some(v) = obj.get("version") {
            if !matches!(v, Value::String(_) | Value::Number(_)) {
                self.wrong_type("$.version", "a string", v);
            }
        }
        if let Some(v) = obj.get("tags") {
            match v {
                Value::Array(items) => {
                    for (i, t) in items.iter().enumerate() {
                        if !t.is_string() {
                            self.wrong_type(&format!("$.tags[{i}]"), "a string", t);
                        }
                    }
                }
                v => self.wrong_type("$.tags", "a list of strings", v),
            }
        }
        if let Some(v) = obj.get("contributions") {
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        if !matches!(c.as_str(), Some("none" | "low" | "medium" | "high")) {
                            self.err_hint(
                                &format!("$.contributions.{k}"),
                                format!("unknown contribution level {c}"),
                                "use one of none, low, medium, high",
                            );
                        }
                    }
                }
                v => self.wrong_type("$.contributions", "an object", v),
            }
        }
        if let Some(v) = obj.get("extensions") {
            match v {
                Value::Array(items) => {
                    for (i, e) in items.iter().enumerate() {
                        let p = format!("$.extensions[{i}]");
                        match e.as_object() {
                            Some(m) => {
                                self.req_str(m, "name", &p, true);
                            }
                            None => self.wrong_type(&p, "an object with a 'name'", e),
                        }
                    }
                }
                v => self.wrong_type("$.extensions", "a list", v),
            }
        }

        let mut controls = Vec::new();
        self.controls(obj, "$", &mut controls);
        let configuration = self.configuration(obj.get("configuration"));
        let secrets = self.secrets(obj.get("secrets"));
        let runtime = match obj.get("runtime") {
            Some(v) => self.runtime(v, "$.runtime"),
            None => Runtime::default(),
        };

        // Activities: collect definitions first, then resolve refs against all of them.
        let mut hypo_title = None;
        let mut hypo_slots = Vec::new();
        let mut has_hypothesis = false;
        match obj.get("steady-state-hypothesis") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                has_hypothesis = true;
                hypo_title = self.req_str(h, "title", "$.steady-state-hypothesis", false);
                self.controls(h, "$.steady-state-hypothesis", &mut controls);
                match h.get("probes") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        for (i, a) in items.iter().enumerate() {
                            let p = format!("$.steady-state-hypothesis.probes[{i}]");
                            hypo_slots.push(self.activity(a, &p, true, &mut controls));
                        }
                    }
                    Some(v) => self.wrong_type("$.steady-state-hypothesis.probes", "a list", v),
                }
            }
            Some(v) => self.wrong_type("$.steady-state-hypothesis", "an object", v),
        }
        let method_slots = match obj.get("method") {
            None => {
                self.err_hint(
                    "$.method",
                    "missing required key 'method'",
                    "the method lists the activities to run; it may be an empty list",
                );
                Vec::new()
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, a)| self.activity(a, &format!("$.method[{i}]"), false, &mut controls))
                .collect(),
            Some(v) => {
                self.wrong_type("$.method", "a list of activities", v);
                Vec::new()
            }
        };
        let rollback_slots = match obj.get("rollbacks") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, a)| self.activity(a, &format!("$.rollbacks[{i}]"), false, &mut controls))
                .collect(),
            Some(v) => {
                self.wrong_type("$.rollbacks", "a list of activities", v);
                Vec::new()
            }
        };

        let mut by_name: HashMap<String, Activity> = HashMap::new();
        for slot in hypo_slots
            .iter()
            .chain(&method_slots)
            .chain(&rollback_slots)
        {
            if let Slot::Defined(a) = slot {
                by_name
                    .entry(a.name.clone())
                    .or_insert_with(|| (**a).clone());
            }
        }
        let resolve = |slots: Vec<Slot>, c: &mut Checker| -> Vec<Activity> {
            slots
                .into_iter()
                .filter_map(|s| match s {
                    Slot::Defined(a) => Some(*a),
                    Slot::Broken => None,
                    Slot::Ref { name, path } => match by_name.get(&name) {
                        Some(a) => Some(a.clone()),
                        None => {
                            let mut known: Vec<&str> = by_name.keys().map(String::as_str).collect();
                            known.sort_unstable();
                            c.err_hint(
                                &format!("{path}.ref"),
                                format!("no activity named '{name}' to refer to"),
                                if known.is_empty() {
                                    "a ref names an activity defined elsewhere in the experiment"
                                        .to_string()
                                } else {
                                    format!("defined activities: {}", known.join(", "))
                                },
                            );
                            None
                        }
                    },
                })
                .collect()
        };
        let probes = resolve(hypo_slots, self);
        let method = resolve(method_slots, self);
        let rollbacks = resolve(rollback_slots, self);
        for (i, p) in probes.iter().enumerate() {
            if p.tolerance.is_none() {
                self.err_hint(
                    &format!("$.steady-state-hypothesis.probes[{i}]"),
                    format!("hypothesis probe '{}' has no tolerance", p.name),
                    "add a \"tolerance\": the value (or range, regex, jsonpath...) the probe's output must match",
                );
            }
        }

        if !self.problems.is_empty() {
            return None;
        }
        let hypothesis = if has_hypothesis && !probes.is_empty() {
            Some(Hypothesis {
                title: hypo_title.unwrap_or_default(),
                probes,
            })
        } else {
            None
        };
        Some(Experiment {
            raw: doc.clone(),
            title: title?,
            description: description?,
            configuration,
            secrets,
            runtime,
            hypothesis,
            method,
            rollbacks,
            controls,
        })
    }

    fn controls(&mut self, obj: &Object, path: &str, out: &mut Vec<ControlDecl>) {
        let Some(v) = obj.get("controls") else { return };
        let p = format!("{path}.controls");
        let Some(items) = v.as_array() else {
            self.wrong_type(&p, "a list of controls", v);
            return;
        };
        for (i, c) in items.iter().enumerate() {
            let cp = format!("{p}[{i}]");
            let Some(m) = c.as_object() else {
                self.wrong_type(&cp, "an object with 'name' and 'provider'", c);
                continue;
            };
            let name = self.req_str(m, "name", &cp, true);
            let module = match m.get("provider") {
                None => {
                    self.err(&format!("{cp}.provider"), "missing required key 'provider'");
                    None
                }
                Some(Value::Object(pm)) => {
                    let pp = format!("{cp}.provider");
                    match pm.get("type").and_then(Value::as_str) {
                        Some("python") => self.req_str(pm, "module", &pp, true),
                        Some(t) => {
                            self.err_hint(
                                &format!("{pp}.type"),
                                format!("unknown control provider type '{t}'"),
                                "controls are declared with \"type\": \"python\" and a \"module\"",
                            );
                            None
                        }
                        None => {
                            self.err(&format!("{pp}.type"), "missing required key 'type'");
                            None
                        }
                    }
                }
                Some(v) => {
                    self.wrong_type(&format!("{cp}.provider"), "an object", v);
                    None
                }
            };
            if let Some(s) = m.get("scope") {
                if !matches!(s.as_str(), Some("before" | "after")) {
                    self.err_hint(
                        &format!("{cp}.scope"),
                        "unknown scope",
                        "use \"before\" or \"after\"",
                    );
                }
            }
            let automatic = self.opt_bool(m, "automatic", &cp).unwrap_or(true);
            let provider = m.get("provider");
            if let Some(name) = name {
                out.push(ControlDecl {
                    name,
                    module,
                    path: cp,
                    activity: None,
                    automatic,
                    arguments: provider
                        .and_then(|p| p.get("arguments"))
                        .cloned()
                        .unwrap_or(Value::Null),
                    secrets: provider
                        .map(crate::provider::Provider::secret_scopes)
                        .unwrap_or_default(),
                    raw: c.clone(),
                });
            }
        }
    }

    fn env_ref(&mut self, m: &Object, path: &str) -> Option<(String, Option<Value>)> {
        let key = self.req_str(m, "key", path, true)?;
        Some((key, m.get("default").cloned()))
    }

    fn configuration(&mut self, v: Option<&Value>) -> Vec<(String, ConfigEntry)> {
        let Some(v) = v else { return Vec::new() };
        let Some(m) = v.as_object() else {
            self.wrong_type("$.configuration", "an object", v);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in m {
            if let Some(e) = self.config_entry(v, &format!("$.configuration.{k}")) {
                out.push((k.clone(), e));
            }
        }
        out
    }

    /// One configuration value at `p`: a literal, or a declaration (an object with a
    /// `type`): `env` or a dynamic `probe`.
    fn config_entry(&mut self, v: &Value, p: &str) -> Option<ConfigEntry> {
        match v {
            Value::Object(o) if o.contains_key("type") => {
                match o.get("type").and_then(Value::as_str) {
                    Some("env") => {
                        let env_var_type = match o.get("env_var_type") {
                            None | Some(Value::Null) => None,
                            Some(Value::String(t)) => match EnvVarType::parse(t) {
                                Some(t) => Some(t),
                                None => {
                                    self.err_hint(
                                        &format!("{p}.env_var_type"),
                                        format!("unknown env_var_type '{t}'"),
                                        "use one of str, int, float, bytes, bool, json",
                                    );
                                    None
                                }
                            },
                            Some(t) => {
                                self.wrong_type(&format!("{p}.env_var_type"), "a string", t);
                                None
                            }
                        };
                        self.env_ref(o, p).map(|(key, default)| ConfigEntry::Env {
                            key,
                            default,
                            env_var_type,
                        })
                    }
                    Some("probe") => {
                        let mut ignored = Vec::new();
                        match self.activity(v, p, false, &mut ignored) {
                            Slot::Defined(a) => Some(ConfigEntry::Probe(a)),
                            _ => None,
                        }
                    }
                    Some(t) => {
                        self.err_hint(
                            &format!("{p}.type"),
                            format!("unknown configuration type '{t}'"),
                            "a configuration value is a literal, {\"type\": \"env\", \"key\": ...} or {\"type\": \"probe\", ...}",
                        );
                        None
                    }
                    None => {
                        self.wrong_type(&format!("{p}.type"), "a string", &o["type"]);
                        None
                    }
                }
            }
            v => Some(ConfigEntry::Literal(v.clone())),
        }
    }

    fn secrets(&mut self, v: Option<&Value>) -> Vec<(String, Vec<(String, SecretEntry)>)> {
        let Some(v) = v else { return Vec::new() };
        let Some(m) = v.as_object() else {
            self.wrong_type("$.secrets", "an object of scopes", v);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (scope, entries) in m {
            let sp = format!("$.secrets.{scope}");
            let Some(entries) = entries.as_object() else {
                self.err_hint(
                    &sp,
                    format!("expected an object of secrets, found {}", type_name(entries)),
                    "secrets are grouped by scope: {\"scope\": {\"name\": \"value\" or {\"type\": \"env\", \"key\": ...}}}",
                );
                continue;
            };
            let mut list = Vec::new();
            for (k, v) in entries {
                let p = format!("{sp}.{k}");
                match v {
                    Value::Object(o) if o.contains_key("type") => match o.get("type").and_then(Value::as_str) {
                        Some("env") => {
                            if let Some((key, default)) = self.env_ref(o, &p) {
                                list.push((k.clone(), SecretEntry::Env { key, default }));
                            }
                        }
                        Some("vault") => self.err_hint(
                            &format!("{p}.type"),
                            "vault secrets are not supported by faultline",
                            "export the secret into an environment variable and use {\"type\": \"env\", \"key\": ...}",
                        ),
                        _ => self.err_hint(
                            &format!("{p}.type"),
                            format!("unknown secret type {}", o["type"]),
                            "a secret is a literal or {\"type\": \"env\", \"key\": ...}",
                        ),
                    },
                    v => list.push((k.clone(), SecretEntry::Literal(v.clone()))),
                }
            }
            out.push((scope.clone(), list));
        }
        out
    }

    fn runtime(&mut self, v: &Value, path: &str) -> Runtime {
        let mut rt = Runtime::default();
        let Some(m) = v.as_object() else {
            self.wrong_type(path, "an object", v);
            return rt;
        };
        if let Some(r) = m.get("rollbacks") {
            let p = format!("{path}.rollbacks");
            match r.as_object() {
                Some(r) => {
                    if let Some(s) = self.opt_str(r, "strategy", &p) {
                        match s.parse::<RollbackStrategy>() {
                            Ok(s) => rt.rollback_strategy = Some(s),
                            Err(e) => {
                                self.err_hint(&format!("{p}.strategy"), e, RollbackStrategy::HINT)
                            }
                        }
                    }
                }
                None => self.wrong_type(&p, "an object", r),
            }
        }
        if let Some(h) = m.get("hypothesis") {
            let p = format!("{path}.hypothesis");
            match h.as_object() {
                Some(h) => {
                    if let Some(s) = self.opt_str(h, "strategy", &p) {
                        match s.parse::<HypothesisStrategy>() {
                            Ok(s) => rt.hypothesis_strategy = Some(s),
                            Err(e) => {
                                self.err_hint(&format!("{p}.strategy"), e, HypothesisStrategy::HINT)
                            }
                        }
                    }
                    match h.get("frequency") {
                        None | Some(Value::Null) => {}
                        Some(Value::Number(n)) => {
                            let f = n.as_f64().unwrap_or(f64::NAN);
                            match crate::duration::positive_seconds(f) {
                                Ok(_) => rt.hypothesis_frequency = Some(f),
                                Err(e) => self.err_hint(
                                    &format!("{p}.frequency"),
                                    e,
                                    crate::duration::HINT,
                                ),
                            }
                        }
                        Some(v) => self.wrong_type(
                            &format!("{p}.frequency"),
                            "a positive number of seconds",
                            v,
                        ),
                    }
                    rt.fail_fast = self.opt_bool(h, "fail_fast", &p);
                }
                None => self.wrong_type(&p, "an object", h),
            }
        }
        rt
    }

    fn activity(
        &mut self,
        v: &Value,
        path: &str,
        in_hypothesis: bool,
        controls: &mut Vec<ControlDecl>,
    ) -> Slot {
        let Some(m) = v.as_object() else {
            self.wrong_type(path, "an activity object (or {\"ref\": \"name\"})", v);
            return Slot::Broken;
        };
        if let Some(r) = m.get("ref") {
            if !m.contains_key("type") {
                return match r.as_str() {
                    Some(name) => Slot::Ref {
                        name: name.to_string(),
                        path: path.to_string(),
                    },
                    None => {
                        self.wrong_type(&format!("{path}.ref"), "the name of an activity", r);
                        Slot::Broken
                    }
                };
            }
        }
        let before = self.problems.len();
        let kind = match m.get("type") {
            None => {
                self.err_hint(
                    &format!("{path}.type"),
                    "missing required key 'type'",
                    "an activity is a \"probe\" or an \"action\"",
                );
                None
            }
            Some(Value::String(s)) if s == "probe" => Some(ActivityKind::Probe),
            Some(Value::String(s)) if s == "action" => Some(ActivityKind::Action),
            Some(t) => {
                self.err_hint(
                    &format!("{path}.type"),
                    format!("unknown activity type {t}"),
                    "an activity is a \"probe\" or an \"action\"",
                );
                None
            }
        };
        let name = self.req_str(m, "name", path, true);
        let provider = match m.get("provider") {
            None => {
                self.err_hint(
                    &format!("{path}.provider"),
                    "missing required key 'provider'",
                    "a provider says what to run: {\"type\": \"http\" | \"process\" | \"python\", ...}",
                );
                None
            }
            Some(p) => {
                self.provider(p, &format!("{path}.provider"));
                Some(p.clone())
            }
        };
        let tolerance = m.get("tolerance").cloned();
        if let Some(t) = &tolerance {
            self.tolerance(t, &format!("{path}.tolerance"));
            // The `slo` probe answers a status object, which never equals a boolean:
            // such a tolerance could never be met, so say what works instead.
            let slo = provider
                .as_ref()
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str)
                == Some("slo");
            if slo && t.is_boolean() {
                self.err_hint(
                    &format!("{path}.tolerance"),
                    "the slo probe returns the objective's status (an object), never a boolean",
                    "use {\"type\": \"jsonpath\", \"path\": \"$.met\", \"expect\": true}",
                );
            }
        }
        let background = self.opt_bool(m, "background", path).unwrap_or(false);
        if background && in_hypothesis {
            self.err_hint(
                &format!("{path}.background"),
                "a hypothesis probe cannot run in the background",
                "remove \"background\": hypothesis probes run in order",
            );
        }
        let (mut pause_before, mut pause_after) = (None, None);
        if let Some(p) = m.get("pauses") {
            let pp = format!("{path}.pauses");
            match p.as_object() {
                Some(pm) => {
                    for (k, v) in pm {
                        match k.as_str() {
                            "before" => {
                                self.seconds(v, &format!("{pp}.before"));
                                pause_before = Some(v.clone());
                            }
                            "after" => {
                                self.seconds(v, &format!("{pp}.after"));
                                pause_after = Some(v.clone());
                            }
                            other => self.err_hint(
                                &format!("{pp}.{other}"),
                                format!("unknown pause '{other}'"),
                                "pauses are \"before\" and \"after\", in seconds",
                            ),
                        }
                    }
                }
                None => self.wrong_type(&pp, "an object with \"before\"/\"after\" seconds", p),
            }
        }
        let timeout = m.get("timeout").cloned();
        if let Some(t) = &timeout {
            self.seconds(t, &format!("{path}.timeout"));
        }
        let first_control = controls.len();
        self.controls(m, path, controls);
        for c in &mut controls[first_control..] {
            c.activity = name.clone();
        }
        if self.problems.len() > before {
            return Slot::Broken;
        }
        match (kind, name, provider) {
            (Some(kind), Some(name), Some(provider)) => Slot::Defined(Box::new(Activity {
                kind,
                name,
                provider,
                tolerance,
                background,
                pause_before,
                pause_after,
                timeout,
                raw: v.clone(),
            })),
            _ => Slot::Broken,
        }
    }

    fn provider(&mut self, v: &Value, path: &str) {
        let Some(m) = v.as_object() else {
            self.wrong_type(path, "a provider object", v);
            return;
        };
        let ty = match m.get("type") {
            None => {
                self.err_hint(
                    &format!("{path}.type"),
                    "missing required key 'type'",
                    "use \"http\", \"process\", \"python\" or \"prometheus\" (or \"indicator\", \"slo\": SLO activities)",
                );
                return;
            }
            Some(Value::String(s)) => s.as_str(),
            Some(t) => {
                self.wrong_type(&format!("{path}.type"), "a string", t);
                return;
            }
        };
        if let Some(s) = m.get("secrets") {
            match s {
                Value::Array(items) if items.iter().all(Value::is_string) => {}
                Value::String(_) => {}
                v => self.wrong_type(
                    &format!("{path}.secrets"),
                    "a list of secret scope names",
                    v,
                ),
            }
        }
        self.output_limit(m, path);
        match ty {
            "http" => {
                // A literal URL is checked here, purely, so `validate` and `run` agree;
                // one built by `${}` substitution is checked by the pre-flight.
                if let Some(url) = self.req_str(m, "url", path, true) {
                    if !url.contains('$') {
                        if let Err(e) = crate::provider::http::check_url(&url) {
                            self.err_hint(
                                &format!("{path}.url"),
                                e,
                                "a full http(s) URL, e.g. http://127.0.0.1:8080/health",
                            );
                        }
                    }
                }
                if let Some(meth) = self.opt_str(m, "method", path) {
                    let known = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
                    if !is_template(&Value::String(meth.clone()))
                        && !known.contains(&meth.to_ascii_uppercase().as_str())
                    {
                        self.err_hint(
                            &format!("{path}.method"),
                            format!("unknown HTTP method '{meth}'"),
                            format!("use one of {}", known.join(", ")),
                        );
                    }
                }
                match m.get("headers") {
                    None | Some(Value::Null) => {}
                    Some(v) if is_template(v) => {}
                    Some(Value::Object(h)) => {
                        for (k, hv) in h {
                            if !matches!(hv, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                                self.wrong_type(&format!("{path}.headers.{k}"), "a string", hv);
                            }
                        }
                    }
                    Some(v) => self.wrong_type(
                        &format!("{path}.headers"),
                        "an object of header names to values",
                        v,
                    ),
                }
                match m.get("timeout") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(pair)) => {
                        if pair.len() != 2 {
                            self.err_hint(
                                &format!("{path}.timeout"),
                                format!(
                                    "a timeout list must have 2 elements, found {}",
                                    pair.len()
                                ),
                                "use seconds, or [connect seconds, read seconds]",
                            );
                        }
                        for (i, t) in pair.iter().enumerate() {
                            self.seconds(t, &format!("{path}.timeout[{i}]"));
                        }
                    }
                    Some(t) => self.seconds(t, &format!("{path}.timeout")),
                }
                self.opt_bool(m, "verify_tls", path);
                match m.get("max_retries") {
                    None | Some(Value::Null) => {}
                    Some(Value::Number(n)) if n.as_u64().is_some() => {}
                    Some(v) if is_template(v) => {}
                    Some(v) => {
                        self.wrong_type(&format!("{path}.max_retries"), "a non-negative integer", v)
                    }
                }
                match m.get("expected_status") {
                    None | Some(Value::Null) => {}
                    Some(Value::Number(n)) if n.as_u64().is_some() => {}
                    Some(Value::Array(items)) if items.iter().all(|s| s.as_u64().is_some()) => {}
                    Some(v) if is_template(v) => {}
                    Some(v) => self.wrong_type(
                        &format!("{path}.expected_status"),
                        "a status code or a list of status codes",
                        v,
                    ),
                }
            }
            "process" => {
                self.req_str(m, "path", path, true);
                match m.get("arguments") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(_) | Value::Array(_) | Value::Object(_)) => {}
                    Some(v) => self.wrong_type(
                        &format!("{path}.arguments"),
                        "a list of arguments or a string",
                        v,
                    ),
                }
                if let Some(t) = m.get("timeout") {
                    if !t.is_null() {
                        self.seconds(t, &format!("{path}.timeout"));
                    }
                }
                match m.get("env") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(_)) => {}
                    Some(v) => self.wrong_type(
                        &format!("{path}.env"),
                        "an object of variable names to values",
                        v,
                    ),
                }
                self.opt_str(m, "cwd", path);
            }
            "python" => {
                self.req_str(m, "module", path, true);
                self.req_str(m, "func", path, true);
                match m.get("arguments") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(_)) => {}
                    Some(v) if is_template(v) => {}
                    Some(v) => self.wrong_type(
                        &format!("{path}.arguments"),
                        "an object of argument names to values",
                        v,
                    ),
                }
                self.slo(m, path);
                self.prometheus(m, path);
            }
            "prometheus" => self.prometheus(m, path),
            // The SLO providers check themselves (the same code types them at run
            // time), so `validate` and `run` say the same.
            "indicator" | "slo" => self.slo(m, path),
            other => self.err_hint(
                &format!("{path}.type"),
                format!("unknown provider type '{other}'"),
                "use \"http\", \"process\", \"python\" or \"prometheus\" (or \"indicator\", \"slo\": SLO activities)",
            ),
        }
    }

    /// An SLO provider's own problems (`indicator`, `slo`, the native `slo_is_met`).
    fn slo(&mut self, m: &Object, path: &str) {
        for (key, message) in crate::provider::slo::check(m) {
            self.err_hint(
                &format!("{path}.{key}"),
                message,
                "see \"SLO activities\" in docs/compatibility.md",
            );
        }
    }

    /// A PromQL provider's own problems (`prometheus`, the native chaosprometheus
    /// probes), from the code that types it at run time.
    fn prometheus(&mut self, m: &Object, path: &str) {
        for (key, message) in crate::provider::prometheus::check(m) {
            self.err_hint(
                &format!("{path}.{key}"),
                message,
                "see \"PromQL probes\" in the README",
            );
        }
    }

    fn tolerance(&mut self, v: &Value, path: &str) {
        match v {
            Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
            Value::Null => self.err_hint(
                path,
                "a tolerance cannot be null",
                "remove it, or give the expected value",
            ),
            Value::Array(items) => {
                if items.is_empty() {
                    self.err_hint(
                        path,
                        "an empty list tolerance can never be met",
                        "list the accepted values, or give a [low, high] range",
                    );
                }
            }
            Value::Object(m) => {
                let ty = match m.get("type") {
                    Some(Value::String(s)) => s.as_str(),
                    Some(t) => return self.wrong_type(&format!("{path}.type"), "a string", t),
                    None => {
                        return self.err_hint(
                            &format!("{path}.type"),
                            "missing required key 'type'",
                            "an object tolerance has \"type\": range, regex, jsonpath, threshold or probe",
                        )
                    }
                };
                if let Some(t) = m.get("target") {
                    if !t.is_string() {
                        self.wrong_type(
                            &format!("{path}.target"),
                            "the name of a key of the output",
                            t,
                        );
                    }
                }
                match ty {
                    "range" => match m.get("range") {
                        None => self.err_hint(&format!("{path}.range"), "missing required key 'range'", "give [low, high]"),
                        Some(Value::Array(r)) if r.len() == 2 => {
                            let lo = r[0].as_f64();
                            let hi = r[1].as_f64();
                            match (lo, hi) {
                                (Some(lo), Some(hi)) if lo > hi => self.err_hint(
                                    &format!("{path}.range"),
                                    format!("the range's low bound {lo} is above its high bound {hi}"),
                                    "give [low, high]",
                                ),
                                (Some(_), Some(_)) => {}
                                _ => {
                                    if !r.iter().all(|x| x.is_number() || is_template(x)) {
                                        self.err_hint(&format!("{path}.range"), "the range's bounds must be numbers", "give [low, high]")
                                    }
                                }
                            }
                        }
                        Some(r) => self.err_hint(
                            &format!("{path}.range"),
                            format!("expected a [low, high] list, found {}", type_name(r)),
                            "give [low, high]",
                        ),
                    },
                    "regex" => {
                        if let Some(p) = self.req_str(m, "pattern", path, true) {
                            if !p.contains("${") {
                                if let Err(e) = super::pyregex::compile(&p) {
                                    self.err_hint(
                                        &format!("{path}.pattern"),
                                        format!("invalid regular expression: {}", one_line(&e)),
                                        "patterns use Python's syntax; escape special characters with \\",
                                    );
                                }
                            }
                        }
                    }
                    "jsonpath" => {
                        if let Some(p) = self.req_str(m, "path", path, true) {
                            if !p.contains("${") {
                                if let Err(e) = super::tolerance::compile_jsonpath(&p) {
                                    self.err_hint(&format!("{path}.path"), format!("invalid JSONPath: {}", one_line(&e)), "for example $.items[*].status");
                                }
                            }
                        }
                        match m.get("count") {
                            None | Some(Value::Null) => {}
                            Some(Value::Number(n)) if n.as_u64().is_some() => {}
                            Some(v) => self.wrong_type(&format!("{path}.count"), "a non-negative integer", v),
                        }
                    }
                    "probe" => {
                        self.req_str(m, "name", path, true);
                        match m.get("provider") {
                            None => self.err(&format!("{path}.provider"), "missing required key 'provider'"),
                            Some(p) => self.provider(p, &format!("{path}.provider")),
                        }
                    }
                    "threshold" => {
                        // A template may fill any key: checked again at run time.
                        if !m.values().any(is_template) {
                            for (key, message) in super::threshold::problems(m) {
                                self.err_hint(
                                    &format!("{path}.{key}"),
                                    message,
                                    "for example {\"type\": \"threshold\", \"op\": \"<\", \"value\": 0.05, \"reduce\": \"max\"}",
                                );
                            }
                        }
                    }
                    "slo" => {
                        for k in m.keys().filter(|k| k.as_str() != "type") {
                            self.err_hint(
                                &format!("{path}.{k}"),
                                format!("the slo tolerance takes no '{k}'"),
                                "write {\"type\": \"slo\"}: it reads the slo provider's verdict",
                            );
                        }
                    }
                    other => self.err_hint(
                        &format!("{path}.type"),
                        format!("unknown tolerance type '{other}'"),
                        "use range, regex, jsonpath, threshold, slo or probe (or a plain value, list or [low, high])",
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: Value) -> Vec<Problem> {
        parse(&v).err().unwrap_or_default()
    }

    #[test]
    fn minimal_experiment_parses() {
        let e = parse(&json!({"title": "t", "description": "d", "method": []})).unwrap();
        assert_eq!(e.title, "t");
        assert!(e.hypothesis.is_none());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path() {
        let p = problems(json!({
            "description": 3,
            "method": [
                {"type": "action", "name": "a", "provider": {"type": "ftp"}},
                {"type": "probe", "provider": {"type": "http"}},
                {"ref": "nope"}
            ],
            "steady-state-hypothesis": {"title": "h", "probes": [
                {"type": "probe", "name": "p", "provider": {"type": "process", "path": "true"},
                 "tolerance": {"type": "range", "range": [5, 1]}}
            ]}
        }));
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "$.title",
            "$.description",
            "$.method[0].provider.type",
            "$.method[1].name",
            "$.method[1].provider.url",
            "$.steady-state-hypothesis.probes[0].tolerance.range",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
    }

    #[test]
    fn refs_resolve_and_unknown_refs_are_reported() {
        let doc = json!({"title": "t", "description": "d",
            "steady-state-hypothesis": {"title": "h", "probes": [
                {"type": "probe", "name": "up", "tolerance": 0, "provider": {"type": "process", "path": "true"}}]},
            "method": [{"ref": "up"}]});
        let e = parse(&doc).unwrap();
        assert_eq!(e.method[0].name, "up");
        let p = problems(json!({"title": "t", "description": "d", "method": [{"ref": "x"}]}));
        assert_eq!(p[0].path, "$.method[0].ref");
    }

    #[test]
    fn hypothesis_probes_need_a_tolerance() {
        let p = problems(json!({"title": "t", "description": "d", "method": [],
            "steady-state-hypothesis": {"title": "h", "probes": [
                {"type": "probe", "name": "up", "provider": {"type": "process", "path": "true"}}]}}));
        assert!(p[0].message.contains("no tolerance"));
    }

    #[test]
    fn templates_are_accepted_where_numbers_are_expected() {
        parse(&json!({"title": "t", "description": "d", "method": [
            {"type": "action", "name": "a", "pauses": {"after": "${p}"},
             "provider": {"type": "http", "url": "${u}", "timeout": "${t}"}}]}))
        .unwrap();
    }

    #[test]
    fn bad_regex_and_jsonpath_are_reported() {
        let p = problems(json!({"title": "t", "description": "d", "method": [],
            "steady-state-hypothesis": {"title": "h", "probes": [
                {"type": "probe", "name": "a", "provider": {"type": "process", "path": "true"},
                 "tolerance": {"type": "regex", "pattern": "(unclosed"}},
                {"type": "probe", "name": "b", "provider": {"type": "process", "path": "true"},
                 "tolerance": {"type": "jsonpath", "path": "$[?"}}]}}));
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn output_limit_is_a_whole_number_of_bytes_on_any_provider() {
        parse(&json!({"title": "t", "description": "d", "method": [
            {"type": "action", "name": "a", "provider": {"type": "process", "path": "true", "output_limit": 1024}},
            {"type": "action", "name": "b", "provider": {"type": "http", "url": "http://x/", "output_limit": "${limit}"}},
            {"type": "action", "name": "c", "provider": {"type": "python", "module": "m", "func": "f", "output_limit": 0}}]}))
        .unwrap();
        let p = problems(json!({"title": "t", "description": "d", "method": [
            {"type": "action", "name": "a", "provider": {"type": "process", "path": "true", "output_limit": -1}},
            {"type": "action", "name": "b", "provider": {"type": "http", "url": "http://x/", "output_limit": 1.5}},
            {"type": "action", "name": "c", "provider": {"type": "python", "module": "m", "func": "f", "output_limit": "lots"}}]}));
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.method[0].provider.output_limit",
                "$.method[1].provider.output_limit",
                "$.method[2].provider.output_limit"
            ],
            "{p:?}"
        );
        assert!(
            p[0].message.contains("non-negative whole number of bytes"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .all(|p| p.hint.as_deref().is_some_and(|h| h.contains("bytes"))),
            "{p:?}"
        );
    }
}
