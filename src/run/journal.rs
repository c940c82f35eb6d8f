//! The journal: the Chaos Toolkit's `journal.json`, key for key, written atomically,
//! with secrets masked and a `faultline` extension carrying the run id.

use crate::redact::{mask_secret_block, Redactor};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One executed activity, as the journal records it.
#[derive(Debug, Clone, Serialize)]
pub struct RunEntry {
    /// The activity (a ref replaced by its target).
    pub activity: Value,
    /// Its output (null when none).
    pub output: Value,
    /// Start, ISO 8601 UTC.
    pub start: String,
    /// `succeeded` or `failed`.
    pub status: &'static str,
    /// Why it failed, as chaoslib formats exceptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<Vec<String>>,
    /// End, ISO 8601 UTC.
    pub end: String,
    /// Seconds, pauses excluded.
    pub duration: f64,
    /// Hypothesis probes: whether the tolerance was met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance_met: Option<bool>,
}

impl RunEntry {
    /// True when the activity failed.
    pub fn failed(&self) -> bool {
        self.status == "failed"
    }

    /// The activity's name.
    pub fn name(&self) -> &str {
        self.activity
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// The class name chaoslib puts before a failure in the journal's `exception` list
/// (users grep journals for it); faultline's own channels (spans, logs) do not.
const ACTIVITY_FAILED: &str = "chaoslib.exceptions.ActivityFailed: ";

/// The exception list for a failure message, as chaoslib writes it.
pub fn exception(message: &str, details: &[String]) -> Vec<String> {
    let mut out: Vec<String> = details.to_vec();
    out.push(format!("{ACTIVITY_FAILED}{message}\n"));
    out
}

/// The failure message of an `exception` list's last line, without chaoslib's class
/// name: what spans and logs say.
pub fn failure_message(exception_line: &str) -> &str {
    let line = exception_line.trim_end();
    line.strip_prefix(ACTIVITY_FAILED).unwrap_or(line)
}

/// One hypothesis check.
#[derive(Debug, Clone, Serialize)]
pub struct HypothesisState {
    /// Whether every probe met its tolerance.
    pub steady_state_met: bool,
    /// The probes that ran, in order.
    pub probes: Vec<RunEntry>,
}

/// Everything the journal needs beyond the entries.
pub struct JournalParts<'a> {
    /// The experiment as loaded (its title substituted).
    pub experiment: Value,
    /// Start time.
    pub start: String,
    /// End time.
    pub end: String,
    /// Seconds.
    pub duration: f64,
    /// Final status.
    pub status: &'static str,
    /// Whether the steady state deviated.
    pub deviated: bool,
    /// Hypothesis before the method.
    pub before: Option<&'a HypothesisState>,
    /// Hypothesis after the method.
    pub after: Option<&'a HypothesisState>,
    /// Continuous checks.
    pub during: &'a [HypothesisState],
    /// Method entries.
    pub run: &'a [RunEntry],
    /// Rollback entries.
    pub rollbacks: &'a [RunEntry],
    /// faultline's extension (run id, strategies...).
    pub extension: Value,
}

/// `platform.platform()`-like text: `Linux-6.1.0-x86_64`.
pub fn platform() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        other => other,
    };
    let release = uname().map(|u| u.0).unwrap_or_default();
    format!("{os}-{release}-{}", std::env::consts::ARCH)
}

/// The host name.
pub fn node() -> String {
    uname()
        .map(|u| u.1)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Kernel release and host name from one `uname` call (no files to open).
#[allow(unsafe_code)]
fn uname() -> Option<(String, String)> {
    // SAFETY: `utsname` is a plain C struct of byte arrays; `uname` fills it in and
    // NUL-terminates every field.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some((field(&u.release), field(&u.nodename)))
}

/// Build the journal value, secrets masked.
pub fn build(p: JournalParts<'_>, redactor: &Redactor) -> Value {
    let mut experiment = p.experiment;
    mask_secret_block(&mut experiment);
    let j = json!({
        "chaoslib-version": env!("CARGO_PKG_VERSION"),
        "platform": platform(),
        "node": node(),
        "experiment": experiment,
        "start": p.start,
        "status": p.status,
        "deviated": p.deviated,
        "steady_states": {
            "before": p.before,
            "after": p.after,
            "during": p.during,
        },
        "run": p.run,
        "rollbacks": p.rollbacks,
        "end": p.end,
        "duration": p.duration,
        "extensions": [p.extension],
    });
    redactor.into_value(j)
}

/// Write `value` to `path` atomically: a temporary file in the same directory, its
/// content on disk (see [`Pending::commit`]), then renamed over the target. Readers
/// never see a partial file, and neither does anyone after a crash.
pub fn write_atomic(path: &Path, value: &Value) -> std::io::Result<()> {
    write_temporary(path, |w| serde_json::to_writer_pretty(w, value))?.commit()
}

/// First half of [`write_atomic`]: the journal is written to its temporary file and
/// the kernel starts writing it to disk, without waiting. [`Pending::commit`] then
/// waits for the disk and puts the file in place. Work done in between (telemetry
/// shutdown, the trace file) overlaps the disk write instead of following it; on this
/// thread, because waking another costs more than it saves here (measured twice, see
/// BENCHMARKS.md).
pub fn prepare(path: &Path, value: &Value) -> std::io::Result<Pending> {
    prepare_staged(stage(path), path, value)
}

/// [`prepare`] into a temporary file made earlier by [`stage`], so that the end of a
/// run only writes. When staging failed, it is tried once more here: the cause may
/// have gone, and if not, this error is the one to report.
pub fn prepare_staged(
    staged: std::io::Result<Pending>,
    path: &Path,
    value: &Value,
) -> std::io::Result<Pending> {
    let staged = match staged {
        Ok(p) => p,
        Err(_) => stage(path)?,
    };
    let pending = staged.fill(|w| serde_json::to_writer_pretty(w, value))?;
    start_writeback(&pending.file);
    Ok(pending)
}

/// Where the journal of a run went.
#[derive(Debug)]
pub enum Written {
    /// To the path asked for.
    Journal,
    /// Not there (`error`), so to `fallback` instead.
    Fallback {
        /// Why the path asked for could not be written.
        error: std::io::Error,
        /// Where the journal is.
        fallback: PathBuf,
    },
    /// Neither there nor to `fallback`.
    Lost {
        /// Why the path asked for could not be written.
        error: std::io::Error,
        /// The fallback tried.
        fallback: PathBuf,
        /// Why the fallback could not be written either.
        fallback_error: std::io::Error,
    },
}

impl Written {
    /// What went wrong, for the console, naming `path` (the path asked for); `None`
    /// when the journal is where it was asked to be.
    pub fn problem(&self, path: &Path) -> Option<String> {
        match self {
            Written::Journal => None,
            Written::Fallback { error, fallback } => Some(format!(
                "cannot write the journal to {}: {error}; it was written to {} instead",
                path.display(),
                fallback.display()
            )),
            Written::Lost {
                error,
                fallback,
                fallback_error,
            } => Some(format!(
                "cannot write the journal to {} ({error}) nor to {} ({fallback_error})",
                path.display(),
                fallback.display()
            )),
        }
    }
}

/// The last step of a run's journal: put the prepared file in place; if that fails
/// (the staged file went with its directory, an activity cleaning up, say), write it
/// once more from scratch; failing that, write it to `fallback`, since nothing
/// recorded may be lost.
pub fn finish(
    prepared: std::io::Result<Pending>,
    path: &Path,
    value: &Value,
    fallback: &Path,
) -> Written {
    let error = match prepared
        .and_then(Pending::commit)
        .or_else(|_| write_atomic(path, value))
    {
        Ok(()) => return Written::Journal,
        Err(e) => e,
    };
    match write_atomic(fallback, value) {
        Ok(()) => Written::Fallback {
            error,
            fallback: fallback.to_path_buf(),
        },
        Err(fallback_error) => Written::Lost {
            error,
            fallback: fallback.to_path_buf(),
            fallback_error,
        },
    }
}

/// A file under a temporary name beside its destination: created empty by [`stage`],
/// filled by [`Pending::fill`], then put in place. Dropped without [`Pending::commit`]
/// or [`Pending::rename`], the temporary file is removed.
#[derive(Debug)]
pub struct Pending {
    file: std::fs::File,
    /// The temporary name; `None` when the file is written in place (a device or a
    /// FIFO at the journal path: nothing to rename, nothing to replace).
    tmp: Option<PathBuf>,
    path: PathBuf,
    done: bool,
}

impl Pending {
    /// Write the file's content with `write`, through a buffer, and a final newline.
    pub fn fill(
        self,
        write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> serde_json::Result<()>,
    ) -> std::io::Result<Pending> {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, &self.file);
        write(&mut w)?;
        w.write_all(b"\n")?;
        w.flush()?;
        drop(w);
        Ok(self)
    }

    /// Put the file in place once its content is on the disk ([`settle`]): after a
    /// crash the destination holds the old file or the whole new one, never a
    /// truncated one. (A plain rename: with the data already written, ext4 has nothing
    /// to write inside it, which is what [`Pending::rename`] works around.)
    pub fn commit(mut self) -> std::io::Result<()> {
        let Some(tmp) = self.tmp.clone() else {
            // Written in place: the bytes went to the device or pipe as they were written.
            self.done = true;
            return Ok(());
        };
        settle(&self.file)?;
        std::fs::rename(&tmp, &self.path)?;
        self.done = true;
        forget_temporary(&tmp);
        Ok(())
    }

    /// Put the file in place without waiting for the disk, atomically all the same.
    ///
    /// A plain rename over an existing file makes ext4 (`auto_da_alloc`) write the new
    /// file's data out inside the `rename` call, most of a millisecond on a cold
    /// machine. Exchanging the two names (`renameat2(RENAME_EXCHANGE)`) and removing
    /// the old file under the temporary name avoids that, and the destination still
    /// always holds a complete file. Where exchange is not possible (no destination
    /// yet, a filesystem without it), this is a plain rename.
    pub fn rename(mut self) -> std::io::Result<()> {
        let Some(tmp) = self.tmp.clone() else {
            self.done = true;
            return Ok(());
        };
        // Only a regular file is swapped out: exchange would also move a directory (or
        // anything else) aside, where rename refuses.
        let replaces_a_file =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_file());
        let swapped = replaces_a_file && exchange(&tmp, &self.path);
        if !swapped {
            std::fs::rename(&tmp, &self.path)?;
        }
        self.done = true;
        forget_temporary(&tmp);
        if swapped {
            // The temporary name now holds the previous file.
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let (false, Some(tmp)) = (self.done, &self.tmp) {
            let _ = std::fs::remove_file(tmp);
            forget_temporary(tmp);
        }
    }
}

/// Ask the kernel to start writing `file`'s pages to disk now, without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): a later `fdatasync` then finds part of
/// the work done. Best effort: where it is not supported nothing changes.
#[allow(unsafe_code)]
fn start_writeback(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a file descriptor we own for the whole call; it
        // touches no memory of ours.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Make `file`'s content reach the disk before the file is renamed into place, so
/// that no crash can leave the destination truncated.
///
/// On ext4 and XFS, writing the data out and waiting for it is enough
/// (`sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`): the rename is committed to
/// the filesystem's journal after that, and a journal commit first flushes the disk's
/// cache, so a crash leaves either no rename (the old file) or the rename with the data
/// behind it (the new one). That costs a third of an `fdatasync`, which would also
/// commit the journal and flush the cache right away, for a temporary file whose name
/// is about to go. Everywhere else (network and other filesystems, whose ordering is
/// not known), `fdatasync`.
#[allow(unsafe_code)]
fn settle(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        const EXT4: libc::c_long = 0xEF53;
        const XFS: libc::c_long = 0x5846_5342;
        let fd = file.as_raw_fd();
        // SAFETY: `statfs` is a plain C struct the kernel fills in; `fd` stays open for
        // the whole call.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        let ordered = unsafe { libc::fstatfs(fd, &mut fs) } == 0
            && matches!(fs.f_type as libc::c_long, EXT4 | XFS);
        if ordered {
            let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER;
            // SAFETY: a plain syscall on a file descriptor we own; it touches no memory
            // of ours.
            if unsafe { libc::sync_file_range(fd, 0, 0, flags) } == 0 {
                return Ok(());
            }
        }
    }
    file.sync_data()
}

/// Swap the names `a` and `b` atomically; false when that cannot be done (either is
/// missing, or the filesystem or kernel does not support it).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn exchange(a: &Path, b: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(a), Ok(b)) = (
        std::ffi::CString::new(a.as_os_str().as_bytes()),
        std::ffi::CString::new(b.as_os_str().as_bytes()),
    ) else {
        return false;
    };
    // SAFETY: both paths are NUL-terminated C strings that live across the call; the
    // kernel only reads them.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> bool {
    false
}

/// Temporary files written but not yet renamed, so that an exit that skips
/// destructors (a second signal) can still remove them.
static TEMPORARIES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner())
}

fn forget_temporary(tmp: &Path) {
    temporaries().retain(|t| t != tmp);
}

/// Remove every temporary file not yet renamed into place (before exiting at once).
pub fn remove_temporaries() {
    for t in temporaries().drain(..) {
        let _ = std::fs::remove_file(t);
    }
}

/// Write a file `.{name}.{pid}.tmp` beside `path` with `write`, through a buffer.
pub fn write_temporary(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> serde_json::Result<()>,
) -> std::io::Result<Pending> {
    stage(path)?.fill(write)
}

/// Create the empty temporary file `.{name}.{pid}.tmp` beside `path` (and the
/// directories above it). Creating a file is the slowest step of writing a small one
/// on a cold machine, so a run stages its journal while it waits for its first
/// activity, and only writes at the end.
pub fn stage(path: &Path) -> std::io::Result<Pending> {
    let path = match destination(path)? {
        Destination::Replace(p) => p,
        Destination::InPlace(p) => return open_in_place(&p),
    };
    let path = path.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal.json".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = std::fs::File::create(&tmp)?;
    temporaries().push(tmp.clone());
    // From here on, dropping the `Pending` removes the temporary file.
    Ok(Pending {
        file,
        tmp: Some(tmp),
        path: path.to_path_buf(),
        done: false,
    })
}

/// How a file is put at a path asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Atomically replaced (or created): a temporary file beside it, renamed over it.
    /// For a symlink, this is its target: the link stays a link.
    Replace(PathBuf),
    /// Written in place, never replaced: a character or block device, a FIFO
    /// (`/dev/stdout`, `/dev/null`, a named pipe someone reads).
    InPlace(PathBuf),
}

/// Where and how a file asked for at `path` is written: never by replacing something
/// that is not a regular file. A regular file (or nothing) is replaced atomically; a
/// symlink is followed and its target replaced (or created, for a dangling one); a
/// character device or FIFO is written in place. A path that leads through `/proc`
/// (`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`) names an open file, not a directory
/// entry: it is written in place whatever it is, appended to when a regular file
/// (`faultline run --journal-path /dev/stdout >> runs.log` appends). A block device
/// (a disk) is refused: writing JSON over a disk's first blocks is never what was
/// meant, and the journal goes to the fallback. A directory is left to fail the rename
/// (and the journal goes to the fallback too).
pub fn destination(path: &Path) -> std::io::Result<Destination> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Destination::Replace(path.to_path_buf()))
        }
        Err(e) => return Err(e),
        Ok(m) => m,
    };
    let ty = meta.file_type();
    let refuse_disk = || {
        std::io::Error::other(format!(
            "{} is a block device: faultline does not write a journal over a disk",
            path.display()
        ))
    };
    if ty.is_file() || ty.is_dir() {
        return Ok(Destination::Replace(path.to_path_buf()));
    }
    if ty.is_block_device() {
        return Err(refuse_disk());
    }
    if !ty.is_symlink() || leads_through_proc(path) {
        return match std::fs::metadata(path) {
            Ok(m) if m.file_type().is_block_device() => Err(refuse_disk()),
            Ok(m) if m.is_dir() => Ok(Destination::Replace(path.to_path_buf())),
            _ => Ok(Destination::InPlace(path.to_path_buf())),
        };
    }
    // A symlink: what it leads to decides.
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Destination::Replace(std::fs::canonicalize(path)?)),
        Ok(m) if m.is_dir() => Ok(Destination::Replace(path.to_path_buf())),
        Ok(m) if m.file_type().is_block_device() => Err(refuse_disk()),
        Ok(_) => Ok(Destination::InPlace(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Destination::Replace(dangling_target(path)?))
        }
        Err(e) => Err(e),
    }
}

/// Whether `path` or a link on its way is in `/proc` (its directory resolved:
/// `/dev/fd/1` is `/proc/self/fd/1`). What `/proc/<pid>/fd/N` points to is an open
/// file description, which may have no name any more (a deleted file, a pipe): its
/// link text is not a path to follow, and replacing the file it names would cut it
/// off from whoever else writes to it (a shell's `2>&1`).
fn leads_through_proc(path: &Path) -> bool {
    let in_proc = |p: &Path| {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        p.starts_with("/proc") || std::fs::canonicalize(dir).is_ok_and(|d| d.starts_with("/proc"))
    };
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        if in_proc(&at) {
            return true;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&at) {
                Ok(to) => {
                    at = match at.parent() {
                        Some(dir) if to.is_relative() => dir.join(to),
                        _ => to,
                    }
                }
                Err(_) => return false,
            },
            _ => return false,
        }
    }
    false
}

/// The file a dangling symlink names (following a chain of links, at most 40 as the
/// kernel does), to be created there.
fn dangling_target(link: &Path) -> std::io::Result<PathBuf> {
    let mut at = link.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(at),
        }
    }
    Err(std::io::Error::other(format!(
        "{}: too many levels of symbolic links",
        link.display()
    )))
}

/// Open a device or FIFO for writing in place. A FIFO nobody reads is an error, not a
/// hang: it is opened without blocking (`ENXIO` when there is no reader), then
/// switched back to blocking writes so a reader slower than faultline loses nothing.
fn open_in_place(path: &Path) -> std::io::Result<Pending> {
    use std::os::unix::fs::OpenOptionsExt;
    // Appending: for a device or FIFO it changes nothing; for a regular file reached
    // through `/proc` (`/dev/stdout >> runs.log`) it keeps what is there.
    let file = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => std::io::Error::other(format!(
                "{} is a named pipe nobody is reading",
                path.display()
            )),
            _ => e,
        })?;
    set_blocking(&file)?;
    Ok(Pending {
        file,
        tmp: None,
        path: path.to_path_buf(),
        done: false,
    })
}

#[allow(unsafe_code)]
fn set_blocking(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: plain fcntl calls on a descriptor we own for their whole duration; they
    // touch no memory of ours.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_keys_are_in_the_chaos_toolkit_order() {
        let j = build(
            JournalParts {
                experiment: json!({"title": "t", "secrets": {"s": {"k": "v4lue"}}}),
                start: "s".into(),
                end: "e".into(),
                duration: 1.0,
                status: "completed",
                deviated: false,
                before: None,
                after: None,
                during: &[],
                run: &[],
                rollbacks: &[],
                extension: json!({"name": "faultline"}),
            },
            &Redactor::new(["v4lue".to_string()]),
        );
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "chaoslib-version",
                "platform",
                "node",
                "experiment",
                "start",
                "status",
                "deviated",
                "steady_states",
                "run",
                "rollbacks",
                "end",
                "duration",
                "extensions"
            ]
        );
        assert_eq!(j["experiment"]["secrets"]["s"]["k"], "***");
    }

    #[test]
    fn the_destination_never_replaces_what_is_not_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("fl-dest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let file = dir.join("sub/j.json");
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink("sub/j.json", dir.join("link")).unwrap();
        std::os::unix::fs::symlink("sub/new.json", dir.join("dangling")).unwrap();
        std::os::unix::fs::symlink("dangling", dir.join("chain")).unwrap();
        let replace = |p: PathBuf| Destination::Replace(p);
        assert_eq!(
            destination(&dir.join("absent")).unwrap(),
            replace(dir.join("absent"))
        );
        assert_eq!(destination(&file).unwrap(), replace(file.clone()));
        assert_eq!(
            destination(&dir.join("link")).unwrap(),
            replace(std::fs::canonicalize(&file).unwrap())
        );
        assert_eq!(
            destination(&dir.join("dangling")).unwrap(),
            replace(dir.join("sub/new.json"))
        );
        assert_eq!(
            destination(&dir.join("chain")).unwrap(),
            replace(dir.join("sub/new.json"))
        );
        assert_eq!(
            destination(Path::new("/dev/null")).unwrap(),
            Destination::InPlace("/dev/null".into())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn paths_through_proc_are_written_in_place_and_disks_are_refused() {
        use std::os::unix::fs::FileTypeExt;
        let dir = std::env::temp_dir().join(format!("fl-dest-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Whatever this test's stdout is (a pipe, a file), it is an open file, not an
        // entry to replace.
        for p in ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
            assert_eq!(
                destination(Path::new(p)).unwrap(),
                Destination::InPlace(p.into()),
                "{p}"
            );
        }
        let link = dir.join("out");
        std::os::unix::fs::symlink("/dev/stdout", &link).unwrap();
        assert_eq!(
            destination(&link).unwrap(),
            Destination::InPlace(link.clone())
        );
        // A block device, made here when allowed (root): refused, and left as it is.
        let disk = dir.join("disk");
        let made = std::process::Command::new("mknod")
            .args([disk.to_str().unwrap(), "b", "7", "250"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if made {
            let e = destination(&disk).unwrap_err();
            assert!(e.to_string().contains("is a block device"), "{e}");
            let via = dir.join("to-disk");
            std::os::unix::fs::symlink(&disk, &via).unwrap();
            assert!(destination(&via).is_err());
            let value = json!({"run": 1});
            let fallback = dir.join("fallback.json");
            let written = finish(prepare(&disk, &value), &disk, &value, &fallback);
            assert!(matches!(written, Written::Fallback { .. }), "{written:?}");
            assert!(std::fs::symlink_metadata(&disk)
                .unwrap()
                .file_type()
                .is_block_device());
        } else {
            eprintln!("mknod not allowed here: the block device case is not checked");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("fl-journal-{}", std::process::id()));
        let path = dir.join("j.json");
        write_atomic(&path, &json!({"a": 1})).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn exchange_swaps_two_files_and_refuses_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("fl-journal-xchg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, "A").unwrap();
        std::fs::write(&b, "B").unwrap();
        assert!(
            exchange(&a, &b),
            "renameat2(RENAME_EXCHANGE) on {}",
            dir.display()
        );
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "B");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "A");
        assert!(!exchange(&a, &dir.join("missing")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn platform_and_node_match_what_the_kernel_reports() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(
            platform(),
            format!("Linux-{}-{}", release.trim(), std::env::consts::ARCH)
        );
        assert_eq!(node(), host.trim());
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_prepared_journal_replaces_the_old_one_only_when_committed() {
        let dir = std::env::temp_dir().join(format!("fl-journal-pending-{}", std::process::id()));
        let path = dir.join("j.json");
        write_atomic(&path, &json!({"run": "old"})).unwrap();

        let pending = prepare(&path, &json!({"run": "new"})).unwrap();
        // Written in full beside the destination; the destination is still the old run.
        let tmp = format!(".j.json.{}.tmp", std::process::id());
        assert_eq!(names_in(&dir), [tmp.clone(), "j.json".to_string()]);
        let staged: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(&tmp)).unwrap()).unwrap();
        assert_eq!(staged["run"], "new");
        let old: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(old["run"], "old");

        pending.commit().unwrap();
        assert_eq!(names_in(&dir), ["j.json"]);
        let new: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(new["run"], "new");
        // A destination that cannot be written fails at once, leaving nothing behind.
        assert!(prepare(&dir.join("j.json").join("under-a-file.json"), &json!({})).is_err());
        assert_eq!(names_in(&dir), ["j.json"]);

        // A directory in the way is refused, and stays where it is, untouched.
        let blocked = dir.join("a-directory");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomic(&blocked, &json!({})).is_err());
        let pending = write_temporary(&blocked, |w| serde_json::to_writer(w, &json!({}))).unwrap();
        assert!(pending.rename().is_err());
        assert!(blocked.join("inside").is_dir());
        assert_eq!(names_in(&dir), ["a-directory", "j.json"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_staged_journal_is_created_empty_and_filled_at_the_end() {
        let dir = std::env::temp_dir().join(format!("fl-journal-staged-{}", std::process::id()));
        let path = dir.join("deeper").join("j.json");
        let tmp = format!(".j.json.{}.tmp", std::process::id());
        let staged = stage(&path);
        // The directories are made and the temporary file exists, empty; the
        // destination does not exist yet.
        assert_eq!(names_in(&dir.join("deeper")), [tmp.as_str()]);
        assert_eq!(std::fs::read(dir.join("deeper").join(&tmp)).unwrap(), b"");
        let pending = prepare_staged(staged, &path, &json!({"run": 1})).unwrap();
        assert_eq!(names_in(&dir.join("deeper")), [tmp.as_str()]);
        pending.commit().unwrap();
        let j: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(j["run"], 1);
        assert_eq!(names_in(&dir.join("deeper")), ["j.json"]);

        // Staging failed (here: the directory was not there yet): tried again at the end.
        let later = dir.join("later").join("j.json");
        let failed = Err(std::io::Error::other("staging failed"));
        prepare_staged(failed, &later, &json!({"run": 2}))
            .unwrap()
            .commit()
            .unwrap();
        let j: Value = serde_json::from_str(&std::fs::read_to_string(&later).unwrap()).unwrap();
        assert_eq!(j["run"], 2);
        // ... and when it fails again, that error is reported and nothing is left.
        std::fs::write(dir.join("a-file"), "x").unwrap();
        let blocked = dir.join("a-file").join("j.json");
        let failed = Err(std::io::Error::other("staging failed"));
        let e = prepare_staged(failed, &blocked, &json!({})).unwrap_err();
        assert_ne!(e.to_string(), "staging failed");
        assert_eq!(names_in(&dir), ["a-file", "deeper", "later"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn read(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn finishing_puts_the_journal_in_place_or_somewhere_else_never_nowhere_silently() {
        let dir = std::env::temp_dir().join(format!("fl-journal-finish-{}", std::process::id()));
        let path = dir.join("j.json");
        let fallback = dir.join("fallback.json");
        write_atomic(&path, &json!({"run": "old"})).unwrap();

        // Prepared: committed in place.
        let value = json!({"run": "new"});
        let written = finish(prepare(&path, &value), &path, &value, &fallback);
        assert!(matches!(written, Written::Journal), "{written:?}");
        assert_eq!(written.problem(&path), None);
        assert_eq!(read(&path)["run"], "new");
        assert_eq!(names_in(&dir), ["j.json"]);

        // The prepared file vanished (an activity removed it): written from scratch.
        let value = json!({"run": "again"});
        let prepared = prepare(&path, &value).unwrap();
        std::fs::remove_file(dir.join(format!(".j.json.{}.tmp", std::process::id()))).unwrap();
        let written = finish(Ok(prepared), &path, &value, &fallback);
        assert!(matches!(written, Written::Journal), "{written:?}");
        assert_eq!(read(&path)["run"], "again");
        assert_eq!(names_in(&dir), ["j.json"]);

        // A path that cannot be written: the journal goes to the fallback.
        let blocked = dir.join("j.json").join("under-a-file.json");
        let value = json!({"run": "saved"});
        let written = finish(prepare(&blocked, &value), &blocked, &value, &fallback);
        assert!(
            matches!(&written, Written::Fallback { fallback: f, .. } if *f == fallback),
            "{written:?}"
        );
        assert_eq!(read(&fallback)["run"], "saved");
        let said = written.problem(&blocked).unwrap();
        assert!(
            said.starts_with(&format!(
                "cannot write the journal to {}: ",
                blocked.display()
            )) && said.ends_with(&format!("it was written to {} instead", fallback.display())),
            "{said}"
        );
        // And when the fallback cannot be written either, both errors are reported.
        let written = finish(prepare(&blocked, &value), &blocked, &value, &blocked);
        assert!(matches!(written, Written::Lost { .. }), "{written:?}");
        let said = written.problem(&blocked).unwrap();
        assert!(said.contains(") nor to "), "{said}");
        assert_eq!(names_in(&dir), ["fallback.json", "j.json"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_committed_file_holds_its_content_on_ext4_tmpfs_and_elsewhere() {
        // `settle` takes `sync_file_range` on ext4/XFS and `fdatasync` elsewhere: both
        // paths must leave the whole content in place. (/dev/shm is tmpfs where it
        // exists; the temporary directory is whatever this machine has.)
        let mut dirs = vec![std::env::temp_dir()];
        if Path::new("/dev/shm").is_dir() {
            dirs.push(PathBuf::from("/dev/shm"));
        }
        for base in dirs {
            let dir = base.join(format!("fl-journal-settle-{}", std::process::id()));
            let path = dir.join("j.json");
            let big: Vec<u32> = (0..50_000).collect();
            write_atomic(&path, &json!({"big": big})).unwrap();
            assert_eq!(read(&path)["big"].as_array().unwrap().len(), 50_000);
            assert_eq!(names_in(&dir), ["j.json"]);
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn an_abandoned_journal_leaves_no_temporary_file_behind() {
        let dir = std::env::temp_dir().join(format!("fl-journal-drop-{}", std::process::id()));
        let path = dir.join("j.json");
        let stage = |v: Value| write_temporary(&path, |w| serde_json::to_writer(w, &v)).unwrap();
        drop(stage(json!({"a": 1})));
        assert!(names_in(&dir).is_empty());

        // An exit that skips destructors (a second signal) finds them in the registry;
        // `remove_temporaries` itself is not called here: it would also remove the
        // files of tests running alongside.
        let tmp = dir.join(format!(".j.json.{}.tmp", std::process::id()));
        let pending = stage(json!({"a": 2}));
        assert!(temporaries().contains(&tmp));
        pending.commit().unwrap();
        assert!(!temporaries().contains(&tmp));
        let pending = stage(json!({"a": 3}));
        drop(pending);
        assert!(!temporaries().contains(&tmp));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
