//! The one place where outcomes become process exit codes.
//!
//! Documented in the README's "Exit codes" table; the Chaos Toolkit uses 1 for every
//! unsuccessful outcome, faultline tells them apart (see `docs/compatibility.md`).

use crate::killswitch::KillError;
use crate::run::Status;
use crate::store::StoreError;

/// A process exit code, with its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The run completed and the steady state did not deviate; or the experiment is valid.
    Success = 0,
    /// The run completed but the steady state deviated.
    Deviated = 1,
    /// The run failed, was aborted or was interrupted.
    Failed = 2,
    /// The experiment, a flag, a var file or the settings file is wrong.
    InvalidInput = 3,
    /// The kill switch is engaged: the run was refused before anything ran
    /// (`faultline kill --status`: it is on).
    KillSwitch = 4,
}

impl ExitCode {
    /// The exit code of a finished run.
    pub fn for_run(status: Status, deviated: bool) -> ExitCode {
        match status {
            Status::Completed if deviated => ExitCode::Deviated,
            Status::Completed => ExitCode::Success,
            Status::Failed | Status::Aborted | Status::Interrupted => ExitCode::Failed,
        }
    }

    /// The exit code of a store command that failed: the caller's input (3), or a
    /// store that cannot be reached, refuses the token or cannot write (2).
    pub fn for_store(error: &StoreError) -> ExitCode {
        match error {
            StoreError::Invalid(_) => ExitCode::InvalidInput,
            StoreError::Unauthorized(_)
            | StoreError::Forbidden(_)
            | StoreError::NotFound(_)
            | StoreError::Unavailable(_) => ExitCode::Failed,
        }
    }

    /// The exit code of a kill switch that could not be read or operated: a wrong
    /// flag or setting (3), or a file or server that failed (2).
    pub fn for_kill(error: &KillError) -> ExitCode {
        match error {
            KillError::Invalid(_) => ExitCode::InvalidInput,
            KillError::Io { .. }
            | KillError::NotYours { .. }
            | KillError::Unreachable { .. }
            | KillError::Refused { .. } => ExitCode::Failed,
        }
    }

    /// The numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_to_its_documented_code() {
        assert_eq!(ExitCode::for_run(Status::Completed, false).code(), 0);
        assert_eq!(ExitCode::for_run(Status::Completed, true).code(), 1);
        assert_eq!(ExitCode::for_run(Status::Failed, true).code(), 2);
        assert_eq!(ExitCode::for_run(Status::Aborted, false).code(), 2);
        assert_eq!(ExitCode::for_run(Status::Interrupted, false).code(), 2);
        assert_eq!(ExitCode::InvalidInput.code(), 3);
        let invalid = StoreError::Invalid("x".into());
        assert_eq!(ExitCode::for_store(&invalid).code(), 3);
        let down = StoreError::Unavailable("x".into());
        assert_eq!(ExitCode::for_store(&down).code(), 2);
        let refused = StoreError::Unauthorized("x".into());
        assert_eq!(ExitCode::for_store(&refused).code(), 2);
        assert_eq!(ExitCode::KillSwitch.code(), 4);
        assert_eq!(
            ExitCode::for_kill(&KillError::Invalid("x".into())).code(),
            3
        );
        let down = KillError::Unreachable {
            server: "http://127.0.0.1:1/".into(),
            message: "x".into(),
        };
        assert_eq!(ExitCode::for_kill(&down).code(), 2);
    }
}
