//! One Python worker per run: the interpreter that runs every `python` activity and
//! every Python control of the run, started on first use.
//!
//! Modules are imported once and keep their state between calls, as under `chaos
//! run`; calls run concurrently in the worker's threads. The worker speaks JSON lines
//! (`worker.py`): a request `{id, op, ...}` on its stdin, a reply `{id, ...}` or an
//! event (`{"event": "exit"}` from `chaoslib.exit`) on a private pipe. Reading and
//! writing are plain threads, so a call can be awaited (activities) or waited for
//! (control hooks, which are synchronous).
//!
//! A call that must stop before it ends (its timeout, an interrupt) is first asked to:
//! the worker raises `CallStopped` in the call's thread, which ends Python code at its
//! next instruction (a polling loop, say). If the call has not ended within
//! [`STOP_GRACE`] (it waits in C: a long `time.sleep`, a blocking socket), the worker
//! is killed with its whole process tree, the kill is recorded ([`Worker::restarts`],
//! in the journal), and the next call starts a new worker, without the state the old
//! one held. Calls made during the grace wait for its outcome, so they never run in a
//! worker about to be killed.

use super::super::process::Processes;
use super::super::tree::{self, Tree};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

const SCRIPT: &str = include_str!("worker.py");

/// How long a call asked to stop may take to end before its worker is killed.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// What `chaoslib.exit` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `exit_gracefully()` (SIGUSR1): interrupt, rollbacks per strategy.
    Graceful,
    /// `exit_ungracefully()` (SIGUSR2): stop at once, no rollbacks.
    Ungraceful,
}

/// Called from the worker's reader thread when a function calls `chaoslib.exit`.
pub type ExitHandler = Arc<dyn Fn(Exit) + Send + Sync>;

/// A worker that had to be replaced: killed mid-call, or exited on its own.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restart {
    /// When it was killed (RFC 3339).
    pub at: String,
    /// Why, naming the call.
    pub reason: String,
}

/// The run's Python worker; clones share it.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    python: String,
    env: Mutex<Vec<(String, String)>>,
    processes: Processes,
    live: Mutex<Option<Arc<Live>>>,
    next_id: AtomicU64,
    started: AtomicU64,
    restarts: Mutex<Vec<Restart>>,
    /// Calls asked to stop whose grace is running: new calls wait for none to be left.
    stopping: Mutex<usize>,
    stopped: std::sync::Condvar,
    /// Said once by the next call: a worker was killed, its state is gone.
    notice: Mutex<Option<String>>,
    on_exit: Mutex<Option<ExitHandler>>,
}

enum Waiter {
    Async(tokio::sync::oneshot::Sender<Result<Map<String, Value>, String>>),
    Sync(mpsc::Sender<Result<Map<String, Value>, String>>),
}

impl Waiter {
    fn send(self, r: Result<Map<String, Value>, String>) {
        match self {
            Waiter::Async(tx) => {
                let _ = tx.send(r);
            }
            Waiter::Sync(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

struct Live {
    tree: Tree,
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
    pending: Mutex<HashMap<u64, Waiter>>,
    /// Lines the worker printed outside any call (its children's output, say).
    stray: Mutex<Vec<String>>,
    dead: AtomicBool,
    /// Awaited calls whose reply was delivered but not yet taken by their caller
    /// (`taken` is notified when one is): an exit that follows a reply waits for it.
    untaken: Mutex<HashSet<u64>>,
    taken: Condvar,
}

/// How long an exit that follows a call's reply waits for the caller to take it.
const EXIT_AFTER_REPLY_WAIT: Duration = Duration::from_secs(1);

impl Live {
    /// The caller of `id` has its reply (or gave up on it).
    fn take(&self, id: u64) {
        if lock(&self.untaken).remove(&id) {
            self.taken.notify_all();
        }
    }

    /// Until the caller of `id` took its reply (at most [`EXIT_AFTER_REPLY_WAIT`]).
    fn wait_taken(&self, id: u64) {
        let mut untaken = lock(&self.untaken);
        let deadline = std::time::Instant::now() + EXIT_AFTER_REPLY_WAIT;
        while untaken.contains(&id) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            untaken = self
                .taken
                .wait_timeout(untaken, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The interpreter: `FAULTLINE_PYTHON`, else `python3`.
pub fn interpreter() -> String {
    std::env::var("FAULTLINE_PYTHON").unwrap_or_else(|_| "python3".into())
}

impl Worker {
    /// A worker for one run, not started yet; its children are registered in
    /// `processes` (so a second signal kills them with the rest).
    pub fn new(processes: Processes) -> Worker {
        Worker {
            inner: Arc::new(Inner {
                python: interpreter(),
                env: Mutex::default(),
                processes,
                live: Mutex::default(),
                next_id: AtomicU64::new(1),
                started: AtomicU64::new(0),
                restarts: Mutex::default(),
                stopping: Mutex::default(),
                stopped: std::sync::Condvar::new(),
                notice: Mutex::default(),
                on_exit: Mutex::default(),
            }),
        }
    }

    /// The interpreter it starts.
    pub fn python(&self) -> &str {
        &self.inner.python
    }

    /// Extra environment for the worker (the run's `.env` var files), set before the
    /// first call.
    pub fn set_env(&self, env: Vec<(String, String)>) {
        *lock(&self.inner.env) = env;
    }

    /// Who hears `chaoslib.exit`.
    pub fn on_exit(&self, handler: ExitHandler) {
        *lock(&self.inner.on_exit) = Some(handler);
    }

    /// How many workers this run started (0: Python was never needed).
    pub fn started(&self) -> u64 {
        self.inner.started.load(Ordering::SeqCst)
    }

    /// The workers that were replaced (killed mid-call, or exited on their own), in
    /// order.
    pub fn restarts(&self) -> Vec<Restart> {
        lock(&self.inner.restarts).clone()
    }

    /// Whether a worker is running now.
    pub fn is_running(&self) -> bool {
        lock(&self.inner.live)
            .as_ref()
            .is_some_and(|l| !l.dead.load(Ordering::SeqCst))
    }

    /// The running worker, started if needed.
    fn live(&self) -> Result<Arc<Live>, String> {
        // A call asked to stop may get its worker killed: wait for the outcome (at
        // most the grace, and a margin).
        {
            let stopping = lock(&self.inner.stopping);
            let _ = self
                .inner
                .stopped
                .wait_timeout_while(stopping, STOP_GRACE * 2, |n| *n > 0);
        }
        let mut slot = lock(&self.inner.live);
        if let Some(l) = slot.as_ref() {
            if !l.dead.load(Ordering::SeqCst) {
                return Ok(l.clone());
            }
        }
        let live = self.spawn()?;
        *slot = Some(live.clone());
        Ok(live)
    }

    fn spawn(&self) -> Result<Arc<Live>, String> {
        use std::os::unix::process::CommandExt as _;
        let python = &self.inner.python;
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg(SCRIPT)
            .envs(lock(&self.inner.env).iter().cloned())
            .env("PYTHONUNBUFFERED", "1")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let tag = Tree::new_tag();
        cmd.env(tree::TAG_VAR, Tree::env_value(&tag));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the Python interpreter '{python}': {e}"))?;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let live = Arc::new(Live {
            tree: Tree { pid, tag },
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
            pending: Mutex::default(),
            stray: Mutex::default(),
            dead: AtomicBool::new(false),
            untaken: Mutex::default(),
            taken: Condvar::new(),
        });
        self.inner.processes.register(live.tree.clone());
        self.inner.started.fetch_add(1, Ordering::SeqCst);
        if let Some(out) = stdout {
            let (live, inner) = (live.clone(), Arc::downgrade(&self.inner));
            std::thread::spawn(move || read_replies(out, &live, &inner));
        }
        if let Some(err) = stderr {
            let live = live.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let mut stray = lock(&live.stray);
                    if stray.len() < 10_000 {
                        stray.push(line);
                    }
                }
            });
        }
        Ok(live)
    }

    fn send(&self, live: &Live, id: u64, mut req: Map<String, Value>) -> Result<(), String> {
        req.insert("id".into(), id.into());
        let mut line = serde_json::to_vec(&Value::Object(req))
            .map_err(|e| format!("cannot encode the request to Python: {e}"))?;
        line.push(b'\n');
        let mut stdin = lock(&live.stdin);
        match stdin.as_mut() {
            Some(pipe) => pipe
                .write_all(&line)
                .and_then(|()| pipe.flush())
                .map_err(|e| format!("the Python worker is gone ({e})")),
            None => Err("the Python worker is shutting down".into()),
        }
    }

    /// One request, awaited. Dropping the future before the reply (a timeout, an
    /// interrupt) stops the call, and kills the worker if it does not end within
    /// [`STOP_GRACE`]: `what` names the call in the record of that.
    pub async fn call(
        &self,
        req: Map<String, Value>,
        what: &str,
    ) -> Result<Map<String, Value>, String> {
        let live = self.live()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        lock(&live.pending).insert(id, Waiter::Async(tx));
        let mut guard = Unanswered {
            worker: self,
            live: live.clone(),
            id,
            what,
            armed: true,
        };
        if let Err(e) = self.send(&live, id, req) {
            lock(&live.pending).remove(&id);
            guard.armed = false;
            return Err(e);
        }
        let reply = rx.await;
        guard.armed = false;
        live.take(id);
        reply.unwrap_or_else(|_| Err("the Python worker stopped before answering".into()))
    }

    /// One request, waited for on this thread (control hooks are synchronous).
    pub fn call_blocking(&self, req: Map<String, Value>) -> Result<Map<String, Value>, String> {
        let live = self.live()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        lock(&live.pending).insert(id, Waiter::Sync(tx));
        if let Err(e) = self.send(&live, id, req) {
            lock(&live.pending).remove(&id);
            return Err(e);
        }
        rx.recv()
            .unwrap_or_else(|_| Err("the Python worker stopped before answering".into()))
    }

    /// Once after a worker was killed mid-call: say so (the state is gone).
    pub fn take_notice(&self) -> Option<String> {
        lock(&self.inner.notice).take()
    }

    /// Lines the worker printed outside any call since last asked.
    pub fn take_stray(&self) -> Vec<String> {
        match lock(&self.inner.live).as_ref() {
            Some(l) => std::mem::take(&mut *lock(&l.stray)),
            None => Vec::new(),
        }
    }

    /// Kill the running worker with its process tree, recording why.
    fn kill(&self, live: &Live, reason: String) {
        if live.dead.swap(true, Ordering::SeqCst) {
            return;
        }
        tree::kill(std::slice::from_ref(&live.tree));
        self.inner.processes.unregister(&live.tree);
        *lock(&self.inner.notice) = Some(format!(
            "the Python worker was killed ({reason}): a new one runs the calls from here, and module state from before is lost"
        ));
        lock(&self.inner.restarts).push(Restart {
            at: crate::timefmt::now_iso(),
            reason,
        });
        let waiting: Vec<Waiter> = lock(&live.pending).drain().map(|(_, w)| w).collect();
        for w in waiting {
            w.send(Err(
                "the Python worker was killed while this call ran (another call had to be stopped)"
                    .into(),
            ));
        }
    }

    /// The end of the run: close the worker's input and let it exit (its threads are
    /// done: every call has been answered or dropped); kill it if it does not within
    /// `grace`. What its functions started and left running is let be, as with the
    /// Chaos Toolkit.
    pub fn shutdown(&self, grace: std::time::Duration) {
        let Some(live) = lock(&self.inner.live).take() else {
            return;
        };
        lock(&live.stdin).take();
        let deadline = std::time::Instant::now() + grace;
        loop {
            let done = lock(&live.child)
                .try_wait()
                .map(|s| s.is_some())
                .unwrap_or(true);
            if done {
                break;
            }
            if std::time::Instant::now() >= deadline {
                let _ = lock(&live.child).kill();
                let _ = lock(&live.child).wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        live.dead.store(true, Ordering::SeqCst);
        self.inner.processes.unregister(&live.tree);
    }
}

/// Stops a call dropped before its reply (and kills the worker if it does not end).
struct Unanswered<'a> {
    worker: &'a Worker,
    live: Arc<Live>,
    id: u64,
    what: &'a str,
    armed: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.live.take(self.id);
        // Still running: ask the worker to stop it, and watch for its end.
        let (tx, rx) = mpsc::channel();
        {
            let mut pending = lock(&self.live.pending);
            if pending.remove(&self.id).is_none() {
                return;
            }
            pending.insert(self.id, Waiter::Sync(tx));
        }
        let mut stop = Map::new();
        stop.insert("op".into(), "stop".into());
        stop.insert("target".into(), self.id.into());
        let id = self.worker.inner.next_id.fetch_add(1, Ordering::SeqCst);
        if self.worker.send(&self.live, id, stop).is_err() {
            return;
        }
        *lock(&self.worker.inner.stopping) += 1;
        let worker = self.worker.clone();
        let live = self.live.clone();
        let what = self.what.to_string();
        let call = self.id;
        std::thread::spawn(move || {
            let ended = rx.recv_timeout(STOP_GRACE).is_ok();
            if !ended {
                lock(&live.pending).remove(&call);
                worker.kill(
                    &live,
                    format!(
                        "{what} was stopped before it returned (timeout or interrupt) and did not end within {} ms",
                        STOP_GRACE.as_millis()
                    ),
                );
            }
            *lock(&worker.inner.stopping) -= 1;
            worker.inner.stopped.notify_all();
        });
    }
}

fn read_replies(out: std::process::ChildStdout, live: &Arc<Live>, inner: &std::sync::Weak<Inner>) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(event) = msg.get("event").and_then(Value::as_str) {
            if event == "exit" {
                let graceful = msg.get("graceful").and_then(Value::as_bool) == Some(true);
                let exit = if graceful {
                    Exit::Graceful
                } else {
                    Exit::Ungraceful
                };
                let handler = inner.upgrade().and_then(|i| lock(&i.on_exit).clone());
                match (handler, msg.get("after").and_then(Value::as_u64)) {
                    // Asked by a call that has replied (worker.py): as under chaos, that
                    // call ends normally, so its caller takes the reply before the run
                    // hears the exit (else the interrupt may win the race against it).
                    (Some(h), Some(after)) => {
                        let live = Arc::clone(live);
                        std::thread::spawn(move || {
                            live.wait_taken(after);
                            h(exit);
                        });
                    }
                    (Some(h), None) => h(exit),
                    (None, _) => {}
                }
            }
            continue;
        }
        let Some(id) = msg.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let waiter = lock(&live.pending).remove(&id);
        if let Some(w) = waiter {
            if matches!(w, Waiter::Async(_)) {
                lock(&live.untaken).insert(id);
            }
            w.send(Ok(msg));
        }
    }
    // The worker is gone: whoever still waits hears it.
    let status = lock(&live.child)
        .wait()
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e.to_string());
    let unexpected = !live.dead.swap(true, Ordering::SeqCst) && lock(&live.stdin).is_some();
    if let Some(inner) = inner.upgrade() {
        inner.processes.unregister(&live.tree);
        // Neither killed nor shut down by faultline: a function ended the interpreter
        // (`os._exit`, a crash). The next call starts a new worker; say so.
        if unexpected {
            let reason = format!("the Python worker exited on its own ({status})");
            *lock(&inner.notice) = Some(format!(
                "{reason}: a new one runs the calls from here, and module state from before is lost"
            ));
            lock(&inner.restarts).push(Restart {
                at: crate::timefmt::now_iso(),
                reason,
            });
        }
    }
    let waiting: Vec<Waiter> = lock(&live.pending).drain().map(|(_, w)| w).collect();
    if !waiting.is_empty() {
        let tail: Vec<String> = {
            let stray = lock(&live.stray);
            stray.iter().rev().take(5).rev().cloned().collect()
        };
        for w in waiting {
            w.send(Err(format!(
                "the Python worker ended ({status}) before answering{}",
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", tail.join("\n"))
                }
            )));
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(live) = lock(&self.live).take() {
            lock(&live.stdin).take();
            if !live.dead.load(Ordering::SeqCst) {
                let _ = lock(&live.child).kill();
                let _ = lock(&live.child).wait();
            }
        }
    }
}
