//! `faultline schedule FILE`: the flags and SIGTERM; the loop is
//! [`faultline::app::schedule::run_schedule`].

use super::console::Console;
use super::Common;
use faultline::app::schedule::{run_schedule, ScheduleControl, ScheduleRequest};
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
    /// A target label of every run (`key=value`; repeatable), before each entry's.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not record the runs in the run history.
    #[arg(long)]
    pub no_record: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Run the command; returns the exit code.
pub async fn schedule(args: ScheduleArgs) -> ExitCode {
    let c = &args.common;
    let (format, verbose, no_color) = (c.log_format, c.verbose, c.no_color);
    let template = RunRequest {
        settings: c.settings.clone(),
        fetch_timeout: c.fetch_timeout,
        kill_switch: args.kill_switch,
        labels: args.labels,
        record: !args.no_record,
        ..RunRequest::new(String::new(), String::new(), PathBuf::new())
    };
    let control = ScheduleControl::default();
    let console = Arc::new(Console::new(format, verbose, no_color, String::new()));
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        let s = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        let control = control.clone();
        tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = s else {
                return;
            };
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            console.line(Level::Warning, "schedule.signal", &format!("Received {name}: no new run; the running ones are interrupted (rollbacks, journals)"));
            control.shutdown(&format!("received {name}"));
        })
    };
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
