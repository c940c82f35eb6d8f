//! A one-shot, cloneable interrupt: signals, controls, safeguards and the kill switch
//! trigger it; running activities, pauses and the continuous hypothesis wait on it.

use std::sync::Arc;
use tokio::sync::watch;

/// Who triggered an interrupt, when the trigger says so: the trace records it
/// (`chaos.interrupt.source`), so a run stopped by the kill switch is found as such.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A signal (SIGINT, SIGTERM, SIGHUP).
    Signal,
    /// The kill switch (a file, or a server's `/v1/kill`).
    KillSwitch,
    /// A safeguard probe tripped.
    Safeguard,
    /// A Python function called `chaoslib.exit.exit_gracefully()` or
    /// `exit_ungracefully()`.
    PythonExit,
}

impl Source {
    /// The attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Signal => "signal",
            Source::KillSwitch => "kill_switch",
            Source::Safeguard => "safeguard",
            Source::PythonExit => "python_exit",
        }
    }
}

/// A trigger: its reason, and who pulled it when known.
type Trigger = (String, Option<Source>);

/// Triggered once, observed by many.
#[derive(Clone, Debug)]
pub struct Interrupt {
    tx: Arc<watch::Sender<Option<Trigger>>>,
    rollbacks: Arc<std::sync::atomic::AtomicBool>,
    /// Rollbacks must not be played (`chaoslib.exit.exit_ungracefully()`).
    no_rollbacks: Arc<std::sync::atomic::AtomicBool>,
    /// When it was first triggered: the start of the abort latency.
    at: Arc<std::sync::OnceLock<std::time::Instant>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt::new()
    }
}

impl Interrupt {
    /// A fresh, untriggered interrupt.
    pub fn new() -> Interrupt {
        Interrupt {
            tx: Arc::new(watch::channel(None).0),
            rollbacks: Arc::default(),
            no_rollbacks: Arc::default(),
            at: Arc::default(),
        }
    }

    /// Note that rollbacks are being played: they are not stopped by this interrupt.
    pub fn mark_rollbacks(&self) {
        self.rollbacks
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Say that this run must stop without playing its rollbacks.
    pub fn forbid_rollbacks(&self) {
        self.no_rollbacks
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the rollbacks must not be played.
    pub fn rollbacks_forbidden(&self) -> bool {
        self.no_rollbacks.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether rollbacks are being played.
    pub fn in_rollbacks(&self) -> bool {
        self.rollbacks.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Trigger it with a reason (later triggers keep the first reason).
    pub fn trigger(&self, reason: impl Into<String>) {
        self.set(reason.into(), None);
    }

    /// Trigger it with a reason, saying who did (later triggers keep the first).
    pub fn trigger_from(&self, source: Source, reason: impl Into<String>) {
        self.set(reason.into(), Some(source));
    }

    fn set(&self, reason: String, source: Option<Source>) {
        self.tx.send_if_modified(|r| {
            if r.is_none() {
                let _ = self.at.set(std::time::Instant::now());
                *r = Some((reason, source));
                true
            } else {
                false
            }
        });
    }

    /// Whether `other` is a clone of this interrupt.
    pub fn same(&self, other: &Interrupt) -> bool {
        Arc::ptr_eq(&self.tx, &other.tx)
    }

    /// Whether it was triggered.
    pub fn is_set(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Why it was triggered.
    pub fn reason(&self) -> Option<String> {
        self.tx.borrow().as_ref().map(|(r, _)| r.clone())
    }

    /// Who triggered it, when the trigger said so.
    pub fn source(&self) -> Option<Source> {
        self.tx.borrow().as_ref().and_then(|(_, s)| *s)
    }

    /// When it was first triggered, if it was.
    pub fn triggered_at(&self) -> Option<std::time::Instant> {
        self.at.get().copied()
    }

    /// Resolves once triggered.
    pub async fn triggered(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_and_the_first_reason_stays() {
        let i = Interrupt::new();
        let j = i.clone();
        let w = tokio::spawn(async move { j.triggered().await });
        i.trigger("SIGINT");
        i.trigger("SIGTERM");
        w.await.unwrap();
        assert_eq!(i.reason().as_deref(), Some("SIGINT"));
        assert_eq!(i.source(), None);
    }

    #[test]
    fn the_first_trigger_names_its_source() {
        let i = Interrupt::new();
        i.trigger_from(Source::KillSwitch, "kill switch engaged");
        i.trigger_from(Source::Signal, "received SIGTERM");
        assert_eq!(i.reason().as_deref(), Some("kill switch engaged"));
        assert_eq!(i.source(), Some(Source::KillSwitch));
        assert_eq!(Source::KillSwitch.as_str(), "kill_switch");
    }
}
