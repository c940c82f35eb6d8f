//! Objective files as teams write them: one or many documents (a JSON object, a JSON
//! list, or YAML with `---` separators), each a Reliably `Objective` or an OpenSLO v1
//! `SLO` (the subset of `../shared/reference/slo.md`). Every problem of every document
//! is reported, each prefixed with the document's number, so one bad document stores
//! nothing.

use super::model::{parse_objective, Labels, Objective, Sli, SloProblem};
use super::window::parse_window;
use serde_json::{json, Value};

/// The OpenSLO apiVersion this reads.
pub const OPENSLO_V1: &str = "openslo/v1";

/// Every objective in `text`, or every problem (paths prefixed with `document N: `
/// when the text holds more than one document).
pub fn parse_objectives(text: &str) -> Result<Vec<Objective>, Vec<SloProblem>> {
    let docs = documents(text)?;
    let many = docs.len() > 1;
    // OpenSLO SLIs may be separate documents an SLO names with `indicatorRef`.
    let slis: Vec<(String, Value)> = docs
        .iter()
        .filter(|d| is_openslo(d) && kind(d).eq_ignore_ascii_case("SLI"))
        .filter_map(|d| {
            Some((
                d.pointer("/metadata/name")?.as_str()?.to_string(),
                d.clone(),
            ))
        })
        .collect();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let prefix = |p: SloProblem| SloProblem {
            path: if many {
                format!("document {}: {}", i + 1, p.path)
            } else {
                p.path
            },
            message: p.message,
        };
        let parsed = if is_openslo(doc) {
            if kind(doc).eq_ignore_ascii_case("SLI") {
                continue; // used through indicatorRef
            }
            openslo(doc, &slis)
        } else {
            parse_objective(doc).map(|o| vec![o])
        };
        match parsed {
            Ok(os) => out.extend(os),
            Err(ps) => problems.extend(ps.into_iter().map(prefix)),
        }
    }
    if problems.is_empty() && out.is_empty() {
        problems.push(SloProblem {
            path: "$".into(),
            message: "holds no objective".into(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The documents of a text: JSON (an object or a list of them), else YAML.
fn documents(text: &str) -> Result<Vec<Value>, Vec<SloProblem>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(a)) => return Ok(a),
            Ok(v) => return Ok(vec![v]),
            // `{a: 1}` is YAML flow style, not JSON: let YAML try.
            Err(e) if trimmed.starts_with('[') || looks_like_json(trimmed) => {
                return Err(vec![SloProblem {
                    path: "$".into(),
                    message: format!("is not valid JSON: {e}"),
                }])
            }
            Err(_) => {}
        }
    }
    match serde_saphyr::from_multiple::<Value>(text) {
        Ok(docs) => Ok(docs
            .into_iter()
            .flat_map(|d| match d {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                v => vec![v],
            })
            .collect()),
        Err(e) => Err(vec![SloProblem {
            path: "$".into(),
            message: format!("is not valid YAML or JSON: {e}"),
        }]),
    }
}

fn looks_like_json(t: &str) -> bool {
    t.starts_with("{\"") || t.starts_with("{\n") || t.starts_with("{ \"")
}

fn is_openslo(doc: &Value) -> bool {
    doc.get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|a| a.to_ascii_lowercase().starts_with("openslo/"))
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn problem(path: &str, message: impl Into<String>) -> SloProblem {
    SloProblem {
        path: path.into(),
        message: message.into(),
    }
}

/// An OpenSLO v1 `SLO`: one objective per entry of `spec.objectives`, labelled
/// `name` (and `objective` when there are several) and `service`, selecting the
/// indicators labelled `service` and `indicator_name` (the SLI's name).
fn openslo(doc: &Value, slis: &[(String, Value)]) -> Result<Vec<Objective>, Vec<SloProblem>> {
    let mut ps = Vec::new();
    if doc.get("apiVersion").and_then(Value::as_str) != Some(OPENSLO_V1) {
        ps.push(problem(
            "apiVersion",
            format!(
                "{} is not supported; write {OPENSLO_V1}",
                doc.get("apiVersion").unwrap_or(&Value::Null)
            ),
        ));
        return Err(ps);
    }
    if !kind(doc).eq_ignore_ascii_case("SLO") {
        ps.push(problem(
            "kind",
            format!(
                "{:?} is not supported: only SLO (and SLIs it names) are read",
                kind(doc)
            ),
        ));
        return Err(ps);
    }
    let name = doc.pointer("/metadata/name").and_then(Value::as_str);
    if name.is_none_or(|n| n.trim().is_empty()) {
        ps.push(problem("metadata.name", "is missing"));
    }
    let service = doc.pointer("/spec/service").and_then(Value::as_str);
    if service.is_none_or(|s| s.trim().is_empty()) {
        ps.push(problem("spec.service", "is missing"));
    }
    match doc.pointer("/spec/budgetingMethod").and_then(Value::as_str) {
        None | Some("Occurrences") => {}
        Some(other) => ps.push(problem(
            "spec.budgetingMethod",
            format!("{other:?} is not supported: only Occurrences"),
        )),
    }
    if doc.pointer("/spec/objectives/0/compositeWeight").is_some()
        || doc.pointer("/spec/indicator/spec/composite").is_some()
    {
        ps.push(problem("spec", "composite SLOs are not supported"));
    }
    // The SLI: inline, or a separate document.
    let sli_name = match (
        doc.pointer("/spec/indicator"),
        doc.pointer("/spec/indicatorRef").and_then(Value::as_str),
    ) {
        (Some(sli), _) => sli
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                ps.push(problem("spec.indicator.metadata.name", "is missing"));
                None
            }),
        (None, Some(r)) => {
            if slis.iter().any(|(n, _)| n == r) {
                Some(r.to_string())
            } else {
                ps.push(problem(
                    "spec.indicatorRef",
                    format!("names the SLI {r:?}, which is not among these documents"),
                ));
                None
            }
        }
        (None, None) => {
            ps.push(problem(
                "spec.indicator",
                "is missing (or give spec.indicatorRef)",
            ));
            None
        }
    };
    // The SLI's queries: inline, or from the document it names.
    let sli_doc = match doc.pointer("/spec/indicator") {
        Some(inline) => Some(("spec.indicator.spec", inline.get("spec"))),
        None => doc
            .pointer("/spec/indicatorRef")
            .and_then(Value::as_str)
            .and_then(|r| slis.iter().find(|(n, _)| n == r))
            .map(|(_, d)| ("spec.indicatorRef", d.get("spec"))),
    };
    let queries = match sli_doc {
        Some((path, spec)) => sli_queries(spec, path, &mut ps),
        None => None,
    };
    let window = match doc.pointer("/spec/timeWindow") {
        Some(Value::Array(ws)) if ws.len() == 1 => {
            let w = &ws[0];
            if w.get("calendar").is_some()
                || w.get("isRolling").and_then(Value::as_bool) == Some(false)
            {
                ps.push(problem(
                    "spec.timeWindow.0",
                    "calendar windows are not supported: use isRolling: true",
                ));
                None
            } else {
                match w.get("duration").and_then(Value::as_str) {
                    Some(d) => match parse_window(d) {
                        Ok(_) => Some(d.trim().to_string()),
                        Err(e) => {
                            ps.push(problem("spec.timeWindow.0.duration", e));
                            None
                        }
                    },
                    None => {
                        ps.push(problem("spec.timeWindow.0.duration", "is missing"));
                        None
                    }
                }
            }
        }
        Some(_) => {
            ps.push(problem("spec.timeWindow", "must hold exactly one window"));
            None
        }
        None => {
            ps.push(problem("spec.timeWindow", "is missing"));
            None
        }
    };
    let objectives = match doc.pointer("/spec/objectives") {
        Some(Value::Array(os)) if !os.is_empty() => os.clone(),
        _ => {
            ps.push(problem("spec.objectives", "must be a non-empty list"));
            Vec::new()
        }
    };
    let mut targets = Vec::new();
    for (i, o) in objectives.iter().enumerate() {
        let path = format!("spec.objectives.{i}");
        let target = match (
            o.get("targetPercent").and_then(Value::as_f64),
            o.get("target").and_then(Value::as_f64),
        ) {
            (Some(p), _) => Some(p),
            (None, Some(t)) if (0.0..=1.0).contains(&t) => Some(t * 100.0),
            (None, Some(t)) => {
                ps.push(problem(
                    &format!("{path}.target"),
                    format!("must be a ratio from 0 to 1, got {t}"),
                ));
                None
            }
            (None, None) => {
                ps.push(problem(
                    &format!("{path}.target"),
                    "is missing (or targetPercent)",
                ));
                None
            }
        };
        if o.get("timeSliceTarget").is_some() || o.get("timeSliceWindow").is_some() {
            ps.push(problem(
                &path,
                "time slices are not supported: only Occurrences",
            ));
        }
        let label = o
            .get("displayName")
            .or_else(|| o.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("objective-{}", i + 1));
        targets.push((target, label));
    }
    if !ps.is_empty() {
        return Err(ps);
    }
    let (name, service, sli, window) = (
        name.unwrap_or_default(),
        service.unwrap_or_default(),
        sli_name.unwrap_or_default(),
        window.unwrap_or_default(),
    );
    let several = targets.len() > 1;
    let mut out = Vec::new();
    for (i, (target, label)) in targets.into_iter().enumerate() {
        let mut labels = Labels::new();
        labels.insert("name".into(), name.to_string());
        labels.insert("service".into(), service.to_string());
        if several {
            labels.insert("objective".into(), label);
        }
        // Through the Reliably checks, so both kinds meet the same rules.
        let reliably = json!({
            "metadata": {"labels": labels},
            "spec": {"indicatorSelector": {"service": service, "indicator_name": sli},
                     "objectivePercent": target, "window": window}});
        match parse_objective(&reliably) {
            Ok(o) => out.push(Objective {
                sli: queries.clone(),
                ..o
            }),
            Err(e) => ps.extend(e.into_iter().map(|p| SloProblem {
                path: match p.path.as_str() {
                    "spec.objectivePercent" => format!("spec.objectives.{i}.target"),
                    _ => p.path,
                },
                message: p.message,
            })),
        }
    }
    if ps.is_empty() {
        Ok(out)
    } else {
        Err(ps)
    }
}

/// The queries of an SLI's `spec` (`ratioMetric` or `thresholdMetric`); problems
/// name the unsupported feature (a metric source other than Prometheus, raw
/// ratios).
fn sli_queries(spec: Option<&Value>, path: &str, ps: &mut Vec<SloProblem>) -> Option<Sli> {
    let spec = spec?;
    let query = |v: Option<&Value>, at: &str, ps: &mut Vec<SloProblem>| -> Option<String> {
        let v = v?;
        let source = v.get("metricSource").unwrap_or(v);
        match source.get("type").and_then(Value::as_str) {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("prometheus") => {}
            Some(t) => {
                ps.push(problem(
                    &format!("{at}.metricSource.type"),
                    format!("metric source {t:?} is not supported: only Prometheus"),
                ));
                return None;
            }
        }
        match source.pointer("/spec/query").and_then(Value::as_str) {
            Some(q) if !q.trim().is_empty() => Some(q.trim().to_string()),
            _ => {
                ps.push(problem(
                    &format!("{at}.metricSource.spec.query"),
                    "is missing: a PromQL query",
                ));
                None
            }
        }
    };
    if let Some(r) = spec.get("ratioMetric") {
        let at = format!("{path}.ratioMetric");
        if r.get("raw").is_some() {
            ps.push(problem(
                &format!("{at}.raw"),
                "raw ratio metrics are not supported: give good or bad, and total",
            ));
            return None;
        }
        let counter = r.get("counter").and_then(Value::as_bool).unwrap_or(false);
        let good = query(r.get("good"), &format!("{at}.good"), ps);
        let bad = query(r.get("bad"), &format!("{at}.bad"), ps);
        let total = query(r.get("total"), &format!("{at}.total"), ps);
        if r.get("total").is_none() {
            ps.push(problem(&format!("{at}.total"), "is missing"));
        }
        if r.get("good").is_none() && r.get("bad").is_none() {
            ps.push(problem(&format!("{at}.good"), "is missing (or give bad)"));
        }
        return Some(Sli::Ratio {
            counter,
            good,
            bad,
            total: total?,
        });
    }
    if let Some(t) = spec.get("thresholdMetric") {
        let q = query(Some(t), &format!("{path}.thresholdMetric"), ps)?;
        return Some(Sli::Threshold { query: q });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &str = "apiVersion: reliably.com/v1
kind: Objective
metadata:
  labels:
    name: 99.9% of our requests are in the 2xx class
    service: exploring-reliability-guide-service
spec:
  indicatorSelector:
    category: Availability
    indicator_name: exploring-reliability-guide-service-availability-indicator
  objectivePercent: 99.9
  window: 1h
";

    const OPENSLO: &str = "apiVersion: openslo/v1
kind: SLO
metadata:
  name: api-availability
spec:
  service: api
  budgetingMethod: Occurrences
  indicator:
    metadata:
      name: api-good-requests
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: sum(rate(http_requests_total{code!~\"5..\"}[1m]))
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(rate(http_requests_total[1m]))
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - target: 0.995
";

    #[test]
    fn the_guide_manifest_reads_as_one_objective() {
        let os = parse_objectives(GUIDE).unwrap();
        assert_eq!(os.len(), 1);
        assert_eq!(os[0].objective_percent, 99.9);
        assert_eq!(
            os[0].labels["service"],
            "exploring-reliability-guide-service"
        );
    }

    #[test]
    fn yaml_streams_json_lists_and_openslo_mix() {
        let text = format!("{GUIDE}---\n{OPENSLO}");
        let os = parse_objectives(&text).unwrap();
        assert_eq!(os.len(), 2);
        let slo = &os[1];
        assert!((slo.objective_percent - 99.5).abs() < 1e-9);
        assert_eq!(slo.labels["name"], "api-availability");
        assert_eq!(
            slo.indicator_selector["indicator_name"],
            "api-good-requests"
        );
        assert_eq!(slo.indicator_selector["service"], "api");
        assert_eq!(slo.window_length.as_secs(), 28 * 86_400);

        let json = serde_json::to_string(&vec![
            serde_saphyr::from_str::<Value>(GUIDE).unwrap(),
            serde_saphyr::from_str::<Value>(GUIDE).unwrap(),
        ])
        .unwrap();
        assert_eq!(parse_objectives(&json).unwrap().len(), 2);
    }

    #[test]
    fn every_problem_names_its_document_and_field() {
        let bad = GUIDE.replace("99.9\n", "120\n");
        let text = format!("{GUIDE}---\n{bad}---\nkind: Indicator\n");
        let ps = parse_objectives(&text).unwrap_err();
        let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
        assert!(
            paths.contains(&"document 2: spec.objectivePercent"),
            "{paths:?}"
        );
        assert!(paths.contains(&"document 3: kind"), "{paths:?}");
    }

    #[test]
    fn openslo_sli_queries_are_kept() {
        let o = &parse_objectives(OPENSLO).unwrap()[0];
        assert_eq!(
            o.sli,
            Some(Sli::Ratio {
                counter: true,
                good: Some("sum(rate(http_requests_total{code!~\"5..\"}[1m]))".into()),
                bad: None,
                total: "sum(rate(http_requests_total[1m]))".into(),
            })
        );
        let bad = OPENSLO.replace("good:", "bad:");
        let o = &parse_objectives(&bad).unwrap()[0];
        assert!(matches!(
            &o.sli,
            Some(Sli::Ratio {
                bad: Some(_),
                good: None,
                ..
            })
        ));
        let datadog = OPENSLO.replacen("type: Prometheus", "type: Datadog", 1);
        let e = parse_objectives(&datadog).unwrap_err();
        assert_eq!(
            e[0].path,
            "spec.indicator.spec.ratioMetric.good.metricSource.type"
        );
        assert!(e[0].message.contains("Datadog"), "{e:?}");
        let raw = OPENSLO.replace("counter: true", "counter: true\n        raw: {}");
        let e = parse_objectives(&raw).unwrap_err();
        assert!(e[0].message.contains("raw"), "{e:?}");
        let threshold = "apiVersion: openslo/v1
kind: SLO
metadata: {name: latency}
spec:
  service: api
  indicator:
    metadata: {name: p99}
    spec:
      thresholdMetric: {metricSource: {type: Prometheus, spec: {query: 'histogram_quantile(0.99, x)'}}}
  timeWindow: [{duration: 1h, isRolling: true}]
  objectives: [{target: 0.9, op: lt, value: 0.3}]
";
        let o = &parse_objectives(threshold).unwrap()[0];
        assert_eq!(
            o.sli,
            Some(Sli::Threshold {
                query: "histogram_quantile(0.99, x)".into()
            })
        );
    }

    #[test]
    fn unsupported_openslo_features_are_named() {
        let timeslices = OPENSLO.replace("Occurrences", "Timeslices");
        let e = parse_objectives(&timeslices).unwrap_err();
        assert!(e.iter().any(|p| p.path == "spec.budgetingMethod"), "{e:?}");
        let calendar = OPENSLO.replace("isRolling: true", "isRolling: false");
        let e = parse_objectives(&calendar).unwrap_err();
        assert!(e[0].message.contains("calendar"), "{e:?}");
        let v2 = OPENSLO.replace("openslo/v1", "openslo/v2alpha");
        assert!(parse_objectives(&v2).unwrap_err()[0].path == "apiVersion");
    }

    #[test]
    fn malformed_text_and_empty_files_are_errors() {
        assert!(parse_objectives("{\"a\": ").unwrap_err()[0]
            .message
            .contains("not valid JSON"));
        assert!(parse_objectives("a: [").unwrap_err()[0]
            .message
            .contains("YAML"));
        assert!(parse_objectives("").unwrap_err()[0]
            .message
            .contains("no objective"));
    }
}
