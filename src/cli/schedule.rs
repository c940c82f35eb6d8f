//! `faultline schedule FILE`: the flags and SIGTERM; the loop is
//! [`faultline::app::schedule::run_schedule`].

use super::console::Console;
use super::Common;
use faultline::app::schedule::{load, run_schedule, ScheduleControl, ScheduleRequest};
use faultline::app::RunRequest;
use faultline::event::Level;
use faultline::exit::ExitCode;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `faultline schedule`.
#[derive(clap::Args, Debug)]
pub struct ScheduleArgs {
    /// The schedule: a YAML file of experiments with cron expressions (docs/schedule.md).
    pub file: PathBuf,
    /// The directory of the runs' journals, `<name>-<run id>.json` each.
    #[arg(long, default_value = "./journals")]
    pub journal_dir: PathBuf,
    /// The kill switch the runs obey [env: FAULTLINE_KILL_SWITCH].
    #[arg(long, value_name = "PATH")]
    pub kill_switch: Option<PathBuf>,
    /// A target label of every run (`key=value`; repeatable); an entry's label of the
    /// same name wins.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not record the runs in the run history.
    #[arg(long)]
    pub no_record: bool,
    /// The store of the run history and of SLO activities: a file path or a
    /// `faultline serve` URL [env: FAULTLINE_STORE; default: the embedded store's file].
    #[arg(long, value_name = "PATH|URL")]
    pub store: Option<String>,
    /// The store's organisation [env: FAULTLINE_ORG; default: default].
    #[arg(long)]
    pub org: Option<String>,
    /// The bearer token of a remote store [env: FAULTLINE_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
    /// Run nothing: check the file, print each entry's next N firings inside its
    /// windows (in UTC, RFC 3339, whatever the zones) and exit (N from 1 to 10000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub next: Option<u16>,
    #[command(flatten)]
    pub common: Common,
}

/// Run the command; returns the exit code.
pub async fn schedule(args: ScheduleArgs) -> ExitCode {
    let c = &args.common;
    let (format, verbose, no_color) = (c.log_format, c.verbose, c.no_color);
    if let Some(n) = args.next {
        return next(
            &args.file,
            usize::from(n),
            &Console::new(format, verbose, no_color, String::new()),
        );
    }
    let template = RunRequest {
        settings: c.settings.clone(),
        fetch_timeout: c.fetch_timeout,
        kill_switch: args.kill_switch,
        labels: args.labels,
        record: !args.no_record,
        store: args.store,
        org: args.org,
        token: args.token,
        ..RunRequest::new(String::new(), String::new(), PathBuf::new())
    };
    let control = ScheduleControl::default();
    let console = Arc::new(Console::new(format, verbose, no_color, String::new()));
    let signals = spawn_signal_handler(control.clone(), console);
    let req = ScheduleRequest {
        file: args.file,
        template,
        journal_dir: args.journal_dir,
        control,
    };
    let code = run_schedule(req, move |run_id| {
        Arc::new(Console::new(format, verbose, no_color, run_id.to_string()))
            as Arc<dyn faultline::app::Narrator>
    })
    .await;
    signals.abort();
    code
}

/// First SIGINT/SIGTERM/SIGHUP: no new run; the running ones are interrupted
/// (rollbacks play, journals are written), then the schedule exits 0. Second: every
/// running run is given up (its activities killed, no rollback, no journal) and
/// faultline exits 2 at once, as `faultline run` does.
fn spawn_signal_handler(
    control: ScheduleControl,
    console: Arc<Console>,
) -> tokio::task::JoinHandle<()> {
    // Installed now, before the first child starts.
    let signals = super::StopSignals::install();
    tokio::spawn(async move {
        let Some(mut signals) = signals else {
            return;
        };
        let mut count = 0;
        loop {
            let name = signals.next().await;
            count += 1;
            if count == 1 {
                console.line(
                    Level::Warning,
                    "schedule.signal",
                    &format!("Received {name}: no new run; {} running run(s) interrupted (rollbacks, journals; send it again to exit at once)", control.running()),
                );
                control.shutdown(&format!("received {name}"));
            } else {
                control.abandon();
                console.line(
                    Level::Critical,
                    "schedule.signal",
                    &format!("Received {name} again: exiting now; running runs given up without rollbacks or journal"),
                );
                std::process::exit(ExitCode::Failed.code());
            }
        }
    })
}

/// `--next N`: each entry's next `n` firings inside its windows; nothing runs.
fn next(file: &std::path::Path, n: usize, console: &Console) -> ExitCode {
    let schedule = match load(file) {
        Ok(s) => s,
        Err(problems) => {
            for p in problems {
                console.line(Level::Error, "input.invalid", &p);
            }
            return ExitCode::InvalidInput;
        }
    };
    let now = chrono::Utc::now();
    let mut text = String::new();
    for e in &schedule.entries {
        let times = schedule.upcoming(e, now, n);
        if times.len() < n {
            text.push_str(&format!(
                "{}\t(only {} firing(s) of {:?} inside its windows)\n",
                e.name,
                times.len(),
                e.cron
            ));
        }
        for t in times {
            text.push_str(&format!(
                "{}\t{}\n",
                e.name,
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
    }
    print!("{text}");
    ExitCode::Success
}
