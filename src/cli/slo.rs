//! `faultline slo sync|report|delete`: the guide's objective commands. Flags become
//! requests of [`faultline::app::slo`]; this file only prints what comes back and
//! picks the exit code (3: bad input, nothing stored; 2: the store failed).

use faultline::app::slo::{
    DeleteRequest, Report, ReportRequest, SloError, Source, StoreRequest, SyncRequest,
};
use faultline::exit::ExitCode;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

/// Where the SLO data is: shared by `slo` and `indicator`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The store: an SQLite file, or a `faultline serve` at http(s)://HOST:PORT
    /// [default: $XDG_DATA_HOME/faultline/store.db, else ~/.local/share/faultline/store.db].
    #[arg(long, env = "FAULTLINE_STORE", value_name = "PATH|URL")]
    pub store: Option<String>,
    /// The bearer token of a remote store.
    #[arg(long, env = "FAULTLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The organisation.
    #[arg(long, env = "FAULTLINE_ORG", default_value = "default")]
    pub org: String,
}

impl StoreArgs {
    /// As the library takes it.
    pub fn request(&self) -> StoreRequest {
        StoreRequest {
            store: self.store.clone(),
            token: self.token.clone(),
            org: self.org.clone(),
        }
    }
}

/// Arguments of `faultline slo`.
#[derive(clap::Args, Debug)]
pub struct SloArgs {
    #[command(subcommand)]
    command: SloCommand,
}

#[derive(clap::Subcommand, Debug)]
enum SloCommand {
    /// Store objectives (Reliably or OpenSLO documents), replacing those with the same labels.
    Sync(SyncArgs),
    /// The objectives with their current value and trend, grouped by service.
    Report(ReportArgs),
    /// Delete the objectives a selector selects, with their results.
    Delete(DeleteArgs),
}

/// Arguments of `faultline slo sync`.
#[derive(clap::Args, Debug)]
struct SyncArgs {
    /// An objective file (JSON, a JSON list, or YAML with `---`); `-` reads stdin; repeatable.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "reliably.yaml"
    )]
    files: Vec<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// The guide's table.
    Table,
    /// The objectives, their results and their status, as JSON.
    Json,
}

/// Arguments of `faultline slo report`.
#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// Refresh every 3 seconds until Ctrl-C.
    #[arg(short = 'w', long)]
    watch: bool,
    /// Only the objectives with these labels (k=v, repeatable or comma-separated).
    #[arg(long, value_name = "K=V")]
    selector: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Results per objective (the Trend column).
    #[arg(long, default_value_t = 5)]
    limit: usize,
    /// Never colour (also NO_COLOR; colour is only used on a terminal).
    #[arg(long)]
    no_color: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of `faultline slo delete`.
#[derive(clap::Args, Debug)]
struct DeleteArgs {
    /// The objectives to delete: those with these labels (k=v, at least one).
    #[arg(long, value_name = "K=V", required = true)]
    selector: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Run `faultline slo …`; returns the exit code.
pub async fn slo(args: SloArgs) -> ExitCode {
    match args.command {
        SloCommand::Sync(a) => sync(a).await,
        SloCommand::Report(a) => report(a).await,
        SloCommand::Delete(a) => delete(a).await,
    }
}

/// Print an error of a store command and give its exit code.
pub fn failed(e: &SloError) -> ExitCode {
    let mut text = String::new();
    match e {
        SloError::Invalid(problems) => {
            for p in problems {
                text.push_str(&format!("error: {p}\n"));
            }
            text.push_str(&format!(
                "{} problem(s); the store was not touched\n",
                problems.len()
            ));
        }
        SloError::Store { .. } => text.push_str(&format!("error: {e}\n")),
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    e.exit_code()
}

/// Write to stdout; a closed stdout is not a reason to panic.
pub fn print(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).is_ok() && out.flush().is_ok()
}

async fn sync(a: SyncArgs) -> ExitCode {
    let mut sources = Vec::new();
    for f in &a.files {
        if f.as_os_str() == "-" {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                return failed(&SloError::Invalid(vec![format!(
                    "<stdin>: cannot read it: {e}"
                )]));
            }
            sources.push(Source::Text {
                name: "<stdin>".into(),
                text,
            });
        } else {
            sources.push(Source::File(f.clone()));
        }
    }
    let req = SyncRequest {
        store: a.store.request(),
        sources,
    };
    match faultline::app::slo::sync(&req).await {
        Ok(synced) => {
            let mut text = String::new();
            for s in &synced {
                let labels: Vec<String> = s
                    .objective
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                text.push_str(&format!(
                    "{} objective {} ({})\n",
                    if s.created { "created" } else { "updated" },
                    s.objective.id,
                    labels.join(", ")
                ));
            }
            text.push_str(&format!("{} objective(s) synced\n", synced.len()));
            print(&text);
            ExitCode::Success
        }
        Err(e) => failed(&e),
    }
}

async fn report(a: ReportArgs) -> ExitCode {
    let req = ReportRequest {
        store: a.store.request(),
        selector: a.selector.clone(),
        limit: a.limit,
    };
    let color = a.format == Format::Table
        && !a.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    let render = |r: &Report| match a.format {
        Format::Table => r.table(color),
        Format::Json => format!("{}\n", r.json()),
    };
    // Ctrl-C is caught from the start, so one during the first frame ends `-w` too.
    let mut sigint = if a.watch {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: cannot catch Ctrl-C: {e}");
                return ExitCode::Failed;
            }
        }
    } else {
        None
    };
    let source = match faultline::app::slo::report_source(&req).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let Some(sigint) = sigint.as_mut() else {
        let code = match source.fetch().await {
            Ok(r) => {
                print(&render(&r));
                ExitCode::Success
            }
            Err(e) => failed(&e),
        };
        source.close().await;
        return code;
    };
    let terminal = std::io::stdout().is_terminal();
    loop {
        let frame = tokio::select! {
            _ = sigint.recv() => break,
            r = source.fetch() => match r {
                Ok(r) => render(&r),
                // A store that is down for a moment: say so in the frame, keep watching.
                Err(e) => format!("error: {e}\n"),
            },
        };
        let mut text = String::new();
        if terminal {
            text.push_str("\x1b[2J\x1b[H");
        }
        if a.format == Format::Table {
            text.push_str(&faultline::app::slo::watch_banner(color));
            text.push('\n');
        }
        text.push_str(&frame);
        if !print(&text) {
            break;
        }
        tokio::select! {
            _ = sigint.recv() => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(3)) => {}
        }
    }
    source.close().await;
    ExitCode::Success
}

async fn delete(a: DeleteArgs) -> ExitCode {
    let req = DeleteRequest {
        store: a.store.request(),
        selector: a.selector,
    };
    match faultline::app::slo::delete(&req).await {
        Ok(n) => {
            print(&format!("deleted {n} objective(s)\n"));
            ExitCode::Success
        }
        Err(e) => failed(&e),
    }
}
