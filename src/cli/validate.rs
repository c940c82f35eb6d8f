//! `faultline validate`: every problem at once, with path, line/column and hint.
//!
//! Validation proper is pure (structure only). On top, `validate` looks at this
//! machine and warns, without failing, about what would break a run here: environment
//! variables that are not set, executables not on PATH. Controls are built as `run`
//! builds them: what `run` refuses is an error here too, what it warns about a warning.

use super::{Common, LogFormat};
use faultline::exit::ExitCode;
use faultline::experiment::config::{resolve, Overrides};
use faultline::experiment::{load_with, locate::locate_all, parse, Experiment, Problem};
use serde_json::json;

/// Arguments of `faultline validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The experiment: a JSON or YAML file, or an http(s) URL.
    pub experiment: String,
    #[command(flatten)]
    pub common: Common,
}

async fn warnings(exp: &Experiment) -> Vec<Problem> {
    let mut out = Vec::new();
    let resolved = match resolve(exp, &Overrides::default(), &|k| std::env::var(k).ok()) {
        Ok(r) => r,
        Err(problems) => {
            out.extend(problems);
            Default::default()
        }
    };
    let preflight = faultline::run::preflight::check(
        exp,
        &resolved.configuration,
        &resolved.secrets,
        &faultline::provider::process::Processes::new(),
    )
    .await;
    let redactor = faultline::redact::Redactor::new(faultline::experiment::config::secret_values(
        &resolved.secrets,
    ));
    out.extend(preflight.into_iter().map(|mut p| {
        p.message = redactor.text(&p.message).into_owned();
        p
    }));
    out
}

/// The controls as `run` builds them (the settings' and the experiment's): what `run`
/// refuses (problems) and what it warns about (warnings).
fn controls(common: &Common, exp: &Experiment) -> (Vec<Problem>, Vec<Problem>) {
    let settings = match faultline::settings::load(common.settings.as_deref()) {
        Ok(s) => s,
        Err(p) => return (p, Vec::new()),
    };
    let globals = match faultline::app::controls::collect_globals(&settings, &[]) {
        Ok(g) => g,
        Err(p) => return (vec![p], Vec::new()),
    };
    let mut built = faultline::app::controls::build_globals(&globals);
    faultline::app::controls::add_experiment(&mut built, exp);
    let warnings = built
        .warnings
        .iter()
        .map(|w| Problem::new("$.controls", w.clone()))
        .collect();
    (built.problems, warnings)
}

/// Run the command; returns the exit code.
pub async fn validate(args: ValidateArgs) -> ExitCode {
    let json_out = args.common.log_format == LogFormat::Json;
    // The settings file says how long and how much to fetch: a broken one is a
    // problem here too, as it would stop `run`.
    let fetch = faultline::settings::load(args.common.settings.as_deref()).and_then(|s| {
        args.common
            .fetch_options(&s)
            .map_err(|e| vec![Problem::new("$", e)])
    });
    // A file that cannot be read is said as such, not as a problem of the experiment.
    let mut unreadable = None;
    let loaded = match fetch {
        Ok(f) => load_with(&args.experiment, &f).await.map_err(|e| {
            if let faultline::experiment::load::LoadError::Read { .. } = &e {
                unreadable = Some(e.to_string());
            }
            vec![e.to_problem()]
        }),
        Err(p) => Err(p),
    };
    let (problems, warns) = match loaded {
        Err(p) => (p, Vec::new()),
        Ok(doc) => match parse(&doc.value) {
            Ok(exp) => {
                let (mut p, control_warnings) = controls(&args.common, &exp);
                let mut w = doc.warnings.clone();
                w.extend(control_warnings);
                w.extend(warnings(&exp).await);
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
    let mut problems = problems;
    let mut warns = warns;
    // In the order of the document, as an editor shows them; unlocated ones last.
    for list in [&mut problems, &mut warns] {
        list.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    }
    let valid = problems.is_empty();
    // Written, not `println!`: a closed stdout is not a reason to panic.
    let mut out = String::new();
    if json_out {
        out.push_str(&format!(
            "{}\n",
            json!({"source": args.experiment, "valid": valid, "problems": problems, "warnings": warns})
        ));
    } else if let Some(why) = &unreadable {
        out.push_str(&format!("error: {why}\n"));
    } else {
        for p in &problems {
            out.push_str(&format!("error: {p}\n"));
        }
        for w in &warns {
            out.push_str(&format!("warning: {w}\n"));
        }
        if valid {
            out.push_str(&format!("{}: the experiment is valid\n", args.experiment));
        } else {
            out.push_str(&format!(
                "{}: the experiment is invalid: {} problem(s)\n",
                args.experiment,
                problems.len()
            ));
        }
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    if valid {
        ExitCode::Success
    } else {
        ExitCode::InvalidInput
    }
}
