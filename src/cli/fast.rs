//! The command lines scripts and schedulers actually type, parsed without clap.
//!
//! Building clap's command (every argument, its help, its parsers) is a fixed cost of
//! a few hundred microseconds on a cold machine, paid before the first activity of
//! every run. [`parse`] understands the plain forms only: `run`/`validate`, long
//! options as `--name value` or `--name=value`, `-v`, and the experiment. Whatever else
//! it meets (help, version, `--`, a repeated option, a value it cannot parse, anything
//! unknown) makes it give up, and clap parses the whole line with its usual messages.
//! So clap still defines the interface: a test parses a corpus of command lines both
//! ways and requires the same result wherever this module gives one.

use super::run::RunArgs;
use super::validate::ValidateArgs;
use super::{Cli, Command, Common, LogFormat};
use std::ffi::OsString;
use std::path::PathBuf;

/// What an option takes.
#[derive(Clone, Copy)]
enum Kind {
    Flag,
    Value,
}

/// The options of `run` (the common ones included), as clap spells them.
const RUN_OPTIONS: &[(&str, Kind)] = &[
    ("journal-path", Kind::Value),
    ("dry", Kind::Value),
    ("no-validation", Kind::Flag),
    ("rollback-strategy", Kind::Value),
    ("hypothesis-strategy", Kind::Value),
    ("hypothesis-frequency", Kind::Value),
    ("fail-fast", Kind::Flag),
    ("var", Kind::Value),
    ("var-file", Kind::Value),
    ("control-file", Kind::Value),
    ("activity-timeout", Kind::Value),
    ("settings", Kind::Value),
    ("log-format", Kind::Value),
    ("verbose", Kind::Flag),
    ("no-color", Kind::Flag),
    ("fetch-timeout", Kind::Value),
];

/// The options of `validate`: the common ones.
const VALIDATE_OPTIONS: &[&str] = &[
    "settings",
    "log-format",
    "verbose",
    "no-color",
    "fetch-timeout",
];

/// Options that may be given more than once (each adds a value).
const REPEATABLE: &[&str] = &["var", "var-file", "control-file"];

/// `args` (the program name first) as clap would parse them, or `None` when the line
/// is not one of the plain forms (then clap must parse it).
pub fn parse(args: &[OsString]) -> Option<Cli> {
    // clap reads `--settings` from the environment too: leave that to it.
    if std::env::var_os("FAULTLINE_SETTINGS").is_some() {
        return None;
    }
    let mut words = Vec::with_capacity(args.len());
    for a in args.iter().skip(1) {
        words.push(a.to_str()?);
    }
    let (sub, rest) = words.split_first()?;
    let run = match *sub {
        "run" => true,
        "validate" => false,
        _ => return None,
    };
    let mut experiment: Option<&str> = None;
    let mut seen: Vec<&str> = Vec::new();
    let mut values: Vec<(&str, &str)> = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let word = rest[i];
        i += 1;
        if word == "-v" {
            if seen.contains(&"verbose") {
                return None;
            }
            seen.push("verbose");
            continue;
        }
        let Some(option) = word.strip_prefix("--") else {
            // One experiment; anything else starting with '-' is clap's business.
            if word.starts_with('-') || word.is_empty() || experiment.is_some() {
                return None;
            }
            experiment = Some(word);
            continue;
        };
        let (name, inline) = match option.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (option, None),
        };
        let kind = RUN_OPTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .filter(|_| run || VALIDATE_OPTIONS.contains(&name))?;
        if seen.contains(&name) && !REPEATABLE.contains(&name) {
            return None;
        }
        seen.push(name);
        match (kind, inline) {
            (Kind::Flag, None) => {}
            (Kind::Flag, Some(_)) => return None,
            (Kind::Value, Some(v)) => values.push((name, v)),
            (Kind::Value, None) => {
                let v = *rest.get(i)?;
                i += 1;
                // A value that looks like an option (or a negative number) is left
                // to clap's rules.
                if v.starts_with('-') {
                    return None;
                }
                values.push((name, v));
            }
        }
    }
    let experiment = experiment?.to_string();
    if values.iter().any(|(_, v)| v.is_empty()) {
        return None;
    }
    let flag = |name: &str| seen.contains(&name);
    let one = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let all = |name: &str| -> Vec<&str> {
        values
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .collect()
    };
    let common = Common {
        settings: one("settings").map(PathBuf::from),
        log_format: match one("log-format") {
            None | Some("string") => LogFormat::String,
            Some("json") => LogFormat::Json,
            Some(_) => return None,
        },
        verbose: flag("verbose"),
        no_color: flag("no-color"),
        fetch_timeout: one("fetch-timeout").map(str::parse).transpose().ok()?,
    };
    let command = if run {
        Command::Run(RunArgs {
            experiment,
            journal_path: PathBuf::from(one("journal-path").unwrap_or("./journal.json")),
            dry: one("dry").map(str::parse).transpose().ok()?,
            no_validation: flag("no-validation"),
            rollback_strategy: one("rollback-strategy").map(str::parse).transpose().ok()?,
            hypothesis_strategy: one("hypothesis-strategy")
                .map(str::parse)
                .transpose()
                .ok()?,
            hypothesis_frequency: one("hypothesis-frequency")
                .map(str::parse)
                .transpose()
                .ok()?,
            fail_fast: flag("fail-fast"),
            vars: all("var").into_iter().map(String::from).collect(),
            var_files: all("var-file").into_iter().map(PathBuf::from).collect(),
            control_files: all("control-file").into_iter().map(PathBuf::from).collect(),
            activity_timeout: one("activity-timeout").map(str::parse).transpose().ok()?,
            common,
        })
    } else {
        Command::Validate(ValidateArgs { experiment, common })
    };
    Some(Cli { command })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn line(words: &[&str]) -> Vec<OsString> {
        std::iter::once("faultline")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// The plain forms: this module must parse them, exactly as clap does.
    const PLAIN: &[&[&str]] = &[
        &["run", "e.json"],
        &["validate", "e.json"],
        &[
            "validate",
            "--log-format",
            "json",
            "e.yaml",
            "-v",
            "--no-color",
        ],
        &["run", "--journal-path", "out/j.json", "e.json"],
        &["run", "e.json", "--journal-path=out/j.json"],
        &["run", "https://example.com/e.json", "--dry", "actions"],
        &[
            "run",
            "https://example.com/e.json",
            "--fetch-timeout",
            "0.5",
        ],
        &[
            "validate",
            "https://example.com/e.json",
            "--fetch-timeout=10",
        ],
        &[
            "run",
            "e.json",
            "--dry=probes",
            "--no-validation",
            "--fail-fast",
        ],
        &["run", "e.json", "--rollback-strategy", "deviated"],
        &[
            "run",
            "e.json",
            "--hypothesis-strategy=continuously",
            "--hypothesis-frequency",
            "0.5",
        ],
        &[
            "run",
            "e.json",
            "--var",
            "a=1",
            "--var=b:int=2",
            "--var",
            "c=x=y",
        ],
        &["run", "e.json", "--var-file", "v.env", "--var-file=w.yaml"],
        &[
            "run",
            "e.json",
            "--control-file",
            "c.json",
            "--control-file",
            "d.yaml",
        ],
        &[
            "run",
            "e.json",
            "--activity-timeout",
            "30",
            "--settings",
            "s.yaml",
        ],
        &["run", "-v", "e.json", "--log-format=string", "--no-color"],
        &["run", "e.json", "--verbose"],
        &[
            "run",
            "e.json",
            "--hypothesis-frequency",
            "inf",
            "--activity-timeout=1e3",
        ],
        &[
            "run",
            "dir with spaces/e.json",
            "--journal-path",
            "j son.json",
        ],
        // Parsed alike; the run then refuses the value.
        &["run", "e.json", "--activity-timeout=-1"],
    ];

    /// Lines this module leaves to clap (help, errors, unusual forms). Whatever it
    /// answers for one of them, clap must agree.
    const OTHERS: &[&[&str]] = &[
        &[],
        &["--help"],
        &["-h"],
        &["--version"],
        &["-V"],
        &["help"],
        &["help", "run"],
        &["run"],
        &["run", "--help"],
        &["run", "e.json", "-h"],
        &["run", "e.json", "--version"],
        &["run", "e.json", "f.json"],
        &["run", "e.json", "--", "f.json"],
        &["run", "--", "e.json"],
        &["run", "e.json", "--unknown"],
        &["run", "e.json", "--journal"],
        &["run", "e.json", "--journal-path"],
        &["run", "e.json", "--journal-path="],
        &["run", "e.json", "--journal-path", ""],
        &["run", "", "--dry", "all"],
        &[
            "run",
            "e.json",
            "--journal-path",
            "a",
            "--journal-path",
            "b",
        ],
        &["run", "e.json", "-v", "-v"],
        &["run", "e.json", "-v", "--verbose"],
        &["run", "e.json", "-vv"],
        &["run", "e.json", "--fail-fast=true"],
        &["run", "e.json", "--fail-fast", "--fail-fast"],
        &["run", "e.json", "--dry", "everything"],
        &["run", "e.json", "--rollback-strategy", "Always"],
        &["run", "e.json", "--hypothesis-strategy", "sometimes"],
        &["run", "e.json", "--hypothesis-frequency", "often"],
        &["run", "e.json", "--activity-timeout", "-1"],
        &["validate", "e.json", "--fetch-timeout", "-1"],
        &["run", "e.json", "--fetch-timeout", "soon"],
        &["run", "e.json", "--journal-path", "-j.json"],
        &["run", "e.json", "--log-format", "JSON"],
        &["run", "e.json", "--log-format", "yaml"],
        &["run", "-"],
        &["run", "e.json", "-x"],
        &["validate", "e.json", "--journal-path", "j.json"],
        &["validate", "e.json", "--dry", "all"],
        &["validate"],
        &["-v", "run", "e.json"],
        &["--settings", "s.yaml", "run", "e.json"],
        &["runn", "e.json"],
        &["Run", "e.json"],
    ];

    #[test]
    fn plain_lines_are_parsed_as_clap_parses_them() {
        for words in PLAIN {
            let args = line(words);
            let fast = parse(&args).unwrap_or_else(|| panic!("not parsed: {words:?}"));
            let clap = Cli::try_parse_from(&args)
                .unwrap_or_else(|e| panic!("clap refuses {words:?}: {e}"));
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{words:?}");
        }
    }

    /// A value clap accepts for each option.
    fn sample(option: &str) -> &'static str {
        match option {
            "dry" => "actions",
            "rollback-strategy" => "never",
            "hypothesis-strategy" => "after-method-only",
            "hypothesis-frequency" => "2.5",
            "activity-timeout" => "7",
            "fetch-timeout" => "1.5",
            "log-format" => "json",
            "var" => "k=v",
            _ => "some/path",
        }
    }

    #[test]
    fn each_option_alone_is_parsed_as_clap_parses_it() {
        for (sub, options) in [
            (
                "run",
                RUN_OPTIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ),
            ("validate", VALIDATE_OPTIONS.to_vec()),
        ] {
            let bare = format!("{:?}", parse(&line(&[sub, "e.json"])).unwrap());
            for name in options {
                let kind = RUN_OPTIONS.iter().find(|(o, _)| *o == name).unwrap().1;
                let long = format!("--{name}");
                let inline = format!("--{name}={}", sample(name));
                let lines: Vec<Vec<&str>> = match kind {
                    Kind::Flag => vec![vec![sub, "e.json", &long]],
                    Kind::Value => vec![
                        vec![sub, "e.json", &long, sample(name)],
                        vec![sub, &inline, "e.json"],
                    ],
                };
                for words in lines {
                    let args = line(&words);
                    let fast = format!("{:?}", parse(&args).unwrap());
                    let clap = format!("{:?}", Cli::try_parse_from(&args).unwrap());
                    assert_eq!(fast, clap, "{words:?}");
                    // The option changed something: it is not dropped on the way.
                    assert_ne!(fast, bare, "{words:?}");
                }
            }
        }
    }

    #[test]
    fn other_lines_are_left_to_clap_or_parsed_alike() {
        let mut left = 0;
        for words in OTHERS {
            let args = line(words);
            match parse(&args) {
                None => left += 1,
                Some(fast) => {
                    let clap = Cli::try_parse_from(&args)
                        .unwrap_or_else(|e| panic!("parsed {words:?}, clap refuses: {e}"));
                    assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{words:?}");
                }
            }
        }
        // Every line of this corpus is help, an error or unusual: none is parsed here.
        assert_eq!(left, OTHERS.len());
    }

    #[test]
    fn the_option_tables_are_clap_s_options() {
        use clap::CommandFactory;
        let cli = Cli::command();
        for (sub, names) in [
            (
                "run",
                RUN_OPTIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ),
            ("validate", VALIDATE_OPTIONS.to_vec()),
        ] {
            let mut clap: Vec<(String, bool)> = cli
                .find_subcommand(sub)
                .unwrap()
                .get_arguments()
                .filter_map(|a| {
                    let flag = matches!(a.get_action(), clap::ArgAction::SetTrue);
                    a.get_long().map(|l| (l.to_string(), flag))
                })
                .filter(|(l, _)| l != "help" && l != "version")
                .collect();
            clap.sort();
            let mut ours: Vec<(String, bool)> = names
                .iter()
                .map(|n| {
                    let kind = RUN_OPTIONS.iter().find(|(o, _)| o == n).unwrap().1;
                    (n.to_string(), matches!(kind, Kind::Flag))
                })
                .collect();
            ours.sort();
            assert_eq!(ours, clap, "{sub}");
        }
        // Every option appears in the corpus of plain lines.
        for (name, _) in RUN_OPTIONS {
            assert!(
                PLAIN.iter().flat_map(|l| l.iter()).any(|w| w
                    .strip_prefix("--")
                    .is_some_and(|o| o.split('=').next() == Some(name))),
                "--{name} is not in the corpus"
            );
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_is_left_to_clap() {
        use std::os::unix::ffi::OsStringExt;
        let mut args = line(&["run"]);
        args.push(OsString::from_vec(vec![b'e', 0xff, b'.', b'j']));
        assert!(parse(&args).is_none());
    }
}
