//! Minimal OTLP receivers on 127.0.0.1 for the tests: HTTP (protobuf and JSON) on a
//! std thread, gRPC on tonic in its own runtime, plus the outages a collector can
//! have (refused, a blackhole that accepts and never answers, 500 / UNAVAILABLE).
//!
//! Each receiver stops and joins its threads when dropped.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One export request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub request: ExportTraceServiceRequest,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How an HTTP receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Status(u16),
    /// Accept the connection, hold it, never read or answer.
    Blackhole,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// The string value of attribute `key`.
pub fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            AnyValue::BoolValue(b) => Some(b.to_string()),
            AnyValue::DoubleValue(d) => Some(d.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}

/// Every span in `requests`, with its resource's `service.name`.
pub fn spans(requests: &[ExportTraceServiceRequest]) -> Vec<(Option<String>, Span)> {
    let mut out = Vec::new();
    for r in requests {
        for rs in &r.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|res| attr(&res.attributes, "service.name"));
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push((service.clone(), s.clone()));
                }
            }
        }
    }
    out
}

/// An HTTP/1.1 OTLP receiver (or an outage) on a std thread.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    pub log: Log,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpReceiver {
    pub fn start(mode: Mode) -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let log: Log = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || accept_loop(listener, mode, l, s));
        HttpReceiver {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, mode: Mode, log: Log, stop: Arc<AtomicBool>) {
    let mut held = Vec::new();
    let mut handlers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if mode == Mode::Blackhole {
                    held.push(stream);
                } else {
                    let (l, s) = (log.clone(), stop.clone());
                    handlers.push(std::thread::spawn(move || serve(stream, mode, l, s)));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => break,
        }
    }
    drop(held);
    for h in handlers {
        let _ = h.join();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Serve keep-alive requests on one connection until EOF or stop.
fn serve(mut stream: TcpStream, mode: Mode, log: Log, stop: Arc<AtomicBool>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Parse as many complete requests as the buffer holds.
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let path = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("")
                .to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            let json = headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.contains("json"));
            let request = if json {
                serde_json::from_slice::<ExportTraceServiceRequest>(&body).expect("OTLP JSON body")
            } else {
                ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf body")
            };
            log.lock().unwrap().push(Received {
                path,
                headers,
                request,
            });
            let answer = match mode {
                Mode::Status(code) => format!(
                    "HTTP/1.1 {code} Error\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nfail"
                ),
                _ if json => "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_string(),
                _ => "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n".to_string(),
            };
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// A port nothing listens on (bound, then released): connections are refused.
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

#[derive(Clone)]
struct Collector {
    log: Log,
    fail: bool,
}

#[tonic::codegen::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        self.log.lock().unwrap().push(Received {
            path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export".into(),
            headers,
            request: request.into_inner(),
        });
        if self.fail {
            return Err(tonic::Status::unavailable("collector is sick"));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver on tonic, in its own thread and runtime (like a separate
/// collector process would be). `fail` answers every export with UNAVAILABLE.
pub struct GrpcReceiver {
    pub addr: SocketAddr,
    pub log: Log,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: std::sync::mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl GrpcReceiver {
    pub fn start(fail: bool) -> GrpcReceiver {
        let log: Log = Arc::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let svc = Collector {
            log: log.clone(),
            fail,
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send");
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let _ = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(svc))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
            drop(rt);
            let _ = done_tx.send(());
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("gRPC receiver started");
        GrpcReceiver {
            addr,
            log,
            stop: Some(stop_tx),
            done,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for GrpcReceiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // A graceful stop waits for open connections; never hang a test on it.
        if self.done.recv_timeout(Duration::from_secs(2)).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
