//! The rule for which module may use which (`docs/architecture.md`, "Which module may
//! use which"), held by a test that reads the sources: a new import across a line the
//! architecture draws fails here, naming the file and the import.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(sources(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        out
    }

    /// The crate paths a file names (`crate::x::y` or `faultline::x::y`), comments
    /// included: a doc link across a line is a dependency of the reader's mind too.
    fn imports(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for prefix in ["crate::", "faultline::"] {
            let mut rest = text;
            while let Some(i) = rest.find(prefix) {
                let tail = &rest[i + prefix.len()..];
                let path: String = tail
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                out.push(path.trim_end_matches(':').to_string());
                rest = tail;
            }
        }
        out
    }

    /// (files under this path, imports they must not name, why).
    const RULES: &[(&str, &[&str], &str)] = &[
        (
            "",
            &["app"],
            "only the binary (src/cli) and the composition root itself use app",
        ),
        (
            "cli",
            &[
                "run::runner",
                "run::Runner",
                "run::preflight",
                "run::journal",
                "telemetry",
                "sink",
                "provider",
                "experiment::load",
                "experiment::parse",
                "settings",
                "store",
                "slo",
            ],
            "the CLI assembles nothing: it maps flags to a request and calls app",
        ),
        (
            "run",
            &["app", "sink", "settings", "store", "server"],
            "the engine never knows who assembled it, where logs go, nor where SLO data lives",
        ),
        (
            "experiment",
            &[
                "app",
                "sink",
                "telemetry",
                "control",
                "run::runner",
                "run::journal",
            ],
            "the experiment format is pure: loading, parsing, substitution, tolerance",
        ),
        (
            "sink",
            &["app", "control", "run::runner", "settings"],
            "sinks deliver records; they never drive or assemble a run",
        ),
        (
            "telemetry",
            &["app", "control", "sink", "run::runner", "settings"],
            "telemetry exports spans; it never drives or assembles a run",
        ),
        (
            "provider",
            &["app", "sink", "control", "run::runner", "settings", "server"],
            "providers run one activity; they never see the run around it, and reach SLO data through the store's handle, never the server's code",
        ),
        (
            "control",
            &[
                "app",
                "server",
                "settings",
                "run::runner",
                "store::Store",
                "store::StoreSpec",
                "store::sqlite",
                "store::postgres",
                "store::remote",
            ],
            "controls observe and decide; of the store, the run metrics use only the remote-write encoder",
        ),
        (
            "slo",
            &[
                "app",
                "run",
                "sink",
                "telemetry",
                "provider",
                "control",
                "experiment",
                "settings",
                "store",
                "server",
            ],
            "SLO math is pure: no I/O, no run, no store",
        ),
        (
            "store",
            &[
                "app",
                "run",
                "sink",
                "telemetry",
                "provider",
                "control",
                "experiment",
                "settings",
                "server",
            ],
            "the store keeps SLO data and run records; it never drives or observes a run",
        ),
        (
            "server",
            &[
                "app",
                "run",
                "sink",
                "provider",
                "control",
                "experiment",
                "settings",
            ],
            "the server serves the store; it runs no experiment",
        ),
        (
            "redact.rs",
            &[""],
            "a leaf: masking depends on nothing of the crate",
        ),
        (
            "killswitch",
            &[
                "app",
                "run",
                "sink",
                "telemetry",
                "provider",
                "control",
                "experiment",
                "settings",
                "store",
                "server",
                "slo",
            ],
            "the kill switch is a file and a client: runs (through app) and the server use it, it knows neither",
        ),
        (
            "alerts",
            &[
                "app",
                "run",
                "sink",
                "telemetry",
                "control",
                "experiment",
                "settings",
                "store",
                "server",
                "slo",
                "killswitch",
            ],
            "alerts are a model and two clients: runs (through the faultline.alerts control) and commands use them, they know neither",
        ),
        (
            "report",
            &[
                "app",
                "sink",
                "telemetry",
                "provider",
                "control",
                "settings",
                "store",
                "server",
                "killswitch",
                "run::runner",
            ],
            "reports are pure: given run records, they render text; app reads the journals",
        ),
        ("duration.rs", &[""], "a leaf"),
        ("timefmt.rs", &[""], "a leaf"),
        ("tls.rs", &[""], "a leaf"),
    ];

    #[test]
    fn module_imports_follow_the_architecture_rules() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let files = sources(&src);
        assert!(files.len() > 40, "the sources were found: {}", files.len());
        let mut broken = Vec::new();
        for file in &files {
            let rel = file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if rel == "layering.rs" {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let names = imports(&text);
            for (under, forbidden, why) in RULES {
                let applies = match *under {
                    "" => !rel.starts_with("app/") && !rel.starts_with("cli/"),
                    u if u.ends_with(".rs") => rel == *u,
                    u => rel.starts_with(&format!("{u}/")) || rel == format!("{u}.rs"),
                };
                if !applies {
                    continue;
                }
                for name in &names {
                    let hit = forbidden
                        .iter()
                        .any(|f| f.is_empty() || name == f || name.starts_with(&format!("{f}::")));
                    if hit {
                        broken.push(format!("src/{rel} uses {name}: {why}"));
                    }
                }
            }
        }
        assert!(broken.is_empty(), "{}", broken.join("\n"));
    }

    #[test]
    fn the_rule_reader_finds_crate_paths() {
        let names = imports("use crate::run::{Phase};\n/// [`faultline::app::run`]\nx::crate::a");
        assert_eq!(names, ["run", "a", "app::run"]);
    }
}
