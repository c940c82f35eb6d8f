//! A seeded, bounded mutation test: the example experiments (and the compatibility
//! suite's), broken a few thousand ways, through the parser and a dry run, in
//! process. Nothing may panic, not even inside a task the run spawned (a panic hook
//! counts them: a panicking background task would otherwise pass unnoticed).
//!
//! Two kinds of mutation, both driven by proptest with a fixed seed, so a failure is
//! reproduced by running the test again (and shrunk to a small case):
//! - text: bytes of the document replaced, removed or repeated, then loaded as JSON or
//!   YAML and parsed;
//! - structure: values anywhere in the parsed document replaced by hostile ones
//!   (huge, negative and non-finite-looking numbers, `${}` templates, wrong types,
//!   deep nesting), keys removed or added, list elements repeated; what still parses
//!   is resolved and run with `--dry activities`.

use faultline::experiment::config::{resolve, Overrides};
use faultline::experiment::load::{from_text, Format};
use faultline::experiment::parse;
use faultline::run::{Dry, Interrupt, RunOptions, Runner};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// The seeds: every example experiment and every compatibility experiment.
fn seeds() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["examples", "tests/compat/experiments"] {
        let mut todo = vec![root.join(dir)];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let name = p.display().to_string();
                if p.is_dir() {
                    todo.push(p);
                } else if (name.ends_with(".json") || name.ends_with(".yaml"))
                    && std::fs::read_to_string(&p).is_ok_and(|t| t.contains("method"))
                {
                    out.push((name, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
    }
    out.sort();
    assert!(out.len() >= 20, "seeds found: {}", out.len());
    out
}

fn hostile(i: u8) -> Value {
    let deep = (0..64).fold(json!(1), |v, _| json!([v]));
    let values = [
        json!(1.8e19),
        json!(-1),
        json!(0),
        json!(1e308),
        json!(-1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(0.000_000_001),
        json!("1.8e19"),
        json!("-5"),
        json!("NaN"),
        json!("inf"),
        json!(""),
        json!("${missing}"),
        json!("${"),
        json!("$${x}"),
        json!("\u{0}\u{1}\u{7f}"),
        json!("x".repeat(10_000)),
        json!([]),
        json!({}),
        Value::Null,
        json!(true),
        deep,
        json!({"type": "env", "key": "FAULTLINE_MUTATION_UNSET"}),
        json!({"ref": "nothing"}),
        json!({"type": "regex", "pattern": "(", "target": "stdout"}),
        json!({"type": "jsonpath", "path": "$[", "expect": 1}),
        json!({"type": "range", "range": [2, 1]}),
        json!({"type": "probe", "name": "p", "provider": {"type": "process", "path": "true"}}),
        json!([1, 2, 3]),
        json!({"before": 1e300, "after": "${t}"}),
        json!({"strategy": "continuously", "frequency": 1e-9}),
    ];
    values[usize::from(i) % values.len()].clone()
}

const KEYS: &[&str] = &[
    "timeout",
    "pauses",
    "tolerance",
    "provider",
    "type",
    "ref",
    "background",
    "controls",
    "configuration",
    "secrets",
    "frequency",
    "arguments",
    "url",
    "path",
    "method",
    "strategy",
    "rollbacks",
    "steady-state-hypothesis",
    "runtime",
    "expected_status",
    "headers",
    "env",
];

/// Every node of `v`, in a fixed order, as JSON pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                pointers(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn mutate(doc: &mut Value, (node, op, value, key): (u32, u8, u8, u8)) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let at = all[node as usize % all.len()].clone();
    let Some(target) = doc.pointer_mut(&at) else {
        return;
    };
    match op % 5 {
        0 | 1 => *target = hostile(value),
        2 => match target {
            Value::Object(m) if !m.is_empty() => {
                let k = m
                    .keys()
                    .nth(usize::from(key) % m.len())
                    .cloned()
                    .unwrap_or_default();
                m.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(usize::from(key) % a.len());
            }
            _ => *target = hostile(value),
        },
        3 => match target {
            Value::Object(m) => {
                m.insert(
                    KEYS[usize::from(key) % KEYS.len()].to_string(),
                    hostile(value),
                );
            }
            Value::Array(a) if !a.is_empty() => {
                let repeated = a[usize::from(key) % a.len()].clone();
                a.push(repeated);
            }
            _ => *target = hostile(value),
        },
        _ => {
            if let Value::String(s) = target {
                *s = format!("${{{s}}}");
            } else {
                *target = hostile(value);
            }
        }
    }
}

/// Parse, and when it parses, resolve and run it dry. Returns whether it ran.
/// Strategies the run is given, as flags would give them (the experiment's own
/// runtime block wins, as it does over settings).
const STRATEGIES: &[&str] = &[
    "default",
    "before-method-only",
    "after-method-only",
    "during-method-only",
    "continuously",
];

fn parse_and_dry_run(rt: &tokio::runtime::Runtime, doc: &Value, strategy: u8) -> bool {
    let Ok(experiment) = parse(doc) else {
        return false;
    };
    let env = |k: &str| (k == "HOME").then(|| "/nonexistent".to_string());
    let Ok(mut resolved) = resolve(&experiment, &Overrides::default(), &env) else {
        return false;
    };
    // Dynamic configuration runs its probe even in a dry run: not here.
    resolved.pending.clear();
    // The experiment's own runtime, as `faultline run` applies it.
    let rt_opts = &experiment.runtime;
    let defaults = RunOptions::default();
    let options = RunOptions {
        hypothesis_strategy: rt_opts.hypothesis_strategy.unwrap_or_else(|| {
            STRATEGIES[usize::from(strategy) % STRATEGIES.len()]
                .parse()
                .expect("a strategy")
        }),
        hypothesis_frequency: rt_opts
            .hypothesis_frequency
            .map(|f| faultline::duration::positive_seconds(f).expect("validated"))
            .unwrap_or(defaults.hypothesis_frequency),
        fail_fast: rt_opts.fail_fast.unwrap_or(false),
        rollback_strategy: rt_opts
            .rollback_strategy
            .unwrap_or(defaults.rollback_strategy),
        dry: Some(Dry::Activities),
        ..defaults
    };
    let runner = Runner {
        experiment,
        options,
        resolved,
        controls: std::sync::Arc::new(Vec::<Box<dyn faultline::control::Control>>::new()),
        interrupt: Interrupt::new(),
        run_id: "mutation".into(),
        env: Vec::new(),
        tracer: None,
        trace_parent: opentelemetry::Context::new(),
        safeguards: Vec::new(),
        layers: Vec::new(),
        processes: Default::default(),
        slo: Default::default(),
        python: None,
        live: None,
        labels: Default::default(),
        journal: None,
        masked: Vec::new(),
    };
    let outcome = rt.block_on(runner.run());
    let journal = serde_json::to_value(&outcome.record).expect("the record serialises");
    assert!(journal.get("status").is_some());
    assert_eq!(outcome.record.status(), outcome.status);
    true
}

fn runner(cases: u32, seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn mutated_experiments_never_panic_the_parser_or_a_dry_run() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let seeds = seeds();
    let docs: Vec<Value> = seeds
        .iter()
        .filter_map(|(name, text)| from_text(name, text.clone(), None).ok().map(|d| d.value))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Structure: up to 4 mutations of one seed, then parse and a dry run.
    let ran = std::cell::Cell::new(0usize);
    let strategy = (
        0..docs.len(),
        proptest::collection::vec((any::<u32>(), any::<u8>(), any::<u8>(), any::<u8>()), 1..5),
        any::<u8>(),
    );
    runner(3000, 0x5eed_f417)
        .run(&strategy, |(i, ops, hypothesis)| {
            let mut doc = docs[i].clone();
            for op in ops {
                mutate(&mut doc, op);
            }
            if parse_and_dry_run(&rt, &doc, hypothesis) {
                ran.set(ran.get() + 1);
            }
            prop_assert_eq!(
                PANICS.load(Ordering::SeqCst),
                0,
                "a panic (see above) for {}",
                doc
            );
            Ok(())
        })
        .unwrap();
    // Enough of them still parsed to exercise the dry run, not only the parser.
    assert!(
        ran.get() >= 300,
        "only {} mutated experiments ran",
        ran.get()
    );

    // Text: bytes replaced, removed or repeated, then loaded and parsed.
    let strategy = (
        0..seeds.len(),
        proptest::collection::vec((any::<u32>(), any::<u8>(), 0u8..3), 1..8),
    );
    runner(2000, 0x7e47_f417)
        .run(&strategy, |(i, edits)| {
            let (name, text) = &seeds[i];
            let mut bytes = text.clone().into_bytes();
            for (at, byte, op) in edits {
                let at = at as usize % bytes.len().max(1);
                match op {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => {
                        let end = (at + usize::from(byte)).min(bytes.len());
                        let chunk = bytes[at..end].to_vec();
                        bytes.splice(at..at, chunk);
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let format = if name.ends_with(".yaml") {
                Format::Yaml
            } else {
                Format::Json
            };
            if let Ok(doc) = from_text(name, text.clone(), Some(format)) {
                let _ = parse(&doc.value);
            }
            prop_assert_eq!(
                PANICS.load(Ordering::SeqCst),
                0,
                "a panic (see above) for {}",
                text
            );
            Ok(())
        })
        .unwrap();
}
