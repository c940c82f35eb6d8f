//! Router tests: every endpoint driven through `oneshot` (no socket) against a real
//! SQLite store in a temporary folder, auth and organisation isolation, every bad
//! input (and that it stored nothing); and one shared set of store checks run on the
//! embedded store and on `Store::Remote` against this server on 127.0.0.1.

use super::*;
use crate::store::{Origin, StoreSpec};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use serde_json::{json, Value};
use tower::ServiceExt;

/// A store in a temporary folder, removed on drop.
struct Fixture {
    dir: std::path::PathBuf,
    state: ServerState,
    /// A token of `acme`.
    acme: String,
    /// A token of `other`.
    other: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture(auth: bool) -> Fixture {
    let dir = std::env::temp_dir().join(format!("fl-server-{}", uuid::Uuid::new_v4()));
    let store = Store::open(&StoreSpec::Sqlite(dir.join("s.db")))
        .await
        .unwrap();
    let acme = store.create_token("acme").await.unwrap();
    let other = store.create_token("other").await.unwrap();
    Fixture {
        dir,
        state: ServerState::new(store, auth),
        acme,
        other,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One request through the router: the status and the body (JSON when it is).
async fn call(
    f: &Fixture,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
        .unwrap();
    let resp = router(f.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

const RELIABLY: &str = "/api/entities/acme/reliably.com/v1";

/// What chaostoolkit-reliably sends: URL-safe base64 with padding of
/// `json.dumps(labels, indent=False)` (newlines between items).
fn b64_selector(pairs: &[(&str, &str)]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", json!(k), json!(v)))
        .collect();
    let text = format!("{{\n{}\n}}", items.join(",\n"));
    base64::engine::general_purpose::URL_SAFE.encode(text)
}

fn objective_doc() -> Value {
    json!({"apiVersion": "reliably.com/v1", "kind": "Objective",
           "metadata": {"labels": {"name": "api-availability", "service": "api"}},
           "spec": {"indicatorSelector": {"category": "Availability", "service": "api"},
                    "objectivePercent": 99.5, "window": "1h"}})
}

fn indicator_doc(percent: f64, at: &str) -> String {
    json!({"metadata": {"labels": {"category": "Availability", "service": "api"}},
           "spec": {"from": at, "to": at, "percent": percent}})
    .to_string()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// How many results the store holds for the objective's selector (the store's own
/// read, not the server's).
async fn stored_results(f: &Fixture, org: &str) -> usize {
    let sel: crate::slo::Labels = [("category".to_string(), "Availability".to_string())].into();
    f.state
        .store
        .results_by_indicator_selector(org, &sel, 10_000)
        .await
        .unwrap()
        .len()
}

#[test]
fn healthz_and_readyz_answer_without_a_token_and_unknown_routes_are_json_404() {
    rt().block_on(async {
        let f = fixture(true).await;
        let (s, v) = call(&f, "GET", "/healthz", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, "ok\n");
        // Readiness reads the store (without a token too).
        let (s, v) = call(&f, "GET", "/readyz", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, "ok\n");
        let (s, v) = call(&f, "GET", "/nope", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(v["error"].is_string(), "{v}");
        let (s, v) = call(&f, "DELETE", "/healthz", None, None).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert!(v["error"].is_string(), "{v}");
    });
}

#[test]
fn tokens_are_checked_per_organisation() {
    rt().block_on(async {
        let f = fixture(true).await;
        let uri = format!("{RELIABLY}/objective?selector={}", b64_selector(&[]));
        let (s, v) = call(&f, "GET", &uri, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
        let (s, _) = call(&f, "GET", &uri, Some("flt_unknown"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, v) = call(&f, "GET", &uri, Some(&f.other), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let (s, v) = call(&f, "GET", &uri, Some(&f.acme), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v, json!([]));
        // Organisations are lower-cased, in the path as in the token.
        let upper = uri.replace("/acme/", "/ACME/");
        assert_eq!(
            call(&f, "GET", &upper, Some(&f.acme), None).await.0,
            StatusCode::OK
        );
        // The native API too.
        let (s, _) = call(
            &f,
            "GET",
            "/api/v1/orgs/acme/objectives",
            Some(&f.other),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = call(&f, "GET", "/api/v1/orgs/acme/objectives", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // A bad organisation is named.
        let (s, v) = call(
            &f,
            "GET",
            "/api/v1/orgs/bad!org/objectives",
            Some(&f.acme),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["problems"][0]["path"], "org", "{v}");
    });
}

#[test]
fn organisations_see_only_their_own_objectives_and_results() {
    rt().block_on(async {
        let f = fixture(true).await;
        let doc = objective_doc().to_string();
        let (s, _) = call(
            &f,
            "PUT",
            &format!("{RELIABLY}/objective"),
            Some(&f.acme),
            Some(&doc),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call(
            &f,
            "PUT",
            &format!("{RELIABLY}/indicator"),
            Some(&f.acme),
            Some(&indicator_doc(90.0, &now())),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let sel = b64_selector(&[("category", "Availability"), ("service", "api")]);
        let other =
            format!("/api/entities/other/reliably.com/v1/objective_result?selector={sel}&limit=5");
        let (s, v) = call(&f, "GET", &other, Some(&f.other), None).await;
        assert_eq!((s, v), (StatusCode::OK, json!([])));
        let (s, v) = call(
            &f,
            "GET",
            "/api/v1/orgs/other/objectives",
            Some(&f.other),
            None,
        )
        .await;
        assert_eq!((s, v), (StatusCode::OK, json!([])));
        let mine = other.replace("/other/", "/acme/");
        let (s, v) = call(&f, "GET", &mine, Some(&f.acme), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    });
}

#[test]
fn the_guides_put_and_slo_is_mets_reads_work_with_and_without_api() {
    rt().block_on(async {
        let f = fixture(true).await;
        // The objective, stored through the older prefix.
        let (s, v) = call(
            &f,
            "PUT",
            "/entities/acme/reliably.com/v1/objective",
            Some(&f.acme),
            Some(&objective_doc().to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["spec"]["window"], "1h");
        // The guide's body: no Content-Type, no apiVersion/kind, Python's isoformat()+Z.
        let at = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let older = indicator_doc(100.0, "2026-01-01T00:00:00Z");
        for (prefix, body) in [
            ("/entities", older),
            ("/api/entities", indicator_doc(96.0, &at)),
        ] {
            let (s, v) = call(
                &f,
                "PUT",
                &format!("{prefix}/acme/reliably.com/v1/indicator"),
                Some(&f.acme),
                Some(&body),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v["kind"], "Indicator");
            assert!(v["id"].is_string());
        }
        // slo_is_met's first read: the objective by its labels.
        let sel = b64_selector(&[("name", "api-availability"), ("service", "api")]);
        let (s, v) = call(
            &f,
            "GET",
            &format!("{RELIABLY}/objective?selector={sel}"),
            Some(&f.acme),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let objective = &v[0];
        assert_eq!(objective["spec"]["window"], "1h");
        assert_eq!(objective["spec"]["objectivePercent"], 99.5);
        // Its second: the results of its indicator selector, newest first, limited.
        let sel = b64_selector(&[("category", "Availability"), ("service", "api")]);
        for prefix in ["/api/entities", "/entities"] {
            let uri =
                format!("{prefix}/acme/reliably.com/v1/objective_result?selector={sel}&limit=5");
            let (s, v) = call(&f, "GET", &uri, Some(&f.acme), None).await;
            assert_eq!(s, StatusCode::OK);
            let results = v.as_array().unwrap();
            assert_eq!(results.len(), 2, "{v}");
            assert_eq!(results[0]["spec"]["actualPercent"], 96.0);
            assert_eq!(results[0]["spec"]["remainingPercent"], -3.5);
            assert_eq!(results[1]["spec"]["actualPercent"], 100.0);
            for r in results {
                assert!(r["id"].is_string());
                let labels = r["metadata"]["labels"].as_object().unwrap();
                for key in ["createdAt", "from", "to"] {
                    assert!(labels.contains_key(key), "{key} in {r}");
                }
                assert!(labels.values().all(Value::is_string), "{r}");
            }
            let uri =
                format!("{prefix}/acme/reliably.com/v1/objective_result?selector={sel}&limit=1");
            let (_, v) = call(&f, "GET", &uri, Some(&f.acme), None).await;
            assert_eq!(v.as_array().unwrap().len(), 1);
        }
    });
}

#[test]
fn base64_selectors_are_read_in_every_alphabet_and_padding() {
    rt().block_on(async {
        let f = fixture(false).await;
        call(
            &f,
            "PUT",
            &format!("{RELIABLY}/objective"),
            None,
            Some(&objective_doc().to_string()),
        )
        .await;
        // `{"name": "api-availability", "n": 1}` with a non-string value, as an
        // experiment may pass it; and a selector whose base64 needs `+` and `/`.
        let text = "{\n\"service\": \"api\"\n}";
        let std_b64 = base64::engine::general_purpose::STANDARD.encode(text);
        let unpadded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(text);
        assert!(padded.ends_with('='), "the case needs padding: {padded}");
        let percent_std = std_b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        for sel in [padded, unpadded, std_b64, percent_std] {
            let (s, v) = call(
                &f,
                "GET",
                &format!("{RELIABLY}/objective?selector={sel}"),
                None,
                None,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{sel}: {v}");
            assert_eq!(v.as_array().unwrap().len(), 1, "{sel}: {v}");
        }
        let numbers =
            base64::engine::general_purpose::URL_SAFE.encode("{\"service\": \"api\", \"n\": 1}");
        let (s, v) = call(
            &f,
            "GET",
            &format!("{RELIABLY}/objective?selector={numbers}"),
            None,
            None,
        )
        .await;
        assert_eq!((s, v.as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
        let (s, v) = call(
            &f,
            "GET",
            &format!("{RELIABLY}/objective?selector=!!!"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["problems"][0]["path"], "selector");
        let not_object = base64::engine::general_purpose::URL_SAFE.encode("[1]");
        let (s, v) = call(
            &f,
            "GET",
            &format!("{RELIABLY}/objective?selector={not_object}"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    });
}

#[test]
fn limit_is_honoured_up_to_a_thousand_and_checked() {
    rt().block_on(async {
        let f = fixture(false).await;
        call(
            &f,
            "PUT",
            &format!("{RELIABLY}/objective"),
            None,
            Some(&objective_doc().to_string()),
        )
        .await;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..1005 {
            let store = f.state.store.clone();
            set.spawn(async move {
                let at = format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
                let doc: Value = serde_json::from_str(&indicator_doc(99.0, &at)).unwrap();
                let ind = crate::slo::parse_indicator(&doc).unwrap();
                store
                    .put_indicator("acme", &ind, &Origin::default())
                    .await
                    .unwrap();
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        let sel = b64_selector(&[("service", "api")]);
        let (s, v) = call(
            &f,
            "GET",
            &format!("{RELIABLY}/objective_result?selector={sel}&limit=1000"),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let results = v.as_array().unwrap();
        assert_eq!(results.len(), 1000);
        // Newest first: the last minute written comes first.
        assert_eq!(
            results[0]["metadata"]["labels"]["to"],
            "2026-01-01T00:16:44.000000Z"
        );
        for bad in ["0", "-1", "abc", "10001", "True"] {
            let (s, v) = call(
                &f,
                "GET",
                &format!("{RELIABLY}/objective_result?selector={sel}&limit={bad}"),
                None,
                None,
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(v["problems"][0]["path"], "limit");
        }
    });
}

#[test]
fn objective_match_decodes_plus_as_a_space() {
    rt().block_on(async {
        let f = fixture(false).await;
        let mut doc = objective_doc();
        doc["metadata"]["labels"]["service"] = json!("my api");
        call(&f, "PUT", &format!("{RELIABLY}/objective"), None, Some(&doc.to_string())).await;
        call(&f, "PUT", &format!("{RELIABLY}/indicator"), None, Some(&indicator_doc(99.9, &now()))).await;
        let uri = format!("{RELIABLY}/objectiveresult?objective-match=service%3Dmy+api%2Cname%3Dapi-availability&limit=5");
        let (s, v) = call(&f, "GET", &uri, None, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v[0]["spec"]["actualPercent"], 99.9);
        let uri = format!("{RELIABLY}/objectiveresult?objective-match=service%3Dmy-api");
        assert_eq!(call(&f, "GET", &uri, None, None).await.1, json!([]));
        let uri = format!("{RELIABLY}/objectiveresult?objective-match=service");
        let (s, v) = call(&f, "GET", &uri, None, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["problems"][0]["path"], "objective-match");
    });
}

#[test]
fn query_returns_objectives_with_their_newest_results() {
    rt().block_on(async {
        let f = fixture(false).await;
        call(
            &f,
            "PUT",
            &format!("{RELIABLY}/objective"),
            None,
            Some(&objective_doc().to_string()),
        )
        .await;
        for (p, at) in [
            (100.0, "2026-01-01T00:00:00Z"),
            (90.0, "2026-01-01T00:01:00Z"),
        ] {
            call(
                &f,
                "PUT",
                &format!("{RELIABLY}/indicator"),
                None,
                Some(&indicator_doc(p, at)),
            )
            .await;
        }
        let q = json!({"kind": "objective", "labels": {"service": "api"}, "limit": 50,
                       "forEach": {"objectiveResult": {"include": true, "limit": 5}}});
        for prefix in ["/api/entities", "/entities"] {
            let (s, v) = call(
                &f,
                "POST",
                &format!("{prefix}/acme/reliably.com/v1/query"),
                None,
                Some(&q.to_string()),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v[0]["metadata"]["labels"]["name"], "api-availability");
            let rs = v[0]["objectiveResults"].as_array().unwrap();
            assert_eq!(rs.len(), 2);
            assert_eq!(rs[0]["spec"]["actualPercent"], 90.0);
        }
        let bad = json!({"kind": "indicator", "limit": 0, "labels": {"a": []}});
        let (s, v) = call(
            &f,
            "POST",
            &format!("{RELIABLY}/query"),
            None,
            Some(&bad.to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let paths: Vec<&str> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["kind", "labels.a", "limit"], "{v}");
    });
}

/// Every bad input: a 4xx naming its field, and nothing stored.
#[test]
fn bad_input_is_refused_with_its_field_and_stores_nothing() {
    rt().block_on(async {
        let f = fixture(true).await;
        let t = Some(f.acme.as_str());
        call(&f, "PUT", &format!("{RELIABLY}/objective"), t, Some(&objective_doc().to_string())).await;
        let at = "2026-01-01T00:00:00Z";
        let cases: Vec<(&str, String, &str)> = vec![
            ("malformed JSON", "{\"metadata\": ".into(), "$"),
            ("not YAML either", "a: [b".into(), "$"),
            ("empty", "".into(), "$"),
            ("percent above 100", indicator_doc(150.0, at), "spec.percent"),
            ("percent below 0", indicator_doc(-1.0, at), "spec.percent"),
            ("from after to", json!({"metadata": {"labels": {"category": "Availability"}},
                "spec": {"from": "2026-01-02T00:00:00Z", "to": at, "percent": 50}}).to_string(), "spec.from"),
            ("unknown kind", json!({"kind": "Gauge", "metadata": {"labels": {"category": "Availability"}},
                "spec": {"from": at, "to": at, "percent": 50}}).to_string(), "kind"),
            ("a label that is not a string", json!({"metadata": {"labels": {"category": {"x": 1}}},
                "spec": {"from": at, "to": at, "percent": 50}}).to_string(), "metadata.labels.category"),
            ("no labels", json!({"metadata": {"labels": {}},
                "spec": {"from": at, "to": at, "percent": 50}}).to_string(), "metadata.labels"),
            ("a bad time", json!({"metadata": {"labels": {"category": "Availability"}},
                "spec": {"from": "yesterday", "to": at, "percent": 50}}).to_string(), "spec.from"),
        ];
        for prefix in [RELIABLY.to_string(), "/api/v1/orgs/acme".to_string()] {
            let (method, path) = if prefix.starts_with("/api/v1") {
                ("POST", format!("{prefix}/indicators"))
            } else {
                ("PUT", format!("{prefix}/indicator"))
            };
            for (what, body, field) in &cases {
                let (s, v) = call(&f, method, &path, t, Some(body)).await;
                assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
                let paths: Vec<&str> = v["problems"].as_array().unwrap().iter().filter_map(|p| p["path"].as_str()).collect();
                assert!(paths.contains(field), "{what}: {field} not in {v}");
                assert!(v["error"].is_string());
            }
            // Oversized: 413, with the error shape.
            let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(BODY_LIMIT));
            let (s, v) = call(&f, method, &path, t, Some(&big)).await;
            assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
            assert!(v["error"].as_str().unwrap().contains("larger than"), "{v}");
        }
        assert_eq!(stored_results(&f, "acme").await, 0, "a bad indicator was stored");
        // Bad objectives: every problem, and none stored.
        let bad = json!({"metadata": {"labels": {"name": "x"}},
            "spec": {"indicatorSelector": {"a": "b"}, "objectivePercent": 101, "window": "forever"}});
        for path in [format!("{RELIABLY}/objective"), "/api/v1/orgs/acme/objectives".to_string()] {
            let (s, v) = call(&f, "PUT", &path, t, Some(&bad.to_string())).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
            let text = v["problems"].to_string();
            assert!(text.contains("spec.objectivePercent") && text.contains("spec.window"), "{v}");
        }
        let (_, v) = call(&f, "GET", "/api/v1/orgs/acme/objectives", t, None).await;
        assert_eq!(v.as_array().unwrap().len(), 1, "only the good objective: {v}");
    });
}

#[test]
fn the_native_api_stores_reads_reports_and_deletes() {
    rt().block_on(async {
        let f = fixture(true).await;
        let t = Some(f.acme.as_str());
        let yaml = "apiVersion: reliably.com/v1\nkind: Objective\nmetadata:\n  labels: {name: a, service: api}\nspec:\n  indicatorSelector: {category: Availability}\n  objectivePercent: 99\n  window: 1h\n---\napiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: latency\nspec:\n  service: api\n  budgetingMethod: Occurrences\n  timeWindow: [{duration: 30d, isRolling: true}]\n  objectives: [{target: 0.95}]\n  indicator:\n    metadata: {name: latency-sli}\n    spec:\n      ratioMetric:\n        counter: true\n        good: {metricSource: {type: Prometheus, spec: {query: 'sum(good)'}}}\n        total: {metricSource: {type: Prometheus, spec: {query: 'sum(all)'}}}\n";
        let (s, v) = call(&f, "PUT", "/api/v1/orgs/acme/objectives", t, Some(yaml)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let stored = v["objectives"].as_array().unwrap();
        assert_eq!(stored.len(), 2, "{v}");
        assert!(stored.iter().all(|o| o["created"] == true));
        let (_, v) = call(&f, "PUT", "/api/v1/orgs/acme/objectives", t, Some(yaml)).await;
        assert!(v["objectives"].as_array().unwrap().iter().all(|o| o["created"] == false), "{v}");
        // Selectors: k=v and JSON.
        let (s, v) = call(&f, "GET", "/api/v1/orgs/acme/objectives?selector=name%3Da", t, None).await;
        assert_eq!((s, v.as_array().unwrap().len()), (StatusCode::OK, 1));
        let (_, v) = call(&f, "GET", "/api/v1/orgs/acme/objectives?selector=%7B%22service%22%3A%22api%22%7D", t, None).await;
        assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
        // An indicator with counts and its run.
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let at = now();
        let ind = json!({"apiVersion": "reliably.com/v1", "kind": "Indicator",
            "metadata": {"labels": {"category": "Availability"}},
            "spec": {"from": at, "to": at, "good": 98, "total": 100, "runId": "run-1", "traceId": trace}});
        let (s, v) = call(&f, "POST", "/api/v1/orgs/acme/indicators", t, Some(&ind.to_string())).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!((v["percent"].as_f64(), v["runId"].as_str(), v["traceId"].as_str()), (Some(98.0), Some("run-1"), Some(trace)));
        let mut bad = ind.clone();
        bad["spec"]["traceId"] = json!("xyz");
        let (s, v) = call(&f, "POST", "/api/v1/orgs/acme/indicators", t, Some(&bad.to_string())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["problems"][0]["path"], "spec.traceId");
        // Results, report, window, status.
        let (_, v) = call(&f, "GET", "/api/v1/orgs/acme/results?indicatorSelector=category%3DAvailability&limit=10", t, None).await;
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v[0]["actualPercent"], 98.0);
        let id = v[0]["objectiveId"].as_str().unwrap().to_string();
        let (_, v) = call(&f, "GET", "/api/v1/orgs/acme/report?selector=service%3Dapi", t, None).await;
        assert_eq!(v.as_array().unwrap().len(), 2);
        let (s, v) = call(&f, "GET", &format!("/api/v1/orgs/acme/objectives/{id}/results?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"), t, None).await;
        assert_eq!((s, v.as_array().unwrap().len()), (StatusCode::OK, 1));
        let (s, v) = call(&f, "GET", &format!("/api/v1/orgs/acme/objectives/{id}/results?from=2100-01-01T00:00:00Z&to=2000-01-01T00:00:00Z"), t, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["problems"][0]["path"], "from");
        let (s, _) = call(&f, "GET", "/api/v1/orgs/acme/objectives/nope/results?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z", t, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, v) = call(&f, "GET", "/api/v1/orgs/acme/status?selector=name%3Da&window=1h", t, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let st = &v[0]["status"];
        assert_eq!((st["met"].as_bool(), st["actual_percent"].as_f64(), st["target_percent"].as_f64()), (Some(false), Some(98.0), Some(99.0)), "{v}");
        assert_eq!(st["error_budget_remaining_percent"].as_f64(), Some(-100.0));
        let (s, v) = call(&f, "GET", "/api/v1/orgs/acme/status?window=soon", t, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["problems"][0]["path"], "window");
        // Delete: a selector is required.
        let (s, v) = call(&f, "DELETE", "/api/v1/orgs/acme/objectives", t, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["problems"][0]["path"], "selector");
        let (s, v) = call(&f, "DELETE", "/api/v1/orgs/acme/objectives?selector=name%3Da", t, None).await;
        assert_eq!((s, v), (StatusCode::OK, json!({"deleted": 1})));
        let (_, v) = call(&f, "GET", "/api/v1/orgs/acme/objectives", t, None).await;
        assert_eq!(v.as_array().unwrap().len(), 1);
    });
}

#[test]
fn metrics_show_each_objective_and_the_requests_by_route() {
    rt().block_on(async {
        let f = fixture(true).await;
        let t = Some(f.acme.as_str());
        call(&f, "PUT", &format!("{RELIABLY}/objective"), t, Some(&objective_doc().to_string())).await;
        call(&f, "PUT", &format!("{RELIABLY}/indicator"), t, Some(&indicator_doc(99.75, &now()))).await;
        call(&f, "PUT", &format!("{RELIABLY}/indicator"), Some("flt_wrong_token_value"), Some("{}")).await;
        let (s, v) = call(&f, "GET", "/metrics", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let text = v.as_str().unwrap();
        let labels = "{name=\"api-availability\",service=\"api\",org=\"acme\"}";
        for line in [
            format!("faultline_slo_current_percent{labels} 99.75"),
            format!("faultline_slo_target_percent{labels} 99.5"),
            format!("faultline_slo_met{labels} 1"),
            format!("faultline_slo_error_budget_remaining_percent{labels} 50"),
            "faultline_server_requests_total{route=\"/api/entities/{org}/reliably.com/v1/indicator\",method=\"PUT\",status=\"200\"} 1".to_string(),
            "faultline_server_requests_total{route=\"/api/entities/{org}/reliably.com/v1/indicator\",method=\"PUT\",status=\"401\"} 1".to_string(),
            "faultline_server_request_duration_seconds_bucket{route=\"/api/entities/{org}/reliably.com/v1/objective\",method=\"PUT\",status=\"200\",le=\"+Inf\"} 1".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(!text.contains("flt_"), "a token in the metrics");
        // A deleted objective leaves the metrics.
        f.state.store.delete_objectives("acme", &[("name".to_string(), "api-availability".to_string())].into()).await.unwrap();
        let (_, v) = call(&f, "GET", "/metrics", None, None).await;
        assert!(!v.as_str().unwrap().contains("faultline_slo_target_percent{"), "{v}");
    });
}

#[test]
fn tokens_never_appear_in_answers() {
    rt().block_on(async {
        let f = fixture(true).await;
        let wrong = "flt_this_is_not_a_known_token_0123456789";
        for (token, org) in [
            (wrong, "acme"),
            (f.other.as_str(), "acme"),
            (f.acme.as_str(), "bad!org"),
        ] {
            for uri in [
                format!("/api/entities/{org}/reliably.com/v1/objective"),
                format!("/api/v1/orgs/{org}/objectives"),
            ] {
                let (s, v) = call(&f, "GET", &uri, Some(token), None).await;
                assert!(s.is_client_error(), "{uri}: {s}");
                let text = v.to_string();
                assert!(!text.contains(token), "{uri} echoed the token: {text}");
                assert!(
                    !text.contains(&crate::store::token_hash(token)),
                    "{uri} echoed the hash"
                );
            }
        }
    });
}

/// One set of store checks, run on any store: the embedded one must behave as a
/// remote one served by this server.
async fn store_checks(store: &Store, org: &str) {
    let objective = crate::slo::parse_objective(&objective_doc()).unwrap();
    let (rec, created) = store.put_objective(org, &objective).await.unwrap();
    assert!(created);
    assert_eq!(rec.window, "1h");
    let (again, created) = store.put_objective(org, &objective).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, rec.id);
    assert_eq!(again.created_at, rec.created_at);
    let sel = |k: &str, v: &str| -> crate::slo::Labels { [(k.to_string(), v.to_string())].into() };
    assert_eq!(
        store
            .objectives(org, &sel("service", "api"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .objectives(org, &sel("service", "web"))
        .await
        .unwrap()
        .is_empty());
    for (p, at) in [
        (100.0, "2026-01-01T00:00:00Z"),
        (90.0, "2026-01-01T00:02:00Z"),
        (99.0, "2026-01-01T00:01:00Z"),
    ] {
        let doc: Value = serde_json::from_str(&indicator_doc(p, at)).unwrap();
        let i = crate::slo::parse_indicator(&doc).unwrap();
        let origin = Origin {
            run_id: Some("r".into()),
            trace_id: None,
        };
        let r = store.put_indicator(org, &i, &origin).await.unwrap();
        assert_eq!(
            (r.percent, r.results, r.origin.run_id.as_deref()),
            (p, 1, Some("r"))
        );
    }
    let results = store
        .results_by_indicator_selector(org, &sel("category", "Availability"), 2)
        .await
        .unwrap();
    let actual: Vec<f64> = results.iter().map(|r| r.result.actual_percent).collect();
    assert_eq!(actual, [90.0, 99.0], "newest first, limited");
    assert_eq!(results[0].result.remaining_percent, 90.0 - 99.5);
    let lines = store.report(org, &Default::default(), 5).await.unwrap();
    assert_eq!((lines.len(), lines[0].results.len()), (1, 3));
    let t = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let w = store
        .window_results(
            org,
            &rec.id,
            t("2026-01-01T00:00:30Z"),
            t("2026-01-01T00:01:30Z"),
        )
        .await
        .unwrap();
    assert_eq!(w.len(), 1);
    assert!(matches!(
        store
            .window_results(
                org,
                "missing",
                t("2026-01-01T00:00:00Z"),
                t("2026-01-02T00:00:00Z")
            )
            .await,
        Err(crate::store::StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_objectives(org, &Default::default()).await,
        Err(crate::store::StoreError::Invalid(_))
    ));
    assert_eq!(
        store
            .delete_objectives(org, &sel("name", "api-availability"))
            .await
            .unwrap(),
        1
    );
    assert!(store
        .objectives(org, &Default::default())
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .results_by_indicator_selector(org, &sel("service", "api"), 10)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn the_same_store_checks_pass_embedded_and_remote() {
    rt().block_on(async {
        let f = fixture(true).await;
        store_checks(&f.state.store, "acme").await;

        let served = fixture(true).await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            served.state.clone(),
            Listen {
                addr: "127.0.0.1:0".parse().unwrap(),
                tls: None,
            },
            move |a| {
                let _ = tx.send(a);
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let addr = rx.await.unwrap();
        let base = url::Url::parse(&format!("http://{addr}")).unwrap();
        let remote = Store::open(&StoreSpec::Remote {
            base: base.clone(),
            token: Some(served.acme.clone()),
        })
        .await
        .unwrap();
        store_checks(&remote, "acme").await;
        // The remote store's errors: another organisation's token, and none.
        assert!(matches!(
            remote.objectives("other", &Default::default()).await,
            Err(crate::store::StoreError::Forbidden(_))
        ));
        let anonymous = Store::open(&StoreSpec::Remote { base, token: None })
            .await
            .unwrap();
        assert!(matches!(
            anonymous.objectives("acme", &Default::default()).await,
            Err(crate::store::StoreError::Unauthorized(_))
        ));
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        // Shutdown closed the store.
        assert!(served.state.store.create_token("acme").await.is_err());
    });
}

#[test]
fn any_known_token_operates_the_kill_switch_and_metrics_show_it() {
    rt().block_on(async {
        let f = fixture(true).await;
        let (s, _) = call(&f, "GET", "/v1/kill", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = call(&f, "POST", "/v1/kill", Some("flt_unknown"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, v) = call(&f, "GET", "/v1/kill", Some(&f.acme), None).await;
        assert_eq!((s, v), (StatusCode::OK, json!({"engaged": false})));
        let (s, v) = call(
            &f,
            "POST",
            "/v1/kill",
            Some(&f.acme),
            Some("{\"reason\": 3}"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        // No body: engaged with the default reason, by whoever holds the token.
        let (s, v) = call(&f, "POST", "/v1/kill", Some(&f.acme), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["engaged"], true, "{v}");
        assert_eq!(v["changed"], true, "{v}");
        assert_eq!(v["reason"], crate::killswitch::DEFAULT_REASON, "{v}");
        assert_eq!(v["org"], "acme", "{v}");
        // Another organisation's token sees it, and cannot replace the reason.
        let body = r#"{"reason": "later", "by": "bob@h"}"#;
        let (_, v) = call(&f, "POST", "/v1/kill", Some(&f.other), Some(body)).await;
        assert_eq!(
            (&v["changed"], &v["org"]),
            (&json!(false), &json!("acme")),
            "{v}"
        );
        let (_, text) = call(&f, "GET", "/metrics", None, None).await;
        assert!(
            text.as_str()
                .unwrap()
                .contains("faultline_kill_switch_engaged 1"),
            "{text}"
        );
        let (s, v) = call(&f, "DELETE", "/v1/kill", Some(&f.other), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["released"], true, "{v}");
        assert_eq!(v["previous"]["org"], "acme", "{v}");
        let (_, v) = call(&f, "DELETE", "/v1/kill", Some(&f.acme), None).await;
        assert_eq!(
            (&v["engaged"], &v["released"]),
            (&json!(false), &json!(false))
        );
        let (_, text) = call(&f, "GET", "/metrics", None, None).await;
        assert!(
            text.as_str()
                .unwrap()
                .contains("faultline_kill_switch_engaged 0"),
            "{text}"
        );
        // The store takes no more writes: engaging is a 503, never a success.
        f.state.store.close().await;
        let (s, v) = call(&f, "POST", "/v1/kill", Some(&f.acme), None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("could not be engaged in the store")),
            "{v}"
        );
    });
}
