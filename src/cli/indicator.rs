//! `faultline indicator push`: push one indicator (labels, a percent or good/total
//! counts, a window) to the store, as an experiment's action would. Checked by
//! [`faultline::app::slo::push_indicator`], which names the flag and field of every
//! problem.

use super::slo::{failed, print, StoreArgs};
use faultline::app::slo::{IndicatorValue, PushRequest};
use faultline::exit::ExitCode;

/// Arguments of `faultline indicator`.
#[derive(clap::Args, Debug)]
pub struct IndicatorArgs {
    #[command(subcommand)]
    command: IndicatorCommand,
}

#[derive(clap::Subcommand, Debug)]
enum IndicatorCommand {
    /// Push an indicator; every objective that selects it judges it at once.
    Push(PushArgs),
}

/// Arguments of `faultline indicator push`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("value").required(true).args(["good", "bad", "percent", "good_count"])))]
struct PushArgs {
    /// The indicator's labels (k=v, repeatable or comma-separated).
    #[arg(long, value_name = "K=V", required = true)]
    selector: Vec<String>,
    /// All good: 100 %.
    #[arg(long)]
    good: bool,
    /// All bad: 0 %.
    #[arg(long)]
    bad: bool,
    /// The percent of good events, 0 to 100.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    percent: Option<f64>,
    /// Good events (with --total-count).
    #[arg(long, value_name = "G", requires = "total_count")]
    good_count: Option<u64>,
    /// All events (with --good-count).
    #[arg(long, value_name = "T", requires = "good_count")]
    total_count: Option<u64>,
    /// Start of what it measures, RFC 3339 [default: now].
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of what it measures, RFC 3339 [default: now].
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Run `faultline indicator …`; returns the exit code.
pub async fn indicator(args: IndicatorArgs) -> ExitCode {
    let IndicatorCommand::Push(a) = args.command;
    let value = match (a.good, a.bad, a.percent, a.good_count.zip(a.total_count)) {
        (true, ..) => IndicatorValue::Percent(100.0),
        (_, true, ..) => IndicatorValue::Percent(0.0),
        (_, _, Some(p), _) => IndicatorValue::Percent(p),
        (_, _, _, Some((good, total))) => IndicatorValue::Counts { good, total },
        // clap's group and `requires` make one of the above hold.
        _ => IndicatorValue::Percent(f64::NAN),
    };
    let req = PushRequest {
        store: a.store.request(),
        selector: a.selector,
        value,
        from: a.from,
        to: a.to,
    };
    match faultline::app::slo::push_indicator(&req).await {
        Ok(r) => {
            print(&format!(
                "indicator {} stored ({:.2}%); {} objective(s) judged it\n",
                r.id, r.percent, r.results
            ));
            ExitCode::Success
        }
        Err(e) => failed(&e),
    }
}
