//! The typed experiment, built by [`super::parse`] once the document is valid.
//!
//! Provider definitions stay JSON values here: the Chaos Toolkit substitutes `${name}`
//! inside them at run time (a timeout may be `"${t}"`), so they are typed only after
//! substitution, by [`crate::provider::Provider::from_value`].

use serde_json::{Map, Value};

/// `probe` or `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    /// Observes the system.
    Probe,
    /// Changes the system.
    Action,
}

impl ActivityKind {
    /// The journal's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Probe => "probe",
            ActivityKind::Action => "action",
        }
    }

    /// The console's spelling (`Probe: name`).
    pub fn title(self) -> &'static str {
        match self {
            ActivityKind::Probe => "Probe",
            ActivityKind::Action => "Action",
        }
    }
}

/// One activity, refs already resolved.
#[derive(Debug, Clone)]
pub struct Activity {
    /// Probe or action.
    pub kind: ActivityKind,
    /// Its name (unique names make refs work).
    pub name: String,
    /// The provider definition, unsubstituted.
    pub provider: Value,
    /// The tolerance, evaluated only in the steady-state hypothesis.
    pub tolerance: Option<Value>,
    /// Run concurrently with the rest of the method.
    pub background: bool,
    /// Seconds to pause before the activity (number or `"${var}"`).
    pub pause_before: Option<Value>,
    /// Seconds to pause after the activity.
    pub pause_after: Option<Value>,
    /// The activity-level `timeout` (seconds), enforced by faultline.
    pub timeout: Option<Value>,
    /// The activity as written (with a ref replaced by its target), for the journal.
    pub raw: Value,
}

/// The steady-state hypothesis.
#[derive(Debug, Clone)]
pub struct Hypothesis {
    /// Its title.
    pub title: String,
    /// Its probes, each with a tolerance.
    pub probes: Vec<Activity>,
}

/// A configuration entry.
#[derive(Debug, Clone)]
pub enum ConfigEntry {
    /// Used as written.
    Literal(Value),
    /// Read from the environment.
    Env {
        /// The variable's name.
        key: String,
        /// Used when the variable is not set.
        default: Option<Value>,
        /// How to convert the variable's text.
        env_var_type: Option<EnvVarType>,
    },
    /// The output of a probe, run once before the experiment.
    Probe(Box<Activity>),
}

/// A secret entry: never written anywhere faultline writes.
#[derive(Debug, Clone)]
pub enum SecretEntry {
    /// Used as written.
    Literal(Value),
    /// Read from the environment.
    Env {
        /// The variable's name.
        key: String,
        /// Used when the variable is not set.
        default: Option<Value>,
    },
}

/// Conversions of environment values, as `env_var_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvVarType {
    /// Text as is.
    Str,
    /// An integer.
    Int,
    /// A float.
    Float,
    /// Text as bytes (kept as text in JSON).
    Bytes,
    /// `true/false/1/0/yes/no/on/off`.
    Bool,
    /// A JSON document.
    Json,
}

impl EnvVarType {
    /// Parse the spelling used in experiments and `--var k:type=v`.
    pub fn parse(s: &str) -> Option<EnvVarType> {
        Some(match s {
            "str" | "string" => EnvVarType::Str,
            "int" | "integer" => EnvVarType::Int,
            "float" | "number" => EnvVarType::Float,
            "bytes" => EnvVarType::Bytes,
            "bool" | "boolean" => EnvVarType::Bool,
            "json" => EnvVarType::Json,
            _ => return None,
        })
    }

    /// Convert `text` to a JSON value of this type.
    pub fn convert(self, text: &str) -> Result<Value, String> {
        match self {
            EnvVarType::Str | EnvVarType::Bytes => Ok(Value::String(text.to_string())),
            EnvVarType::Int => text
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("'{text}' is not an integer")),
            EnvVarType::Float => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("'{text}' is not a number")),
            EnvVarType::Bool => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "y" | "on" => Ok(Value::Bool(true)),
                "false" | "0" | "no" | "n" | "off" | "" => Ok(Value::Bool(false)),
                _ => Err(format!("'{text}' is not a boolean")),
            },
            EnvVarType::Json => {
                serde_json::from_str(text).map_err(|e| format!("'{text}' is not JSON: {e}"))
            }
        }
    }
}

/// The `runtime` block of an experiment or a settings file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runtime {
    /// `runtime.rollbacks.strategy`.
    pub rollback_strategy: Option<crate::run::RollbackStrategy>,
    /// `runtime.hypothesis.strategy`.
    pub hypothesis_strategy: Option<crate::run::HypothesisStrategy>,
    /// `runtime.hypothesis.frequency` (seconds).
    pub hypothesis_frequency: Option<f64>,
    /// `runtime.hypothesis.fail_fast`.
    pub fail_fast: Option<bool>,
}

/// A control declaration (served by a later issue; recorded now).
#[derive(Debug, Clone)]
pub struct ControlDecl {
    /// Its name.
    pub name: String,
    /// The python module it names, if any.
    pub module: Option<String>,
    /// Where it was declared (JSON path).
    pub path: String,
    /// The activity it was declared on, if any.
    pub activity: Option<String>,
    /// `automatic` (default true): a top-level control also applies to every level.
    pub automatic: bool,
    /// The provider's `arguments`.
    pub arguments: Value,
    /// The secret scopes the provider lists.
    pub secrets: Vec<String>,
    /// The declaration as written (what a Python control's `validate_control` gets).
    pub raw: Value,
}

/// A valid experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The document as loaded (secrets are masked when it is written out).
    pub raw: Value,
    /// Its title, unsubstituted.
    pub title: String,
    /// Its description.
    pub description: String,
    /// Configuration entries in document order.
    pub configuration: Vec<(String, ConfigEntry)>,
    /// Secret scopes, each with its entries.
    pub secrets: Vec<(String, Vec<(String, SecretEntry)>)>,
    /// Its `runtime` block.
    pub runtime: Runtime,
    /// Its steady-state hypothesis, if it has one with probes.
    pub hypothesis: Option<Hypothesis>,
    /// Its method.
    pub method: Vec<Activity>,
    /// Its rollbacks.
    pub rollbacks: Vec<Activity>,
    /// Every control declared anywhere in the experiment.
    pub controls: Vec<ControlDecl>,
}

impl Experiment {
    /// Names of the configuration keys this experiment declares.
    pub fn declares_config(&self, key: &str) -> bool {
        self.configuration.iter().any(|(k, _)| k == key)
    }
}

/// A JSON object, in document order.
pub type Object = Map<String, Value>;
