//! `faultline runs list|show|flush|scores|stats` and `faultline correlate`: flags into
//! requests of [`faultline::app::runs`], its text or JSON printed, its exit code
//! (3: bad input; 2: the store failed).

use super::slo::{failed, print, StoreArgs};
use faultline::app::runs::{self, CorrelateRequest, ListRequest, ProgrammeRequest};
use faultline::exit::ExitCode;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a person.
    Table,
    /// JSON for a program.
    Json,
}

/// Arguments of `faultline runs`.
#[derive(clap::Args, Debug)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum RunsCommand {
    /// The recorded runs, newest first.
    List(ListArgs),
    /// One recorded run, every field.
    Show(ShowArgs),
    /// Deliver the records waiting in the local spool to the store.
    Flush(FlushArgs),
    /// Each experiment's trend grade (A–D, last ten runs) and freshness (0–100).
    Scores(ProgrammeArgs),
    /// Programme metrics: experiments per month, findings per experiment, time to remediation.
    Stats(ProgrammeArgs),
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Runs started since: a duration ago (30d, 12h) or a time (RFC 3339, 2026-12-01).
    #[arg(long, value_name = "TIME|DURATION")]
    since: Option<String>,
    /// Runs started until (same forms as --since).
    #[arg(long, value_name = "TIME|DURATION")]
    until: Option<String>,
    /// Only runs with this status (completed, failed, aborted, interrupted).
    #[arg(long)]
    status: Option<String>,
    /// Only runs with this target label (k=v; repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// Only runs of this experiment (its reference, as `runs show` prints it).
    #[arg(long, value_name = "REF")]
    experiment: Option<String>,
    /// At most this many runs (0: all).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(clap::Args, Debug)]
struct ShowArgs {
    /// The run id.
    run_id: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(clap::Args, Debug)]
struct FlushArgs {
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(clap::Args, Debug)]
struct ProgrammeArgs {
    /// Runs started since: a duration ago (90d) or a time [default: every run].
    #[arg(long, value_name = "TIME|DURATION")]
    since: Option<String>,
    /// Only runs with this target label (k=v; repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// The half-life of freshness (scores only).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    half_life: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of `faultline correlate`.
#[derive(clap::Args, Debug)]
pub struct CorrelateArgs {
    /// The incident's time (RFC 3339, a UTC date and time, Unix seconds/ms, or a
    /// duration ago such as 10m) [default: now].
    #[arg(long, value_name = "TIME", conflicts_with = "alertmanager")]
    at: Option<String>,
    /// Walk the alerts firing now at this Alertmanager (v2 API) instead, and name for
    /// each the runs that overlapped the window before it started and share its labels.
    #[arg(long, value_name = "URL")]
    alertmanager: Option<String>,
    /// Which alerts (with --alertmanager): Alertmanager filter syntax, e.g.
    /// 'severity="page", service=~"cart|pay"'.
    #[arg(long, value_name = "MATCHERS", requires = "alertmanager")]
    matchers: Option<String>,
    /// The label names a run and an alert must agree on (with --alertmanager;
    /// comma-separated or repeated) [default: every name they share, at least one].
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        requires = "alertmanager"
    )]
    match_labels: Vec<String>,
    /// How far before --at a run may have overlapped (30m, 2h).
    #[arg(long, value_name = "DURATION", default_value = runs::DEFAULT_WINDOW)]
    window: String,
    /// Only runs with this target label (k=v; repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// At most this many runs (0: all).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    store: StoreArgs,
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// Run `faultline runs …`.
pub async fn runs(args: RunsArgs) -> ExitCode {
    let text = match args.command {
        RunsCommand::List(a) => {
            let req = ListRequest {
                store: a.store.request(),
                since: a.since,
                until: a.until,
                status: a.status,
                labels: a.labels,
                experiment: a.experiment,
                limit: a.limit,
            };
            runs::list(&req).await.map(|r| match a.format {
                Format::Table => runs::runs_table(&r),
                Format::Json => json(&r),
            })
        }
        RunsCommand::Show(a) => {
            runs::show(&a.store.request(), &a.run_id)
                .await
                .map(|r| match a.format {
                    Format::Table => runs::run_text(&r),
                    Format::Json => json(&r),
                })
        }
        RunsCommand::Flush(a) => runs::flush(&a.store.request()).await.map(|r| {
            let f = &r.flushed;
            let mut s = format!(
                "{} record(s) delivered to {}, {} waiting in {}\n",
                f.delivered, r.store, f.waiting, r.folder
            );
            for u in &f.unreadable {
                s.push_str(&format!("not a record (left in place): {u}\n"));
            }
            if let Some(e) = &f.error {
                s.push_str(&format!("the store stopped taking records: {e}\n"));
            }
            s
        }),
        RunsCommand::Scores(a) => {
            let format = a.format;
            runs::scores(&programme(a)).await.map(|s| match format {
                Format::Table => runs::scores_table(&s),
                Format::Json => json(&s),
            })
        }
        RunsCommand::Stats(a) => {
            let format = a.format;
            runs::stats(&programme(a)).await.map(|s| match format {
                Format::Table => runs::stats_text(&s),
                Format::Json => json(&s),
            })
        }
    };
    match text {
        Ok(t) => {
            print(&t);
            ExitCode::Success
        }
        Err(e) => failed(&e),
    }
}

fn programme(a: ProgrammeArgs) -> ProgrammeRequest {
    ProgrammeRequest {
        store: a.store.request(),
        since: a.since,
        labels: a.labels,
        half_life: Some(a.half_life),
    }
}

/// Run `faultline correlate`.
pub async fn correlate(a: CorrelateArgs) -> ExitCode {
    if let Some(am) = a.alertmanager {
        let req = runs::AlertsRequest {
            store: a.store.request(),
            alertmanager: am,
            matchers: a.matchers,
            window: Some(a.window),
            match_labels: a.match_labels,
            labels: a.labels,
        };
        return match runs::correlate_alerts(&req).await {
            Ok(found) => {
                print(&match a.format {
                    Format::Table => runs::alerts_text(&found),
                    Format::Json => json(&serde_json::json!({ "alerts": found })),
                });
                ExitCode::Success
            }
            Err(e) => failed(&e),
        };
    }
    let req = CorrelateRequest {
        store: a.store.request(),
        at: a.at,
        window: Some(a.window),
        labels: a.labels,
        limit: a.limit,
    };
    match runs::correlate(&req).await {
        Ok(c) => {
            print(&match a.format {
                Format::Table => runs::correlation_text(&c),
                Format::Json => json(&runs::correlation_json(&c)),
            });
            ExitCode::Success
        }
        Err(e) => failed(&e),
    }
}
