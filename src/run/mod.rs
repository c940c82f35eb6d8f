//! Running an experiment: the lifecycle, strategies, background activities,
//! interrupts and the journal.

pub mod interrupt;
pub mod journal;
pub mod preflight;
pub mod record;
mod runner;
pub mod spans;

pub use interrupt::{Interrupt, Source as InterruptSource};
pub use record::{ActivityStatus, HypothesisState, RunEntry, RunRecord};
pub use runner::{Outcome, Runner};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The final status of a run, as the journal spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The run went through (it may still have deviated).
    Completed,
    /// A hypothesis probe errored, or fail-fast stopped a during-method hypothesis.
    Failed,
    /// An unexpected error stopped the run.
    Aborted,
    /// A signal or a control stopped the run.
    Interrupted,
}

impl Status {
    /// The journal's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Aborted => "aborted",
            Status::Interrupted => "interrupted",
        }
    }
}

/// Where a hypothesis (or an activity) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Dynamic configuration, before anything.
    Configuration,
    /// The hypothesis before the method.
    Before,
    /// A continuous check during the method (1-based iteration).
    During(usize),
    /// The hypothesis after the method.
    After,
    /// The method.
    Method,
    /// The rollbacks.
    Rollback,
    /// A safeguard probe (`chaosaddons.controls.safeguards`).
    Safeguard,
}

impl Phase {
    /// Stable name for events and telemetry.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Configuration => "configuration",
            Phase::Before => "before",
            Phase::During(_) => "during",
            Phase::After => "after",
            Phase::Method => "method",
            Phase::Rollback => "rollback",
            Phase::Safeguard => "safeguard",
        }
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? } hint $hint:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $variant),+ }
        impl $name {
            /// Every spelling, for messages.
            pub const HINT: &'static str = $hint;
            /// Every spelling, for `--help` and completion.
            pub const NAMES: &'static [&'static str] = &[$($text),+];
            /// The spelling used on the command line and in files.
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(format!("unknown value '{s}': {}", $hint)) }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum! {
    /// When rollbacks are played.
    RollbackStrategy {
        /// Always (faultline's default: an aborted run must not leave its fault behind).
        Always = "always",
        /// The Chaos Toolkit's default: not when the run failed or was interrupted.
        Default = "default",
        /// Never.
        Never = "never",
        /// Only when the steady state deviated.
        Deviated = "deviated",
    } hint "use one of always, default, never, deviated"
}

string_enum! {
    /// When the steady-state hypothesis is checked.
    HypothesisStrategy {
        /// Before and after the method.
        Default = "default",
        /// Before the method only.
        BeforeMethodOnly = "before-method-only",
        /// After the method only.
        AfterMethodOnly = "after-method-only",
        /// Repeatedly during the method only.
        DuringMethodOnly = "during-method-only",
        /// Before, repeatedly during, and after the method.
        Continuously = "continuously",
    } hint "use one of default, before-method-only, after-method-only, during-method-only, continuously"
}

string_enum! {
    /// What a dry run skips.
    Dry {
        /// Probes are not executed.
        Probes = "probes",
        /// Actions are not executed.
        Actions = "actions",
        /// No activity is executed.
        Activities = "activities",
        /// Pauses are skipped.
        Pause = "pause",
    } hint "use one of probes, actions, activities, pause"
}

impl RollbackStrategy {
    /// Whether rollbacks are played for this outcome.
    pub fn plays(self, status: Status, deviated: bool) -> bool {
        match self {
            RollbackStrategy::Always => true,
            RollbackStrategy::Never => false,
            RollbackStrategy::Default => !matches!(status, Status::Failed | Status::Interrupted),
            RollbackStrategy::Deviated => deviated,
        }
    }
}

impl HypothesisStrategy {
    fn before(self) -> bool {
        matches!(
            self,
            Self::Default | Self::BeforeMethodOnly | Self::Continuously
        )
    }
    fn during(self) -> bool {
        matches!(self, Self::DuringMethodOnly | Self::Continuously)
    }
    fn after(self) -> bool {
        matches!(
            self,
            Self::Default | Self::AfterMethodOnly | Self::Continuously
        )
    }
}

/// When a safeguard probe runs, as `chaosaddons.controls.safeguards` reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SafeguardMode {
    /// Before the experiment: a miss stops it before anything runs.
    Blocking,
    /// Once, concurrently with the experiment (`background: true`).
    Once,
    /// Repeatedly, every so many seconds, until the rollbacks (`frequency: N`).
    Every(Duration),
}

/// A probe that must stay within tolerance for the experiment to go on.
#[derive(Debug, Clone)]
pub struct Safeguard {
    /// The probe, with its tolerance.
    pub probe: crate::experiment::Activity,
    /// When it runs.
    pub mode: SafeguardMode,
}

/// How to run, after precedence (flag > experiment runtime > settings > default).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// When the hypothesis is checked.
    pub hypothesis_strategy: HypothesisStrategy,
    /// Time between two continuous checks.
    pub hypothesis_frequency: Duration,
    /// Stop the method when a continuous check deviates.
    pub fail_fast: bool,
    /// When rollbacks are played.
    pub rollback_strategy: RollbackStrategy,
    /// What a dry run skips.
    pub dry: Option<Dry>,
    /// Timeout of activities that declare none.
    pub activity_timeout: Duration,
    /// Bytes kept of each output stream or body, for providers that set no
    /// `output_limit` of their own.
    pub output_limit: u64,
    /// Defaults of PromQL queries (the settings' `prometheus:` section), carried to
    /// providers untouched.
    pub prometheus: crate::provider::prometheus::Defaults,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            hypothesis_strategy: HypothesisStrategy::Default,
            hypothesis_frequency: Duration::from_secs(1),
            fail_fast: false,
            rollback_strategy: RollbackStrategy::Always,
            dry: None,
            activity_timeout: Duration::from_secs(300),
            output_limit: crate::provider::capture::DEFAULT_OUTPUT_LIMIT,
            prometheus: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_strategies_follow_the_reference() {
        use RollbackStrategy::*;
        use Status::*;
        assert!(Always.plays(Interrupted, false));
        assert!(!Never.plays(Completed, true));
        assert!(Default.plays(Completed, true) && Default.plays(Aborted, false));
        assert!(!Default.plays(Failed, false) && !Default.plays(Interrupted, false));
        assert!(Deviated.plays(Completed, true) && !Deviated.plays(Completed, false));
    }

    #[test]
    fn strategies_parse_from_their_spelling() {
        assert_eq!(
            "during-method-only".parse::<HypothesisStrategy>().unwrap(),
            HypothesisStrategy::DuringMethodOnly
        );
        assert!("sometimes".parse::<HypothesisStrategy>().is_err());
        assert_eq!("pause".parse::<Dry>().unwrap(), Dry::Pause);
    }
}
