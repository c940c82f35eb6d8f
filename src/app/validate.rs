//! Validation, assembled: every problem of an experiment at once, with path,
//! line/column and hint, plus warnings about this machine.
//!
//! Validation proper is pure (structure only). On top, this looks at the machine and
//! warns, without failing, about what would break a run here: environment variables
//! that are not set, executables not on PATH. Controls are built as [`super::run`]
//! builds them: what `run` refuses is a problem here too, what it warns about a
//! warning.

use super::controls;
use super::run::fetch_options;
use super::Processes;
use crate::experiment::config::{resolve, secret_values, Overrides};
use crate::experiment::load::LoadError;
use crate::experiment::{load_with, locate::locate_all, parse, Experiment, Problem};
use crate::redact::Redactor;
use std::path::PathBuf;

/// What to validate.
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    /// The experiment: a JSON or YAML file, or an http(s) URL.
    pub experiment: String,
    /// The settings file (`None`: the default location, if it exists).
    pub settings: Option<PathBuf>,
    /// Seconds to wait for an experiment given as a URL.
    pub fetch_timeout: Option<f64>,
}

/// The verdict.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// What stops a run, in document order (unlocated ones last).
    pub problems: Vec<Problem>,
    /// What may break a run on this machine, in document order.
    pub warnings: Vec<Problem>,
    /// The experiment could not be read at all: said as such, not as a problem of the
    /// experiment.
    pub unreadable: Option<String>,
}

impl Validation {
    /// Whether a run would start.
    pub fn valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Validate `req.experiment` as `faultline run` would before running it.
pub async fn validate(req: &ValidateRequest) -> Validation {
    // The settings file says how long and how much to fetch: a broken one is a
    // problem here too, as it would stop `run`.
    let settings = crate::settings::load(req.settings.as_deref());
    let fetch = settings
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|s| fetch_options(req.fetch_timeout, s).map_err(|e| vec![Problem::new("$", e)]));
    let mut out = Validation::default();
    let loaded = match fetch {
        Ok(f) => load_with(&req.experiment, &f).await.map_err(|e| {
            if let LoadError::Read { .. } = &e {
                out.unreadable = Some(e.to_string());
            }
            vec![e.to_problem()]
        }),
        Err(p) => Err(p),
    };
    let (problems, warnings) = match loaded {
        Err(p) => (p, Vec::new()),
        Ok(doc) => match parse(&doc.value) {
            Ok(exp) => {
                let (mut p, control_warnings) = match &settings {
                    Ok(s) => built_controls(s, &exp),
                    Err(p) => (p.clone(), Vec::new()),
                };
                let mut w = doc.warnings.clone();
                w.extend(control_warnings);
                w.extend(machine_warnings(&exp).await);
                locate_all(&mut w, &doc.text, doc.format);
                locate_all(&mut p, &doc.text, doc.format);
                (p, w)
            }
            Err(mut p) => {
                locate_all(&mut p, &doc.text, doc.format);
                (p, doc.warnings.clone())
            }
        },
    };
    out.problems = problems;
    out.warnings = warnings;
    // In the order of the document, as an editor shows them; unlocated ones last.
    for list in [&mut out.problems, &mut out.warnings] {
        list.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    }
    out
}

/// Unset variables and what the pre-flight finds missing on this machine.
async fn machine_warnings(exp: &Experiment) -> Vec<Problem> {
    let mut out = Vec::new();
    let resolved = match resolve(exp, &Overrides::default(), &|k| std::env::var(k).ok()) {
        Ok(r) => r,
        Err(problems) => {
            out.extend(problems);
            Default::default()
        }
    };
    let processes = Processes::new();
    let python = crate::provider::python::worker::Worker::new(processes.clone());
    let preflight = crate::run::preflight::check(
        exp,
        &resolved.configuration,
        &resolved.secrets,
        &processes,
        &python,
    )
    .await;
    python.shutdown(std::time::Duration::from_secs(2));
    let redactor = Redactor::new(secret_values(&resolved.secrets));
    out.extend(preflight.into_iter().map(|mut p| {
        p.message = redactor.text(&p.message).into_owned();
        p
    }));
    out
}

/// The controls as `run` builds them (the settings' and the experiment's): what `run`
/// refuses (problems) and what it warns about (warnings).
fn built_controls(
    settings: &crate::settings::Settings,
    exp: &Experiment,
) -> (Vec<Problem>, Vec<Problem>) {
    let globals = match controls::collect_globals(settings, &[]) {
        Ok(g) => g,
        Err(p) => return (vec![p], Vec::new()),
    };
    // Python controls are imported and asked to validate themselves, as `run` does.
    let processes = Processes::new();
    let python = crate::control::python::PythonEnv::new(
        crate::provider::python::worker::Worker::new(processes),
        Default::default(),
        Default::default(),
        super::run::settings_value(settings),
    );
    let mut built = controls::build_globals(&globals, Some(&python));
    controls::add_experiment(&mut built, exp, Some(&python));
    python.worker.shutdown(std::time::Duration::from_secs(2));
    let warnings = built
        .warnings
        .iter()
        .map(|w| Problem::new("$.controls", w.clone()))
        .collect();
    (built.problems, warnings)
}
