//! `faultline schedule FILE`, the pure parts: the schedule file parsed and checked
//! (every problem named with its path), business-hours windows, next firings. The
//! loop that runs experiments on time is `app::schedule`.

use crate::experiment::config::parse_var;
use crate::experiment::labels::parse_label;
use crate::run::{HypothesisStrategy, RollbackStrategy};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use serde_json::Value;
use std::str::FromStr;

/// One scheduled experiment.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its name (default: the experiment's path); unique in the file.
    pub name: String,
    /// The experiment: a path or an http(s) URL.
    pub experiment: String,
    /// The cron expression as written (6 or 7 fields: seconds first).
    pub cron: String,
    /// The parsed expression.
    pub schedule: cron::Schedule,
    /// The zone its cron expression is read in: its `timezone`, else the file's, else
    /// UTC.
    pub timezone: Zone,
    /// Target labels, `key=value`.
    pub labels: Vec<String>,
    /// Configuration overrides, `key=value` or `key:type=value` (as `--var`).
    pub vars: Vec<String>,
    /// Files of configuration/secrets, or `.env` files (as `--var-file`), as written.
    pub var_files: Vec<String>,
    /// A settings file for its runs (else the file's `settings`), as written.
    pub settings: Option<String>,
    /// When its runs play rollbacks (as `--rollback-strategy`).
    pub rollback_strategy: Option<RollbackStrategy>,
    /// When its runs check the hypothesis (as `--hypothesis-strategy`).
    pub hypothesis_strategy: Option<HypothesisStrategy>,
    /// Each run starts a random delay in `[0, jitter)` after its firing.
    pub jitter: Option<std::time::Duration>,
    /// Its windows (empty: the file's).
    pub windows: Vec<Window>,
}

/// A time zone: UTC, a fixed offset (`+02:00`) or an IANA zone (`Europe/Paris`),
/// whose offset follows its daylight-saving rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Default for Zone {
    fn default() -> Self {
        Zone::Fixed(FixedOffset::east_opt(0).expect("a zero offset"))
    }
}

impl FromStr for Zone {
    type Err = String;

    /// `UTC` (or `Z`), an offset `+HH:MM`/`-HH:MM`, or an IANA name (exact case).
    fn from_str(t: &str) -> Result<Self, String> {
        match t {
            "UTC" | "Z" => Ok(Zone::default()),
            _ => t
                .parse::<FixedOffset>()
                .map(Zone::Fixed)
                .or_else(|_| t.parse::<chrono_tz::Tz>().map(Zone::Named))
                .map_err(|_| {
                    format!(
                        "{t:?} is not a time zone (an IANA name like Europe/Paris, UTC, or an offset like +02:00)"
                    )
                }),
        }
    }
}

impl Zone {
    /// The wall-clock time of `at` in this zone.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Fixed(z) => at.with_timezone(z).naive_local(),
            Zone::Named(z) => at.with_timezone(z).naive_local(),
        }
    }

    /// The instant of the wall-clock time `local` in this zone: none if a
    /// daylight-saving change skips it (spring forward), the first of the two if it
    /// is repeated (fall back).
    pub fn instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self {
            Zone::Fixed(z) => z.from_local_datetime(&local).earliest().map(|t| t.to_utc()),
            Zone::Named(z) => z.from_local_datetime(&local).earliest().map(|t| t.to_utc()),
        }
    }

    /// The firings of `schedule`, read in this zone, strictly after `after`, in order.
    /// The expression is matched against wall-clock times: one that a spring-forward
    /// change skips does not fire; one that a fall-back change repeats fires once, at
    /// its first occurrence.
    pub fn firings<'a>(
        &self,
        schedule: &'a cron::Schedule,
        after: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + 'a {
        // The cron crate, given a zone with daylight saving, returns both instants of a
        // repeated wall-clock time (out of order among the hour's other firings): it
        // runs here on wall-clock times written as UTC, which each map to one instant.
        let zone = *self;
        schedule
            .after(&Utc.from_utc_datetime(&zone.local(after)))
            .filter_map(move |wall| zone.instant(wall.naive_utc()))
            // After a fall-back, wall-clock times already passed once come again.
            .filter(move |t| *t > after)
    }
}

/// A business-hours window: days of the week, a time range in a zone (wall-clock
/// times, so one in a named zone follows its daylight-saving changes).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub days: Vec<Weekday>,
    pub from: NaiveTime,
    pub to: NaiveTime,
    pub tz: Zone,
}

impl Window {
    /// Whether `at` is inside: its day (in the window's zone) is one of `days` and its
    /// time is in `[from, to)`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = self.tz.local(at);
        self.days.contains(&local.weekday()) && local.time() >= self.from && local.time() < self.to
    }
}

/// A schedule file.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub entries: Vec<Entry>,
    /// Windows for every entry without its own (empty: always).
    pub windows: Vec<Window>,
    /// The settings file of every entry without its own, as written.
    pub settings: Option<String>,
}

impl Schedule {
    /// Whether `entry` may start a run at `at`: inside one of its windows (its own, else
    /// the file's; none: always).
    pub fn in_window(&self, entry: &Entry, at: DateTime<Utc>) -> bool {
        let w = if entry.windows.is_empty() {
            &self.windows
        } else {
            &entry.windows
        };
        w.is_empty() || w.iter().any(|w| w.contains(at))
    }

    /// The settings file of `entry`'s runs: its own, else the file's.
    pub fn settings<'a>(&'a self, entry: &'a Entry) -> Option<&'a str> {
        entry.settings.as_deref().or(self.settings.as_deref())
    }

    /// The next `n` firings of `entry` strictly after `after` that are inside its
    /// windows (firings outside are skipped, as the loop skips them). At most
    /// [`SCAN_LIMIT`] firings are looked at, so a cron that never meets its windows
    /// ends the list early rather than looping.
    pub fn upcoming(&self, entry: &Entry, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        entry
            .timezone
            .firings(&entry.schedule, after)
            .take(SCAN_LIMIT)
            .filter(|t| self.in_window(entry, *t))
            .take(n)
            .collect()
    }
}

/// How many firings [`Schedule::upcoming`] looks at, at most.
pub const SCAN_LIMIT: usize = 1_000_000;

/// A delay in `[0, max)` drawn from `random` (uniform enough for spreading runs).
pub fn jitter_delay(max: std::time::Duration, random: u128) -> std::time::Duration {
    match max.as_nanos() {
        0 => std::time::Duration::ZERO,
        n => std::time::Duration::from_nanos(u64::try_from(random % n).unwrap_or(0)),
    }
}

/// The next firing of `entry` strictly after `after` (its cron read in its zone).
pub fn next_firing(entry: &Entry, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    entry.timezone.firings(&entry.schedule, after).next()
}

/// Resolves a file named in a schedule (an experiment's path, a settings or var
/// file): the path to use, or what is wrong with it (no such file).
pub type Resolve<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parse and check a schedule file's text: every problem, each with its path. Paths
/// are kept as written.
pub fn parse(text: &str) -> Result<Schedule, Vec<String>> {
    parse_in(text, &|s| Ok(s.to_string()))
}

/// [`parse`], each file it names (not an http(s) experiment) passed through
/// `resolve`, whose problems join the others.
pub fn parse_in(text: &str, resolve: Resolve) -> Result<Schedule, Vec<String>> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| vec![format!("$: {e}")])?;
    let mut p = Vec::new();
    let Some(top) = doc.as_object() else {
        return Err(vec!["$: expected a mapping with `experiments`".into()]);
    };
    for k in top.keys() {
        if !["experiments", "windows", "settings", "timezone"].contains(&k.as_str()) {
            p.push(format!(
                "$.{k}: unknown key (expected experiments, windows, settings, timezone)"
            ));
        }
    }
    let timezone = zone(top.get("timezone"), "$.timezone", &mut p).unwrap_or_default();
    let windows = windows(top.get("windows"), "$.windows", timezone, &mut p);
    let settings = file(top.get("settings"), "$.settings", resolve, &mut p);
    let mut entries: Vec<Entry> = Vec::new();
    match top.get("experiments").and_then(|e| e.as_array()) {
        None => p.push("$.experiments: required, a list of experiments".into()),
        Some(list) if list.is_empty() => p.push("$.experiments: empty".into()),
        Some(list) => {
            for (i, e) in list.iter().enumerate() {
                let path = format!("$.experiments[{i}]");
                if let Some(entry) = entry(e, &path, resolve, timezone, &mut p) {
                    if entries.iter().any(|x| x.name == entry.name) {
                        p.push(format!("{path}.name: {:?} is used twice", entry.name));
                    }
                    entries.push(entry);
                }
            }
        }
    }
    if p.is_empty() {
        Ok(Schedule {
            entries,
            windows,
            settings,
        })
    } else {
        Err(p)
    }
}

fn string(v: Option<&Value>, path: &str, p: &mut Vec<String>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            p.push(format!("{path}: expected a non-empty string"));
            None
        }
        None => None,
    }
}

/// A mapping of scalars as `key=value` strings.
fn pairs(v: Option<&Value>, path: &str, p: &mut Vec<String>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some(format!("{k}={s}")),
                Value::Number(_) | Value::Bool(_) => Some(format!("{k}={v}")),
                _ => {
                    p.push(format!("{path}.{k}: expected a string, number or boolean"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            p.push(format!("{path}: expected a mapping"));
            Vec::new()
        }
    }
}

/// A string naming a file, through `resolve`.
fn file(v: Option<&Value>, path: &str, resolve: Resolve, p: &mut Vec<String>) -> Option<String> {
    let s = string(v, path, p)?;
    resolve(&s).map_err(|e| p.push(format!("{path}: {e}"))).ok()
}

/// A zone (`timezone`, a window's `tz`), if given.
fn zone(v: Option<&Value>, path: &str, p: &mut Vec<String>) -> Option<Zone> {
    let s = string(v, path, p)?;
    s.parse::<Zone>()
        .map_err(|e| p.push(format!("{path}: {e}")))
        .ok()
}

/// An entry; `timezone` is the file's.
fn entry(
    v: &Value,
    path: &str,
    resolve: Resolve,
    timezone: Zone,
    p: &mut Vec<String>,
) -> Option<Entry> {
    let Some(m) = v.as_object() else {
        p.push(format!("{path}: expected a mapping"));
        return None;
    };
    const KEYS: &[&str] = &[
        "name",
        "experiment",
        "cron",
        "labels",
        "vars",
        "var_files",
        "settings",
        "rollback_strategy",
        "hypothesis_strategy",
        "jitter",
        "windows",
        "timezone",
    ];
    for k in m.keys() {
        if !KEYS.contains(&k.as_str()) {
            p.push(format!(
                "{path}.{k}: unknown key (expected {})",
                KEYS.join(", ")
            ));
        }
    }
    let before = p.len();
    let experiment = string(m.get("experiment"), &format!("{path}.experiment"), p).and_then(|x| {
        if x.starts_with("http://") || x.starts_with("https://") {
            Some(x)
        } else {
            resolve(&x)
                .map_err(|e| p.push(format!("{path}.experiment: {e}")))
                .ok()
        }
    });
    let name = string(m.get("name"), &format!("{path}.name"), p).or_else(|| {
        m.get("experiment")
            .and_then(|x| x.as_str())
            .map(str::to_string)
    });
    if experiment.is_none() && !m.contains_key("experiment") {
        p.push(format!("{path}.experiment: required"));
    }
    let cron_text = string(m.get("cron"), &format!("{path}.cron"), p);
    if cron_text.is_none() && !m.contains_key("cron") {
        p.push(format!("{path}.cron: required"));
    }
    let schedule = cron_text.as_ref().and_then(|c| match cron_schedule(c) {
        Ok(s) => Some(s),
        Err(e) => {
            p.push(format!("{path}.cron: {e}"));
            None
        }
    });
    let labels = pairs(m.get("labels"), &format!("{path}.labels"), p);
    for l in &labels {
        if let Err(e) = parse_label(l) {
            let key = l.split_once('=').map_or(l.as_str(), |(k, _)| k);
            p.push(format!("{path}.labels.{key}: {e}"));
        }
    }
    let vars = pairs(m.get("vars"), &format!("{path}.vars"), p);
    for v in &vars {
        if let Err(e) = parse_var(v) {
            let key = v.split_once('=').map_or(v.as_str(), |(k, _)| k);
            p.push(format!("{path}.vars.{key}: {e}"));
        }
    }
    let var_files = strings(m.get("var_files"), &format!("{path}.var_files"), p)
        .into_iter()
        .enumerate()
        .filter_map(|(i, f)| {
            resolve(&f)
                .map_err(|e| p.push(format!("{path}.var_files[{i}]: {e}")))
                .ok()
        })
        .collect();
    let settings = file(m.get("settings"), &format!("{path}.settings"), resolve, p);
    let rollback_strategy = strategy::<RollbackStrategy>(
        m.get("rollback_strategy"),
        &format!("{path}.rollback_strategy"),
        p,
    );
    let hypothesis_strategy = strategy::<HypothesisStrategy>(
        m.get("hypothesis_strategy"),
        &format!("{path}.hypothesis_strategy"),
        p,
    );
    let jitter = match m.get("jitter") {
        None => None,
        Some(v) => match v.as_f64().map(crate::duration::seconds) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                p.push(format!("{path}.jitter: {e}"));
                None
            }
            None => {
                p.push(format!("{path}.jitter: expected a number of seconds"));
                None
            }
        },
    };
    let timezone = zone(m.get("timezone"), &format!("{path}.timezone"), p).unwrap_or(timezone);
    let windows = windows(m.get("windows"), &format!("{path}.windows"), timezone, p);
    if p.len() > before {
        return None;
    }
    Some(Entry {
        name: name?,
        experiment: experiment?,
        cron: cron_text?,
        schedule: schedule?,
        timezone,
        labels,
        vars,
        var_files,
        settings,
        rollback_strategy,
        hypothesis_strategy,
        jitter,
        windows,
    })
}

/// A list of non-empty strings (a single string is a list of one).
fn strings(v: Option<&Value>, path: &str, p: &mut Vec<String>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(Value::String(_)) => string(v, path, p).into_iter().collect(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, x)| string(Some(x), &format!("{path}[{i}]"), p))
            .collect(),
        Some(_) => {
            p.push(format!("{path}: expected a list of paths"));
            Vec::new()
        }
    }
}

/// A strategy by its name (`RollbackStrategy`, `HypothesisStrategy`).
fn strategy<T: FromStr<Err = String>>(
    v: Option<&Value>,
    path: &str,
    p: &mut Vec<String>,
) -> Option<T> {
    let s = string(v, path, p)?;
    s.parse::<T>()
        .map_err(|e| p.push(format!("{path}: {e}")))
        .ok()
}

/// A cron expression with seconds: 6 fields (`sec min hour dom month dow`) or 7 (a year).
pub fn cron_schedule(text: &str) -> Result<cron::Schedule, String> {
    let n = text.split_whitespace().count();
    if n != 6 && n != 7 {
        return Err(format!(
            "{text:?}: expected 6 fields (seconds minutes hours day-of-month month day-of-week) or 7 (and year), got {n}"
        ));
    }
    cron::Schedule::from_str(text).map_err(|e| format!("{text:?}: {e}"))
}

/// Windows; one without `tz` is in `timezone` (that of the file or entry holding it).
fn windows(v: Option<&Value>, path: &str, timezone: Zone, p: &mut Vec<String>) -> Vec<Window> {
    let Some(v) = v else { return Vec::new() };
    let Some(list) = v.as_array() else {
        p.push(format!("{path}: expected a list of windows"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, w) in list.iter().enumerate() {
        let wp = format!("{path}[{i}]");
        let Some(m) = w.as_object() else {
            p.push(format!("{wp}: expected a mapping with days, from, to, tz"));
            continue;
        };
        for k in m.keys() {
            if !["days", "from", "to", "tz"].contains(&k.as_str()) {
                p.push(format!(
                    "{wp}.{k}: unknown key (expected days, from, to, tz)"
                ));
            }
        }
        let days = match m.get("days").and_then(|d| d.as_str()) {
            Some(d) => parse_days(d)
                .map_err(|e| p.push(format!("{wp}.days: {e}")))
                .ok(),
            None => {
                p.push(format!("{wp}.days: required (e.g. mon-fri)"));
                None
            }
        };
        let time = |k: &str, p: &mut Vec<String>| match m.get(k).and_then(|t| t.as_str()) {
            Some(t) => NaiveTime::parse_from_str(t, "%H:%M")
                .map_err(|_| p.push(format!("{wp}.{k}: {t:?} is not HH:MM")))
                .ok(),
            None => {
                p.push(format!("{wp}.{k}: required, HH:MM"));
                None
            }
        };
        let from = time("from", p);
        let to = time("to", p);
        let tz = match m.get("tz") {
            None => Some(timezone),
            v => zone(v, &format!("{wp}.tz"), p),
        };
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                p.push(format!(
                    "{wp}: from must be before to (a window within one day)"
                ));
            }
        }
        if let (Some(days), Some(from), Some(to), Some(tz)) = (days, from, to, tz) {
            out.push(Window { days, from, to, tz });
        }
    }
    out
}

/// `mon-fri`, `sat,sun`, `mon,wed-fri`, `daily`.
pub fn parse_days(text: &str) -> Result<Vec<Weekday>, String> {
    let day = |s: &str| -> Result<Weekday, String> {
        s.trim()
            .parse::<Weekday>()
            .map_err(|_| format!("{s:?} is not a day (mon, tue, … sun)"))
    };
    if text.trim() == "daily" {
        return Ok(vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]);
    }
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (mut d, end) = (day(a)?, day(b)?);
                loop {
                    if !out.contains(&d) {
                        out.push(d);
                    }
                    if d == end {
                        break;
                    }
                    d = d.succ();
                }
            }
            None => {
                let d = day(part)?;
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const FILE: &str = r#"
windows: [{days: mon-fri, from: "09:00", to: "17:00", tz: "UTC"}]
experiments:
  - name: checkout
    experiment: checkout.json
    cron: "*/1 * * * * *"
    labels: {service: checkout}
    vars: {rate: 5}
  - experiment: nightly.yaml
    cron: "0 0 2 * * *"
    windows: [{days: "sat,sun", from: "00:00", to: "06:00", tz: "+02:00"}]
"#;

    #[test]
    fn a_schedule_parses_with_windows_and_seconds() {
        let s = parse(FILE).unwrap();
        assert_eq!(s.entries.len(), 2);
        let c = &s.entries[0];
        assert_eq!(
            (c.name.as_str(), c.labels.clone(), c.vars.clone()),
            (
                "checkout",
                vec!["service=checkout".to_string()],
                vec!["rate=5".to_string()]
            )
        );
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(); // a Monday
        assert_eq!(next_firing(c, t), Some(t + chrono::Duration::seconds(1)));
        assert!(s.in_window(c, t));
        assert!(!s.in_window(c, Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()));
        assert!(!s.in_window(c, Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap())); // Sunday
        let n = &s.entries[1];
        assert_eq!(n.name, "nightly.yaml");
        // Saturday 03:00 at +02:00 is 01:00 UTC.
        assert!(s.in_window(n, Utc.with_ymd_and_hms(2026, 12, 5, 1, 0, 0).unwrap()));
        assert!(!s.in_window(n, Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap()));
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let bad = r#"
windows: [{days: mon-xyz, from: "9", to: "17:00"}]
experiments:
  - experiment: a.json
    cron: "* * * * *"
  - cron: "*/1 * * * * *"
    colour: red
  - {name: x, experiment: b.json, cron: "61 * * * * *", labels: [1]}
"#;
        let p = parse(bad).unwrap_err();
        let has = |s: &str| assert!(p.iter().any(|x| x.contains(s)), "{s} not in {p:#?}");
        has("$.windows[0].days: \"xyz\" is not a day");
        has("$.windows[0].from: \"9\" is not HH:MM");
        has("$.experiments[0].cron: \"* * * * *\": expected 6 fields");
        has("$.experiments[1].experiment: required");
        has("$.experiments[1].colour: unknown key");
        has("$.experiments[2].cron: \"61 * * * * *\"");
        has("$.experiments[2].labels: expected a mapping");
        assert_eq!(
            parse("experiments: []").unwrap_err(),
            ["$.experiments: empty"]
        );
    }

    #[test]
    fn entry_options_parse_and_files_go_through_the_resolver() {
        let text = r#"
settings: base.yaml
experiments:
  - name: a
    experiment: a.json
    cron: "0 0 12 * * *"
    vars: {"rate:int": 5}
    jitter: 2.5
    var_files: [one.env, two.json]
    rollback_strategy: never
    hypothesis_strategy: before-method-only
  - {experiment: "https://example.com/e.json", cron: "0 0 3 * * *", settings: own.yaml, var_files: three.env}
"#;
        let resolve = |s: &str| {
            if s.starts_with("missing") {
                Err(format!("{s}: no such file"))
            } else {
                Ok(format!("/base/{s}"))
            }
        };
        let s = parse_in(text, &resolve).unwrap();
        let (a, b) = (&s.entries[0], &s.entries[1]);
        assert_eq!(a.experiment, "/base/a.json");
        assert_eq!(a.var_files, ["/base/one.env", "/base/two.json"]);
        assert_eq!(a.vars, ["rate:int=5"]);
        assert_eq!(a.rollback_strategy, Some(RollbackStrategy::Never));
        assert_eq!(a.jitter, Some(std::time::Duration::from_millis(2500)));
        assert_eq!(b.jitter, None);
        assert_eq!(
            a.hypothesis_strategy,
            Some(HypothesisStrategy::BeforeMethodOnly)
        );
        assert_eq!(
            s.settings(a),
            Some("/base/base.yaml"),
            "the file's settings"
        );
        assert_eq!(b.experiment, "https://example.com/e.json", "a URL is kept");
        assert_eq!(b.name, "https://example.com/e.json");
        assert_eq!(
            b.var_files,
            ["/base/three.env"],
            "one path is a list of one"
        );
        assert_eq!(
            s.settings(b),
            Some("/base/own.yaml"),
            "its own settings win"
        );

        let bad = r#"
settings: missing-settings.yaml
experiments:
  - experiment: missing.json
    cron: "*/1 * * * * *"
    var_files: [ok.env, missing.env, 3]
    rollback_strategy: sometimes
    hypothesis_strategy: 1
    jitter: -1
    labels: {"bad-key": x}
    vars: {"r:zz": 1}
"#;
        let p = parse_in(bad, &resolve).unwrap_err();
        let has = |s: &str| assert!(p.iter().any(|x| x.contains(s)), "{s} not in {p:#?}");
        has("$.settings: missing-settings.yaml: no such file");
        has("$.experiments[0].experiment: missing.json: no such file");
        has("$.experiments[0].var_files[1]: missing.env: no such file");
        has("$.experiments[0].var_files[2]: expected a non-empty string");
        has("$.experiments[0].rollback_strategy: unknown value 'sometimes'");
        has("$.experiments[0].hypothesis_strategy: expected a non-empty string");
        has("$.experiments[0].labels.bad-key: label \"bad-key=x\": the key must be");
        has("$.experiments[0].vars.r:zz:");
        has("$.experiments[0].jitter: expected a non-negative number of seconds");
        assert_eq!(p.len(), 9, "{p:#?}");
        let p = parse("experiments: [{experiment: a, cron: \"*/1 * * * * *\", jitter: 1m}]")
            .unwrap_err();
        assert_eq!(p, ["$.experiments[0].jitter: expected a number of seconds"]);
    }

    #[test]
    fn a_jitter_delay_is_below_its_maximum() {
        use std::time::Duration;
        let max = Duration::from_secs(30);
        assert_eq!(jitter_delay(max, 0), Duration::ZERO);
        assert_eq!(jitter_delay(max, 30_000_000_001), Duration::from_nanos(1));
        assert_eq!(jitter_delay(Duration::ZERO, 12345), Duration::ZERO);
        for r in [1u128, 7 << 40, u128::MAX, u128::MAX / 3] {
            assert!(jitter_delay(max, r) < max);
        }
    }

    #[test]
    fn upcoming_firings_skip_those_outside_the_windows() {
        let s = parse(
            r#"
windows: [{days: mon-fri, from: "09:00", to: "17:00"}]
experiments:
  - {name: noon, experiment: a.json, cron: "0 0 12 * * *"}
  - {name: night, experiment: a.json, cron: "0 0 3 * * *"}
"#,
        )
        .unwrap();
        let fri = Utc.with_ymd_and_hms(2026, 12, 4, 13, 0, 0).unwrap(); // a Friday
        let noon = s.upcoming(&s.entries[0], fri, 3);
        let day = |d| Utc.with_ymd_and_hms(2026, 12, d, 12, 0, 0).unwrap();
        assert_eq!(noon, [day(7), day(8), day(9)], "the weekend skipped");
        assert!(s.upcoming(&s.entries[1], fri, 3).is_empty(), "never inside");
    }
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn a_window_in_a_named_zone_follows_its_daylight_saving() {
        let s = parse(
            r#"
experiments:
  - name: paris
    experiment: a.json
    cron: "0 0 * * * *"
    windows: [{days: mon-fri, from: "09:00", to: "17:00", tz: Europe/Paris}]
  - name: new-york
    experiment: a.json
    cron: "0 0 * * * *"
    windows: [{days: mon-fri, from: "09:00", to: "17:00", tz: America/New_York}]
"#,
        )
        .unwrap();
        let (paris, ny) = (&s.entries[0], &s.entries[1]);
        let inside = |e: &Entry, t| s.in_window(e, t);
        // Summer (CEST, UTC+2), Monday 6 July 2026: 07:00–15:00 UTC.
        assert!(!inside(paris, utc(2026, 7, 6, 6, 59, 59)));
        assert!(inside(paris, utc(2026, 7, 6, 7, 0, 0)));
        assert!(inside(paris, utc(2026, 7, 6, 14, 59, 59)));
        assert!(!inside(paris, utc(2026, 7, 6, 15, 0, 0)));
        // Winter (CET, UTC+1), Monday 7 December 2026: 08:00–16:00 UTC.
        assert!(!inside(paris, utc(2026, 12, 7, 7, 59, 59)));
        assert!(inside(paris, utc(2026, 12, 7, 8, 0, 0)));
        assert!(inside(paris, utc(2026, 12, 7, 15, 59, 59)));
        assert!(!inside(paris, utc(2026, 12, 7, 16, 0, 0)));
        // The days are Paris's: Saturday 00:30 in Paris is Friday 23:30 UTC.
        assert!(!inside(paris, utc(2026, 12, 11, 23, 30, 0)));
        // New York: EDT (UTC-4) in July, EST (UTC-5) in December.
        assert!(inside(ny, utc(2026, 7, 6, 13, 0, 0)));
        assert!(!inside(ny, utc(2026, 7, 6, 21, 0, 0)));
        assert!(!inside(ny, utc(2026, 12, 7, 13, 59, 59)));
        assert!(inside(ny, utc(2026, 12, 7, 21, 59, 59)));
        // The same window across the change of 29 March 2026 (02:00 CET → 03:00 CEST):
        // hourly firings from Friday 27 to Monday 30 March.
        let hours: Vec<u32> = s
            .upcoming(paris, utc(2026, 3, 27, 0, 0, 0), 16)
            .iter()
            .map(|t| t.format("%d%H").to_string().parse().unwrap())
            .collect();
        assert_eq!(
            hours,
            [
                2708, 2709, 2710, 2711, 2712, 2713, 2714, 2715, // CET: 09:00–16:00 Paris
                3007, 3008, 3009, 3010, 3011, 3012, 3013, 3014, // CEST
            ]
        );
    }

    #[test]
    fn zones_parse_and_an_unknown_one_is_a_problem_with_its_path() {
        for (t, z) in [
            ("UTC", Zone::default()),
            ("Z", Zone::default()),
            ("+02:00", Zone::Fixed(FixedOffset::east_opt(7200).unwrap())),
            ("-05:30", Zone::Fixed(FixedOffset::west_opt(19800).unwrap())),
            ("Europe/Paris", Zone::Named(chrono_tz::Europe::Paris)),
            (
                "America/New_York",
                Zone::Named(chrono_tz::America::New_York),
            ),
            ("Etc/UTC", Zone::Named(chrono_tz::Etc::UTC)),
        ] {
            assert_eq!(t.parse::<Zone>(), Ok(z), "{t}");
        }
        let bad = r#"
timezone: Mars/Olympus
windows: [{days: mon-fri, from: "09:00", to: "17:00", tz: 2}]
experiments:
  - experiment: a.json
    cron: "0 0 9 * * *"
    timezone: europe/paris
    windows:
      - {days: mon-fri, from: "09:00", to: "17:00", tz: Europe/Paris}
      - {days: sat, from: "09:00", to: "12:00", tz: "Europe/Pariss"}
      - {days: sun, from: "09:00", to: "12:00", tz: "+25:00"}
"#;
        let p = parse(bad).unwrap_err();
        let zone = |path: &str, t: &str| {
            format!("{path}: {t:?} is not a time zone (an IANA name like Europe/Paris, UTC, or an offset like +02:00)")
        };
        assert_eq!(
            p,
            [
                zone("$.timezone", "Mars/Olympus"),
                "$.windows[0].tz: expected a non-empty string".to_string(),
                zone("$.experiments[0].timezone", "europe/paris"),
                zone("$.experiments[0].windows[1].tz", "Europe/Pariss"),
                zone("$.experiments[0].windows[2].tz", "+25:00"),
            ]
        );
    }

    #[test]
    fn a_cron_is_read_in_its_entry_s_zone_else_the_file_s_else_utc() {
        let s = parse(
            r#"
timezone: Europe/Paris
windows: [{days: mon-fri, from: "09:00", to: "10:00"}]
experiments:
  - {name: file, experiment: a.json, cron: "0 0 9 * * *"}
  - {name: own, experiment: a.json, cron: "0 0 9 * * *", timezone: America/New_York,
     windows: [{days: daily, from: "09:00", to: "10:00"}]}
  - {name: offset, experiment: a.json, cron: "0 0 9 * * *", timezone: "+02:00",
     windows: [{days: daily, from: "00:00", to: "23:59", tz: UTC}]}
"#,
        )
        .unwrap();
        let (file, own, offset) = (&s.entries[0], &s.entries[1], &s.entries[2]);
        assert_eq!(file.timezone, Zone::Named(chrono_tz::Europe::Paris));
        assert_eq!(
            s.windows[0].tz, file.timezone,
            "a window without tz: the file's timezone"
        );
        assert_eq!(
            own.windows[0].tz,
            Zone::Named(chrono_tz::America::New_York),
            "an entry's window without tz: the entry's timezone"
        );
        let first = |e, t| s.upcoming(e, t, 1)[0];
        let (summer, winter) = (utc(2026, 7, 5, 12, 0, 0), utc(2026, 12, 6, 12, 0, 0));
        assert_eq!(first(file, summer), utc(2026, 7, 6, 7, 0, 0));
        assert_eq!(first(file, winter), utc(2026, 12, 7, 8, 0, 0));
        assert_eq!(first(own, summer), utc(2026, 7, 5, 13, 0, 0));
        assert_eq!(first(own, winter), utc(2026, 12, 6, 14, 0, 0));
        assert_eq!(first(offset, winter), utc(2026, 12, 7, 7, 0, 0));
        assert_eq!(next_firing(offset, summer), Some(utc(2026, 7, 6, 7, 0, 0)));
        // No timezone anywhere: UTC, as before.
        let s = parse("experiments: [{experiment: a, cron: \"0 0 9 * * *\"}]").unwrap();
        assert_eq!(s.entries[0].timezone, Zone::default());
        assert_eq!(
            next_firing(&s.entries[0], summer),
            Some(utc(2026, 7, 6, 9, 0, 0))
        );
    }

    #[test]
    fn a_skipped_local_time_does_not_fire_and_a_repeated_one_fires_once() {
        let paris = Zone::Named(chrono_tz::Europe::Paris);
        let daily = cron_schedule("0 30 2 * * *").unwrap();
        let list =
            |s: &cron::Schedule, after, n| paris.firings(s, after).take(n).collect::<Vec<_>>();
        // Spring forward, 29 March 2026: 02:00 CET is 03:00 CEST, no 02:30 that day.
        assert_eq!(
            list(&daily, utc(2026, 3, 27, 12, 0, 0), 3),
            [
                utc(2026, 3, 28, 1, 30, 0), // CET
                utc(2026, 3, 30, 0, 30, 0), // CEST
                utc(2026, 3, 31, 0, 30, 0),
            ]
        );
        // Fall back, 25 October 2026: 03:00 CEST is 02:00 CET, 02:30 comes twice; the
        // first one fires.
        assert_eq!(
            list(&daily, utc(2026, 10, 24, 12, 0, 0), 2),
            [utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 26, 1, 30, 0)]
        );
        // Every half hour through the fall-back: the repeated hour fires once.
        let half = cron_schedule("0 */30 * * * *").unwrap();
        assert_eq!(
            list(&half, utc(2026, 10, 24, 23, 45, 0), 5),
            [
                utc(2026, 10, 25, 0, 0, 0),  // 02:00 CEST
                utc(2026, 10, 25, 0, 30, 0), // 02:30 CEST
                utc(2026, 10, 25, 2, 0, 0),  // 03:00 CET (02:00 and 02:30 CET not again)
                utc(2026, 10, 25, 2, 30, 0),
                utc(2026, 10, 25, 3, 0, 0),
            ]
        );
        // From inside the second pass (02:10 CET): the next is 03:00 CET.
        assert_eq!(
            paris.firings(&half, utc(2026, 10, 25, 1, 10, 0)).next(),
            Some(utc(2026, 10, 25, 2, 0, 0))
        );
        // What the cron crate does by itself with a zone (why `firings` does not pass
        // it the zone): it skips the gap too, but gives both 02:30s of the fall-back.
        let tz = chrono_tz::Europe::Paris;
        let raw: Vec<DateTime<Utc>> = daily
            .after(&utc(2026, 10, 24, 12, 0, 0).with_timezone(&tz))
            .take(3)
            .map(|t| t.to_utc())
            .collect();
        assert_eq!(
            raw,
            [
                utc(2026, 10, 25, 0, 30, 0),
                utc(2026, 10, 25, 1, 30, 0),
                utc(2026, 10, 26, 1, 30, 0)
            ]
        );
        let raw: Vec<DateTime<Utc>> = daily
            .after(&utc(2026, 3, 27, 12, 0, 0).with_timezone(&tz))
            .take(2)
            .map(|t| t.to_utc())
            .collect();
        assert_eq!(
            raw,
            [utc(2026, 3, 28, 1, 30, 0), utc(2026, 3, 30, 0, 30, 0)]
        );
    }
}
