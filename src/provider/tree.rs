//! Killing everything an activity started, daemons included.
//!
//! A child runs in its own process group, but a grandchild that calls `setsid` (every
//! daemon does, often after a double fork) leaves that group and is reparented to PID
//! 1: `killpg` misses it, and so does any walk down from the child. So every child
//! faultline starts carries its activity's tag in its environment
//! ([`TAG_VAR`]), which its descendants inherit through `setsid`, double forks
//! and `exec`; stopping an activity kills its process group, every descendant of its
//! child, and every process of ours whose environment carries the tag.
//!
//! The sweep freezes before it kills: each process found is sent `SIGSTOP`, and
//! `/proc` is scanned again until a scan finds nothing new. A stopped process cannot
//! fork (the kernel abandons a fork with a signal pending), so when a scan comes back
//! with nothing new, the whole tree is known and held still; then all of it gets
//! `SIGKILL`. Killing as we go instead would race a process forking between the scan
//! and the kill, and would cut the parent chains that find untagged descendants.
//!
//! No subreaper and no cgroup: a subreaper inherits every orphan as a zombie to reap,
//! and reaping them without stealing the exit statuses tokio waits for would need a
//! registry of every child of the process; cgroups are not writable on most machines.
//! What escapes: a process that clears its environment (`env -i`, a fresh `execve`
//! environment) *and* leaves the parent chain (double fork); a process that
//! overwrites its environment block (`setproctitle`) after a double fork; processes of
//! another user (`sudo`), which faultline may not signal anyway.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable carrying the tags of the activities a process belongs
/// to, separated by `:` (a faultline run inside another's activity adds its own tag
/// to the one it inherited, so both can stop it).
pub const TAG_VAR: &str = "FAULTLINE_ACTIVITY_TAG";

/// How many scans a sweep makes at most before it kills what it found: a tree that
/// still grows after this many rounds (every process found is already stopped, so it
/// cannot) is killed as far as it is known.
const MAX_ROUNDS: usize = 64;

/// One activity's processes: its child (the leader of its process group) and its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The child's pid, which is also its process group id.
    pub pid: i32,
    /// The tag in [`TAG_VAR`] of every process it starts.
    pub tag: String,
}

impl Tree {
    /// A fresh tag for the next child: `<faultline pid>-<start nonce>-<sequence>`, so
    /// a later faultline reusing this pid never matches a daemon this run left behind.
    pub fn new_tag() -> String {
        static NONCE: OnceLock<u64> = OnceLock::new();
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nonce = NONCE.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default()
        });
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        format!("{}-{nonce:x}-{seq}", std::process::id())
    }

    /// The value of [`TAG_VAR`] for a child tagged `tag`: the tags faultline
    /// itself inherited, then `tag`.
    pub fn env_value(tag: &str) -> String {
        match std::env::var(TAG_VAR) {
            Ok(outer) if !outer.is_empty() => format!("{outer}:{tag}"),
            _ => tag.to_string(),
        }
    }
}

/// What the sweep needs to know of a process.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: i32,
    ppid: i32,
    pgid: i32,
}

/// Kill every process of these trees (see the module docs). Best effort and quick:
/// processes that vanish meanwhile or may not be signalled are skipped.
pub fn kill(trees: &[Tree]) {
    if trees.is_empty() {
        return;
    }
    let me = std::process::id() as i32;
    for t in trees {
        signal_group(t.pid, libc::SIGSTOP);
    }
    let tags: Vec<&str> = trees.iter().map(|t| t.tag.as_str()).collect();
    let mut found: HashSet<i32> = HashSet::new();
    // Processes whose environment was read and did not match: an environment does not
    // change its tags, so it is read once per process.
    let mut untagged: HashSet<i32> = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let procs = scan();
        let mut members: HashSet<i32> = found.clone();
        for p in &procs {
            if p.pid == me || p.pid == 1 {
                continue;
            }
            let in_tree = trees.iter().any(|t| t.pid == p.pid || t.pid == p.pgid);
            if in_tree
                || (!untagged.contains(&p.pid) && {
                    let tagged = carries_tag(p.pid, &tags);
                    if !tagged {
                        untagged.insert(p.pid);
                    }
                    tagged
                })
            {
                members.insert(p.pid);
            }
        }
        // Descendants through the parent chain, whatever their environment.
        loop {
            let before = members.len();
            for p in &procs {
                let parent_in = members.contains(&p.ppid) || trees.iter().any(|t| t.pid == p.ppid);
                if parent_in && p.pid != me && p.pid != 1 {
                    members.insert(p.pid);
                }
            }
            if members.len() == before {
                break;
            }
        }
        let new: Vec<i32> = members.difference(&found).copied().collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            signal(pid, libc::SIGSTOP);
            found.insert(pid);
        }
    }
    for pid in &found {
        signal(*pid, libc::SIGKILL);
    }
    for t in trees {
        signal_group(t.pid, libc::SIGKILL);
    }
}

/// Every live process: pid, parent, process group (zombies left out: they run
/// nothing, and their children have already been reparented).
fn scan() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(pid, &stat)
    })
    .collect()
}

/// `/proc/<pid>/stat`: `pid (comm) state ppid pgrp ...`; the command name may hold
/// spaces and parentheses, so the fields are counted from the last `)`.
fn parse_stat(pid: i32, stat: &str) -> Option<Proc> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(Proc { pid, ppid, pgid })
}

/// Whether process `pid`'s environment holds one of `tags` in [`TAG_VAR`]. Only
/// processes of the same user can be read, which are the only ones faultline may kill.
fn carries_tag(pid: i32, tags: &[&str]) -> bool {
    let Ok(environ) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("environ"))
    else {
        return false;
    };
    tagged(&environ, tags)
}

/// Whether a NUL-separated environment block carries one of `tags`.
fn tagged(environ: &[u8], tags: &[&str]) -> bool {
    let prefix = format!("{TAG_VAR}=");
    environ
        .split(|b| *b == 0)
        .filter_map(|var| var.strip_prefix(prefix.as_bytes()))
        .any(|value| {
            value
                .split(|b| *b == b':')
                .any(|t| tags.iter().any(|tag| t == tag.as_bytes()))
        })
}

#[allow(unsafe_code)]
fn signal(pid: i32, sig: libc::c_int) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions; a process gone meanwhile only
    // makes it fail with ESRCH, which is ignored. `pid > 1` keeps it off process
    // groups and init.
    unsafe {
        libc::kill(pid, sig);
    }
}

#[allow(unsafe_code)]
fn signal_group(pgid: i32, sig: libc::c_int) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: as for `signal`; a stale group id fails with ESRCH, ignored.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_matched_whole_and_among_inherited_ones() {
        let env = b"PATH=/bin\0FAULTLINE_ACTIVITY_TAG=1-a-10:2-b-3\0HOME=/root\0";
        assert!(tagged(env, &["2-b-3"]));
        assert!(tagged(env, &["1-a-10"]));
        // A prefix of a tag is another tag.
        assert!(!tagged(env, &["1-a-1"]));
        assert!(!tagged(env, &["2-b"]));
        // The variable's name must be whole too.
        assert!(!tagged(b"XFAULTLINE_ACTIVITY_TAG=2-b-3\0", &["2-b-3"]));
        assert!(!tagged(b"", &["2-b-3"]));
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let p = parse_stat(42, "42 (a) b (c)) S 7 42 42 0 -1").unwrap();
        assert_eq!((p.pid, p.ppid, p.pgid), (42, 7, 42));
        assert!(parse_stat(43, "43 (zombie) Z 7 43 43").is_none());
        assert!(parse_stat(44, "garbage").is_none());
    }

    #[test]
    fn tags_are_unique_and_nest() {
        let (a, b) = (Tree::new_tag(), Tree::new_tag());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}-", std::process::id())));
        assert!(Tree::env_value(&a).ends_with(&a));
    }
}
