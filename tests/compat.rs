//! Compatibility check against the real Chaos Toolkit.
//!
//! Each case runs one experiment from `tests/compat/experiments/` through the
//! Chaos Toolkit (`chaos run`, installed once in a venv under the target
//! directory) and through faultline, each in its own temporary directory, and
//! compares what users rely on: the final status, `deviated`, the activities
//! that ran (names in order from the journal: before-hypothesis probes,
//! method, after-hypothesis probes, rollbacks, with their status and
//! tolerance verdict) and the exit code.
//!
//! faultline differs from the Chaos Toolkit on purpose in a few places
//! (README "Exit codes", docs/compatibility.md). Those differences are encoded
//! below as named exceptions ([`faultline_exit_for`], [`RollbackStrategy`],
//! [`Difference`]); nothing else is loosened. `tests/compat/README.md` lists
//! what the Chaos Toolkit does for every case.
//!
//! Environment:
//! - without `python3` on PATH (or when the venv cannot be built) the cases
//!   print why and pass, unless `FAULTLINE_REQUIRE_COMPAT=1`, which makes
//!   them fail instead;
//! - `FAULTLINE_COMPAT_CHAOS=/path/to/bin/chaos` uses an existing Chaos
//!   Toolkit installation instead of building `target/ctk-venv`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// The versions `docs`/`tests/compat/README.md` were observed on; bump together.
const CTK_PACKAGES: &[&str] = &["chaostoolkit==1.19.0", "chaostoolkit-lib[jsonpath]==1.44.0"];
/// No tool run may take longer than this; it is killed and the case fails.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(120);
/// Building the venv downloads packages: allow more.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

/// What a tool is expected to produce, for the documented differences.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    status: &'static str,
    deviated: bool,
    /// Rendered as by [`Entry::render`]: `phase:name`, then ` [failed]`,
    /// ` [missed]` (tolerance not met), ` [no status]`.
    activities: &'static [&'static str],
    exit: i32,
}

/// Documented differences between faultline and the Chaos Toolkit that need
/// more than the two rules applied to every case ([`faultline_exit_for`] and
/// [`RollbackStrategy`]). Each names the difference and states both sides, so
/// the exception breaks loudly if either tool stops behaving as documented.
#[derive(Debug, Clone, Copy)]
enum Difference {
    /// The Chaos Toolkit crashes (traceback, no journal, exit 1) on an
    /// unexpected error in a hypothesis probe or a tolerance, or in a control's
    /// `cleanup_control` after the run; faultline writes a journal with a status
    /// instead.
    CtkCrashes { faultline: Outcome },
    /// faultline's http output has lowercase `headers` keys; the Chaos Toolkit
    /// keeps the server's spelling.
    HttpHeaderKeysLowercase { ctk: Outcome, faultline: Outcome },
    /// faultline parses a `body` served as `application/json; charset=utf-8`
    /// as JSON; the Chaos Toolkit only does for exactly `application/json`.
    JsonBodyWithCharset { ctk: Outcome, faultline: Outcome },
    /// An invalid experiment: the Chaos Toolkit exits 1 without a journal,
    /// faultline exits 3 (invalid input) without one. Each tool's console
    /// output must name the problem (`ctk_says`, `faultline_says`), so a case
    /// cannot pass on an unrelated refusal.
    InvalidExperiment {
        ctk_says: &'static str,
        faultline_says: &'static str,
    },
    /// What a control hook changes in its `state` argument: the Chaos Toolkit's
    /// `state` is the journal itself (or its `run`/`rollbacks` list, a hypothesis
    /// state, a run entry), so a change shows in the journal it writes, even a
    /// string appended to `run` (fixture controls/dummy.py); faultline passes the
    /// hook a copy and keeps only what it changes in `configuration`/`secrets`.
    ControlStateNotInJournal { ctk: Outcome, faultline: Outcome },
    /// `--no-validation` skips validation, but faultline still refuses an
    /// experiment it cannot run (README, `run` options), such as a ref to an
    /// activity that does not exist: exit 3 and no journal, where the Chaos
    /// Toolkit starts the run and aborts it when it reaches the ref.
    RefusesUnrunnable { ctk: Outcome },
}

/// Which rollback strategy faultline is given.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RollbackStrategy {
    /// Documented difference: faultline's default strategy is `always`, the
    /// Chaos Toolkit's is `default`. To compare like for like faultline gets
    /// `--rollback-strategy default` unless the case passes its own flag.
    CompareWithCtkDefault,
    /// The case sets the strategy in the experiment's `runtime` block, which
    /// a command-line flag would override: pass nothing to either tool.
    FromExperiment,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    /// Extra arguments for both tools' `run` subcommand.
    args: &'static [&'static str],
    /// Extra environment for both tools.
    env: &'static [(&'static str, &'static str)],
    /// Start `tests/compat/server.py` (one per tool run) and pass
    /// `--var base_url=http://127.0.0.1:PORT`.
    server: bool,
    /// Pass `--var dead_url=http://127.0.0.1:PORT` with nothing listening.
    dead_url: bool,
    /// Put `tests/compat` on `PYTHONPATH`, for the cases' own python modules.
    python_modules: bool,
    /// Pass `--var-file` with this file of `tests/compat/` (by absolute path: each
    /// tool runs in its own temporary directory).
    var_file: Option<&'static str>,
    /// Pass `--control-file` with this file of `tests/compat/` (by absolute path).
    control_file: Option<&'static str>,
    rollbacks: RollbackStrategy,
    /// Also run faultline with its own default strategy (`always`) and expect
    /// these rollbacks, where the Chaos Toolkit (`default`) plays none.
    faultline_default_rollbacks: Option<&'static [&'static str]>,
    /// Bounds on each tool's wall-clock time (pauses honoured or skipped).
    min_seconds: Option<f64>,
    max_seconds: Option<f64>,
    difference: Option<Difference>,
}

const BASE: Case = Case {
    args: &[],
    env: &[],
    server: false,
    dead_url: false,
    python_modules: false,
    var_file: None,
    control_file: None,
    rollbacks: RollbackStrategy::CompareWithCtkDefault,
    faultline_default_rollbacks: None,
    min_seconds: None,
    max_seconds: None,
    difference: None,
};

/// One `#[test]` per case; the experiment is `tests/compat/experiments/<name
/// with - for _>.json`.
macro_rules! compat_cases {
    ($($name:ident: $case:expr;)*) => {
        const CASE_NAMES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name), $case);
            }
        )*
    };
}

compat_cases! {
    // -- the outcome table of docs (reference/chaostoolkit.md) ----------------
    all_fine: BASE;
    after_hypothesis_deviated: BASE;
    before_hypothesis_missed: BASE;
    before_probe_timeout: Case {
        faultline_default_rollbacks: Some(&["rollback-echo"]),
        ..BASE
    };
    before_probe_connection_refused: Case { dead_url: true, ..BASE };
    method_activity_timeout: BASE;
    method_http_connection_refused: Case { dead_url: true, ..BASE };
    method_invalid_timeout_aborted: BASE;
    method_unknown_ref_aborted: Case {
        args: &["--no-validation"],
        difference: Some(Difference::RefusesUnrunnable {
            ctk: Outcome {
                status: "aborted",
                deviated: false,
                activities: &["before:echo-ok", "run:say-hello", "rollback:rollback-echo"],
                exit: 1,
            },
        }),
        ..BASE
    };
    method_python_import_error: Case { args: &["--no-validation"], ..BASE };
    python_activity_raises: BASE;
    python_configuration_and_secrets: Case { python_modules: true, ..BASE };
    sigterm_interrupted: Case {
        faultline_default_rollbacks: Some(&["rollback-echo"]),
        ..BASE
    };
    sigint_interrupted: BASE;
    during_method_fail_fast: Case {
        args: &["--hypothesis-strategy", "during-method-only", "--hypothesis-frequency", "0.2", "--fail-fast"],
        faultline_default_rollbacks: Some(&["remove-fault"]),
        ..BASE
    };
    continuously_fail_fast: Case {
        args: &["--hypothesis-strategy", "continuously", "--hypothesis-frequency", "0.2", "--fail-fast"],
        ..BASE
    };

    // -- hypothesis strategies ------------------------------------------------
    strategy_before_method_only: Case { args: &["--hypothesis-strategy", "before-method-only"], ..BASE };
    strategy_after_method_only: Case { args: &["--hypothesis-strategy", "after-method-only"], ..BASE };
    strategy_during_method_only: Case {
        args: &["--hypothesis-strategy", "during-method-only", "--hypothesis-frequency", "0.2"],
        ..BASE
    };
    strategy_continuously: Case {
        args: &["--hypothesis-strategy", "continuously", "--hypothesis-frequency", "0.2"],
        ..BASE
    };
    runtime_from_experiment: Case { rollbacks: RollbackStrategy::FromExperiment, ..BASE };

    // -- rollback strategies ----------------------------------------------------
    rollback_always_on_failed: Case { args: &["--rollback-strategy", "always"], ..BASE };
    rollback_never: Case { args: &["--rollback-strategy", "never"], ..BASE };
    rollback_deviated_when_deviated: Case { args: &["--rollback-strategy", "deviated"], ..BASE };
    rollback_deviated_when_not: Case { args: &["--rollback-strategy", "deviated"], ..BASE };
    rollback_failure_continues: BASE;

    // -- dry modes --------------------------------------------------------------
    dry_probes: Case { args: &["--dry", "probes"], ..BASE };
    dry_actions: Case { args: &["--dry", "actions"], ..BASE };
    dry_activities: Case { args: &["--dry", "activities"], ..BASE };
    dry_pause: Case { args: &["--dry", "pause"], max_seconds: Some(4.0), ..BASE };

    // -- features -----------------------------------------------------------------
    background_activities: BASE;
    background_activity_fails: BASE;
    refs: BASE;
    pauses: Case { args: &["--var", "pause:float=0.4"], min_seconds: Some(0.7), max_seconds: Some(4.0), ..BASE };
    var_substitution: Case { args: &["--var", "greeting=bonjour", "--var", "count:int=3"], ..BASE };
    env_configuration: Case {
        env: &[("FAULTLINE_COMPAT_WHO", "compat"), ("FAULTLINE_COMPAT_NUMBER", "42")],
        ..BASE
    };
    var_file_declarations: Case {
        var_file: Some("var-files/var-file-declarations.json"),
        env: &[
            ("FAULTLINE_COMPAT_VF_WHO", "compat"),
            ("FAULTLINE_COMPAT_VF_NUMBER", "42"),
            ("FAULTLINE_COMPAT_VF_DIR", "/"),
        ],
        ..BASE
    };

    // -- tolerances -------------------------------------------------------------------
    tolerance_bool: BASE;
    tolerance_int: BASE;
    tolerance_str: BASE;
    tolerance_list: BASE;
    tolerance_range: BASE;
    tolerance_regex: BASE;
    tolerance_jsonpath: Case { server: true, ..BASE };
    tolerance_probe: BASE;

    // -- http -----------------------------------------------------------------------------
    http_fault_deviated: Case { server: true, ..BASE };
    http_timeout: Case { server: true, ..BASE };
    http_header_case: Case {
        server: true,
        difference: Some(Difference::HttpHeaderKeysLowercase {
            ctk: Outcome {
                status: "completed",
                deviated: false,
                activities: &["before:header-present", "after:header-present", "run:say-hello", "rollback:rollback-echo"],
                exit: 0,
            },
            faultline: Outcome {
                status: "completed",
                deviated: false,
                activities: &["before:header-present [missed]", "rollback:rollback-echo"],
                exit: 0,
            },
        }),
        ..BASE
    };
    http_json_charset: Case {
        server: true,
        difference: Some(Difference::JsonBodyWithCharset {
            ctk: Outcome {
                status: "completed",
                deviated: false,
                activities: &["before:charset-body-parsed [missed]", "rollback:rollback-echo"],
                exit: 0,
            },
            faultline: Outcome {
                status: "completed",
                deviated: false,
                activities: &[
                    "before:charset-body-parsed",
                    "after:charset-body-parsed",
                    "run:say-hello",
                    "rollback:rollback-echo",
                ],
                exit: 0,
            },
        }),
        ..BASE
    };

    // -- the python worker: module state, chaoslib.exit, signatures -------------------------
    python_module_state: Case { python_modules: true, ..BASE };
    // `always`, so that graceful (rollbacks per strategy) and ungraceful (none) differ
    python_exit_gracefully: Case { args: &["--rollback-strategy", "always"], python_modules: true, ..BASE };
    python_exit_ungracefully: Case { args: &["--rollback-strategy", "always"], python_modules: true, ..BASE };
    python_missing_argument_invalid: Case {
        difference: Some(Difference::InvalidExperiment {
            ctk_says: "required argument 'path' is missing from activity 'exists'",
            faultline_says: "required argument 'path' is missing from activity 'missing-argument'",
        }),
        ..BASE
    };
    python_extra_argument_invalid: Case {
        difference: Some(Difference::InvalidExperiment {
            ctk_says: "argument 'should_not_be_here' is not part of the function signature in activity 'exists'",
            faultline_says: "argument 'should_not_be_here' is not part of the function signature in activity 'too-many-args'",
        }),
        ..BASE
    };
    python_arguments_mismatch_no_validation: Case { args: &["--no-validation"], ..BASE };

    // -- python controls (the Chaos Toolkit's fixtures, tests/compat/ctk_fixtures) ----------
    control_dummy: Case {
        python_modules: true,
        difference: Some(Difference::ControlStateNotInJournal {
            ctk: Outcome {
                status: "completed",
                deviated: false,
                activities: &[
                    "before:echo-ok",
                    "after:echo-ok",
                    "run:say-hello",
                    "run:<not an activity: \"after_method_control\"> [no status]",
                    "rollback:rollback-echo",
                    "rollback:<not an activity: \"after_rollback_control\"> [no status]",
                ],
                exit: 0,
            },
            faultline: Outcome {
                status: "completed",
                deviated: false,
                activities: &["before:echo-ok", "after:echo-ok", "run:say-hello", "rollback:rollback-echo"],
                exit: 0,
            },
        }),
        ..BASE
    };
    control_changed_configuration: Case { python_modules: true, ..BASE };
    control_changed_secrets: Case { python_modules: true, ..BASE };
    control_scope_before: Case { python_modules: true, ..BASE };
    control_interrupter: Case { python_modules: true, ..BASE };
    control_interrupted_activity: Case {
        python_modules: true,
        faultline_default_rollbacks: Some(&["rollback-echo"]),
        ..BASE
    };
    control_exited_activity: Case { python_modules: true, ..BASE };
    control_on_activity: Case { python_modules: true, ..BASE };
    control_file_global: Case {
        python_modules: true,
        control_file: Some("control-files/interrupt-on-target.json"),
        ..BASE
    };
    control_failing_init: Case { python_modules: true, ..BASE };
    control_failing_init_still_applied: Case { python_modules: true, ..BASE };
    control_validator_refuses: Case {
        python_modules: true,
        difference: Some(Difference::InvalidExperiment {
            ctk_says: "invalid key on control",
            faultline_says: "its validate_control refused the declaration: InvalidActivity: invalid key on control",
        }),
        ..BASE
    };
    control_failing_cleanup: Case {
        python_modules: true,
        difference: Some(Difference::CtkCrashes {
            // cleanup_control raised after the run: logged, the outcome stands
            faultline: Outcome {
                status: "completed",
                deviated: false,
                activities: &["before:echo-ok", "after:echo-ok", "run:say-hello", "rollback:rollback-echo"],
                exit: 0,
            },
        }),
        ..BASE
    };

    // -- where the Chaos Toolkit crashes or refuses ---------------------------------------
    crash_hypothesis_import: Case {
        args: &["--no-validation"],
        difference: Some(Difference::CtkCrashes {
            // the module cannot be imported: the experiment cannot run as written, an
            // unexpected error like CTK's in the method: aborted
            faultline: Outcome {
                status: "aborted",
                deviated: false,
                activities: &[
                    "before:import-missing-module [failed] [missed]",
                    "rollback:rollback-echo",
                ],
                exit: 2,
            },
        }),
        ..BASE
    };
    crash_range_dict: Case {
        difference: Some(Difference::CtkCrashes {
            // a before-hypothesis tolerance not met: method skipped, completed
            faultline: Outcome {
                status: "completed",
                deviated: false,
                activities: &["before:dict-output [missed]", "rollback:rollback-echo"],
                exit: 0,
            },
        }),
        ..BASE
    };
    invalid_no_method: Case {
        difference: Some(Difference::InvalidExperiment {
            ctk_says: "an experiment requires a method",
            faultline_says: "missing required key 'method'",
        }),
        ..BASE
    };
}

/// Every experiment file must have a case (and every case a file), so an
/// experiment cannot be added and silently never run.
#[test]
fn every_experiment_has_a_case() {
    let dir = compat_dir().join("experiments");
    let files: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".json")?.replace('-', "_"))
        })
        .collect();
    let cases: BTreeSet<String> = CASE_NAMES.iter().map(|s| s.to_string()).collect();
    let without_case: Vec<_> = files.difference(&cases).collect();
    let without_file: Vec<_> = cases.difference(&files).collect();
    assert!(
        without_case.is_empty() && without_file.is_empty(),
        "experiments without a case: {without_case:?}; cases without an experiment: {without_file:?}"
    );
}

// ---------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------

fn run_case(name: &str, case: Case) {
    let Some(chaos) = ctk_chaos() else { return };
    let experiment = compat_dir()
        .join("experiments")
        .join(format!("{}.json", name.replace('_', "-")));
    assert!(
        experiment.is_file(),
        "missing experiment {}",
        experiment.display()
    );
    let dir = TempDir::new(name);

    let ctk = run_tool(
        Tool::Ctk(&chaos),
        &experiment,
        &case,
        &dir.0.join("ctk"),
        &[],
    );
    let rollback_args: &[&str] = if case.rollbacks == RollbackStrategy::CompareWithCtkDefault
        && !case.args.contains(&"--rollback-strategy")
    {
        &["--rollback-strategy", "default"]
    } else {
        &[]
    };
    let fl = run_tool(
        Tool::Faultline,
        &experiment,
        &case,
        &dir.0.join("faultline"),
        rollback_args,
    );

    let mut problems = Vec::new();
    compare(&case, &ctk, &fl, &mut problems);
    check_durations(&case, &[&ctk, &fl], &mut problems);
    if let Some(j) = &ctk.journal {
        check_report(
            &dir.0.join("ctk").join("journal.json"),
            &j.raw,
            &mut problems,
        );
    }

    let mut fl_default = None;
    if let Some(expected) = case.faultline_default_rollbacks {
        let run = run_tool(
            Tool::Faultline,
            &experiment,
            &case,
            &dir.0.join("faultline-default"),
            &[],
        );
        check_default_rollbacks(expected, &ctk, &fl, &run, &mut problems);
        fl_default = Some(run);
    }

    if !problems.is_empty() {
        let mut report = format!("compat case `{name}` ({}):\n", experiment.display());
        for p in &problems {
            let _ = writeln!(report, "  - {p}");
        }
        for run in [Some(&ctk), Some(&fl), fl_default.as_ref()]
            .into_iter()
            .flatten()
        {
            report.push_str(&run.describe());
        }
        panic!("{report}");
    }
}

/// `faultline report` reads the Chaos Toolkit's own journal: HTML and Markdown, the
/// verdict its status and deviation give.
fn check_report(journal: &Path, raw: &Value, problems: &mut Vec<String>) {
    let verdict = match raw["status"].as_str().unwrap_or("") {
        s @ ("failed" | "aborted" | "interrupted") => s,
        _ if raw["deviated"] == true => "deviated",
        _ => "held",
    };
    // A control's additions to CTK's state (strings in `run`) are left out, and said.
    let foreign = ["run", "rollbacks"].iter().any(|k| {
        raw[k]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| !i.is_object()))
    });
    let markdown = if foreign {
        "are not activities"
    } else {
        "# Chaos report:"
    };
    for (format, says) in [
        ("html", format!("class=\"badge {verdict}\"")),
        ("markdown", markdown.to_string()),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["report", "--format", format])
            .arg(journal)
            .env_remove("FAULTLINE_TRACE_URL")
            .env("XDG_CONFIG_HOME", journal.with_file_name("xdg"))
            .output();
        match out {
            Ok(o) if o.status.success() => {
                if !String::from_utf8_lossy(&o.stdout).contains(&says) {
                    problems.push(format!(
                        "faultline report --format {format} on CTK's journal does not say {says:?}"
                    ));
                }
            }
            Ok(o) => problems.push(format!(
                "faultline report --format {format} on CTK's journal failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => problems.push(format!("faultline report could not start: {e}")),
        }
    }
}

/// The documented exit-code difference: faultline exits 0 on success, 1 when
/// the steady state deviated, 2 when the run failed, was aborted or was
/// interrupted; the Chaos Toolkit exits 1 for all of those.
fn faultline_exit_for(status: &str, deviated: bool) -> i32 {
    match (status, deviated) {
        ("completed", false) => 0,
        ("completed", true) => 1,
        _ => 2,
    }
}

fn ctk_exit_for(status: &str, deviated: bool) -> i32 {
    i32::from(status != "completed" || deviated)
}

fn compare(case: &Case, ctk: &ToolRun, fl: &ToolRun, problems: &mut Vec<String>) {
    for run in [ctk, fl] {
        if let Some(e) = &run.error {
            problems.push(format!("{}: {e}", run.label));
        }
    }
    match case.difference {
        Some(Difference::InvalidExperiment {
            ctk_says,
            faultline_says,
        }) => {
            for (run, says) in [(ctk, ctk_says), (fl, faultline_says)] {
                if !run.stdout.contains(says) && !run.stderr.contains(says) {
                    problems.push(format!(
                        "{} was expected to say {says:?} (why the experiment is invalid)",
                        run.label
                    ));
                }
            }
            if fl.journal.is_some() {
                problems.push("faultline wrote a journal for an invalid experiment".into());
            }
            if ctk.exit != Some(1) || ctk.journal.is_some() {
                problems.push(format!(
                    "documented difference InvalidExperiment no longer holds: CTK was expected to refuse the experiment (exit 1, no journal), got exit {:?}, journal written: {}",
                    ctk.exit,
                    ctk.journal.is_some()
                ));
            }
            if fl.exit != Some(3) {
                problems.push(format!(
                    "faultline must exit 3 on an invalid experiment, exited {:?}",
                    fl.exit
                ));
            }
        }
        Some(Difference::RefusesUnrunnable { ctk: c }) => {
            expect_outcome(
                "CTK (documented difference RefusesUnrunnable)",
                ctk,
                &c,
                problems,
            );
            if fl.exit != Some(3) || fl.journal.is_some() {
                problems.push(format!(
                    "faultline must refuse this experiment even with --no-validation (exit 3, no journal), got exit {:?}, journal written: {}",
                    fl.exit,
                    fl.journal.is_some()
                ));
            }
        }
        Some(Difference::CtkCrashes { faultline }) => {
            if ctk.exit != Some(1) || ctk.journal.is_some() {
                problems.push(format!(
                    "documented difference CtkCrashes no longer holds: CTK was expected to crash (exit 1, no journal), got exit {:?}, journal written: {}",
                    ctk.exit,
                    ctk.journal.is_some()
                ));
            }
            expect_outcome(
                "faultline (documented difference CtkCrashes)",
                fl,
                &faultline,
                problems,
            );
        }
        Some(Difference::HttpHeaderKeysLowercase {
            ctk: c,
            faultline: f,
        })
        | Some(Difference::JsonBodyWithCharset {
            ctk: c,
            faultline: f,
        })
        | Some(Difference::ControlStateNotInJournal {
            ctk: c,
            faultline: f,
        }) => {
            let which = match case.difference {
                Some(Difference::HttpHeaderKeysLowercase { .. }) => "HttpHeaderKeysLowercase",
                Some(Difference::JsonBodyWithCharset { .. }) => "JsonBodyWithCharset",
                _ => "ControlStateNotInJournal",
            };
            expect_outcome(
                &format!("CTK (documented difference {which})"),
                ctk,
                &c,
                problems,
            );
            expect_outcome(
                &format!("faultline (documented difference {which})"),
                fl,
                &f,
                problems,
            );
        }
        None => compare_live(ctk, fl, problems),
    }
}

/// No documented difference beyond the exit codes: faultline must do what the
/// Chaos Toolkit did.
fn compare_live(ctk: &ToolRun, fl: &ToolRun, problems: &mut Vec<String>) {
    let Some(c) = &ctk.journal else {
        problems.push(format!(
            "CTK wrote no journal (exit {:?}); this case expects a run: fix the experiment or declare a Difference",
            ctk.exit
        ));
        return;
    };
    let Some(f) = &fl.journal else {
        problems.push(format!("faultline wrote no journal (exit {:?})", fl.exit));
        return;
    };
    if ctk.exit != Some(ctk_exit_for(&c.status, c.deviated)) {
        problems.push(format!(
            "CTK exit {:?} does not match its journal (status {}, deviated {}): the harness is wrong",
            ctk.exit, c.status, c.deviated
        ));
    }
    if f.status != c.status {
        problems.push(format!(
            "status: CTK {:?}, faultline {:?}",
            c.status, f.status
        ));
    }
    if f.deviated != c.deviated {
        problems.push(format!(
            "deviated: CTK {}, faultline {}",
            c.deviated, f.deviated
        ));
    }
    compare_entries(&c.entries, &f.entries, problems);
    // success vs not always; then the documented mapping of the failure kinds
    let expected_exit = faultline_exit_for(&c.status, c.deviated);
    if (ctk.exit == Some(0)) != (fl.exit == Some(0)) || fl.exit != Some(expected_exit) {
        problems.push(format!(
            "exit code: CTK {:?} (status {}, deviated {}) so faultline must exit {expected_exit}, it exited {:?}",
            ctk.exit, c.status, c.deviated, fl.exit
        ));
    }
}

/// The activity names must match in order. Statuses and tolerance verdicts
/// must match where the Chaos Toolkit recorded one: it leaves the entry of an
/// activity cut short by an interrupt or an unexpected error without a status.
fn compare_entries(ctk: &[Entry], fl: &[Entry], problems: &mut Vec<String>) {
    let same = ctk.len() == fl.len()
        && ctk.iter().zip(fl).all(|(c, f)| {
            c.phase == f.phase
                && c.name == f.name
                && (c.status.is_none() || c.status == f.status)
                && (c.tolerance_met.is_none() || c.tolerance_met == f.tolerance_met)
        });
    if !same {
        problems.push(format!(
            "activities differ:\n      CTK:       {}\n      faultline: {}",
            render(ctk),
            render(fl)
        ));
    }
}

fn expect_outcome(label: &str, run: &ToolRun, expected: &Outcome, problems: &mut Vec<String>) {
    let Some(j) = &run.journal else {
        problems.push(format!(
            "{label}: expected a journal with status {}, none written (exit {:?})",
            expected.status, run.exit
        ));
        return;
    };
    let activities: Vec<String> = j.entries.iter().map(Entry::render).collect();
    if j.status != expected.status
        || j.deviated != expected.deviated
        || activities != expected.activities
        || run.exit != Some(expected.exit)
    {
        problems.push(format!(
            "{label}:\n      expected status {}, deviated {}, exit {}, activities [{}]\n      got      status {}, deviated {}, exit {:?}, activities [{}]",
            expected.status,
            expected.deviated,
            expected.exit,
            expected.activities.join(", "),
            j.status,
            j.deviated,
            run.exit,
            activities.join(", ")
        ));
    }
}

/// The documented rollback difference, checked directly: with its own default
/// strategy (`always`) faultline plays the rollbacks the Chaos Toolkit's
/// `default` skipped, and the rest of the outcome does not change.
fn check_default_rollbacks(
    expected: &[&str],
    ctk: &ToolRun,
    fl: &ToolRun,
    fl_default: &ToolRun,
    problems: &mut Vec<String>,
) {
    if let Some(e) = &fl_default.error {
        problems.push(format!("{}: {e}", fl_default.label));
    }
    if let Some(c) = &ctk.journal {
        if c.entries.iter().any(|e| e.phase == "rollback") {
            problems.push(
                "CTK played rollbacks here: this case cannot show faultline's `always` default"
                    .into(),
            );
        }
    }
    let (Some(f), Some(d)) = (&fl.journal, &fl_default.journal) else {
        problems.push(format!(
            "{}: no journal (exit {:?})",
            fl_default.label, fl_default.exit
        ));
        return;
    };
    let rollbacks: Vec<&str> = d
        .entries
        .iter()
        .filter(|e| e.phase == "rollback")
        .map(|e| e.name.as_str())
        .collect();
    if rollbacks != expected {
        problems.push(format!(
            "{}: expected rollbacks {expected:?} (faultline's default strategy is `always`), got {rollbacks:?}",
            fl_default.label
        ));
    }
    if d.status != f.status || d.deviated != f.deviated || fl_default.exit != fl.exit {
        problems.push(format!(
            "{}: status {} / deviated {} / exit {:?} differ from the run with `--rollback-strategy default` ({} / {} / {:?})",
            fl_default.label, d.status, d.deviated, fl_default.exit, f.status, f.deviated, fl.exit
        ));
    }
}

fn check_durations(case: &Case, runs: &[&ToolRun], problems: &mut Vec<String>) {
    for run in runs {
        let secs = run.elapsed.as_secs_f64();
        if let Some(min) = case.min_seconds {
            if secs < min {
                problems.push(format!(
                    "{} took {secs:.2}s, expected at least {min}s (pauses)",
                    run.label
                ));
            }
        }
        if let Some(max) = case.max_seconds {
            if secs > max {
                problems.push(format!(
                    "{} took {secs:.2}s, expected at most {max}s (pauses)",
                    run.label
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Journals
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Entry {
    phase: &'static str,
    name: String,
    status: Option<String>,
    tolerance_met: Option<bool>,
}

impl Entry {
    fn render(&self) -> String {
        let mut s = format!("{}:{}", self.phase, self.name);
        match self.status.as_deref() {
            None => s.push_str(" [no status]"),
            Some("succeeded") => {}
            Some(other) => {
                let _ = write!(s, " [{other}]");
            }
        }
        if self.tolerance_met == Some(false) {
            s.push_str(" [missed]");
        }
        s
    }
}

fn render(entries: &[Entry]) -> String {
    let v: Vec<String> = entries.iter().map(Entry::render).collect();
    format!("[{}]", v.join(", "))
}

#[derive(Debug)]
struct Summary {
    status: String,
    deviated: bool,
    entries: Vec<Entry>,
    raw: Value,
}

fn summarize(raw: Value) -> Result<Summary, String> {
    let status = raw
        .get("status")
        .and_then(Value::as_str)
        .ok_or("journal has no string `status`")?
        .to_string();
    let deviated = raw
        .get("deviated")
        .and_then(Value::as_bool)
        .ok_or("journal has no boolean `deviated`")?;
    let mut entries = Vec::new();
    let states = raw.get("steady_states");
    for phase in ["before", "after"] {
        let probes = states
            .and_then(|s| s.get(phase))
            .and_then(|s| s.get("probes"))
            .and_then(Value::as_array);
        push_entries(&mut entries, phase, probes)?;
    }
    push_entries(
        &mut entries,
        "run",
        raw.get("run").and_then(Value::as_array),
    )?;
    push_entries(
        &mut entries,
        "rollback",
        raw.get("rollbacks").and_then(Value::as_array),
    )?;
    Ok(Summary {
        status,
        deviated,
        entries,
        raw,
    })
}

fn push_entries(
    out: &mut Vec<Entry>,
    phase: &'static str,
    list: Option<&Vec<Value>>,
) -> Result<(), String> {
    for item in list.into_iter().flatten() {
        // a control's hook may append anything to the Chaos Toolkit's `run` or
        // `rollbacks` list (its `state`): kept, rendered as what it is
        if !item.is_object() {
            out.push(Entry {
                phase,
                name: format!("<not an activity: {item}>"),
                status: None,
                tolerance_met: None,
            });
            continue;
        }
        let name = item
            .get("activity")
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a `{phase}` entry has no activity.name: {item}"))?;
        out.push(Entry {
            phase,
            name: name.to_string(),
            status: item
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_string),
            tolerance_met: item.get("tolerance_met").and_then(Value::as_bool),
        });
    }
    Ok(())
}

/// The parts of a journal worth reading when a case fails.
fn relevant_journal(raw: &Value) -> String {
    let mut v = raw.clone();
    if let Some(obj) = v.as_object_mut() {
        for key in ["experiment", "platform", "node", "chaoslib-version"] {
            obj.remove(key);
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Running the tools
// ---------------------------------------------------------------------------

enum Tool<'a> {
    Ctk(&'a Path),
    Faultline,
}

struct ToolRun {
    label: String,
    exit: Option<i32>,
    elapsed: Duration,
    journal: Option<Summary>,
    stdout: String,
    stderr: String,
    /// The harness could not run the tool, it timed out, or its journal was unreadable.
    error: Option<String>,
}

impl ToolRun {
    fn describe(&self) -> String {
        let mut s = format!(
            "\n===== {} (exit {:?}, {:.2}s) =====\n",
            self.label,
            self.exit,
            self.elapsed.as_secs_f64()
        );
        match &self.journal {
            Some(j) => {
                let _ = writeln!(
                    s,
                    "--- journal (without experiment) ---\n{}",
                    relevant_journal(&j.raw)
                );
            }
            None => s.push_str("--- no journal ---\n"),
        }
        let _ = write!(
            s,
            "--- stdout ---\n{}\n--- stderr ---\n{}\n",
            self.stdout.trim_end(),
            self.stderr.trim_end()
        );
        s
    }
}

fn run_tool(tool: Tool<'_>, experiment: &Path, case: &Case, cwd: &Path, extra: &[&str]) -> ToolRun {
    let label = match (&tool, extra.is_empty()) {
        (Tool::Ctk(_), _) => "CTK".to_string(),
        (Tool::Faultline, false) => format!("faultline {}", extra.join(" ")),
        (Tool::Faultline, true) => "faultline (its default rollback strategy)".to_string(),
    };
    fs::create_dir_all(cwd).expect("create the run directory");
    let journal_path = cwd.join("journal.json");

    // keep servers alive until the tool is done; dropped (killed) on return or panic
    let mut vars = Vec::new();
    let _server = if case.server {
        let server = Server::start();
        vars.push(format!("base_url=http://127.0.0.1:{}", server.port));
        Some(server)
    } else {
        None
    };
    if case.dead_url {
        vars.push(format!("dead_url=http://127.0.0.1:{}", free_port()));
    }

    let mut cmd = match tool {
        Tool::Ctk(chaos) => {
            // Started in the background of a non-interactive shell, the test process
            // inherits SIGINT ignored, and Python then never turns SIGINT into
            // KeyboardInterrupt (`chaos` completes where it should be interrupted):
            // the venv's python restores the default handler, then runs the script.
            let python = chaos.with_file_name("python");
            let mut c = if python.is_file() {
                let mut c = Command::new(python);
                c.args(["-c", RESTORE_SIGINT_AND_RUN]).arg(chaos);
                c
            } else {
                Command::new(chaos)
            };
            c.args(["--no-version-check", "--no-log-file", "--settings"])
                .arg(cwd.join("no-settings.yaml"))
                .arg("run");
            c
        }
        Tool::Faultline => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
            c.arg("run").env("NO_COLOR", "1");
            c
        }
    };
    cmd.arg("--journal-path").arg(&journal_path).args(case.args);
    for v in &vars {
        cmd.arg("--var").arg(v);
    }
    if let Some(f) = case.var_file {
        cmd.arg("--var-file").arg(compat_dir().join(f));
    }
    if let Some(f) = case.control_file {
        cmd.arg("--control-file").arg(compat_dir().join(f));
    }
    cmd.args(extra).arg(experiment).current_dir(cwd);
    // hermetic: no user settings, no telemetry export
    cmd.env("XDG_CONFIG_HOME", cwd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(case.env.iter().copied());
    if case.python_modules {
        cmd.env("PYTHONPATH", compat_dir());
    }

    let out = run_with_timeout(cmd, cwd, &label, PROCESS_TIMEOUT);
    let mut error = out.error;
    let journal = match fs::read_to_string(&journal_path) {
        Ok(text) => match serde_json::from_str(&text)
            .map_err(|e| e.to_string())
            .and_then(summarize)
        {
            Ok(j) => Some(j),
            Err(e) => {
                error.get_or_insert(format!(
                    "unreadable journal {}: {e}",
                    journal_path.display()
                ));
                None
            }
        },
        Err(_) => None,
    };
    ToolRun {
        label,
        exit: out.status.and_then(|s| s.code()),
        elapsed: out.elapsed,
        journal,
        stdout: out.stdout,
        stderr: out.stderr,
        error,
    }
}

struct Output {
    status: Option<ExitStatus>,
    elapsed: Duration,
    stdout: String,
    stderr: String,
    error: Option<String>,
}

/// Runs `cmd` with its output in files under `dir`, killing it after `timeout`.
fn run_with_timeout(mut cmd: Command, dir: &Path, label: &str, timeout: Duration) -> Output {
    let id = unique();
    let out_path = dir.join(format!("console-{id}.stdout"));
    let err_path = dir.join(format!("console-{id}.stderr"));
    let files = File::create(&out_path).and_then(|o| Ok((o, File::create(&err_path)?)));
    let (out_file, err_file) = match files {
        Ok(f) => f,
        Err(e) => {
            return Output::failed(format!(
                "cannot create console files in {}: {e}",
                dir.display()
            ))
        }
    };
    cmd.stdin(Stdio::null()).stdout(out_file).stderr(err_file);
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output::failed(format!(
                "cannot start {label} ({:?}): {e}",
                cmd.get_program()
            ))
        }
    };
    let mut error = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                error = Some(format!(
                    "{label} did not finish within {}s and was killed",
                    timeout.as_secs()
                ));
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                error = Some(format!("waiting for {label}: {e}"));
                break None;
            }
        }
    };
    let elapsed = start.elapsed();
    let read = |p: &Path| {
        fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Output {
        status,
        elapsed,
        stdout: read(&out_path),
        stderr: read(&err_path),
        error,
    }
}

impl Output {
    fn failed(error: String) -> Self {
        Output {
            status: None,
            elapsed: Duration::ZERO,
            stdout: String::new(),
            stderr: String::new(),
            error: Some(error),
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers: temp dirs, ports, the http server
// ---------------------------------------------------------------------------

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("compat")
}

fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory removed when dropped (also when the test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("faultline-compat-{name}-{}", unique()));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A port nothing listens on right now (bind 127.0.0.1:0, then release it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// `tests/compat/server.py` on a free port, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Self {
        let script = compat_dir().join("server.py");
        for _attempt in 0..5 {
            let port = free_port();
            let child = Command::new("python3")
                .arg(&script)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start python3 {}: {e}", script.display()));
            let mut server = Server { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                // exited early: the port was taken meanwhile, try another
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            drop(server);
        }
        panic!("the compat http server did not start");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The Chaos Toolkit installation
// ---------------------------------------------------------------------------

fn require_compat() -> bool {
    std::env::var("FAULTLINE_REQUIRE_COMPAT").is_ok_and(|v| v == "1")
}

/// Runs the script named by the first argument as `__main__`, with Python's default
/// SIGINT handler back in place.
const RESTORE_SIGINT_AND_RUN: &str = "import runpy, signal, sys\n\
signal.signal(signal.SIGINT, signal.default_int_handler)\n\
sys.argv = sys.argv[1:]\n\
runpy.run_path(sys.argv[0], run_name='__main__')\n";

/// The `chaos` executable, or `None` when the check is skipped (the reason is
/// printed). With `FAULTLINE_REQUIRE_COMPAT=1` skipping is a failure.
fn ctk_chaos() -> Option<PathBuf> {
    static CHAOS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match CHAOS.get_or_init(find_or_install_ctk) {
        Ok(path) => Some(path.clone()),
        Err(reason) if require_compat() => {
            panic!("compat check required (FAULTLINE_REQUIRE_COMPAT=1) but unavailable: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping the Chaos Toolkit compat check: {reason} (set FAULTLINE_REQUIRE_COMPAT=1 to fail instead)");
            None
        }
    }
}

fn find_or_install_ctk() -> Result<PathBuf, String> {
    if let Some(chaos) = std::env::var_os("FAULTLINE_COMPAT_CHAOS") {
        let chaos = PathBuf::from(chaos);
        return if chaos.is_file() {
            Ok(chaos)
        } else {
            Err(format!(
                "FAULTLINE_COMPAT_CHAOS={} is not a file",
                chaos.display()
            ))
        };
    }
    let python = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !python.is_ok_and(|s| s.success()) {
        return Err("python3 is not on PATH".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let target = if target.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(target)
    } else {
        target
    };
    let venv = target.join("ctk-venv");
    let chaos = venv.join("bin").join("chaos");
    let ready = venv.join(".faultline-compat-ready");
    let wanted = CTK_PACKAGES.join(" ");
    let is_ready =
        || fs::read_to_string(&ready).is_ok_and(|s| s.trim() == wanted) && chaos.is_file();
    if is_ready() {
        return Ok(chaos);
    }
    fs::create_dir_all(&target).map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let _lock = FileLock::acquire(&target.join("ctk-venv.lock"))?;
    if is_ready() {
        return Ok(chaos); // another process built it while we waited
    }
    eprintln!(
        "building the Chaos Toolkit venv in {} ({wanted})...",
        venv.display()
    );
    let _ = fs::remove_dir_all(&venv);
    let log_dir = TempDir::new("venv");
    let step = |mut cmd: Command, what: &str| -> Result<(), String> {
        cmd.env_remove("PIP_REQUIRE_VIRTUALENV");
        let out = run_with_timeout(cmd, &log_dir.0, what, INSTALL_TIMEOUT);
        match (out.error, out.status) {
            (None, Some(s)) if s.success() => Ok(()),
            (error, status) => Err(format!(
                "{what} failed ({}): {}{}",
                error.unwrap_or_else(|| format!("{status:?}")),
                out.stdout.trim_end(),
                out.stderr.trim_end()
            )),
        }
    };
    let mut venv_cmd = Command::new("python3");
    venv_cmd.args(["-m", "venv"]).arg(&venv);
    step(venv_cmd, "python3 -m venv")?;
    let mut pip = Command::new(venv.join("bin").join("python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .args(CTK_PACKAGES);
    step(pip, "pip install")?;
    if !chaos.is_file() {
        return Err(format!("pip install did not create {}", chaos.display()));
    }
    fs::write(&ready, &wanted).map_err(|e| format!("cannot write {}: {e}", ready.display()))?;
    Ok(chaos)
}

/// Cross-process mutual exclusion by creating a file; a lock older than the
/// install timeout is considered abandoned.
struct FileLock(PathBuf);

impl FileLock {
    fn acquire(path: &Path) -> Result<Self, String> {
        let deadline = Instant::now() + INSTALL_TIMEOUT + Duration::from_secs(60);
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => return Ok(FileLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > INSTALL_TIMEOUT + Duration::from_secs(30));
                    if stale {
                        let _ = fs::remove_file(path);
                    } else if Instant::now() > deadline {
                        return Err(format!("timed out waiting for the lock {}", path.display()));
                    } else {
                        thread::sleep(Duration::from_millis(250));
                    }
                }
                Err(e) => return Err(format!("cannot create the lock {}: {e}", path.display())),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
