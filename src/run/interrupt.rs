//! A one-shot, cloneable interrupt: signals and (later) controls trigger it; running
//! activities, pauses and the continuous hypothesis wait on it.

use std::sync::Arc;
use tokio::sync::watch;

/// Triggered once, observed by many.
#[derive(Clone, Debug)]
pub struct Interrupt {
    tx: Arc<watch::Sender<Option<String>>>,
    rollbacks: Arc<std::sync::atomic::AtomicBool>,
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
            at: Arc::default(),
        }
    }

    /// Note that rollbacks are being played: they are not stopped by this interrupt.
    pub fn mark_rollbacks(&self) {
        self.rollbacks
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether rollbacks are being played.
    pub fn in_rollbacks(&self) -> bool {
        self.rollbacks.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Trigger it with a reason (later triggers keep the first reason).
    pub fn trigger(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.tx.send_if_modified(|r| {
            if r.is_none() {
                let _ = self.at.set(std::time::Instant::now());
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Whether it was triggered.
    pub fn is_set(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Why it was triggered.
    pub fn reason(&self) -> Option<String> {
        self.tx.borrow().clone()
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
    }
}
