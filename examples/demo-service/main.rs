//! Run with: `cargo run --example demo-service -- --port 8090`
//!
//! A small instrumented HTTP service for faultline's experiments to disturb and observe:
//! it joins the caller's trace (W3C `traceparent`/`tracestate` and `baggage`), so the
//! SERVER spans it exports over OTLP sit under faultline's probe spans ("chaos trace next
//! to app trace"), and it exposes Prometheus metrics (requests by route and status code,
//! a latency histogram with explicit buckets) for SLO-style probes.
//!
//! Faults are switched on over HTTP, the way an experiment's actions would:
//! `POST /fault/latency?ms=N` delays every `/api` request, `POST /fault/errors?rate=R`
//! answers a deterministic fraction `R` of `/api` requests with 500 (every k-th one;
//! `/health` turns 503 when `R` is 1.0), `POST /fault/reset` clears both.
//!
//! Telemetry follows the standard OpenTelemetry variables: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (and `..._TRACES_ENDPOINT`), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` by default,
//! `http/json`, `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` (default
//! `demo-service`), `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn exporting off. SIGTERM/SIGINT stop the server and
//! flush the spans before exit.

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use clap::Parser;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counter of answered requests, labelled `route` and `status`.
const REQUESTS_TOTAL: &str = "demo_http_requests_total";
/// Histogram of request durations in seconds, labelled `route` and `status`.
const REQUEST_DURATION: &str = "demo_http_request_duration_seconds";
/// Explicit buckets, so Prometheus gets a histogram (`histogram_quantile()` works),
/// not a summary.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How long a graceful shutdown may wait for requests still in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(3);
/// How long flushing the spans may take at exit (a dead collector must not hang us).
const FLUSH_LIMIT: Duration = Duration::from_secs(3);

#[derive(Parser, Debug)]
#[command(about = "A small instrumented HTTP service for faultline experiments")]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 8090)]
    port: u16,
    /// Address to bind: loopback unless told (a container binds 0.0.0.0).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
}

/// The faults currently switched on.
#[derive(Debug, Default)]
struct Faults {
    latency_ms: u64,
    error_rate: f64,
    /// `/api` requests seen since the error rate was last set; drives which ones fail.
    api_requests: u64,
}

impl Faults {
    fn view(&self) -> Value {
        json!({"latency_ms": self.latency_ms, "error_rate": self.error_rate})
    }

    /// Count one `/api` request and say whether it must fail: request `n` fails when
    /// `floor(n * rate)` steps up, so exactly a `rate` fraction fails, evenly spread
    /// (0.5: every 2nd, 0.25: every 4th, 1.0: all).
    fn next_fails(&mut self) -> bool {
        self.api_requests += 1;
        let n = self.api_requests as f64;
        (n * self.error_rate).floor() > ((n - 1.0) * self.error_rate).floor()
    }
}

#[derive(Clone)]
struct App {
    faults: Arc<Mutex<Faults>>,
    tracer: SdkTracer,
    propagator: Arc<TextMapCompositePropagator>,
    metrics: PrometheusHandle,
}

/// Reads propagation fields from request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
}

/// The tracer provider the standard variables describe. Must run inside the Tokio
/// runtime (the gRPC exporter binds to it).
fn tracer_provider() -> Result<SdkTracerProvider, Box<dyn std::error::Error>> {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("demo-service");
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    if env_is("OTEL_SDK_DISABLED", "true") || env_is("OTEL_TRACES_EXPORTER", "none") {
        return Ok(builder.build());
    }
    // The exporter does not choose gRPC vs HTTP from the environment, and with JSON
    // support compiled in its HTTP default is JSON: decide here, spec default protobuf.
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let exporter = match protocol.as_str() {
        "grpc" => SpanExporter::builder().with_tonic().build()?,
        "http/json" => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .build()?,
        _ => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()?,
    };
    Ok(builder.with_batch_exporter(exporter).build())
}

/// Builds the service; kept apart from `main` so it could be driven without a socket.
fn router(app: App) -> Router {
    let traced = Router::new()
        .route("/health", get(health))
        .route("/api/orders", get(orders))
        .route("/fault", get(fault_state))
        .route("/fault/latency", post(fault_latency))
        .route("/fault/errors", post(fault_errors))
        .route("/fault/reset", post(fault_reset))
        .route_layer(middleware::from_fn_with_state(app.clone(), instrument));
    Router::new()
        .route("/metrics", get(metrics))
        .merge(traced)
        .with_state(app)
}

/// One SERVER span per request, child of the caller's span when the request carries a
/// `traceparent`; `chaos.*` baggage entries become span attributes. Counts the request.
async fn instrument(
    State(app): State<App>,
    matched: axum::extract::MatchedPath,
    mut req: Request,
    next: Next,
) -> Response {
    let route = matched.as_str().to_owned();
    let method = req.method().as_str().to_owned();
    let parent = app.propagator.extract(&HeaderExtractor(req.headers()));
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.clone()),
        KeyValue::new("http.route", route.clone()),
        KeyValue::new("url.path", req.uri().path().to_owned()),
        KeyValue::new("url.scheme", "http"),
    ];
    for (key, (value, _)) in parent.baggage().iter() {
        if key.as_str().starts_with("chaos.") {
            attributes.push(KeyValue::new(key.clone(), value.as_str().to_owned()));
        }
    }
    let span = app
        .tracer
        .span_builder(format!("{method} {route}"))
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(&app.tracer, &parent);
    let cx = parent.with_span(span);
    req.extensions_mut().insert(cx.clone());

    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    let code = status.as_u16().to_string();
    metrics::counter!(REQUESTS_TOTAL, "route" => route.clone(), "status" => code.clone())
        .increment(1);
    metrics::histogram!(REQUEST_DURATION, "route" => route, "status" => code)
        .record(started.elapsed().as_secs_f64());

    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_attribute(KeyValue::new("error.type", status.as_u16().to_string()));
        span.set_status(Status::error(format!("answered {status}")));
    }
    span.end();
    response
}

async fn health(State(app): State<App>) -> Response {
    let failing = app.faults.lock().unwrap().error_rate >= 1.0;
    if failing {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failing"})),
        )
            .into_response()
    } else {
        Json(json!({"status": "ok"})).into_response()
    }
}

async fn orders(State(app): State<App>, Extension(cx): Extension<Context>) -> Response {
    let mut span = app
        .tracer
        .span_builder("orders.load")
        .with_kind(SpanKind::Internal)
        .start_with_context(&app.tracer, &cx);
    let (latency, fails) = {
        let mut faults = app.faults.lock().unwrap();
        (faults.latency_ms, faults.next_fails())
    };
    if latency > 0 {
        span.add_event(
            "fault.latency",
            vec![KeyValue::new("fault.latency_ms", latency as i64)],
        );
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if fails {
        span.add_event("fault.error", vec![]);
        span.set_status(Status::error("injected error"));
        span.end();
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "injected fault"})),
        )
            .into_response();
    }
    span.end();
    Json(json!([
        {"id": 1, "item": "espresso beans", "quantity": 2},
        {"id": 2, "item": "milk frother", "quantity": 1},
        {"id": 3, "item": "paper filters", "quantity": 100},
    ]))
    .into_response()
}

async fn fault_state(State(app): State<App>) -> Json<Value> {
    Json(app.faults.lock().unwrap().view())
}

#[derive(Deserialize)]
struct LatencyQuery {
    ms: u64,
}

async fn fault_latency(State(app): State<App>, Query(q): Query<LatencyQuery>) -> Json<Value> {
    let mut faults = app.faults.lock().unwrap();
    faults.latency_ms = q.ms;
    Json(faults.view())
}

#[derive(Deserialize)]
struct ErrorsQuery {
    rate: f64,
}

async fn fault_errors(State(app): State<App>, Query(q): Query<ErrorsQuery>) -> Response {
    if !(0.0..=1.0).contains(&q.rate) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "rate must be between 0.0 and 1.0"})),
        )
            .into_response();
    }
    let mut faults = app.faults.lock().unwrap();
    faults.error_rate = q.rate;
    faults.api_requests = 0;
    Json(faults.view()).into_response()
}

async fn fault_reset(State(app): State<App>) -> Json<Value> {
    let mut faults = app.faults.lock().unwrap();
    *faults = Faults::default();
    Json(faults.view())
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // The OTLP/HTTP exporter's client needs a TLS provider; faultline builds reqwest
    // without one and installs *ring* (see src/tls.rs).
    faultline::tls::init();
    let metrics_handle = PrometheusBuilder::new()
        .set_buckets(DURATION_BUCKETS)?
        .install_recorder()?;
    let upkeep = metrics_handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    let provider = tracer_provider()?;
    let app = App {
        faults: Arc::default(),
        tracer: provider.tracer("demo-service"),
        propagator: Arc::new(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ])),
        metrics: metrics_handle,
    };

    let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
    let addr = listener.local_addr()?;
    // Tests read this first line to learn the port.
    println!("listening on {addr}");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut graceful = stop_rx.clone();
    let mut drain = stop_rx;
    let server = async move {
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|stop| *stop).await;
            })
            .await
    };
    tokio::select! {
        served = server => served?,
        _ = async {
            let _ = drain.wait_for(|stop| *stop).await;
            tokio::time::sleep(DRAIN_LIMIT).await;
        } => eprintln!("demo-service: requests still in flight after {DRAIN_LIMIT:?}, stopping anyway"),
    }

    // Off the runtime's worker, and while the runtime is still alive: the batch
    // processor's thread needs both to deliver the last spans.
    let flushed =
        tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_LIMIT)).await?;
    if let Err(e) = flushed {
        eprintln!("demo-service: flushing spans failed: {e}");
    }
    eprintln!("demo-service: stopped");
    Ok(())
}
