//! Python controls: a control module the Chaos Toolkit would load (a custom control,
//! `chaosslack`, a Grafana or Loki control...) runs in the run's Python worker, with
//! the Chaos Toolkit's hook names and arguments (`chaoslib.control.python`).
//!
//! Each hook is called if the module defines it, with `context`, and `state`,
//! `configuration`, `secrets`, `experiment`, `settings`, `extensions` when its
//! signature asks for them, plus the control's own `arguments` (substituted). What a
//! hook changes in `configuration` or `secrets` is kept for the rest of the run, as
//! the Chaos Toolkit's hooks change its dicts in place. `InterruptExecution` (or
//! `SystemExit`) raised by a hook interrupts the run, rollbacks per strategy; any
//! other exception is logged and the run goes on, as under chaos.

use super::{ActivityInfo, Control, Decision, Hook, RunInfo};
use crate::event::Event;
use crate::experiment::config::LiveConfig;
use crate::provider::python::worker::Worker;
use crate::redact::Redactor;
use crate::run::journal::{HypothesisState, RunEntry};
use crate::run::{Interrupt, Phase, Status};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// What Python controls of one run share: the worker, the live configuration, the
/// interrupt they may pull, and which controls were already configured (a control
/// declared at several places is configured and cleaned up once, by name).
#[derive(Clone)]
pub struct PythonEnv {
    /// The run's worker.
    pub worker: Worker,
    /// The run's configuration and secrets.
    pub live: LiveConfig,
    /// The run's interrupt: after-hooks that raise `InterruptExecution` pull it.
    pub interrupt: Interrupt,
    /// The settings, as the Chaos Toolkit passes them (`settings` argument).
    pub settings: Value,
    configured: Arc<Mutex<BTreeSet<String>>>,
    cleaned: Arc<Mutex<BTreeSet<String>>>,
    /// Masks the run's secrets in what hooks print and in their failures.
    redactor: Arc<Mutex<Option<Redactor>>>,
}

impl PythonEnv {
    /// One run's.
    pub fn new(worker: Worker, live: LiveConfig, interrupt: Interrupt, settings: Value) -> Self {
        PythonEnv {
            worker,
            live,
            interrupt,
            settings,
            configured: Arc::default(),
            cleaned: Arc::default(),
            redactor: Arc::default(),
        }
    }

    /// The run's secrets, once resolved: masked in what the hooks say.
    pub fn set_redactor(&self, r: Redactor) {
        *self.redactor.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    /// An event of the run (on its subscriber when a hook runs inside the run).
    fn emit(&self, e: Event) {
        let e = match &*self.redactor.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(r) => e.redacted(r),
            None => e,
        };
        e.trace_in(&tracing::Span::current(), None);
    }

    fn say(&self, message: String) {
        self.emit(Event::Warning { message });
    }

    /// Import the control's module and call its `validate_control(control)`, if it
    /// has one.
    pub fn load(&self, module: &str, control: &Value) -> Loaded {
        let mut req = Map::new();
        req.insert("op".into(), "control".into());
        req.insert("module".into(), module.into());
        req.insert("hook".into(), "validate_control".into());
        req.insert("context".into(), control.clone());
        let reply = match self.worker.call_blocking(req) {
            Ok(r) => r,
            Err(e) => return Loaded::Missing(e),
        };
        match (
            reply.get("error").and_then(Value::as_str),
            reply.get("kind").and_then(Value::as_str),
        ) {
            (None, _) => Loaded::Ready,
            (Some(e), Some("import")) => Loaded::Missing(e.to_string()),
            (Some(e), _) => Loaded::Refused(e.to_string()),
        }
    }
}

/// What loading a Python control found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// It imports, and its `validate_control` (if any) accepted the declaration.
    Ready,
    /// It cannot be imported (or Python cannot start): the Chaos Toolkit warns and
    /// runs without it.
    Missing(String),
    /// Its `validate_control` raised: the experiment is invalid.
    Refused(String),
}

/// One declared Python control.
pub struct PythonControl {
    /// Its name.
    pub name: String,
    /// Its module.
    pub module: String,
    /// Its provider's `arguments`.
    pub arguments: Value,
    /// Its `scope`: `before`, `after`, or both (`None`).
    pub when: Option<String>,
    /// The declaration as written, for `validate_control` and messages.
    pub declaration: Value,
    env: PythonEnv,
    /// Declared at the experiment level (top, settings, --control-file): it sees the
    /// experiment's hooks; one declared on an activity or the hypothesis does not.
    experiment_level: bool,
    experiment: Mutex<Value>,
    source: Mutex<String>,
    collected: Mutex<Collected>,
}

#[derive(Default)]
struct Collected {
    method: Vec<Value>,
    rollbacks: Vec<Value>,
    before: Option<Value>,
    after: Option<Value>,
}

/// The result of one hook call.
enum Outcome {
    Fine,
    Interrupt(String),
}

impl PythonControl {
    /// A control of `module` for one run.
    pub fn new(
        name: &str,
        module: &str,
        declaration: &Value,
        env: PythonEnv,
        experiment_level: bool,
    ) -> Self {
        let provider = declaration.get("provider");
        PythonControl {
            name: name.to_string(),
            module: module.to_string(),
            arguments: provider
                .and_then(|p| p.get("arguments"))
                .cloned()
                .unwrap_or(Value::Object(Map::new())),
            when: declaration
                .get("scope")
                .and_then(Value::as_str)
                .map(str::to_string),
            declaration: declaration.clone(),
            env,
            experiment_level,
            experiment: Mutex::new(Value::Null),
            source: Mutex::new(String::new()),
            collected: Mutex::default(),
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn applies(&self, scope: &str) -> bool {
        self.when.as_deref().is_none_or(|w| w == scope)
    }

    /// The request for `hook`, with the run's configuration, secrets and experiment,
    /// and the control's arguments substituted as chaoslib does.
    fn request(&self, hook: &str, context: Value, state: Option<Value>) -> Map<String, Value> {
        let now = self.env.live.get();
        let mut req = Map::new();
        req.insert("op".into(), "control".into());
        req.insert("module".into(), self.module.clone().into());
        req.insert("hook".into(), hook.into());
        req.insert("context".into(), context);
        if let Some(s) = state {
            req.insert("state".into(), s);
        }
        req.insert("arguments".into(), now.value(&self.arguments));
        req.insert(
            "configuration".into(),
            Value::Object((*now.configuration).clone()),
        );
        req.insert("secrets".into(), Value::Object((*now.secrets).clone()));
        req.insert("experiment".into(), Self::lock(&self.experiment).clone());
        req.insert("settings".into(), self.env.settings.clone());
        req
    }

    /// What a reply means: changes kept, failures said, interrupts returned.
    fn settle(&self, hook: &str, reply: Result<Map<String, Value>, String>) -> Outcome {
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.env.say(format!(
                    "control '{}' ({}.{hook}): {e}",
                    self.name, self.module
                ));
                return Outcome::Fine;
            }
        };
        if let Some(out) = reply.get("output").and_then(Value::as_str) {
            for line in out.lines().filter(|l| !l.trim().is_empty()) {
                self.env.emit(Event::ProviderOutput {
                    name: format!("control {}", self.name),
                    line: line.to_string(),
                });
            }
        }
        match (
            reply.get("error").and_then(Value::as_str),
            reply.get("kind").and_then(Value::as_str),
        ) {
            (None, _) => {
                if let Some(Value::Object(changed)) = reply.get("ok") {
                    let obj = |k: &str| match changed.get(k) {
                        Some(Value::Object(m)) => Some(m.clone()),
                        _ => None,
                    };
                    let (c, s) = (obj("configuration"), obj("secrets"));
                    if c.is_some() || s.is_some() {
                        self.env.live.replace(c, s);
                    }
                    if let Some(e) = changed.get("experiment") {
                        *Self::lock(&self.experiment) = e.clone();
                    }
                }
                Outcome::Fine
            }
            (Some(e), Some("interrupt" | "exit")) => {
                Outcome::Interrupt(format!("{}.{hook} raised {e}", self.module))
            }
            (Some(e), _) => {
                self.env.say(format!(
                    "control '{}' ({}.{hook}) failed, the run goes on: {e}",
                    self.name, self.module
                ));
                Outcome::Fine
            }
        }
    }

    fn call(&self, hook: &str, context: Value, state: Option<Value>) -> Outcome {
        let req = self.request(hook, context, state);
        self.settle(hook, self.env.worker.call_blocking(req))
    }

    async fn call_async(&self, hook: &str, context: Value, state: Option<Value>) -> Outcome {
        let req = self.request(hook, context, state);
        let what = format!("control '{}' ({}.{hook})", self.name, self.module);
        self.settle(hook, self.env.worker.call(req, &what).await)
    }

    /// `configure_control`, once per control name, before the control's first hook
    /// of the run (chaos configures every declared control before the experiment
    /// starts; a control declared on an activity sees no experiment hook, so it is
    /// configured at its first hook).
    fn configured_first(&self) -> bool {
        Self::lock(&self.env.configured).insert(self.name.clone())
    }

    fn ensure_configured(&self) -> Outcome {
        if self.configured_first() {
            self.call("configure_control", Value::Null, None)
        } else {
            Outcome::Fine
        }
    }

    /// `configure_control` if this control was not configured yet, then the
    /// before-hook `hook` with `context`: the asynchronous before-hooks.
    async fn configure_then(&self, hook: &str, context: Value) -> Decision {
        if self.configured_first() {
            let o = self
                .call_async("configure_control", Value::Null, None)
                .await;
            if let Outcome::Interrupt(r) = o {
                return Decision::Interrupt(r);
            }
        }
        if !self.applies("before") {
            return Decision::Continue;
        }
        let o = self.call_async(hook, context, None).await;
        self.before(o)
    }

    fn before(&self, o: Outcome) -> Decision {
        match o {
            Outcome::Fine => Decision::Continue,
            Outcome::Interrupt(r) => Decision::Interrupt(r),
        }
    }

    /// After-hooks cannot answer: an interrupt they raise pulls the run's.
    fn after(&self, o: Outcome) {
        if let Outcome::Interrupt(r) = o {
            if !self.env.interrupt.in_rollbacks() {
                self.env
                    .interrupt
                    .trigger(format!("control '{}': {r}", self.name));
            }
        }
    }

    fn hypothesis(&self) -> Value {
        Self::lock(&self.experiment)
            .get("steady-state-hypothesis")
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn experiment(&self) -> Value {
        Self::lock(&self.experiment).clone()
    }
}

fn entry(e: &RunEntry) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

impl Control for PythonControl {
    fn name(&self) -> &str {
        &self.name
    }

    fn before_loading(&self, source: &str) {
        *Self::lock(&self.source) = source.to_string();
        if self.applies("before") {
            let o = self.call("before_loading_experiment_control", source.into(), None);
            self.after(o);
        }
    }

    fn after_loading(&self, experiment: &Value) {
        *Self::lock(&self.experiment) = experiment.clone();
        if self.applies("after") {
            let source = Self::lock(&self.source).clone();
            let o = self.call(
                "after_loading_experiment_control",
                source.into(),
                Some(experiment.clone()),
            );
            self.after(o);
        }
    }

    fn configure(&self, run: &RunInfo) {
        let mut exp = Self::lock(&self.experiment);
        if exp.is_null() {
            *exp = run.experiment.clone();
        }
    }

    fn before_experiment<'a>(&'a self, _run: &'a RunInfo) -> Hook<'a> {
        // As chaos: configured once per name, after the configuration (dynamic
        // entries included) is loaded, just before the experiment starts.
        Box::pin(self.configure_then("before_experiment_control", self.experiment()))
    }

    fn before_hypothesis(&self, _phase: Phase) -> Decision {
        if let Outcome::Interrupt(r) = self.ensure_configured() {
            return Decision::Interrupt(r);
        }
        if !self.applies("before") {
            return Decision::Continue;
        }
        self.before(self.call("before_hypothesis_control", self.hypothesis(), None))
    }

    fn after_hypothesis(&self, phase: Phase, state: &HypothesisState) {
        let s = serde_json::to_value(state).unwrap_or(Value::Null);
        {
            let mut c = Self::lock(&self.collected);
            match phase {
                Phase::Before => c.before = Some(s.clone()),
                Phase::After => c.after = Some(s.clone()),
                _ => {}
            }
        }
        if self.applies("after") {
            let o = self.call("after_hypothesis_control", self.hypothesis(), Some(s));
            self.after(o);
        }
    }

    fn before_method(&self) -> Decision {
        if !self.applies("before") {
            return Decision::Continue;
        }
        self.before(self.call("before_method_control", self.experiment(), None))
    }

    fn after_method(&self) {
        if self.applies("after") {
            let state = Value::Array(Self::lock(&self.collected).method.clone());
            let o = self.call("after_method_control", self.experiment(), Some(state));
            self.after(o);
        }
    }

    fn before_rollbacks(&self) {
        if self.applies("before") {
            let o = self.call("before_rollback_control", self.experiment(), None);
            self.after(o);
        }
    }

    fn after_rollbacks(&self) {
        if self.applies("after") {
            let state = Value::Array(Self::lock(&self.collected).rollbacks.clone());
            let o = self.call("after_rollback_control", self.experiment(), Some(state));
            self.after(o);
        }
    }

    fn before_activity<'a>(&'a self, a: &'a ActivityInfo<'a>) -> Hook<'a> {
        Box::pin(self.configure_then("before_activity_control", a.activity.clone()))
    }

    fn after_activity(&self, a: &ActivityInfo<'_>, e: &RunEntry) {
        let state = entry(e);
        {
            let mut c = Self::lock(&self.collected);
            match a.phase {
                Phase::Method => c.method.push(state.clone()),
                Phase::Rollback => c.rollbacks.push(state.clone()),
                _ => {}
            }
        }
        if self.applies("after") {
            let o = self.call("after_activity_control", a.activity.clone(), Some(state));
            self.after(o);
        }
    }

    fn after_experiment(&self, run: &RunInfo, status: Status, deviated: bool) {
        if !self.applies("after") || !self.experiment_level {
            return;
        }
        // The journal as far as it is known at this point (the Chaos Toolkit's
        // after-experiment hook gets the journal before it is written).
        let journal = {
            let c = Self::lock(&self.collected);
            serde_json::json!({
                "chaoslib-version": null,
                "experiment": self.experiment(),
                "status": status.as_str(),
                "deviated": deviated,
                "steady_states": {"before": c.before, "after": c.after, "during": []},
                "run": c.method,
                "rollbacks": c.rollbacks,
                "extensions": [{"name": "faultline", "run_id": run.run_id, "trace_id": run.trace_id}],
            })
        };
        let o = self.call("after_experiment_control", self.experiment(), Some(journal));
        // The run is over: nothing left to interrupt.
        drop(o);
    }

    fn cleanup(&self) {
        if Self::lock(&self.env.cleaned).insert(self.name.clone()) {
            let o = self.call("cleanup_control", Value::Null, None);
            drop(o);
        }
    }
}
