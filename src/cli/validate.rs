//! `faultline validate`: every problem at once, with path, line/column and hint
//! (found by [`faultline::app::validate`]), printed as lines or one JSON object.

use super::{Common, LogFormat};
use faultline::app::{ValidateRequest, Validation};
use faultline::exit::ExitCode;
use serde_json::json;

/// Arguments of `faultline validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The experiment: a JSON or YAML file, or an http(s) URL.
    pub experiment: String,
    #[command(flatten)]
    pub common: Common,
}

/// Run the command; returns the exit code.
pub async fn validate(args: ValidateArgs) -> ExitCode {
    let json_out = args.common.log_format == LogFormat::Json;
    let v: Validation = faultline::app::validate(&ValidateRequest {
        experiment: args.experiment.clone(),
        settings: args.common.settings.clone(),
        fetch_timeout: args.common.fetch_timeout,
    })
    .await;
    let valid = v.valid();
    let (problems, warns) = (&v.problems, &v.warnings);
    // Written, not `println!`: a closed stdout is not a reason to panic.
    let mut out = String::new();
    if json_out {
        out.push_str(&format!(
            "{}\n",
            json!({"source": args.experiment, "valid": valid, "problems": problems, "warnings": warns})
        ));
    } else if let Some(why) = &v.unreadable {
        out.push_str(&format!("error: {why}\n"));
    } else {
        for p in problems {
            out.push_str(&format!("error: {p}\n"));
        }
        for w in warns {
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
