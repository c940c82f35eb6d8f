//! `examples/kubernetes/`, checked without a cluster (no `kubeconform` here: it is not
//! packaged, and nothing is downloaded).
//!
//! - Every document is parsed strictly against the Kubernetes API types of
//!   `k8s-openapi` (1.33, the oldest its version knows): deserialized into the type its
//!   `apiVersion` and `kind` name, serialized back, and compared with what the file
//!   says. Plain deserialization ignores unknown fields; the round trip does not: a
//!   misspelled field is dropped on the way and the difference names it (file,
//!   document, kind/name, JSON path). A value of the wrong type fails to deserialize.
//! - `kustomization.yaml` lists every manifest of the folder, and only those.
//! - Every reference resolves: ConfigMaps, Secrets (and each key taken from them),
//!   PersistentVolumeClaims, volumes, ServiceAccounts, the Services' selectors and
//!   target ports, every `NAME.chaos.svc:PORT` in any value (URLs in Secrets, env,
//!   the experiments and the collector's configuration), and the store URL agrees with
//!   PostgreSQL's Secret.
//! - Hardening: images pinned, requests and limits, non-root, no privilege escalation,
//!   read-only root file systems, no service account token; the CronJob's policy
//!   (`Forbid`, deadlines, history limits, `backoffLimit: 0`, `restartPolicy: Never`).
//! - The server scales out: several replicas, none with a kill switch of its own (no
//!   switch file, no claim, no `Recreate`): the switch is the store's (two replicas
//!   sharing it are run in `kill.rs`).
//! - With the real binary: the settings and every experiment of the ConfigMaps pass
//!   `faultline validate`, and the CronJob's own containers run as written (args and
//!   env from the manifests, the mounts laid out as the kubelet lays out a ConfigMap),
//!   against the server's Deployment container run as written too (over a real
//!   PostgreSQL with the Secrets' user and database, when it is installed) and a
//!   stand-in collector: the token made and the switch engaged as README.md says, the kill-switch gate
//!   refusing the placeholder token and an engaged switch, the run recording both
//!   experiments in the server's history and sending its spans to the collector.

use crate::common::*;
use crate::http_server::{Response, Server};
use crate::store::Postgres;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The namespace everything lives in.
const NAMESPACE: &str = "chaos";

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes")
}

/// One YAML document of a manifest file.
#[derive(Clone, Debug)]
struct Doc {
    file: String,
    index: usize,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("?")
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("?")
    }
    /// `cronjob.yaml: document 2 (CronJob/faultline-chaos)`.
    fn what(&self) -> String {
        format!(
            "{}: document {} ({}/{})",
            self.file,
            self.index + 1,
            self.kind(),
            self.name()
        )
    }
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// `kustomization.yaml` (plain YAML: it is no API type of the cluster's).
fn kustomization() -> Value {
    let mut docs = yaml_documents(&folder().join("kustomization.yaml"));
    assert_eq!(docs.len(), 1, "kustomization.yaml: one document");
    docs.remove(0)
}

/// Every document of every file the kustomization lists, in its order.
fn documents() -> Vec<Doc> {
    let k = kustomization();
    let mut out = Vec::new();
    for file in k["resources"].as_array().expect("resources") {
        let file = file.as_str().unwrap();
        for (index, value) in yaml_documents(&folder().join(file)).into_iter().enumerate() {
            out.push(Doc {
                file: file.to_string(),
                index,
                value,
            });
        }
    }
    out
}

// --- strict parsing ------------------------------------------------------------------

/// Through `T` and back.
fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone())
        .map_err(|e| format!("not a valid {}: {e}", std::any::type_name::<T>()))?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The first difference between what the file says and what the type kept, by JSON
/// path; `None` when they are the same. A number the type keeps as a string (a
/// quantity written `1`) is the same.
fn difference(file: &Value, typed: &Value, path: &str) -> Option<String> {
    match (file, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    None => {
                        return Some(format!(
                            "{p}: not a field of the type (dropped: misspelled, or newer than Kubernetes 1.33)"
                        ))
                    }
                    Some(w) => {
                        if let Some(d) = difference(v, w, &p) {
                            return Some(d);
                        }
                    }
                }
            }
            b.keys()
                .find(|k| !a.contains_key(*k))
                .map(|k| format!("{path}.{k}: added by the type"))
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!("{path}: {} items became {}", a.len(), b.len()));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (v, w))| difference(v, w, &format!("{path}[{i}]")))
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (Value::Number(a), Value::String(b)) if a.to_string() == *b => None,
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path}: {a} became {b}")),
    }
}

/// The document, strictly: `Err` names what is wrong.
fn strict(v: &Value) -> Result<(), String> {
    let api = v["apiVersion"].as_str().unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or_default();
    let back = match (api, kind) {
        ("v1", "Namespace") => round_trip::<Namespace>(v),
        ("v1", "Secret") => round_trip::<Secret>(v),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(v),
        ("v1", "Service") => round_trip::<Service>(v),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(v),
        ("v1", "PersistentVolumeClaim") => round_trip::<PersistentVolumeClaim>(v),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(v),
        ("apps/v1", "StatefulSet") => round_trip::<StatefulSet>(v),
        ("batch/v1", "CronJob") => round_trip::<CronJob>(v),
        _ => Err(format!(
            "apiVersion {api:?} kind {kind:?} is not a type this test knows (add it to `strict`)"
        )),
    }?;
    match difference(v, &back, "$") {
        None => Ok(()),
        Some(d) => Err(d),
    }
}

#[test]
fn every_manifest_is_listed_and_parses_strictly_as_its_kubernetes_type() {
    let k = kustomization();
    assert_eq!(k["apiVersion"], "kustomize.config.k8s.io/v1beta1", "{k}");
    assert_eq!(k["kind"], "Kustomization");
    assert_eq!(k["namespace"], NAMESPACE);
    let listed: Vec<&str> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "listed twice: {listed:?}");
    let on_disk: BTreeSet<String> = std::fs::read_dir(folder())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| (n.ends_with(".yaml") || n.ends_with(".yml")) && n != "kustomization.yaml")
        .collect();
    for f in &listed {
        assert!(
            folder().join(f).is_file(),
            "kustomization.yaml lists {f}, which does not exist"
        );
    }
    let unlisted: Vec<&String> = on_disk
        .iter()
        .filter(|f| !unique.contains(f.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "manifests kustomization.yaml does not list: {unlisted:?}"
    );

    let docs = documents();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for d in &docs {
        if let Err(e) = strict(&d.value) {
            problems.push(format!("{}: {e}", d.what()));
        }
        if !seen.insert((d.kind().to_string(), d.name().to_string())) {
            problems.push(format!(
                "{}: a second object of that kind and name",
                d.what()
            ));
        }
        let ns = d.value["metadata"]["namespace"].as_str();
        if d.kind() != "Namespace" && ns != Some(NAMESPACE) {
            problems.push(format!("{}: namespace {ns:?}, not {NAMESPACE:?}", d.what()));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let kinds: BTreeSet<&str> = docs.iter().map(Doc::kind).collect();
    for kind in [
        "Namespace",
        "CronJob",
        "Deployment",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} in the manifests: {kinds:?}"
        );
    }
}

#[test]
fn the_strict_check_catches_a_misspelled_or_mistyped_field() {
    let docs = documents();
    let cron = docs.iter().find(|d| d.kind() == "CronJob").unwrap();
    assert_eq!(strict(&cron.value), Ok(()));

    // `concurrencyPolicy` misspelled: plain deserialization takes it, and the CronJob
    // would quietly allow overlapping runs. The round trip does not.
    let mut v = cron.value.clone();
    let spec = v["spec"].as_object_mut().unwrap();
    let policy = spec.remove("concurrencyPolicy").unwrap();
    spec.insert("concurencyPolicy".into(), policy);
    assert!(serde_json::from_value::<CronJob>(v.clone()).is_ok());
    let e = strict(&v).unwrap_err();
    assert!(
        e.starts_with("$.spec.concurencyPolicy: not a field of the type"),
        "{e}"
    );

    // `schedule` misspelled (the issue's own example).
    let mut v = cron.value.clone();
    let spec = v["spec"].as_object_mut().unwrap();
    let schedule = spec.remove("schedule").unwrap();
    spec.insert("shedule".into(), schedule);
    let e = strict(&v).unwrap_err();
    assert!(
        e.starts_with("$.spec.shedule: not a field of the type"),
        "{e}"
    );

    // Deep in the pod template: a container's `imagePullPolicy` misspelled.
    let mut v = cron.value.clone();
    let c = v["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap();
    c.insert("imagePulPolicy".into(), Value::from("Always"));
    let e = strict(&v).unwrap_err();
    assert_eq!(
        e,
        "$.spec.jobTemplate.spec.template.spec.containers[0].imagePulPolicy: not a field of the type (dropped: misspelled, or newer than Kubernetes 1.33)"
    );

    // The wrong type: a number as a string.
    let mut v = cron.value.clone();
    v["spec"]["jobTemplate"]["spec"]["backoffLimit"] = Value::from("0");
    let e = strict(&v).unwrap_err();
    assert!(e.contains("not a valid"), "{e}");

    // A kind the test does not know is refused, not waved through.
    let mut v = cron.value.clone();
    v["kind"] = Value::from("CronJobs");
    assert!(strict(&v)
        .unwrap_err()
        .contains("not a type this test knows"));
}

// --- references and hardening --------------------------------------------------------

/// The objects by (kind, name).
fn objects(docs: &[Doc]) -> BTreeMap<(String, String), Value> {
    docs.iter()
        .map(|d| {
            (
                (d.kind().to_string(), d.name().to_string()),
                d.value.clone(),
            )
        })
        .collect()
}

/// The pod template of a workload, with its path.
fn pod_template(v: &Value) -> Option<(&Value, &'static str)> {
    match v["kind"].as_str()? {
        "Deployment" | "StatefulSet" => Some((&v["spec"]["template"], "$.spec.template")),
        "CronJob" => Some((
            &v["spec"]["jobTemplate"]["spec"]["template"],
            "$.spec.jobTemplate.spec.template",
        )),
        _ => None,
    }
}

/// The keys of a ConfigMap's or Secret's data.
fn keys(obj: &Value) -> BTreeSet<String> {
    ["data", "stringData", "binaryData"]
        .iter()
        .filter_map(|f| obj[*f].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect()
}

/// Every string anywhere in `v`.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Every problem of references and hardening, as `file: document (Kind/name): path: what`.
fn reference_problems(docs: &[Doc]) -> Vec<String> {
    let objs = objects(docs);
    let has = |kind: &str, name: &str| objs.contains_key(&(kind.to_string(), name.to_string()));
    let mut problems = Vec::new();
    let re =
        regex::Regex::new(r"([a-z0-9][a-z0-9-]*)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)")
            .unwrap();

    for d in docs {
        let v = &d.value;
        let mut bad =
            |path: &str, what: String| problems.push(format!("{}: {path}: {what}", d.what()));

        // Services a value names (`http://faultline.chaos.svc:8089`, `@postgres.chaos.svc:5432`).
        let mut all = Vec::new();
        strings(v, &mut all);
        for s in all {
            for c in re.captures_iter(s) {
                let (svc, ns, port) = (&c[1], &c[2], &c[3]);
                if ns != NAMESPACE && ns != "observability" {
                    bad("$", format!("{s:?} names namespace {ns}"));
                    continue;
                }
                if ns != NAMESPACE {
                    continue; // a commented-out example of an outside backend
                }
                match objs.get(&("Service".to_string(), svc.to_string())) {
                    None => bad(
                        "$",
                        format!("{s:?} names Service {svc}, which is not in the manifests"),
                    ),
                    Some(service) => {
                        let ports: Vec<String> = service["spec"]["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| p["port"].to_string())
                            .collect();
                        if !ports.iter().any(|p| p == port) {
                            bad(
                                "$",
                                format!(
                                    "{s:?}: Service {svc} has no port {port} (it has {ports:?})"
                                ),
                            );
                        }
                    }
                }
            }
        }

        // A Service selects the pods of a workload, and its target ports are theirs.
        if d.kind() == "Service" {
            let sel = v["spec"]["selector"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let pods: Vec<&Value> = objs
                .values()
                .filter_map(pod_template)
                .map(|(t, _)| t)
                .filter(|t| {
                    !sel.is_empty() && sel.iter().all(|(k, x)| t["metadata"]["labels"][k] == *x)
                })
                .collect();
            if pods.is_empty() {
                bad("$.spec.selector", "selects no pod of the manifests".into());
            }
            for (i, p) in v["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let target = &p["targetPort"];
                let found =
                    pods.iter().any(|t| {
                        t["spec"]["containers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| {
                                c["ports"].as_array().into_iter().flatten().any(|cp| {
                                    cp["name"] == *target || cp["containerPort"] == *target
                                })
                            })
                    });
                if !found {
                    bad(
                        &format!("$.spec.ports[{i}].targetPort"),
                        format!("{target} is no port of the selected pods"),
                    );
                }
            }
        }

        let Some((template, tpath)) = pod_template(v) else {
            continue;
        };
        if let Some(sel) = v["spec"]["selector"]["matchLabels"].as_object() {
            for (k, x) in sel {
                if template["metadata"]["labels"][k] != *x {
                    bad(
                        "$.spec.selector.matchLabels",
                        format!("{k}={x} is not a label of the pod template"),
                    );
                }
            }
        }
        let spec = &template["spec"];
        let sp = format!("{tpath}.spec");
        if spec["automountServiceAccountToken"] != false {
            bad(&sp, "automountServiceAccountToken is not false".into());
        }
        if let Some(sa) = spec["serviceAccountName"].as_str() {
            if !has("ServiceAccount", sa) {
                bad(
                    &format!("{sp}.serviceAccountName"),
                    format!("ServiceAccount {sa} is not in the manifests"),
                );
            }
        }
        let psc = &spec["securityContext"];
        if psc["runAsNonRoot"] != true {
            bad(
                &format!("{sp}.securityContext.runAsNonRoot"),
                "not true".into(),
            );
        }
        if psc["runAsUser"].as_u64().is_none_or(|u| u == 0) {
            bad(
                &format!("{sp}.securityContext.runAsUser"),
                "no non-zero uid (a named USER cannot be checked by the kubelet)".into(),
            );
        }
        if psc["seccompProfile"]["type"] != "RuntimeDefault" {
            bad(
                &format!("{sp}.securityContext.seccompProfile"),
                "not RuntimeDefault".into(),
            );
        }
        let mut volumes: BTreeSet<String> = BTreeSet::new();
        for (i, vol) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
            let vp = format!("{sp}.volumes[{i}]");
            volumes.insert(vol["name"].as_str().unwrap_or_default().to_string());
            if let Some(n) = vol["configMap"]["name"].as_str() {
                if !has("ConfigMap", n) {
                    bad(&vp, format!("ConfigMap {n} is not in the manifests"));
                }
            }
            if let Some(n) = vol["secret"]["secretName"].as_str() {
                if !has("Secret", n) {
                    bad(&vp, format!("Secret {n} is not in the manifests"));
                }
            }
            if let Some(n) = vol["persistentVolumeClaim"]["claimName"].as_str() {
                if !has("PersistentVolumeClaim", n) {
                    bad(
                        &vp,
                        format!("PersistentVolumeClaim {n} is not in the manifests"),
                    );
                }
            }
        }
        for t in v["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            volumes.insert(
                t["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        for list in ["initContainers", "containers"] {
            for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
                let cp = format!("{sp}.{list}[{i}]");
                let image = c["image"].as_str().unwrap_or_default();
                let tag = image
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .split_once(':')
                    .map(|x| x.1);
                if !(image.contains("@sha256:")
                    || tag.is_some_and(|t| !t.is_empty() && t != "latest"))
                {
                    bad(
                        &format!("{cp}.image"),
                        format!("{image:?} is not pinned to a version"),
                    );
                }
                for f in ["requests", "limits"] {
                    for r in ["cpu", "memory"] {
                        if c["resources"][f][r].is_null() {
                            bad(&format!("{cp}.resources.{f}"), format!("no {r}"));
                        }
                    }
                }
                let sc = &c["securityContext"];
                if sc["allowPrivilegeEscalation"] != false {
                    bad(
                        &format!("{cp}.securityContext.allowPrivilegeEscalation"),
                        "not false".into(),
                    );
                }
                if sc["readOnlyRootFilesystem"] != true {
                    bad(
                        &format!("{cp}.securityContext.readOnlyRootFilesystem"),
                        "not true".into(),
                    );
                }
                if sc["capabilities"]["drop"] != serde_json::json!(["ALL"]) {
                    bad(
                        &format!("{cp}.securityContext.capabilities.drop"),
                        "not [ALL]".into(),
                    );
                }
                for (j, m) in c["volumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let n = m["name"].as_str().unwrap_or_default();
                    if !volumes.contains(n) {
                        bad(
                            &format!("{cp}.volumeMounts[{j}]"),
                            format!("volume {n} is not declared"),
                        );
                    }
                    // A file of a mounted ConfigMap named by an arg or an env value
                    // (`--config=/etc/otelcol-contrib/config.yaml`) is one of its keys.
                    let at = format!("{}/", m["mountPath"].as_str().unwrap_or_default());
                    let cm = spec["volumes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|v| v["name"] == n)
                        .and_then(|v| v["configMap"]["name"].as_str())
                        .and_then(|cm| objs.get(&("ConfigMap".to_string(), cm.to_string())));
                    let Some(cm) = cm else { continue };
                    let mut named = Vec::new();
                    strings(&c["args"], &mut named);
                    strings(&c["command"], &mut named);
                    strings(&c["env"], &mut named);
                    for s in named {
                        let Some((_, rest)) = s.split_once(&at) else {
                            continue;
                        };
                        let key = rest.split(['/', ' ']).next().unwrap_or_default();
                        if !keys(cm).contains(key) {
                            bad(
                                &format!("{cp}.volumeMounts[{j}]"),
                                format!(
                                    "{s:?}: ConfigMap {} has no key {key:?}",
                                    cm["metadata"]["name"]
                                ),
                            );
                        }
                    }
                }
                for (j, e) in c["envFrom"].as_array().into_iter().flatten().enumerate() {
                    for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                        if let Some(n) = e[field]["name"].as_str() {
                            if !has(kind, n) {
                                bad(
                                    &format!("{cp}.envFrom[{j}]"),
                                    format!("{kind} {n} is not in the manifests"),
                                );
                            }
                        }
                    }
                }
                for (j, e) in c["env"].as_array().into_iter().flatten().enumerate() {
                    for (field, kind) in
                        [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")]
                    {
                        let r = &e["valueFrom"][field];
                        let (Some(n), Some(key)) = (r["name"].as_str(), r["key"].as_str()) else {
                            continue;
                        };
                        match objs.get(&(kind.to_string(), n.to_string())) {
                            None => bad(
                                &format!("{cp}.env[{j}]"),
                                format!("{kind} {n} is not in the manifests"),
                            ),
                            Some(o) if !keys(o).contains(key) => bad(
                                &format!("{cp}.env[{j}]"),
                                format!("{kind} {n} has no key {key} (it has {:?})", keys(o)),
                            ),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
    }

    // The server's store URL is PostgreSQL's, with its user, password and database.
    let secret = |name: &str, key: &str| {
        objs.get(&("Secret".to_string(), name.to_string()))
            .and_then(|s| s["stringData"][key].as_str())
            .map(str::to_string)
    };
    if let (Some(url), Some(user), Some(password), Some(db)) = (
        secret("faultline-store", "FAULTLINE_STORE"),
        secret("postgres", "POSTGRES_USER"),
        secret("postgres", "POSTGRES_PASSWORD"),
        secret("postgres", "POSTGRES_DB"),
    ) {
        let u = url::Url::parse(&url).unwrap();
        if (u.scheme(), u.username(), u.password(), u.path())
            != ("postgres", &*user, Some(&*password), &*format!("/{db}"))
        {
            problems.push(format!(
                "faultline-serve.yaml: Secret faultline-store's URL does not match Secret postgres (user {user}, database {db}, its password)"
            ));
        }
    } else {
        problems.push("the Secrets faultline-store (FAULTLINE_STORE) and postgres (POSTGRES_USER, _PASSWORD, _DB) are missing".into());
    }
    problems
}

#[test]
fn every_reference_resolves_and_every_pod_is_hardened() {
    let docs = documents();
    let problems = reference_problems(&docs);
    assert!(problems.is_empty(), "{problems:#?}");

    // The check does catch a broken reference.
    let mut broken = docs.clone();
    let cron = broken.iter_mut().find(|d| d.kind() == "CronJob").unwrap();
    let env = cron.value["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap();
    let token = env
        .iter_mut()
        .find(|e| e["name"] == "FAULTLINE_TOKEN")
        .unwrap();
    token["valueFrom"]["secretKeyRef"]["key"] = Value::from("FAULTLINE_TOKN");
    cron.value["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        Value::from("ghcr.io/faultline/faultline:latest");
    // The runs' server on a port its Service does not have; the database password
    // changed in one Secret only.
    let runner = broken
        .iter_mut()
        .find(|d| d.kind() == "Secret" && d.name() == "faultline-runner")
        .unwrap();
    runner.value["stringData"]["FAULTLINE_STORE"] = Value::from("http://faultline.chaos.svc:8090");
    let pg = broken
        .iter_mut()
        .find(|d| d.kind() == "Secret" && d.name() == "postgres")
        .unwrap();
    pg.value["stringData"]["POSTGRES_PASSWORD"] = Value::from("another");
    let problems = reference_problems(&broken);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for expected in [
        "cronjob.yaml: document 2 (CronJob/faultline-chaos): $.spec.jobTemplate.spec.template.spec.containers[0].image: \"ghcr.io/faultline/faultline:latest\" is not pinned",
        "Secret faultline-runner has no key FAULTLINE_TOKN",
        "runner-secret.yaml: document 1 (Secret/faultline-runner): $: \"http://faultline.chaos.svc:8090\": Service faultline has no port 8090",
        "Secret faultline-store's URL does not match Secret postgres",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected}: {problems:#?}"
        );
    }
}

#[test]
fn the_cronjob_runs_one_catalog_at_a_time_within_deadlines() {
    let docs = documents();
    let crons: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "CronJob").collect();
    assert_eq!(crons.len(), 1);
    let spec = &crons[0].value["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert!(spec["schedule"]
        .as_str()
        .is_some_and(|s| s.split_whitespace().count() == 5));
    for k in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        assert!(spec[k].as_u64().is_some(), "{k}: {spec}");
    }
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 0);
    assert!(job["activeDeadlineSeconds"].as_u64().is_some_and(|s| s > 0));
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let main = &pod["containers"][0];
    let args: Vec<&str> = main["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run", "{args:?}");
    for flag in ["--journal-path", "--junit"] {
        assert!(args.contains(&flag), "{flag}: {args:?}");
    }
    let env: BTreeSet<&str> = main["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in [
        "FAULTLINE_SETTINGS",
        "FAULTLINE_STORE",
        "FAULTLINE_TOKEN",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        assert!(env.contains(name), "{name}: {env:?}");
    }
    let gate = &pod["initContainers"][0];
    assert_eq!(gate["args"][0], "kill");
    assert_eq!(gate["args"][1], "--status");
}

// --- with the real binary ---------------------------------------------------------------

/// Lay a ConfigMap out in `dir` as the kubelet does: the keys in a timestamped
/// directory, `..data` linking to it, and each key a link through `..data`.
fn mount_config_map(cm: &Value, dir: &Path) {
    let stamp = dir.join("..2026_12_06_00_00_00.000000000");
    std::fs::create_dir_all(&stamp).unwrap();
    for (k, v) in cm["data"].as_object().unwrap() {
        std::fs::write(stamp.join(k), v.as_str().unwrap()).unwrap();
        std::os::unix::fs::symlink(Path::new("..data").join(k), dir.join(k)).unwrap();
    }
    std::os::unix::fs::symlink(stamp.file_name().unwrap(), dir.join("..data")).unwrap();
}

/// A container of the manifests, as it would run here: its mounts under `root`, its
/// args and env with their paths moved there and `$(VAR)` expanded, env values from
/// the manifests' Secrets and ConfigMaps, then `overrides` (in-cluster addresses).
fn container(
    objs: &BTreeMap<(String, String), Value>,
    pod: &Value,
    c: &Value,
    root: &Path,
    overrides: &[(&str, String)],
) -> (Vec<String>, Vec<(String, String)>) {
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap();
        let at = m["mountPath"].as_str().unwrap();
        // One directory per volume, shared by the containers that mount it.
        let local = root.join(name);
        let vol = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        if !local.exists() {
            std::fs::create_dir_all(&local).unwrap();
            if let Some(cm) = vol["configMap"]["name"].as_str() {
                mount_config_map(&objs[&("ConfigMap".to_string(), cm.to_string())], &local);
            } else {
                // An emptyDir, or a claim: empty at first either way.
                assert!(
                    vol.get("emptyDir").is_some() || vol.get("persistentVolumeClaim").is_some(),
                    "{vol}"
                );
            }
        }
        mounts.push((at.to_string(), local));
    }
    // Longest mount first: /var/lib/faultline/x is under /var/lib/faultline.
    mounts.sort_by_key(|(at, _)| std::cmp::Reverse(at.len()));
    let local = |s: &str| -> String {
        for (at, dir) in &mounts {
            if s == at || s.starts_with(&format!("{at}/")) {
                return format!("{}{}", dir.display(), &s[at.len()..]);
            }
        }
        s.to_string()
    };
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            local(v)
        } else {
            let (kind, r) = if e["valueFrom"]["secretKeyRef"].is_object() {
                ("Secret", &e["valueFrom"]["secretKeyRef"])
            } else {
                ("ConfigMap", &e["valueFrom"]["configMapKeyRef"])
            };
            let o = &objs[&(kind.to_string(), r["name"].as_str().unwrap().to_string())];
            let key = r["key"].as_str().unwrap();
            o["stringData"][key]
                .as_str()
                .or(o["data"][key].as_str())
                .unwrap()
                .to_string()
        };
        env.push((name, value));
    }
    for (k, v) in overrides {
        env.retain(|(n, _)| n != k);
        env.push((k.to_string(), v.clone()));
    }
    let args = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut s = a.as_str().unwrap().to_string();
            for (k, v) in &env {
                s = s.replace(&format!("$({k})"), v);
            }
            local(&s)
        })
        .collect();
    (args, env)
}

fn run_container(dir: &TempDir, args: &[String], env: &[(String, String)]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    faultline(dir, &args, &env)
}

/// `faultline serve` as the Deployment runs it: its container's args and env, its
/// claim and emptyDirs in a temporary directory, the store the `faultline-store`
/// Secret names with the host moved to a local PostgreSQL whose user, password and
/// database are `postgres`'s Secret's (an SQLite file when PostgreSQL is not installed).
struct Engine {
    env: Vec<(String, String)>,
    base: String,
    _child: ChildGuard,
    _postgres: Option<Postgres>,
}

impl Engine {
    fn start(dir: &TempDir, objs: &BTreeMap<(String, String), Value>) -> Engine {
        let deployment = &objs[&("Deployment".into(), "faultline".into())];
        let pod = &deployment["spec"]["template"]["spec"];
        let secret = |name: &str, key: &str| {
            objs[&("Secret".to_string(), name.to_string())]["stringData"][key]
                .as_str()
                .unwrap()
                .to_string()
        };
        let postgres = Postgres::start();
        let store = match &postgres {
            Some(pg) => {
                let (user, password, db) = (
                    secret("postgres", "POSTGRES_USER"),
                    secret("postgres", "POSTGRES_PASSWORD"),
                    secret("postgres", "POSTGRES_DB"),
                );
                let rt = crate::store::runtime();
                rt.block_on(async {
                    let admin = format!("postgres://faultline@127.0.0.1:{}/postgres", pg.port());
                    let (c, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                        .await
                        .unwrap();
                    tokio::spawn(conn);
                    if user != "faultline" {
                        c.batch_execute(&format!("CREATE ROLE \"{user}\" LOGIN"))
                            .await
                            .unwrap();
                    }
                    for sql in [
                        format!("ALTER ROLE \"{user}\" PASSWORD '{password}'"),
                        format!("CREATE DATABASE \"{db}\" OWNER \"{user}\""),
                    ] {
                        c.batch_execute(&sql).await.unwrap();
                    }
                });
                let mut url =
                    url::Url::parse(&secret("faultline-store", "FAULTLINE_STORE")).unwrap();
                url.set_host(Some("127.0.0.1")).unwrap();
                url.set_port(Some(pg.port())).unwrap();
                url.to_string()
            }
            None => dir.join("store.db").display().to_string(),
        };
        let c = &pod["containers"][0];
        let (mut args, env) = container(
            objs,
            pod,
            c,
            &dir.join("server"),
            &[("FAULTLINE_STORE", store)],
        );
        // Its port, on loopback here.
        let listen = args.iter().position(|a| a == "--listen").unwrap() + 1;
        assert_eq!(
            args[listen],
            format!("0.0.0.0:{}", c["ports"][0]["containerPort"])
        );
        args[listen] = "127.0.0.1:0".into();
        let out = dir.join("serve.out");
        let child = std::process::Command::new(bin())
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.join("serve.err")).unwrap())
            .spawn()
            .unwrap();
        let mut child = ChildGuard(Some(child));
        let mut base = String::new();
        wait_until(
            std::time::Duration::from_secs(60),
            "faultline serve to listen",
            || {
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                if let Some(rest) = text.split("listening on ").nth(1) {
                    base = rest.split_whitespace().next().unwrap().to_string();
                    return true;
                }
                assert!(
                    child.0.as_mut().unwrap().try_wait().unwrap().is_none(),
                    "serve exited: {}",
                    std::fs::read_to_string(dir.join("serve.err")).unwrap_or_default()
                );
                false
            },
        );
        if postgres.is_some() {
            let text = std::fs::read_to_string(&out).unwrap();
            assert!(text.contains("(store postgres://"), "{text}");
        }
        Engine {
            env,
            base,
            _child: child,
            _postgres: postgres,
        }
    }

    /// The server container's environment, for commands run "in" it.
    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

#[test]
fn the_settings_and_every_experiment_of_the_configmaps_pass_faultline_validate() {
    let objs = objects(&documents());
    let dir = TempDir::new("k8s-validate");
    let settings = dir.join("settings");
    std::fs::create_dir_all(&settings).unwrap();
    mount_config_map(
        &objs[&("ConfigMap".into(), "faultline-settings".into())],
        &settings,
    );
    let experiments = dir.join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    let cm = &objs[&("ConfigMap".into(), "faultline-experiments".into())];
    mount_config_map(cm, &experiments);
    let names: Vec<&String> = cm["data"].as_object().unwrap().keys().collect();
    assert!(names.len() >= 2, "{names:?}");
    for name in names {
        assert!(
            name.ends_with(".yaml") || name.ends_with(".json"),
            "{name}: not picked up by `faultline run DIR`"
        );
        let out = faultline(
            &dir,
            &[
                "validate",
                experiments.join(name).to_str().unwrap(),
                "--settings",
                settings.join("settings.yaml").to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(out.code, 0, "{name}: {}", out.all_text());
        assert!(
            !out.all_text().contains("warning"),
            "{name}: {}",
            out.all_text()
        );
    }

    // A typo in the settings is caught the same way.
    let text = std::fs::read_to_string(settings.join("settings.yaml")).unwrap();
    let bad = dir.write(
        "bad-settings.yaml",
        &text.replace("service_name", "service_nam"),
    );
    let out = faultline(
        &dir,
        &[
            "validate",
            experiments
                .join("faultline-serve-answers.yaml")
                .to_str()
                .unwrap(),
            "--settings",
            bad.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stdout.contains("service_nam"), "{}", out.all_text());
}

#[test]
fn the_cronjobs_containers_run_as_written_against_a_real_server() {
    let docs = documents();
    let objs = objects(&docs);
    let dir = TempDir::new("k8s-cronjob");
    let engine = Engine::start(&dir, &objs);
    let served = &engine.base;
    // The server's probes ask real paths of it, and answer 200 while the store
    // answers; readiness reads the store (within its probe's timeout), liveness does
    // not (a database outage must not restart every replica).
    let deployment = &objs[&("Deployment".into(), "faultline".into())];
    let server = &deployment["spec"]["template"]["spec"]["containers"][0];
    faultline::tls::init();
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &server[probe]["httpGet"];
        assert_eq!(get["port"], "http", "{probe}");
        let path = get["path"].as_str().unwrap();
        let r = http.get(format!("{served}{path}")).send().unwrap();
        assert_eq!(r.status(), 200, "{probe} {path}");
    }
    assert_eq!(server["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(server["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(
        server["readinessProbe"]["timeoutSeconds"].as_u64().unwrap()
            > faultline::server::READY_LIMIT.as_secs()
    );
    // What `kubectl exec deploy/faultline -- faultline token create --org chaos` does
    // (README.md, "The runner's token"): the server container's environment.
    let out = faultline(&dir, &["token", "create", "--org", "chaos"], &engine.env());
    assert_eq!(out.code, 0, "{}", out.all_text());
    let token = out.stdout.trim().to_string();
    // The collector: its health check, its OTLP/HTTP receiver.
    let collector = Server::start(|_| Response::json(200, &serde_json::json!({})));

    let cron = &objs[&("CronJob".into(), "faultline-chaos".into())];
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let root = dir.join("pod");
    let in_cluster = |token: &str| {
        vec![
            ("FAULTLINE_STORE", served.clone()),
            ("FAULTLINE_TOKEN", token.to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url("")),
            ("FAULTLINE_SERVER_URL", served.clone()),
            ("COLLECTOR_HEALTH_URL", collector.url("/")),
            ("COLLECTOR_OTLP_URL", collector.url("")),
        ]
    };

    // The gate, with the manifests' placeholder token: refused, exit 2.
    let gate = &pod["initContainers"][0];
    let placeholder = in_cluster("")
        .into_iter()
        .filter(|(k, _)| *k != "FAULTLINE_TOKEN")
        .collect::<Vec<_>>();
    let (args, env) = container(&objs, pod, gate, &root, &placeholder);
    assert!(
        env.iter()
            .any(|(k, v)| k == "FAULTLINE_TOKEN" && v.starts_with("replace-me")),
        "{env:?}"
    );
    let out = run_container(&dir, &args, &env);
    assert_eq!(
        out.code,
        2,
        "the placeholder token must stop the pod: {}",
        out.all_text()
    );

    // With a real token: 0 while the switch is off, 4 once engaged.
    let (args, env) = container(&objs, pod, gate, &root, &in_cluster(&token));
    let out = run_container(&dir, &args, &env);
    assert_eq!(out.code, 0, "{args:?}: {}", out.all_text());
    // Engaged as README.md says, in the server's container, through the server (its
    // switch is a row of the store, shared by every replica), and released the same way.
    let out = faultline(
        &dir,
        &[
            "kill",
            "--server",
            served,
            "--token",
            &token,
            "--reason",
            "incident 4711",
        ],
        &engine.env(),
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let out = run_container(&dir, &args, &env);
    assert_eq!(out.code, 4, "{}", out.all_text());
    assert!(
        out.all_text().contains("incident 4711"),
        "{}",
        out.all_text()
    );
    let out = faultline(
        &dir,
        &["kill", "--release", "--server", served, "--token", &token],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let out = run_container(&dir, &args, &env);
    assert_eq!(out.code, 0, "{}", out.all_text());

    // The run: the whole catalog, recorded on the server, spans to the collector.
    let main = &pod["containers"][0];
    let (args, env) = container(&objs, pod, main, &root, &in_cluster(&token));
    let out = run_container(&dir, &args, &env);
    assert_eq!(out.code, 0, "{args:?}\n{}", out.all_text());
    let at = |flag: &str| PathBuf::from(&args[args.iter().position(|a| a == flag).unwrap() + 1]);
    let journals = at("--journal-path");
    let cm = &objs[&("ConfigMap".into(), "faultline-experiments".into())];
    for name in cm["data"].as_object().unwrap().keys() {
        let stem = name.rsplit_once('.').unwrap().0;
        let j: Value = serde_json::from_str(
            &std::fs::read_to_string(journals.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(j["status"], "completed", "{name}: {j}");
        assert_eq!(j["deviated"], false, "{name}");
    }
    let junit = std::fs::read_to_string(at("--junit")).unwrap();
    assert!(
        junit.contains("tests=\"2\"") && junit.contains("failures=\"0\""),
        "{junit}"
    );

    faultline::tls::init();
    let runs: Value = reqwest::blocking::Client::new()
        .get(format!("{served}/api/v1/orgs/chaos/runs"))
        .bearer_auth(&token)
        .query(&[("label", "trigger=cronjob")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs}");

    let requests = collector.requests();
    let spans = requests.iter().filter(|r| {
        r.path == "/v1/traces"
            && r.header("content-type")
                .is_some_and(|c| c.contains("protobuf"))
    });
    assert!(
        spans.count() >= 1,
        "no spans reached the collector: {:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let export = requests
        .iter()
        .find(|r| r.path == "/v1/traces" && r.header("content-type") == Some("application/json"));
    assert_eq!(
        export.map(|r| r.text()),
        Some(r#"{"resourceSpans":[]}"#.to_string()),
        "the experiment's own export"
    );
}

#[test]
fn the_server_scales_out_because_its_kill_switch_is_in_the_store() {
    let objs = objects(&documents());
    let deployment = &objs[&("Deployment".into(), "faultline".into())];
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    assert!(replicas >= 2, "the server runs {replicas} replica(s)");
    // Nothing per replica holds the switch: no switch file, no claim for one.
    let pod = &deployment["spec"]["template"]["spec"];
    for c in pod["containers"].as_array().unwrap() {
        let args = c["args"].to_string();
        assert!(!args.contains("--kill-switch"), "{args}");
        for e in c["env"].as_array().into_iter().flatten() {
            assert_ne!(e["name"], "FAULTLINE_KILL_SWITCH", "{e}");
        }
    }
    for v in pod["volumes"].as_array().into_iter().flatten() {
        assert!(v.get("persistentVolumeClaim").is_none(), "{v}");
    }
    // A rolling update: two replicas never need to let go of a volume first.
    assert_ne!(deployment["spec"]["strategy"]["type"], "Recreate");
}

#[test]
fn the_collectors_configuration_defines_everything_its_pipelines_use() {
    let objs = objects(&documents());
    let cm = &objs[&("ConfigMap".into(), "otel-collector".into())];
    let config: Value =
        serde_saphyr::from_str(cm["data"]["config.yaml"].as_str().unwrap()).unwrap();
    let service = &config["service"];
    for ext in service["extensions"].as_array().into_iter().flatten() {
        let ext = ext.as_str().unwrap();
        assert!(
            config["extensions"].get(ext).is_some(),
            "extension {ext} is not defined"
        );
    }
    let pipelines = service["pipelines"].as_object().unwrap();
    // The runs send both: their spans and their lifecycle events as OTLP log records.
    for signal in ["traces", "logs"] {
        assert!(pipelines.contains_key(signal), "no {signal} pipeline");
    }
    for (name, p) in pipelines {
        for section in ["receivers", "processors", "exporters"] {
            for c in p[section].as_array().into_iter().flatten() {
                let c = c.as_str().unwrap();
                assert!(
                    config[section].get(c).is_some(),
                    "pipeline {name}: {section} {c} is not defined"
                );
            }
        }
    }
    let otlp = &config["receivers"]["otlp"]["protocols"];
    assert_eq!(otlp["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(otlp["http"]["endpoint"], "0.0.0.0:4318");
}
