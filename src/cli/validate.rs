//! `faultline validate`: every problem at once, with path, line/column and hint.
//!
//! Validation proper is pure (structure only). On top, `validate` looks at this
//! machine and warns, without failing, about what would break a run here: environment
//! variables that are not set, executables not on PATH, controls not served yet.

use super::{Common, LogFormat};
use faultline::exit::ExitCode;
use faultline::experiment::config::{resolve, Overrides};
use faultline::experiment::{load, locate::locate_all, parse, Experiment, Problem};
use faultline::provider::process::which;
use serde_json::{json, Value};

/// Arguments of `faultline validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The experiment: a JSON or YAML file, or an http(s) URL.
    pub experiment: String,
    #[command(flatten)]
    pub common: Common,
}

fn warnings(exp: &Experiment) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Err(problems) = resolve(exp, &Overrides::default(), &|k| std::env::var(k).ok()) {
        out.extend(problems);
    }
    let all = exp
        .hypothesis
        .iter()
        .flat_map(|h| {
            h.probes
                .iter()
                .map(|p| ("$.steady-state-hypothesis.probes", p))
        })
        .chain(exp.method.iter().map(|a| ("$.method", a)))
        .chain(exp.rollbacks.iter().map(|a| ("$.rollbacks", a)));
    for (where_, a) in all {
        if a.provider.get("type").and_then(Value::as_str) == Some("process") {
            if let Some(path) = a.provider.get("path").and_then(Value::as_str) {
                if !path.contains('$') && which(path).is_none() {
                    out.push(
                        Problem::new(
                            format!("{where_}[name={}].provider.path", a.name),
                            format!("executable '{path}' is not found on this machine"),
                        )
                        .hint("install it, or fix the path, before running here"),
                    );
                }
            }
        }
    }
    for c in &exp.controls {
        out.push(Problem::new(
            c.path.clone(),
            format!(
                "control '{}' is not supported yet: runs go on without it",
                c.name
            ),
        ));
    }
    out
}

/// Run the command; returns the exit code.
pub async fn validate(args: ValidateArgs) -> ExitCode {
    let json_out = args.common.log_format == LogFormat::Json;
    let (problems, warns) = match load(&args.experiment).await {
        Err(e) => (vec![e.to_problem()], Vec::new()),
        Ok(doc) => match parse(&doc.value) {
            Ok(exp) => {
                let mut w = warnings(&exp);
                locate_all(&mut w, &doc.text, doc.format);
                (Vec::new(), w)
            }
            Err(mut p) => {
                locate_all(&mut p, &doc.text, doc.format);
                (p, Vec::new())
            }
        },
    };
    let valid = problems.is_empty();
    if json_out {
        println!(
            "{}",
            json!({"source": args.experiment, "valid": valid, "problems": problems, "warnings": warns})
        );
    } else {
        for p in &problems {
            println!("error: {p}");
        }
        for w in &warns {
            println!("warning: {w}");
        }
        if valid {
            println!("{}: the experiment is valid", args.experiment);
        } else {
            println!(
                "{}: the experiment is invalid: {} problem(s)",
                args.experiment,
                problems.len()
            );
        }
    }
    if valid {
        ExitCode::Success
    } else {
        ExitCode::InvalidInput
    }
}
