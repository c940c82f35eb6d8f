//! The journal on disk: a run's [`RunRecord`](super::RunRecord), the Chaos
//! Toolkit's `journal.json`, written so that nobody ever finds half of one.
//!
//! A journal is written whole to a temporary file beside its destination, flushed to
//! the disk (`fdatasync`), renamed over the destination, and the directory is flushed
//! too (`fsync`), so that after a crash the path holds the previous journal or the
//! new one, complete, and the rename itself is not lost. All of it with safe `std`
//! calls. What is not a regular file (a FIFO, `/dev/stdout`) is written in place
//! instead (see [`destination`]). The embedded trace file goes through the same path,
//! without the flushes (the journal is the durable record).

pub use super::record::{HypothesisState, RunEntry};
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// `platform.platform()`-like text: `Linux-6.1.0-x86_64`.
pub fn platform() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        other => other,
    };
    let release = kernel_text("osrelease", "-r").unwrap_or_default();
    format!("{os}-{release}-{}", std::env::consts::ARCH)
}

/// The host name.
pub fn node() -> String {
    kernel_text("hostname", "-n")
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// What `uname` says: on Linux from `/proc/sys/kernel/<name>` (the same kernel
/// fields, through safe file reads), elsewhere from the `uname` command.
fn kernel_text(proc_name: &str, uname_flag: &str) -> Option<String> {
    let text = if cfg!(target_os = "linux") {
        std::fs::read_to_string(Path::new("/proc/sys/kernel").join(proc_name)).ok()?
    } else {
        let out = std::process::Command::new("uname")
            .arg(uname_flag)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Whether a file written by [`write_file`] must survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed to the disk before and after the rename: the journal.
    Durable,
    /// Atomic for readers, left to the page cache: a crash may lose it (the trace
    /// file, which the journal does not depend on).
    AtomicOnly,
}

/// Write `value` as the journal is written: indented JSON and a final newline,
/// atomically and durably ([`write_file`]).
pub fn write_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    write_file(path, Durability::Durable, |w| {
        serde_json::to_writer_pretty(w, value)
    })
}

/// Write a file with `write` (through a buffer, then a final newline) at `path`, as
/// [`destination`] says: a regular file (or nothing) is replaced atomically through a
/// temporary file in the same directory (the directories above are made); with
/// [`Durability::Durable`] the temporary file's data is flushed before the rename and
/// the directory after it. A device or FIFO is written in place. On failure nothing
/// is left behind and the destination is untouched.
pub fn write_file(
    path: &Path,
    durability: Durability,
    write: impl FnOnce(&mut BufWriter<&File>) -> serde_json::Result<()>,
) -> std::io::Result<()> {
    let path = match destination(path)? {
        Destination::Replace(p) => p,
        Destination::InPlace(p) => return fill(&open_in_place(&p)?, write),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let tmp = Temporary::create(&dir, &path)?;
    fill(&tmp.file, write)?;
    if durability == Durability::Durable {
        tmp.file.sync_data()?;
    }
    tmp.rename_to(&path)?;
    if durability == Durability::Durable {
        sync_dir(&dir)?;
    }
    Ok(())
}

fn fill(
    file: &File,
    write: impl FnOnce(&mut BufWriter<&File>) -> serde_json::Result<()>,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    write(&mut w)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// Flush a directory's entries (the rename just made) to the disk. A filesystem that
/// cannot sync a directory says so with `EINVAL` (or does not support it); the rename
/// is then as durable as that filesystem makes it, and that is not an error.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    use std::io::ErrorKind;
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => Ok(()),
        other => other,
    }
}

/// Write the journal `value` to `path` ([`write_atomic`]); failing that, to
/// `fallback`, since nothing recorded may be lost.
pub fn finish<T: Serialize + ?Sized>(path: &Path, value: &T, fallback: &Path) -> Written {
    let error = match write_atomic(path, value) {
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

/// A file under a temporary name, unique in the process, beside its destination
/// (`.{name}.{pid}.{n}.tmp`). Dropped before [`Temporary::rename_to`], it is removed.
struct Temporary {
    file: File,
    path: PathBuf,
    renamed: bool,
}

/// Numbers the temporary files of this process: two runs in one process writing to
/// the same path never share a temporary name.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

impl Temporary {
    fn create(dir: &Path, destination: &Path) -> std::io::Result<Temporary> {
        let name = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "journal.json".into());
        loop {
            let n = NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            // `create_new`: never truncate a file someone else made (a leftover of an
            // earlier process with the same pid: the next number is tried).
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    temporaries().push(path.clone());
                    return Ok(Temporary {
                        file,
                        path,
                        renamed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Put the file in place: one `rename`, atomic for every reader.
    fn rename_to(mut self, destination: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, destination)?;
        self.renamed = true;
        forget_temporary(&self.path);
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
            forget_temporary(&self.path);
        }
    }
}

/// Temporary files written but not yet renamed, so that an exit that skips
/// destructors (a second signal) can still remove them. Each name is unique in the
/// process, and a file leaves the list only by its own name: one run never takes
/// another's entry off.
static TEMPORARIES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner())
}

fn forget_temporary(tmp: &Path) {
    temporaries().retain(|t| t != tmp);
}

/// Remove every temporary file not yet renamed into place, whichever run it is for:
/// only called just before the process exits at once (a second signal).
pub fn remove_temporaries() {
    for t in temporaries().drain(..) {
        let _ = std::fs::remove_file(t);
    }
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
fn open_in_place(path: &Path) -> std::io::Result<File> {
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
    set_blocking(file)
}

/// Clear `O_NONBLOCK` on an open file, with `std` alone: the only safe setter std
/// has is on its socket types, so the descriptor is lent to a `UnixStream` for the
/// call (ownership moves through `OwnedFd`, no descriptor is duplicated or leaked).
/// Underneath it is `ioctl(FIONBIO)`, which the kernel handles for every kind of
/// file, FIFOs and terminals included.
fn set_blocking(file: File) -> std::io::Result<File> {
    use std::os::fd::OwnedFd;
    let lent = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
    lent.set_nonblocking(false)?;
    Ok(File::from(OwnedFd::from(lent)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
            let written = finish(&disk, &value, &fallback);
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
    fn platform_and_node_match_what_the_kernel_reports() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(
            platform(),
            format!("Linux-{}-{}", release.trim(), std::env::consts::ARCH)
        );
        assert_eq!(node(), host.trim());
        // And what the `uname` command (the syscall) says, where it is installed.
        let uname = |flag: &str| {
            std::process::Command::new("uname")
                .arg(flag)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        if let (Some(r), Some(n)) = (uname("-r"), uname("-n")) {
            assert_eq!(platform(), format!("Linux-{r}-{}", std::env::consts::ARCH));
            assert_eq!(node(), n);
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A value that serialises part of itself, then fails: a write cut short.
    struct FailsHalfway;

    impl Serialize for FailsHalfway {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeMap};
            let mut m = s.serialize_map(None)?;
            m.serialize_entry("run", "half")?;
            Err(S::Error::custom("cut short"))
        }
    }

    #[test]
    fn the_old_journal_stays_until_the_new_one_is_complete() {
        let dir = std::env::temp_dir().join(format!("fl-journal-pending-{}", std::process::id()));
        let path = dir.join("j.json");
        write_atomic(&path, &json!({"run": "old"})).unwrap();

        // While the new journal is being written, it is a temporary file beside the
        // destination, which still holds the old run.
        let mut seen = Vec::new();
        write_file(&path, Durability::Durable, |w| {
            w.flush().unwrap();
            seen = names_in(&dir);
            assert_eq!(read(&path)["run"], "old");
            serde_json::to_writer(w, &json!({"run": "new"}))
        })
        .unwrap();
        let prefix = format!(".j.json.{}.", std::process::id());
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].starts_with(&prefix) && seen[0].ends_with(".tmp"),
            "{seen:?}"
        );
        assert_eq!(seen[1], "j.json");
        assert_eq!(names_in(&dir), ["j.json"]);
        assert_eq!(read(&path)["run"], "new");

        // A write cut short leaves the old journal and nothing else.
        assert!(write_atomic(&path, &FailsHalfway).is_err());
        assert_eq!(read(&path)["run"], "new");
        assert_eq!(names_in(&dir), ["j.json"]);

        // A destination that cannot be written fails at once, leaving nothing behind.
        assert!(write_atomic(&dir.join("j.json").join("under-a-file.json"), &json!({})).is_err());
        assert_eq!(names_in(&dir), ["j.json"]);

        // A directory in the way is refused, and stays where it is, untouched.
        let blocked = dir.join("a-directory");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomic(&blocked, &json!({})).is_err());
        assert!(write_file(&blocked, Durability::AtomicOnly, |w| {
            serde_json::to_writer(w, &json!({}))
        })
        .is_err());
        assert!(blocked.join("inside").is_dir());
        assert_eq!(names_in(&dir), ["a-directory", "j.json"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_directories_above_the_journal_are_made_at_the_end() {
        // Nothing is created before the journal is written: an activity that removes
        // the journal's directory during the run costs nothing.
        let dir = std::env::temp_dir().join(format!("fl-journal-deeper-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("deeper").join("j.json");
        write_atomic(&path, &json!({"run": 1})).unwrap();
        assert_eq!(read(&path)["run"], 1);
        assert_eq!(names_in(&dir.join("deeper")), ["j.json"]);
        // The trace file's way (no flush) makes them too, and leaves no temporary.
        let trace = dir.join("other").join("j.trace.json");
        write_file(&trace, Durability::AtomicOnly, |w| {
            serde_json::to_writer(w, &json!({"resourceSpans": []}))
        })
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&trace).unwrap(),
            "{\"resourceSpans\":[]}\n"
        );
        assert_eq!(names_in(&dir.join("other")), ["j.trace.json"]);
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

        // Written in place.
        let value = json!({"run": "new"});
        let written = finish(&path, &value, &fallback);
        assert!(matches!(written, Written::Journal), "{written:?}");
        assert_eq!(written.problem(&path), None);
        assert_eq!(read(&path)["run"], "new");
        assert_eq!(names_in(&dir), ["j.json"]);

        // A path that cannot be written: the journal goes to the fallback.
        let blocked = dir.join("j.json").join("under-a-file.json");
        let value = json!({"run": "saved"});
        let written = finish(&blocked, &value, &fallback);
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
        let written = finish(&blocked, &value, &blocked);
        assert!(matches!(written, Written::Lost { .. }), "{written:?}");
        let said = written.problem(&blocked).unwrap();
        assert!(said.contains(") nor to "), "{said}");
        assert_eq!(names_in(&dir), ["fallback.json", "j.json"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_written_file_holds_its_content_on_ext4_tmpfs_and_elsewhere() {
        // The flushes must leave the whole content in place wherever the journal goes
        // (/dev/shm is tmpfs where it exists, whose directories may not sync; the
        // temporary directory is whatever this machine has).
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
        assert!(write_atomic(&path, &FailsHalfway).is_err());
        assert!(names_in(&dir).is_empty());

        // An exit that skips destructors (a second signal) finds the temporary file in
        // the registry while it is written; `remove_temporaries` itself is not called
        // here: it would also remove the files of tests running alongside.
        let mut during = None;
        write_atomic_with(&path, |tmp| during = Some(tmp.to_path_buf()));
        let tmp = during.unwrap();
        assert!(tmp.starts_with(&dir));
        assert!(!temporaries().contains(&tmp));
        assert_eq!(names_in(&dir), ["j.json"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Write `{"a": 1}` to `path`, calling `seen` with the temporary file's path,
    /// checked to be registered, while the content is being written.
    fn write_atomic_with(path: &Path, seen: impl FnOnce(&Path)) {
        let dir = path.parent().unwrap().to_path_buf();
        write_file(path, Durability::Durable, |w| {
            let registered: Vec<PathBuf> = temporaries()
                .iter()
                .filter(|t| t.starts_with(&dir))
                .cloned()
                .collect();
            assert_eq!(registered.len(), 1, "{registered:?}");
            seen(&registered[0]);
            serde_json::to_writer(w, &json!({"a": 1}))
        })
        .unwrap();
    }

    #[test]
    fn two_writers_of_one_path_never_share_or_remove_each_other_s_temporary() {
        // Two runs in one process may write journals to the same path: each has its
        // own temporary name, one failing removes only its own, and the path ends up
        // holding one complete journal.
        let dir = std::env::temp_dir().join(format!("fl-journal-two-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.json");
        let a = Temporary::create(&dir, &path).unwrap();
        let b = Temporary::create(&dir, &path).unwrap();
        assert_ne!(a.path, b.path);
        let (a_path, b_path) = (a.path.clone(), b.path.clone());
        drop(a);
        assert!(!a_path.exists() && !temporaries().contains(&a_path));
        assert!(b_path.exists() && temporaries().contains(&b_path));
        b.rename_to(&path).unwrap();
        assert!(!temporaries().contains(&b_path));

        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for run in ["first", "second"] {
                let (barrier, path) = (&barrier, &path);
                s.spawn(move || {
                    barrier.wait();
                    let big: Vec<String> = (0..20_000).map(|i| format!("{run}-{i}")).collect();
                    write_atomic(path, &json!({"run": run, "big": big})).unwrap();
                });
            }
        });
        let j = read(&path);
        let run = j["run"].as_str().unwrap();
        assert!(run == "first" || run == "second", "{j}");
        assert_eq!(j["big"][19_999], format!("{run}-19999"));
        assert_eq!(names_in(&dir), ["j.json"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_is_written_in_place_with_blocking_writes() {
        // Opened without blocking (so that no reader is an error, not a hang), then
        // switched back: a reader slower than faultline must not make a write fail
        // with EAGAIN halfway through a journal.
        let dir = std::env::temp_dir().join(format!("fl-journal-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("j.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo {}", fifo.display());
        let e = write_atomic(&fifo, &json!({})).unwrap_err();
        assert!(e.to_string().contains("nobody is reading"), "{e}");

        // The reader is opened without blocking (no writer yet), then made to block:
        // with `held` open as a writer throughout, its reads wait for data and end
        // only when every writer is gone.
        let reader = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap()
        };
        let reader = set_blocking(reader).unwrap();
        let held = open_in_place(&fifo).unwrap();
        let flags = fd_flags(&held);
        assert_eq!(flags & libc::O_NONBLOCK, 0, "flags {flags:o}");

        // More than a pipe holds (64 KiB): the writer waits for the reader, and every
        // byte arrives.
        let big: Vec<u32> = (0..100_000).collect();
        let value = json!({"big": big});
        let expected = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let got = std::thread::spawn(move || {
            use std::io::Read;
            let mut reader = reader;
            let mut all = String::new();
            reader.read_to_string(&mut all).map(|_| all)
        });
        write_atomic(&fifo, &value).unwrap();
        drop(held);
        assert_eq!(got.join().unwrap().unwrap(), expected);
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(names_in(&dir), ["j.fifo"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The open file's status flags, as the kernel reports them.
    fn fd_flags(file: &File) -> i32 {
        use std::os::fd::AsRawFd;
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd())).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .unwrap()
            .trim();
        i32::from_str_radix(flags, 8).unwrap()
    }
}
