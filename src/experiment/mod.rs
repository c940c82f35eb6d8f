//! The Chaos Toolkit experiment format: loading, the typed model, validation,
//! substitution, configuration and secrets, tolerances.
//!
//! House style: parse, validate, build. [`load`] turns bytes into a JSON value
//! (JSON or YAML, file or URL); [`parse`] walks that value once, purely, and either
//! builds the typed [`Experiment`] or returns every [`Problem`] it found, each with its
//! JSON path, its line and column where they can be found, and a hint.

pub mod config;
pub mod duplicates;
pub mod labels;
pub mod load;
pub mod locate;
pub mod model;
pub mod parse;
pub mod pyregex;
pub mod substitute;
pub mod threshold;
pub mod tolerance;

pub use load::{load, load_with, Document, FetchOptions, Format, LoadError};
pub use model::*;
pub use parse::parse;

use std::fmt;

/// One thing wrong with an experiment (or another input), with where and a hint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// JSON path of the offending value, such as `$.method[2].provider.url`.
    pub path: String,
    /// What is wrong, lowercase, without a final period.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// 1-based line in the source document, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column in the source document, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
            hint: None,
            line: None,
            column: None,
        }
    }

    /// The same problem with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, " (line {l}, column {c})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}
