//! A catalog of experiments (`faultline run A B dir/ 'exp/*.yaml'`), the pure parts:
//! which files the arguments name, where each journal goes, the exit status of the
//! whole catalog, and its JUnit report ([`junit`]). The loop is in `app::catalog`.

pub mod junit;

use crate::exit::ExitCode;
use std::path::{Path, PathBuf};

/// The extensions an experiment in a directory has.
const EXTENSIONS: &[&str] = &["json", "yaml", "yml"];

/// The experiments `args` name, in order, each once: a URL as it is; a directory's
/// `*.json|*.yaml|*.yml` files (not recursive), sorted; a glob's matches, sorted; a
/// file as it is (a missing one is left to the run, which names it). A directory
/// without experiments or a glob matching nothing is a problem, named.
pub fn expand(args: &[String]) -> Result<Vec<String>, Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    let push = |s: String, out: &mut Vec<String>| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for a in args {
        if a.starts_with("http://") || a.starts_with("https://") {
            push(a.clone(), &mut out);
            continue;
        }
        let p = Path::new(a);
        if p.is_dir() {
            let mut found: Vec<PathBuf> = match std::fs::read_dir(p) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.is_file() && is_experiment_file(f))
                    .collect(),
                Err(e) => {
                    problems.push(format!("{a}: cannot read the directory: {e}"));
                    continue;
                }
            };
            found.sort();
            if found.is_empty() {
                problems.push(format!(
                    "{a}: no *.json, *.yaml or *.yml experiment in this directory"
                ));
            }
            for f in found {
                push(f.display().to_string(), &mut out);
            }
        } else if a.contains(['*', '?', '[']) {
            match glob::glob(a) {
                Ok(paths) => {
                    let mut found: Vec<PathBuf> = paths.flatten().filter(|f| f.is_file()).collect();
                    found.sort();
                    if found.is_empty() {
                        problems.push(format!("{a}: the pattern matches no file"));
                    }
                    for f in found {
                        push(f.display().to_string(), &mut out);
                    }
                }
                Err(e) => problems.push(format!("{a}: not a valid pattern: {e}")),
            }
        } else {
            push(a.clone(), &mut out);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn is_experiment_file(p: &Path) -> bool {
    p.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
}

/// The journal file name of each experiment of a catalog, in a journal directory:
/// `<file stem>.json`; a stem seen before gets `-2`, `-3`… (in catalog order, so the
/// names are stable from one run of the catalog to the next).
pub fn journal_names(experiments: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for e in experiments {
        let base = e.trim_end_matches('/').rsplit('/').next().unwrap_or(e);
        let stem = match base.rsplit_once('.') {
            Some((s, _)) if !s.is_empty() => s,
            _ => base,
        };
        let stem: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stem = if stem.is_empty() {
            "experiment".to_string()
        } else {
            stem
        };
        let mut name = format!("{stem}.json");
        let mut n = 2;
        while seen.contains(&name) {
            name = format!("{stem}-{n}.json");
            n += 1;
        }
        seen.push(name.clone());
        out.push(name);
    }
    out
}

/// How bad an exit code is, for a catalog: success < deviated < invalid input <
/// failed < kill switch.
fn severity(c: ExitCode) -> u8 {
    match c {
        ExitCode::Success => 0,
        ExitCode::Deviated => 1,
        ExitCode::InvalidInput => 2,
        ExitCode::Failed => 3,
        ExitCode::KillSwitch => 4,
    }
}

/// The exit code of a catalog: the worst of its runs' (see [`severity`]); experiments
/// skipped because the catalog stopped count for nothing (what stopped it does).
pub fn worst(codes: impl IntoIterator<Item = ExitCode>) -> ExitCode {
    codes
        .into_iter()
        .max_by_key(|c| severity(*c))
        .unwrap_or(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_follows_the_documented_order() {
        use ExitCode::*;
        assert_eq!(worst([]), Success);
        assert_eq!(worst([Success, Deviated, Success]), Deviated);
        assert_eq!(worst([Deviated, InvalidInput]), InvalidInput);
        assert_eq!(worst([InvalidInput, Failed, Deviated]), Failed);
        assert_eq!(worst([Failed, KillSwitch, Success]), KillSwitch);
    }

    #[test]
    fn journal_names_are_stems_made_unique() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            journal_names(&e(&[
                "a/x.json",
                "b/x.yaml",
                "c/y.yml",
                "d/x.json",
                "https://h/p/z.json"
            ])),
            ["x.json", "x-2.json", "y.json", "x-3.json", "z.json"]
        );
        assert_eq!(journal_names(&e(&["a b?.json"])), ["a_b_.json"]);
    }

    #[test]
    fn expand_reads_directories_sorted_and_globs() {
        let d = std::env::temp_dir().join(format!("fl-catalog-{}", std::process::id()));
        std::fs::create_dir_all(d.join("dir")).unwrap();
        for f in [
            "dir/b.yaml",
            "dir/a.json",
            "dir/c.yml",
            "dir/notes.txt",
            "g1.json",
            "g2.json",
        ] {
            std::fs::write(d.join(f), "{}").unwrap();
        }
        let s = |p: &str| d.join(p).display().to_string();
        let got = expand(&[s("dir"), s("g*.json"), s("dir/a.json")]).unwrap();
        assert_eq!(
            got,
            [
                s("dir/a.json"),
                s("dir/b.yaml"),
                s("dir/c.yml"),
                s("g1.json"),
                s("g2.json")
            ]
        );
        let err = expand(&[s("nothing*.json")]).unwrap_err();
        assert!(err[0].contains("matches no file"), "{err:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
