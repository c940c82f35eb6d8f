//! Built-in controls, and the mapping from the python control modules users already
//! declare in their experiments to what faultline serves natively.
//!
//! | module (as declared) | served by |
//! |---|---|
//! | `chaostracing.oltp`, `chaostracing.control` (and the book's `chaotracing.control`) | tracing, which is on by default |
//! | `chaoshumio.control` | the Humio/LogScale log sink |
//! | `chaoshci.simplehci`, `chaoshci.control`, `faultline.pause` | [`Pause`]: "Press Enter to continue..." before each activity |
//! | `chaoshci.aborthci`, `faultline.confirm` | [`Confirm`]: "continue? [y/N]" before each activity but rollbacks; no = interrupt (rollbacks still run) |
//! | `chaosprometheus.metrics` | [`super::metrics::RunMetrics`]: run metrics pushed to a Pushgateway, with the Chaos Toolkit's names |
//! | `faultline.metrics` | [`super::run_metrics::FaultlineMetrics`]: faultline's run metrics (target labels, activity durations) to a Pushgateway, remote write or a `/metrics` listener |
//! | `faultline.grafana` | [`super::grafana::Grafana`]: the run as a region annotation in Grafana |
//! | `faultline.webhook` | [`super::webhook::Webhook`]: notices at the start and the end, Slack-compatible or JSON |
//! | `chaosprometheus.metrics` | [`super::metrics::RunMetrics`]: run metrics pushed to a Pushgateway |
//! | `faultline.alerts` | [`super::alerts::Alerts`]: the alerts that fired during the run (Alertmanager, Prometheus `ALERTS`), in the journal and on the experiment span |
//! | `chaosaddons.controls.safeguards` | the runner's safeguards ([`crate::run::Safeguard`]): probes checked before (blocking), once in the background, or every `frequency` seconds; a miss interrupts the run |
//! | anything else | a warning naming it; the run goes on without it (controls are optional) |

use super::{ActivityInfo, Control, Decision, Hook};
use std::io::{BufRead, Write};

/// What a declared control module is, for faultline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// OpenTelemetry tracing (on by default; the declaration changes nothing).
    Tracing,
    /// The Humio/LogScale structured-ingest sink.
    Humio,
    /// Pause before each activity until Enter is pressed.
    Pause,
    /// Ask before each activity; "no" interrupts the run.
    Confirm,
    /// The Chaos Toolkit's Prometheus run metrics, pushed to a Pushgateway.
    PrometheusMetrics,
    /// faultline's own run metrics (`faultline.metrics`).
    FaultlineMetrics,
    /// `chaosaddons.controls.safeguards`: probes that interrupt the run when missed.
    Safeguards,
    /// Grafana region annotations for the run.
    Grafana,
    /// Notices at the start and the end of the run, to chat or any JSON webhook.
    Webhook,
    /// `faultline.alerts`: the alerts that fired during the run.
    Alerts,
}

/// The built-in serving a python control module, if any.
pub fn lookup(module: &str) -> Option<Builtin> {
    Some(match module {
        "chaostracing.oltp"
        | "chaostracing.control"
        | "chaotracing.control"
        | "faultline.tracing" => Builtin::Tracing,
        "chaoshumio.control" | "faultline.humio" => Builtin::Humio,
        "chaoshci.simplehci" | "chaoshci.control" | "faultline.pause" => Builtin::Pause,
        "chaoshci.aborthci" | "faultline.confirm" => Builtin::Confirm,
        "chaosprometheus.metrics" => Builtin::PrometheusMetrics,
        "faultline.metrics" => Builtin::FaultlineMetrics,
        "chaosaddons.controls.safeguards" | "faultline.safeguards" => Builtin::Safeguards,
        super::grafana::MODULE => Builtin::Grafana,
        super::webhook::MODULE => Builtin::Webhook,
        "faultline.alerts" => Builtin::Alerts,
        _ => return None,
    })
}

/// Read one line from standard input without blocking the runtime; `None` at end of
/// input (no terminal, closed pipe).
async fn read_line() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    })
    .await
    .ok()
    .flatten()
}

fn prompt(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// The book's "Click to continue..." control: waits for Enter before each activity.
pub struct Pause;

impl Control for Pause {
    fn name(&self) -> &str {
        "pause"
    }
    fn before_activity<'a>(&'a self, a: &'a ActivityInfo<'a>) -> Hook<'a> {
        Box::pin(async move {
            prompt(&format!(
                "About to run {} '{}'. Press Enter to continue...",
                a.kind.as_str(),
                a.name
            ));
            read_line().await;
            prompt("\n");
            Decision::Continue
        })
    }
}

/// The book's "abort" control: asks before each activity; anything but yes
/// interrupts the run. It never asks before a rollback: rollbacks are how an aborted
/// run cleans up, so they always run (per the strategy).
pub struct Confirm;

impl Control for Confirm {
    fn name(&self) -> &str {
        "confirm"
    }
    fn before_activity<'a>(&'a self, a: &'a ActivityInfo<'a>) -> Hook<'a> {
        Box::pin(async move {
            if a.phase == crate::run::Phase::Rollback {
                return Decision::Continue;
            }
            prompt(&format!(
                "About to execute activity: {}\nDo you want to continue the experiment? [y/N]: ",
                a.name
            ));
            match read_line().await {
                Some(answer)
                    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") =>
                {
                    Decision::Continue
                }
                Some(_) => Decision::Interrupt(format!("activity '{}' manually aborted", a.name)),
                None => Decision::Interrupt(format!(
                    "activity '{}' aborted: no answer (standard input is closed)",
                    a.name
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_modules_map_to_builtins() {
        assert_eq!(lookup("chaostracing.oltp"), Some(Builtin::Tracing));
        assert_eq!(lookup("chaoshumio.control"), Some(Builtin::Humio));
        assert_eq!(lookup("chaoshci.aborthci"), Some(Builtin::Confirm));
        assert_eq!(lookup("faultline.grafana"), Some(Builtin::Grafana));
        assert_eq!(lookup("faultline.webhook"), Some(Builtin::Webhook));
        // The Chaos Toolkit's Slack control posts with a bot token to a channel, not
        // to a webhook: it stays a Python control.
        assert_eq!(lookup("chaosslack.control"), None);
        assert_eq!(lookup("faultline.metrics"), Some(Builtin::FaultlineMetrics));
        assert_eq!(
            lookup("chaosprometheus.metrics"),
            Some(Builtin::PrometheusMetrics)
        );
        assert_eq!(lookup("faultline.alerts"), Some(Builtin::Alerts));
        assert_eq!(lookup("mycompany.controls"), None);
    }
}
