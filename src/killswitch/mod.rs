//! The kill switch: a file whose existence stops every faultline run watching it and
//! refuses new ones (AWS FIS's safety lever, for chaos runs), and its twin on
//! `faultline serve` (`/v1/kill`), reached through [`remote`].
//!
//! Existence is the switch: whatever the file holds (the JSON `{reason, at, by, pid}`
//! that `faultline kill` writes, nothing at all, or something unreadable), it is
//! engaged. So checking is one `stat`, cheap enough for every run to do ten times a
//! second, and a person without faultline at hand can engage it with `touch`.
//! Engaging writes the whole file under a temporary name and links it into place, so a
//! reader never sees half a file and an engagement already there is never replaced
//! (the first reason stays); releasing removes it.
//!
//! Used by the composition root (runs, `faultline kill`) and by the server (its
//! `/v1/kill` engagements, and its optional local switch file): it knows nothing of
//! either.

pub mod remote;

use serde::{Deserialize, Serialize};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The reason of an engagement that gave none (an empty file, `touch`).
pub const DEFAULT_REASON: &str = "kill switch engaged";
/// The longest reason kept, in characters (longer ones are cut): it is printed on
/// every console, journal and trace of the runs it stops.
pub const MAX_REASON_CHARS: usize = 1000;
/// The most of a switch file read (a reason is short; a file pointed at something
/// huge still reads as engaged).
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The file's name in the default directories.
pub const FILE_NAME: &str = "kill-switch";

/// Who engaged the switch, when and why: what the file holds and `GET /v1/kill`
/// answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engagement {
    /// Why (one line, at most [`MAX_REASON_CHARS`]; [`DEFAULT_REASON`] when none was
    /// given).
    pub reason: String,
    /// When, RFC 3339 (unknown for a file written by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Who: `user@host` (or what a server's client said it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The process that wrote the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The organisation of the token that engaged a server's switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

impl Engagement {
    /// An engagement by this process and user, now.
    pub fn now(reason: Option<&str>) -> Engagement {
        Engagement {
            reason: clean_reason(reason.unwrap_or_default()),
            at: Some(crate::timefmt::now_iso()),
            by: Some(whoami()),
            pid: Some(std::process::id()),
            org: None,
        }
    }

    /// What a switch file holds, read leniently: anything at all is an engagement
    /// (empty, not JSON, wrong types: [`DEFAULT_REASON`] and what could be read).
    pub fn parse(bytes: &[u8]) -> Engagement {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        let text = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(|s| one_line(s, 200))
                .filter(|s| !s.is_empty())
        };
        Engagement {
            reason: clean_reason(
                v.get("reason")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default(),
            ),
            at: text("at"),
            by: text("by"),
            pid: v
                .get("pid")
                .and_then(serde_json::Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            org: text("org"),
        }
    }

    /// An engagement whose file exists but cannot be read: still engaged.
    fn unreadable(e: &std::io::Error) -> Engagement {
        Engagement {
            reason: format!("{DEFAULT_REASON} (its file cannot be read: {e})"),
            at: None,
            by: None,
            pid: None,
            org: None,
        }
    }

    /// `by alice@host at 2026-…: reason`, leaving out what is unknown.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(by) = &self.by {
            s.push_str(&format!("by {by}"));
        }
        if let Some(org) = &self.org {
            s.push_str(&format!(
                "{}(org {org})",
                if s.is_empty() { "" } else { " " }
            ));
        }
        if let Some(at) = &self.at {
            s.push_str(&format!("{}at {at}", if s.is_empty() { "" } else { " " }));
        }
        if s.is_empty() {
            self.reason.clone()
        } else {
            format!("{s}: {}", self.reason)
        }
    }

    /// The file's content.
    fn to_json(&self) -> String {
        // An Engagement is strings and a number: it always serialises.
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

/// A reason as it is kept: one line (control characters become spaces), trimmed, at
/// most [`MAX_REASON_CHARS`]; [`DEFAULT_REASON`] when nothing is left.
pub fn clean_reason(text: &str) -> String {
    let s = one_line(text, MAX_REASON_CHARS);
    if s.is_empty() {
        DEFAULT_REASON.to_string()
    } else {
        s
    }
}

/// A text as one line (control characters become spaces), trimmed, cut after `max`
/// characters (then `...`).
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = flat.trim();
    if trimmed.chars().count() <= max {
        trimmed.to_string()
    } else {
        let cut: String = trimmed.chars().take(max).collect();
        format!("{cut}...")
    }
}

/// `user@host`: the login name (`USER`, `LOGNAME`, else `uid N`) and the host name.
pub fn whoami() -> String {
    let user = ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| !u.trim().is_empty())
        .unwrap_or_else(|| format!("uid {}", euid()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{}@{host}", user.trim())
}

/// This process's effective user id.
#[allow(unsafe_code)]
pub fn euid() -> u32 {
    // SAFETY: geteuid takes nothing, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Why the switch could not be read or operated.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    /// The file (or its directory) could not be checked, written or removed.
    #[error("the kill switch file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A default directory belongs to someone else: it is never written nor trusted.
    #[error("the kill switch directory {} belongs to uid {owner}, not to you (uid {me}): remove it, or give --kill-switch PATH (FAULTLINE_KILL_SWITCH)", dir.display())]
    NotYours {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our uid.
        me: u32,
    },
    /// A flag, a setting or a request is wrong.
    #[error("{0}")]
    Invalid(String),
    /// A server's switch could not be reached (or answered nonsense).
    #[error("the kill switch of {server}: {message}")]
    Unreachable {
        /// The server's base URL.
        server: String,
        /// What happened.
        message: String,
    },
    /// A server refused (a missing or unknown token: 401; another answer).
    #[error("the kill switch of {server} answered {status}: {message}")]
    Refused {
        /// The server's base URL.
        server: String,
        /// The HTTP status.
        status: u16,
        /// The server's words.
        message: String,
    },
}

/// What engaging did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engaged {
    /// The switch was off; it is on now, with this engagement.
    Now(Engagement),
    /// It was already on: this engagement stays (the first reason is kept).
    Already(Engagement),
}

impl Engaged {
    /// The engagement in force.
    pub fn engagement(&self) -> &Engagement {
        match self {
            Engaged::Now(e) | Engaged::Already(e) => e,
        }
    }
}

/// One switch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchFile {
    path: PathBuf,
    /// A default location: its directory must be ours (one made 0700 by faultline),
    /// else it is never written, and what another user put there is not believed.
    private: bool,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl SwitchFile {
    /// The file at `path`, as given (`--kill-switch`): any directory, shared or not.
    pub fn new(path: impl Into<PathBuf>) -> SwitchFile {
        SwitchFile {
            path: path.into(),
            private: false,
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> KillError {
        KillError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// For a private location: `None` when its directory is missing or ours,
    /// `Some(owner)` when another user's.
    fn foreign_dir(&self) -> Result<Option<(PathBuf, u32)>, KillError> {
        use std::os::unix::fs::MetadataExt as _;
        if !self.private {
            return Ok(None);
        }
        let Some(dir) = self.path.parent() else {
            return Ok(None);
        };
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.uid() != euid() => Ok(Some((dir.to_path_buf(), m.uid()))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Whether it is engaged: one `stat` (two for a default location). An error is
    /// "cannot tell", which callers treat as engaged.
    pub fn is_engaged(&self) -> Result<bool, KillError> {
        if self.foreign_dir()?.is_some() {
            return Ok(false);
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io(e)),
        }
    }

    /// The engagement, when engaged (`None`: off).
    pub fn read(&self) -> Result<Option<Engagement>, KillError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if self.foreign_dir()?.is_some() {
            return Ok(None);
        }
        // Non-blocking: a FIFO at the path must not hang a run.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.path);
        let read = opened.and_then(|f| {
            let mut bytes = Vec::new();
            f.take(MAX_FILE_BYTES)
                .read_to_end(&mut bytes)
                .map(|_| bytes)
        });
        match read {
            Ok(bytes) => Ok(Some(Engagement::parse(&bytes))),
            Err(read_err) => match std::fs::symlink_metadata(&self.path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io(e)),
                // There, but unreadable (a directory, no permission): engaged.
                Ok(_) => Ok(Some(Engagement::unreadable(&read_err))),
            },
        }
    }

    /// Engage it with `e`, unless it is engaged already (then the engagement there
    /// stays). Missing directories are made (0700).
    pub fn engage(&self, e: &Engagement) -> Result<Engaged, KillError> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        if let Some((dir, owner)) = self.foreign_dir()? {
            return Err(KillError::NotYours {
                dir,
                owner,
                me: euid(),
            });
        }
        if let Some(there) = self.read()? {
            return Ok(Engaged::Already(there));
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| self.io(e))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| FILE_NAME.into());
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, e.to_json().as_bytes())?;
                f.sync_all()
            });
        if let Err(err) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io(err));
        }
        // A link fails when the name exists: an engagement made meanwhile is kept.
        let linked = std::fs::hard_link(&tmp, &self.path);
        let outcome = match linked {
            Ok(()) => Ok(Engaged::Now(e.clone())),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let there = self.read()?.unwrap_or_else(|| e.clone());
                Ok(Engaged::Already(there))
            }
            // A filesystem without hard links: a rename (which would replace an
            // engagement made in the last microseconds, an acceptable loss).
            Err(_) => std::fs::rename(&tmp, &self.path)
                .map(|()| Engaged::Now(e.clone()))
                .map_err(|err| self.io(err)),
        };
        let _ = std::fs::remove_file(&tmp);
        if outcome.is_ok() {
            // The new name survives a crash (best effort: some filesystems cannot).
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        outcome
    }

    /// Release it: the engagement that was there, if any.
    pub fn release(&self) -> Result<Option<Engagement>, KillError> {
        let was = self.read()?;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(Some(was.unwrap_or_else(|| Engagement::parse(b"")))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // A directory put there by hand.
            Err(e) if self.path.is_dir() => std::fs::remove_dir(&self.path)
                .map(|()| was)
                .map_err(|_| self.io(e)),
            Err(e) => Err(self.io(e)),
        }
    }
}

/// Where a switch is: one file given by the user, or the default pair (see
/// [`Location::default_for`]). Every file of it is checked; any engaged one is the
/// switch engaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    files: Vec<SwitchFile>,
}

impl Location {
    /// The one file given (`--kill-switch`, `FAULTLINE_KILL_SWITCH`, settings).
    pub fn file(path: impl Into<PathBuf>) -> Location {
        Location {
            files: vec![SwitchFile::new(path)],
        }
    }

    /// The default: `$XDG_RUNTIME_DIR/faultline/kill-switch` and
    /// `/tmp/faultline-<uid>/kill-switch`. Both are written and both are watched: a
    /// run started by cron or a service has no `XDG_RUNTIME_DIR` and looks only in
    /// `/tmp`, and the runtime directory is removed when its user's last session ends,
    /// which must not release the switch. Without `XDG_RUNTIME_DIR`, `/tmp` alone.
    pub fn default_for(env: &dyn Fn(&str) -> Option<String>) -> Location {
        let mut files = Vec::new();
        if let Some(d) = env("XDG_RUNTIME_DIR").filter(|d| !d.trim().is_empty()) {
            files.push(SwitchFile {
                path: PathBuf::from(d).join("faultline").join(FILE_NAME),
                private: true,
            });
        }
        files.push(SwitchFile {
            path: PathBuf::from("/tmp")
                .join(format!("faultline-{}", euid()))
                .join(FILE_NAME),
            private: true,
        });
        Location { files }
    }

    /// The first file: the one messages name.
    pub fn primary(&self) -> &Path {
        self.files[0].path()
    }

    /// Every file.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(SwitchFile::path).collect()
    }

    /// The files, as a person reads them: `/a` or `/a (and /b)`.
    pub fn describe(&self) -> String {
        let mut s = self.primary().display().to_string();
        if self.files.len() > 1 {
            let rest: Vec<String> = self.files[1..]
                .iter()
                .map(|f| f.path().display().to_string())
                .collect();
            s.push_str(&format!(" (and {})", rest.join(", ")));
        }
        s
    }

    /// Whether any file is engaged: a `stat` each. `Err` only when none is engaged
    /// and one cannot be checked.
    pub fn is_engaged(&self) -> Result<bool, KillError> {
        let mut failed = None;
        for f in &self.files {
            match f.is_engaged() {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(false), Err)
    }

    /// The first engaged file and its engagement (`None`: off). `Err` only when none
    /// is engaged and one cannot be checked.
    pub fn read(&self) -> Result<Option<(PathBuf, Engagement)>, KillError> {
        let mut failed = None;
        for f in &self.files {
            match f.read() {
                Ok(Some(e)) => return Ok(Some((f.path.clone(), e))),
                Ok(None) => {}
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(None), Err)
    }

    /// Engage every file (with the engagement already in force, if one is), so each
    /// reader sees it. `Ok` when at least one file holds it; the files that could not
    /// be written are in the warnings.
    pub fn engage(&self, e: &Engagement) -> Result<(Engaged, Vec<KillError>), KillError> {
        let existing = self.read().ok().flatten().map(|(_, x)| x);
        let wanted = existing.clone().unwrap_or_else(|| e.clone());
        let mut held = None;
        let mut errors = Vec::new();
        for f in &self.files {
            match f.engage(&wanted) {
                Ok(r) => held = held.or(Some(r)),
                Err(err) => errors.push(err),
            }
        }
        match (held, existing) {
            (None, _) => Err(errors.remove(0)),
            (Some(_), Some(x)) => Ok((Engaged::Already(x), errors)),
            (Some(r), None) => Ok((r, errors)),
        }
    }

    /// Release every file: the engagement that was in force, if any. Every file is
    /// tried; the first failure is the error (a switch half released is still on).
    pub fn release(&self) -> Result<Option<Engagement>, KillError> {
        let mut was = None;
        let mut failed = None;
        for f in &self.files {
            match f.release() {
                Ok(e) => was = was.or(e),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(was), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "fl-kill-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn any_content_is_an_engagement() {
        let e = Engagement::parse(b"");
        assert_eq!(e.reason, DEFAULT_REASON);
        assert_eq!((e.at, e.by, e.pid), (None, None, None));
        assert_eq!(Engagement::parse(b"not json {").reason, DEFAULT_REASON);
        assert_eq!(Engagement::parse(b"[1, 2]").reason, DEFAULT_REASON);
        let e = Engagement::parse(br#"{"reason": 7, "by": "al@h", "pid": -1, "at": ""}"#);
        assert_eq!(e.reason, DEFAULT_REASON);
        assert_eq!(e.by.as_deref(), Some("al@h"));
        assert_eq!((e.pid, e.at), (None, None));
        let e = Engagement::parse(
            br#"{"reason": "deploy\nfreeze", "at": "2026-12-01T10:00:00Z", "by": "al@h", "pid": 42, "extra": 1}"#,
        );
        assert_eq!(e.reason, "deploy freeze");
        assert_eq!(e.pid, Some(42));
        assert_eq!(
            e.describe(),
            "by al@h at 2026-12-01T10:00:00Z: deploy freeze"
        );
        assert_eq!(Engagement::parse(b"").describe(), DEFAULT_REASON);
    }

    #[test]
    fn reasons_are_one_line_and_bounded() {
        assert_eq!(clean_reason("  \n "), DEFAULT_REASON);
        assert_eq!(clean_reason("a\tb\r\nc"), "a b  c");
        let long = "x".repeat(MAX_REASON_CHARS + 50);
        let kept = clean_reason(&long);
        assert_eq!(kept.chars().count(), MAX_REASON_CHARS + 3);
        assert!(kept.ends_with("..."));
        let e = Engagement::now(Some("game day over"));
        assert_eq!(e.reason, "game day over");
        assert_eq!(e.pid, Some(std::process::id()));
        assert!(e.by.as_deref().is_some_and(|b| b.contains('@')), "{e:?}");
        let back = Engagement::parse(e.to_json().as_bytes());
        assert_eq!(back, e);
    }

    #[test]
    fn the_default_is_the_runtime_dir_and_tmp() {
        let uid = euid();
        let env = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| "/run/user/7".to_string());
        let l = Location::default_for(&env);
        assert_eq!(l.primary(), Path::new("/run/user/7/faultline/kill-switch"));
        let tmp = format!("/tmp/faultline-{uid}/kill-switch");
        assert_eq!(l.paths()[1], Path::new(&tmp));
        assert_eq!(
            l.describe(),
            format!("/run/user/7/faultline/kill-switch (and {tmp})")
        );
        let none = |_: &str| None;
        let l = Location::default_for(&none);
        assert_eq!(l.paths(), [Path::new(&tmp)]);
        let empty = |_: &str| Some(String::new());
        assert_eq!(Location::default_for(&empty).paths().len(), 1);
    }

    #[test]
    fn engage_read_release_round_trip() {
        let dir = temp("rt");
        let f = SwitchFile::new(dir.join("sub").join("kill-switch"));
        assert!(!f.is_engaged().unwrap());
        assert_eq!(f.read().unwrap(), None);
        assert_eq!(f.release().unwrap(), None);
        let first = Engagement::now(Some("first"));
        assert_eq!(f.engage(&first).unwrap(), Engaged::Now(first.clone()));
        assert!(f.is_engaged().unwrap());
        assert_eq!(f.read().unwrap(), Some(first.clone()));
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("sub"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        }
        // A second engagement keeps the first reason.
        let second = Engagement::now(Some("second"));
        assert_eq!(f.engage(&second).unwrap(), Engaged::Already(first.clone()));
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["kill-switch"]);
        assert_eq!(f.release().unwrap(), Some(first));
        assert!(!f.is_engaged().unwrap());
        // `touch` engages it too.
        std::fs::write(f.path(), "").unwrap();
        assert_eq!(f.read().unwrap().unwrap().reason, DEFAULT_REASON);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn something_unreadable_at_the_path_is_engaged() {
        let dir = temp("odd");
        let f = SwitchFile::new(dir.join("kill-switch"));
        std::fs::create_dir_all(f.path()).unwrap();
        let e = f.read().unwrap().unwrap();
        assert!(e.reason.starts_with(DEFAULT_REASON), "{e:?}");
        assert!(f.release().unwrap().is_some());
        assert!(!f.is_engaged().unwrap());
        // A dangling symlink is a name at the path: engaged.
        std::os::unix::fs::symlink(dir.join("nowhere"), f.path()).unwrap();
        assert!(f.is_engaged().unwrap());
        assert!(f.read().unwrap().is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_location_engages_and_releases_every_file() {
        let dir = temp("loc");
        let l = Location {
            files: vec![
                SwitchFile::new(dir.join("a/kill-switch")),
                SwitchFile::new(dir.join("b/kill-switch")),
            ],
        };
        assert!(!l.is_engaged().unwrap());
        // Engaged through the second file only (a cron run's /tmp): seen.
        let by_cron = Engagement::now(Some("from cron"));
        l.files[1].engage(&by_cron).unwrap();
        assert!(l.is_engaged().unwrap());
        assert_eq!(l.read().unwrap().unwrap().1, by_cron);
        // Engaging again spreads the engagement in force to every file.
        let (r, errors) = l.engage(&Engagement::now(Some("later"))).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(r, Engaged::Already(by_cron.clone()));
        assert_eq!(l.files[0].read().unwrap(), Some(by_cron.clone()));
        assert_eq!(l.release().unwrap(), Some(by_cron));
        assert!(!l.files[0].is_engaged().unwrap() && !l.files[1].is_engaged().unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
