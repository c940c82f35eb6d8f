//! The kill switch, assembled: which switches a run obeys, the check that refuses a
//! run while one is engaged, the watcher that interrupts a running one, and
//! `faultline kill`.
//!
//! A run obeys two switches:
//! - its file: `--kill-switch` > `FAULTLINE_KILL_SWITCH` > the settings'
//!   `kill_switch` > the default pair (`$XDG_RUNTIME_DIR/faultline/kill-switch` and
//!   `/tmp/faultline-<uid>/kill-switch`, see [`Location::default_for`]);
//! - the switch of the server it is attached to, when its SLO store is a
//!   `faultline serve` URL (`--store`, `FAULTLINE_STORE`, settings `store.location`),
//!   asked with the run's token.
//!
//! The watcher lives here, not in the engine: the engine knows nothing of files or
//! servers, and already knows how to stop (its [`Interrupt`] stops the running activity
//! and kills its process tree, then the rollbacks play). The watcher only triggers that
//! interrupt, with [`InterruptSource::KillSwitch`] so the trace says who stopped the
//! run.

use super::Narrator;
use crate::event::Level;
use crate::exit::ExitCode;
use crate::killswitch::remote::RemoteSwitch;
use crate::killswitch::{self, Engaged, Engagement, KillError, Location};
use crate::run::{Interrupt, InterruptSource};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often a run checks its switch file: a `stat`, microseconds.
pub const FILE_INTERVAL: Duration = Duration::from_millis(100);
/// How often a run attached to a server asks `GET /v1/kill`.
pub const SERVER_INTERVAL: Duration = Duration::from_millis(500);
/// The most one question to a server may take (a run's, at its start and while it
/// runs).
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(2);
/// The most `faultline kill --server` waits for the server.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The names of the lines this module tells (`docs/telemetry.md`).
pub mod event {
    /// A run refused at its start: a switch is engaged.
    pub const REFUSED: &str = "kill_switch.refused";
    /// A running run is being stopped by a switch.
    pub const ENGAGED: &str = "kill_switch.engaged";
    /// A server's switch cannot be read: the run goes on (said once).
    pub const UNREACHABLE: &str = "kill_switch.unreachable";
}

/// The switches a run obeys.
#[derive(Debug, Clone)]
pub struct Switches {
    /// Its file (or the default pair).
    pub location: Location,
    /// Whether the location was given (a flag, the environment, the settings), so a
    /// hint repeats it.
    pub given: bool,
    /// The server it is attached to.
    pub server: Option<RemoteSwitch>,
}

impl Switches {
    /// The switches of a run: `flag` > `FAULTLINE_KILL_SWITCH` > `setting` > the
    /// default; the server of its store (`store`, `token` as resolved for its SLO
    /// activities), when that is a URL.
    pub fn for_run(
        flag: Option<&Path>,
        setting: Option<&str>,
        store: Option<&str>,
        token: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Switches {
        let (location, given) = location(flag, setting, env);
        let server = match crate::store::StoreSpec::parse(store, token, env) {
            Ok(crate::store::StoreSpec::Remote { base, token }) => {
                RemoteSwitch::new(base, token, SERVER_TIMEOUT).ok()
            }
            _ => None,
        };
        Switches {
            location,
            given,
            server,
        }
    }
}

/// The switch file: `flag` > `FAULTLINE_KILL_SWITCH` > `setting` > the default; and
/// whether it was given.
pub fn location(
    flag: Option<&Path>,
    setting: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Location, bool) {
    let given = flag
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| {
            [env("FAULTLINE_KILL_SWITCH"), setting.map(str::to_string)]
                .into_iter()
                .flatten()
                .find(|s| !s.trim().is_empty())
                .map(PathBuf::from)
        });
    match given {
        // Absolute, so messages (the release hint above all) hold from any directory.
        Some(p) => (Location::file(std::path::absolute(&p).unwrap_or(p)), true),
        None => (Location::default_for(env), false),
    }
}

/// Where an engaged switch was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// This file.
    File(PathBuf),
    /// This server's `/v1/kill`.
    Server(String),
}

/// An engaged switch: where, and its engagement.
#[derive(Debug, Clone)]
pub struct Tripped {
    /// Where.
    pub found: Found,
    /// Who, when, why.
    pub engagement: Engagement,
    /// How to release it.
    pub release: String,
}

impl Tripped {
    fn new(found: Found, engagement: Engagement, switches: &Switches) -> Tripped {
        let release = match &found {
            Found::Server(s) => format!("faultline kill --release --server {s}"),
            Found::File(p) if switches.given => {
                format!("faultline kill --release --kill-switch {}", p.display())
            }
            Found::File(_) => "faultline kill --release".to_string(),
        };
        Tripped {
            found,
            engagement,
            release,
        }
    }

    /// A file that cannot be checked: engaged, since nobody can tell it is not.
    fn unchecked(error: &KillError, switches: &Switches) -> Tripped {
        let engagement = Engagement {
            reason: format!("cannot tell whether it is off: {error}"),
            ..Engagement::parse(b"")
        };
        let path = switches.location.primary().to_path_buf();
        Tripped::new(Found::File(path), engagement, switches)
    }

    fn place(&self) -> String {
        match &self.found {
            Found::File(p) => format!("file {}", p.display()),
            Found::Server(s) => format!("server {s}"),
        }
    }

    /// The run's interrupt reason (journal `interrupted_by`, console, trace):
    /// `kill switch engaged by alice@host at …: reason (file /path)`.
    pub fn reason(&self) -> String {
        let e = &self.engagement;
        let mut s = "kill switch engaged".to_string();
        if let Some(by) = &e.by {
            s.push_str(&format!(" by {by}"));
        }
        if let Some(org) = &e.org {
            s.push_str(&format!(" (org {org})"));
        }
        if let Some(at) = &e.at {
            s.push_str(&format!(" at {at}"));
        }
        if e.reason != killswitch::DEFAULT_REASON {
            s.push_str(&format!(": {}", e.reason));
        }
        format!("{s} ({})", self.place())
    }

    /// What a refused run says.
    pub fn refusal(&self) -> String {
        format!(
            "{}: this run is refused, nothing ran and no journal is written; release it with: {}",
            capitalised(&self.reason()),
            self.release
        )
    }
}

/// Is a switch engaged now? The file first (an error reads as engaged), then the
/// server (an error is a warning, said once: `warned`).
async fn check(switches: &Switches, out: &dyn Narrator, warned: &mut bool) -> Option<Tripped> {
    match switches.location.read() {
        Ok(Some((path, e))) => return Some(Tripped::new(Found::File(path), e, switches)),
        Ok(None) => {}
        Err(err) => return Some(Tripped::unchecked(&err, switches)),
    }
    ask_server(switches, out, warned).await
}

async fn ask_server(switches: &Switches, out: &dyn Narrator, warned: &mut bool) -> Option<Tripped> {
    let server = switches.server.as_ref()?;
    match server.status().await {
        Ok(Some(e)) => Some(Tripped::new(Found::Server(server.server()), e, switches)),
        Ok(None) => None,
        Err(err) => {
            if !*warned {
                *warned = true;
                out.line(
                    Level::Warning,
                    event::UNREACHABLE,
                    &format!(
                        "{err}; the run goes on, and the server's switch is asked again every {} ms",
                        SERVER_INTERVAL.as_millis()
                    ),
                );
            }
            None
        }
    }
}

/// A run's watcher of its switches: stopped when dropped (the run ended).
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch {
    /// Check the switches before the run starts: `Err` when one is engaged (refuse
    /// the run). Otherwise start watching them: the file every [`FILE_INTERVAL`], the
    /// server every [`SERVER_INTERVAL`], until `interrupt` is triggered, the rollbacks
    /// start, or the watch is dropped.
    pub async fn start(
        switches: Switches,
        interrupt: Interrupt,
        out: Arc<dyn Narrator>,
    ) -> Result<Watch, Box<Tripped>> {
        let mut warned = false;
        if let Some(t) = check(&switches, &*out, &mut warned).await {
            return Err(Box::new(t));
        }
        let task = tokio::spawn(watch(switches, interrupt, out, warned));
        Ok(Watch { task })
    }
}

async fn watch(switches: Switches, interrupt: Interrupt, out: Arc<dyn Narrator>, warned: bool) {
    let file = async {
        let mut tick = tokio::time::interval(FILE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Bounded by the run: it ends at a trip, at the interrupt, or when dropped.
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = interrupt.triggered() => return,
            }
            let found = match switches.location.is_engaged() {
                Ok(false) => continue,
                Ok(true) => match switches.location.read() {
                    Ok(Some((path, e))) => Tripped::new(Found::File(path), e, &switches),
                    // Released in between.
                    Ok(None) => continue,
                    Err(err) => Tripped::unchecked(&err, &switches),
                },
                Err(err) => Tripped::unchecked(&err, &switches),
            };
            trip(&interrupt, &*out, &found);
            return;
        }
    };
    let server = async {
        if switches.server.is_none() {
            return;
        }
        let mut warned = warned;
        let mut tick = tokio::time::interval(SERVER_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = interrupt.triggered() => return,
            }
            if let Some(found) = ask_server(&switches, &*out, &mut warned).await {
                trip(&interrupt, &*out, &found);
                return;
            }
        }
    };
    tokio::join!(file, server);
}

/// Stop the run (unless something else did, or its rollbacks are playing: those are
/// never stopped).
fn trip(interrupt: &Interrupt, out: &dyn Narrator, found: &Tripped) {
    if interrupt.is_set() {
        return;
    }
    if interrupt.in_rollbacks() {
        out.line(
            Level::Warning,
            event::ENGAGED,
            &format!(
                "{} during rollbacks: letting them finish",
                capitalised(&found.reason())
            ),
        );
        return;
    }
    out.line(
        Level::Critical,
        event::ENGAGED,
        &format!(
            "{}: stopping the running activity, then rollbacks and the journal",
            capitalised(&found.reason())
        ),
    );
    interrupt.trigger_from(InterruptSource::KillSwitch, found.reason());
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// What `faultline kill` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillAction {
    /// Engage it, with this reason.
    Engage(Option<String>),
    /// Release it.
    Release,
    /// Say whether it is engaged.
    Status,
}

/// `faultline kill`'s flags.
#[derive(Debug, Clone)]
pub struct KillRequest {
    /// What to do.
    pub action: KillAction,
    /// `--kill-switch`.
    pub kill_switch: Option<PathBuf>,
    /// `--settings` (read only when neither the flag nor `FAULTLINE_KILL_SWITCH`
    /// names the file).
    pub settings: Option<PathBuf>,
    /// `--server`: operate this server's switch instead of a file.
    pub server: Option<String>,
    /// `--token` / `FAULTLINE_TOKEN`, for the server.
    pub token: Option<String>,
}

/// What `faultline kill` did or found.
#[derive(Debug, Clone)]
pub struct KillReport {
    /// What was asked.
    pub action: KillAction,
    /// `file …` or `server …`.
    pub place: String,
    /// The engagement in force after the command (engage, status) or before it
    /// (release).
    pub engagement: Option<Engagement>,
    /// Engage: whether this command engaged it (false: it was on already).
    pub changed: bool,
    /// How to release it (for an engaged switch).
    pub release: String,
    /// What went wrong without undoing it (a file of the default pair that could not
    /// be written, an engagement a server holds in memory only).
    pub warnings: Vec<String>,
}

impl KillReport {
    /// The exit code: [`ExitCode::KillSwitch`] for `--status` when it is on, else
    /// success.
    pub fn exit_code(&self) -> ExitCode {
        match (&self.action, &self.engagement) {
            (KillAction::Status, Some(_)) => ExitCode::KillSwitch,
            _ => ExitCode::Success,
        }
    }
}

impl std::fmt::Display for KillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = &self.place;
        match (&self.action, &self.engagement) {
            (KillAction::Engage(_), Some(e)) if self.changed => write!(
                f,
                "the kill switch is engaged ({place}) {}\nevery faultline run obeying it stops (rollbacks played) and new runs are refused\nrelease it with: {}",
                e.describe(),
                self.release
            ),
            (KillAction::Engage(_), Some(e)) => write!(
                f,
                "the kill switch was already engaged ({place}) {}; it stays engaged with that reason\nrelease it with: {}",
                e.describe(),
                self.release
            ),
            (KillAction::Release, Some(e)) => write!(
                f,
                "the kill switch is released ({place}); it was engaged {}",
                e.describe()
            ),
            (KillAction::Release, None) => {
                write!(f, "the kill switch was not engaged ({place})")
            }
            (_, Some(e)) => write!(
                f,
                "the kill switch is engaged ({place}) {}\nrelease it with: {}",
                e.describe(),
                self.release
            ),
            (_, None) => write!(f, "the kill switch is off ({place})"),
        }
    }
}

/// `faultline kill`: engage, release or read the machine's switch file, or a
/// server's switch (`--server`).
pub async fn kill(req: &KillRequest) -> Result<KillReport, KillError> {
    let env = |k: &str| std::env::var(k).ok();
    let mut report = KillReport {
        action: req.action.clone(),
        place: String::new(),
        engagement: None,
        changed: false,
        release: String::new(),
        warnings: Vec::new(),
    };
    if let Some(server) = req.server.as_deref().map(str::trim) {
        let base = url::Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                KillError::Invalid(format!(
                    "--server {server:?} is not an http(s) URL (a faultline serve, e.g. http://127.0.0.1:8089)"
                ))
            })?;
        let token = req.token.clone().or_else(|| env("FAULTLINE_TOKEN"));
        let remote = RemoteSwitch::new(base, token, COMMAND_TIMEOUT)?;
        report.place = format!("server {}", remote.server());
        report.release = format!("faultline kill --release --server {}", remote.server());
        match &req.action {
            KillAction::Engage(reason) => {
                let done = remote.engage(reason.as_deref()).await?;
                report.changed = matches!(done, Engaged::Now(_));
                report.engagement = Some(done.engagement().clone());
            }
            KillAction::Release => report.engagement = remote.release().await?,
            KillAction::Status => report.engagement = remote.status().await?,
        }
        return Ok(report);
    }
    let setting = if req.kill_switch.is_some()
        || env("FAULTLINE_KILL_SWITCH").is_some_and(|v| !v.trim().is_empty())
    {
        None
    } else {
        let settings = crate::settings::load(req.settings.as_deref()).map_err(|problems| {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            KillError::Invalid(format!(
                "{}\n(the settings may name the kill switch file: fix them, or give --kill-switch PATH)",
                text.join("\n")
            ))
        })?;
        settings.kill_switch
    };
    let (location, given) = location(req.kill_switch.as_deref(), setting.as_deref(), &env);
    report.place = format!("file {}", location.describe());
    report.release = if given {
        format!(
            "faultline kill --release --kill-switch {}",
            location.primary().display()
        )
    } else {
        "faultline kill --release".into()
    };
    match &req.action {
        KillAction::Engage(reason) => {
            let (done, errors) = location.engage(&Engagement::now(reason.as_deref()))?;
            report.changed = matches!(done, Engaged::Now(_));
            report.engagement = Some(done.engagement().clone());
            report.warnings = errors.iter().map(ToString::to_string).collect();
        }
        KillAction::Release => report.engagement = location.release()?,
        KillAction::Status => report.engagement = location.read()?.map(|(_, e)| e),
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_environment_then_the_settings() {
        let env = |k: &str| match k {
            "FAULTLINE_KILL_SWITCH" => Some("/from/env".to_string()),
            "XDG_RUNTIME_DIR" => Some("/run/user/9".to_string()),
            _ => None,
        };
        let (l, given) = location(Some(Path::new("/from/flag")), Some("/from/settings"), &env);
        assert_eq!((l.primary(), given), (Path::new("/from/flag"), true));
        let (l, _) = location(None, Some("/from/settings"), &env);
        assert_eq!(l.primary(), Path::new("/from/env"));
        let no_env = |k: &str| (k == "FAULTLINE_KILL_SWITCH").then(String::new);
        let (l, _) = location(None, Some("/from/settings"), &no_env);
        assert_eq!(l.primary(), Path::new("/from/settings"));
        let (l, given) = location(None, None, &no_env);
        assert!(!given);
        assert_eq!(l, Location::default_for(&no_env));
    }

    #[test]
    fn a_run_is_attached_to_the_server_of_its_store() {
        let env = |_: &str| None;
        let s = Switches::for_run(None, None, Some("http://127.0.0.1:9"), None, &env);
        assert_eq!(
            s.server.map(|r| r.server()).as_deref(),
            Some("http://127.0.0.1:9/")
        );
        let s = Switches::for_run(None, None, Some("/tmp/store.db"), None, &env);
        assert!(s.server.is_none());
    }

    #[test]
    fn reasons_say_who_why_and_where() {
        let switches = Switches {
            location: Location::file("/k"),
            given: true,
            server: None,
        };
        let e = Engagement {
            reason: "incident 42".into(),
            at: Some("2026-12-01T10:00:00Z".into()),
            by: Some("al@h".into()),
            pid: Some(1),
            org: None,
        };
        let t = Tripped::new(Found::File("/k".into()), e, &switches);
        assert_eq!(
            t.reason(),
            "kill switch engaged by al@h at 2026-12-01T10:00:00Z: incident 42 (file /k)"
        );
        assert!(t
            .refusal()
            .ends_with("faultline kill --release --kill-switch /k"));
        let t = Tripped::new(
            Found::Server("http://s:1/".into()),
            Engagement::parse(b""),
            &switches,
        );
        assert_eq!(t.reason(), "kill switch engaged (server http://s:1/)");
        assert_eq!(t.release, "faultline kill --release --server http://s:1/");
    }
}
