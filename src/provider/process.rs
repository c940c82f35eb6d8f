//! The `process` provider: run a program, output `{status, stdout, stderr}`.
//!
//! Every child runs in its own process group and carries its activity's tag in its
//! environment, so stopping an activity (timeout, interrupt, a second signal) kills
//! the whole tree it started, daemons that left the group included (`tree`), not only
//! the direct child. A list of arguments is passed as is; a string goes through `sh -c` as
//! `path + " " + arguments`, like the Chaos Toolkit. A non-zero exit is not a failure.

use super::capture::{read_capped, truncation, Capped};
use super::tree::{self, Tree};
use super::{field, seconds, ActivityError, Ctx};
use crate::experiment::substitute::python_str;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A typed `process` provider.
#[derive(Debug, Clone)]
pub struct ProcessProvider {
    /// The program, as written.
    pub path: String,
    /// Its arguments.
    pub arguments: Arguments,
    /// Its own timeout.
    pub timeout: Option<Duration>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<String>,
    /// The most bytes kept of stdout and of stderr (`output_limit`), if set here.
    pub output_limit: Option<u64>,
}

/// Arguments as a list (exec) or a string (shell).
#[derive(Debug, Clone)]
pub enum Arguments {
    /// Passed as argv.
    List(Vec<String>),
    /// Appended to the path and run by `sh -c`.
    Shell(String),
}

impl ProcessProvider {
    pub(super) fn from_map(m: &Map<String, Value>) -> Result<ProcessProvider, String> {
        let path = match field(m, "path") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v) => return Err(format!("path must be a string, got {v}")),
            None => return Err("missing path".into()),
        };
        let keep = |v: &Value| !v.is_null() && v.as_str() != Some("");
        let arguments = match field(m, "arguments") {
            None => Arguments::List(Vec::new()),
            Some(Value::String(s)) => Arguments::Shell(s.clone()),
            Some(Value::Array(items)) => {
                Arguments::List(items.iter().filter(|v| keep(v)).map(python_str).collect())
            }
            Some(Value::Object(o)) => Arguments::List(
                o.iter()
                    .flat_map(|(k, v)| [Value::String(k.clone()), v.clone()])
                    .filter(keep)
                    .map(|v| python_str(&v))
                    .collect(),
            ),
            Some(v) => Arguments::List(vec![python_str(v)]),
        };
        let timeout = field(m, "timeout")
            .map(|t| seconds(t, "timeout"))
            .transpose()?;
        let env = match field(m, "env") {
            Some(Value::Object(e)) => e.iter().map(|(k, v)| (k.clone(), python_str(v))).collect(),
            Some(v) => return Err(format!("env must be an object, got {v}")),
            None => Vec::new(),
        };
        let cwd = match field(m, "cwd") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(format!("cwd must be a string, got {v}")),
            None => None,
        };
        Ok(ProcessProvider {
            path,
            arguments,
            timeout,
            env,
            cwd,
            output_limit: super::output_limit(m)?,
        })
    }

    pub(super) async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        let exe = ctx.processes.which(&self.path).ok_or_else(|| {
            ActivityError::invalid(format!(
                "executable '{}' not found{}",
                self.path,
                if self.path.contains('/') {
                    ""
                } else {
                    " on PATH"
                }
            ))
        })?;
        let mut cmd = match &self.arguments {
            Arguments::List(args) => {
                let mut c = tokio::process::Command::new(&exe);
                c.args(args);
                c
            }
            Arguments::Shell(s) => {
                let mut c = tokio::process::Command::new("/bin/sh");
                c.arg("-c").arg(format!("{} {s}", exe.display()));
                c
            }
        };
        cmd.envs(ctx.env.iter().cloned())
            .envs(self.env.iter().cloned());
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        let out = run_captured(cmd, None, ctx.output_limit, ctx.processes)
            .await
            .map_err(|e| ActivityError::new(format!("cannot start '{}': {e}", exe.display())))?;
        let mut output = serde_json::json!({
            "status": out.status,
            "stdout": out.stdout.text(),
            "stderr": out.stderr.text(),
        });
        // Only when something was cut: otherwise the output is the Chaos Toolkit's.
        if let Some(cut) = truncation(&[("stdout", &out.stdout), ("stderr", &out.stderr)]) {
            for (what, c) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
                if c.truncated() {
                    ctx.warn(format!(
                        "{} (output_limit {} bytes)",
                        c.describe(what),
                        ctx.output_limit
                    ));
                }
            }
            output["truncated"] = cut;
        }
        Ok(output)
    }
}

/// Find an executable like `shutil.which`, expanding a leading `~` (no cache: for
/// the pre-flight and one-off checks; a run uses [`Processes::which`]).
pub fn which(path: &str) -> Option<PathBuf> {
    which_with(path, search_path)
}

fn which_with(
    path: &str,
    on_path: impl FnOnce(&str, &std::ffi::OsStr) -> Option<PathBuf>,
) -> Option<PathBuf> {
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map(|h| Path::new(&h).join(rest))?,
        None => PathBuf::from(path),
    };
    if expanded.components().count() > 1 || path.contains('/') {
        return is_executable(&expanded).then_some(expanded);
    }
    on_path(path, &std::env::var_os("PATH")?)
}

/// The first executable `name` in the directories of `paths` (a PATH value).
fn search_path(name: &str, paths: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(paths)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

type Found = BTreeMap<(std::ffi::OsString, String), PathBuf>;

/// One run's processes: the activities whose child is still running (so a second
/// signal can kill them all) and the executables it found on PATH.
///
/// Each run owns one (the composition root makes it; clones share it): two runs in
/// one process never see, nor kill, each other's children.
#[derive(Clone, Default)]
pub struct Processes {
    inner: Arc<ProcessesInner>,
}

#[derive(Default)]
struct ProcessesInner {
    live: Mutex<Vec<Tree>>,
    found: Mutex<Found>,
}

impl Processes {
    /// A new, empty registry.
    pub fn new() -> Processes {
        Processes::default()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Vec<Tree>> {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The trees of this run's activities that are still running.
    pub fn running(&self) -> Vec<Tree> {
        self.live().clone()
    }

    /// Register a long-lived child (the Python worker) while it runs, so that a second
    /// signal kills it with the rest.
    pub fn register(&self, tree: Tree) {
        self.live().push(tree);
    }

    /// Forget a child registered with [`Processes::register`].
    pub fn unregister(&self, tree: &Tree) {
        self.live().retain(|l| l != tree);
    }

    /// Kill every running activity's processes, daemonised descendants included (used
    /// on a second signal). What activities that ended left running is not touched,
    /// nor any other run's processes.
    pub fn kill_all(&self) {
        let trees = self.running();
        tree::kill(&trees);
    }

    /// [`which`], remembering a name found on PATH for the rest of the run; the
    /// remembered file is checked again (one `stat`) at each use: searching PATH costs
    /// a `stat` per directory, and a run spawns the same few programs again and again.
    /// When the file is gone or no longer executable, PATH is searched again. (The one
    /// difference from searching every time: a program installed mid-run in an earlier
    /// PATH directory than the one found first is not picked up.)
    pub fn which(&self, path: &str) -> Option<PathBuf> {
        which_with(path, |name, paths| self.on_path(name, paths))
    }

    /// [`Processes::which`] for a bare name, on the directories of `paths`.
    fn on_path(&self, name: &str, paths: &std::ffi::OsStr) -> Option<PathBuf> {
        let found = || self.inner.found.lock().unwrap_or_else(|p| p.into_inner());
        let key = (paths.to_os_string(), name.to_string());
        let known = found().get(&key).cloned();
        if let Some(known) = known {
            if is_executable(&known) {
                return Some(known);
            }
        }
        let hit = search_path(name, paths);
        match &hit {
            Some(p) => found().insert(key, p.clone()),
            None => found().remove(&key),
        };
        hit
    }
}

/// A regular file with an execute bit.
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A finished child.
pub struct Captured {
    /// Exit code (or -signal, as Python reports it).
    pub status: i32,
    /// Standard output: its first bytes, up to the limit, and its size.
    pub stdout: Capped,
    /// Standard error: its first bytes, up to the limit, and its size.
    pub stderr: Capped,
}

/// The environment variable that tags every child faultline starts, and so all its
/// descendants (see [`tree`]).
pub const TAG_VAR: &str = tree::TAG_VAR;

/// Kills the child's whole process tree ([`tree::kill`]) when the activity is dropped
/// unfinished (timeout, interrupt). A child that finished is let be: a daemon it
/// started on purpose (a load generator, say) keeps running, as with the Chaos Toolkit.
struct GroupGuard<'a> {
    tree: Option<Tree>,
    processes: &'a Processes,
}

impl GroupGuard<'_> {
    fn done(&mut self) {
        if let Some(t) = self.tree.take() {
            self.processes.live().retain(|l| *l != t);
        }
    }
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.tree.take() {
            self.processes.live().retain(|l| *l != t);
            tree::kill(std::slice::from_ref(&t));
        }
    }
}

/// Spawn in a new process group, feed `stdin`, capture both outputs, keeping at most
/// `limit` bytes of each (the rest is read and dropped, so the child never blocks on a
/// full pipe, and counted). Dropping the returned future kills the process group.
pub async fn run_captured(
    mut cmd: tokio::process::Command,
    stdin: Option<Vec<u8>>,
    limit: u64,
    processes: &Processes,
) -> std::io::Result<Captured> {
    use tokio::io::AsyncWriteExt;
    cmd.process_group(0)
        .kill_on_drop(true)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Set last, so that an activity's own `env` cannot remove it.
    let tag = Tree::new_tag();
    cmd.env(TAG_VAR, Tree::env_value(&tag));
    let mut child = cmd.spawn()?;
    let tree = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(|pid| Tree { pid, tag });
    if let Some(t) = &tree {
        processes.live().push(t.clone());
    }
    let mut guard = GroupGuard { tree, processes };
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that does not read its input must not block us.
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    // As `wait_with_output`, both pipes are read to their end while waiting, but only
    // `limit` bytes of each are kept: memory stays bounded whatever the child prints.
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (exit, stdout, stderr) = tokio::join!(
        child.wait(),
        read_capped(stdout, limit),
        read_capped(stderr, limit)
    );
    let (exit, stdout, stderr) = (exit?, stdout?, stderr?);
    guard.done();
    let status = match exit.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            -exit.signal().unwrap_or(0)
        }
    };
    Ok(Captured {
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn which_finds_programs_on_path() {
        assert!(which("sh").is_some());
        assert!(which("/bin/sh").is_some());
        assert!(which("surely-not-a-program-xyz").is_none());
    }

    #[test]
    fn a_program_found_on_path_is_looked_up_again_once_it_is_gone() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("fl-which-{}", std::process::id()));
        let (first, second) = (root.join("first"), root.join("second"));
        for d in [&first, &second] {
            std::fs::create_dir_all(d).unwrap();
        }
        let paths = std::env::join_paths([&first, &second]).unwrap();
        let put = |dir: &Path| {
            let p = dir.join("fl-tool");
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let run = Processes::new();
        let on_path = |name: &str, paths: &std::ffi::OsStr| run.on_path(name, paths);
        assert_eq!(on_path("fl-tool", &paths), None);
        let in_second = put(&second);
        assert_eq!(on_path("fl-tool", &paths), Some(in_second.clone()));
        // Remembered: a copy appearing earlier on PATH is not picked up...
        let in_first = put(&first);
        assert_eq!(on_path("fl-tool", &paths), Some(in_second.clone()));
        // Another run remembers nothing of this one's.
        assert_eq!(
            Processes::new().on_path("fl-tool", &paths),
            Some(in_first.clone())
        );
        // ... until the remembered one is gone or no longer executable.
        std::fs::set_permissions(&in_second, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(on_path("fl-tool", &paths), Some(in_first.clone()));
        std::fs::remove_file(&in_first).unwrap();
        assert_eq!(on_path("fl-tool", &paths), None);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn arguments_drop_empty_values_and_flatten_objects() {
        let p = ProcessProvider::from_map(
            json!({"type": "process", "path": "echo", "arguments": ["a", "", null, 1, true]})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let Arguments::List(a) = p.arguments else {
            panic!()
        };
        assert_eq!(a, vec!["a", "1", "True"]);
        let p = ProcessProvider::from_map(
            json!({"type": "process", "path": "echo", "arguments": {"-n": "3"}})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let Arguments::List(a) = p.arguments else {
            panic!()
        };
        assert_eq!(a, vec!["-n", "3"]);
    }
}
