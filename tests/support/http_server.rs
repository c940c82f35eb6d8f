//! The one HTTP test server: a real server on 127.0.0.1 (a free port), built on axum
//! (hyper underneath), that records every request and answers as the test says.
//!
//! Shared by path, so the same file serves both kinds of test: `src/lib.rs` includes it
//! under `#[cfg(test)]` for unit tests (the sinks'), and `tests/integration/main.rs`
//! includes it for the integration tests. It therefore uses nothing from faultline.
//!
//! What a test can ask for: a reply per request from a handler (status, content type,
//! body, a delay before answering, a body streamed in chunks without a length), a
//! "blackhole" that reads a request and never answers, and a refused port. The server
//! runs on a thread with a runtime of its own, so it serves the same way whether the
//! test is synchronous or async (even while the test blocks its own runtime); dropping
//! it stops everything at once, pending answers and delays included.

#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query as sent (still encoded), empty when there is none.
    pub query: String,
    /// Header names in lower case; a header sent more than once has its values joined
    /// with `, ` (as HTTP allows).
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value, by any case of its name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Wait this long before answering (for timeouts); cut short when the server stops.
    pub delay: Duration,
    /// Stream the body in chunks of this size with no length announced.
    pub chunk: Option<usize>,
    /// Never answer: hold the connection until the client or the server goes away.
    pub never: bool,
}

impl Response {
    /// This status with this text.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain".into(),
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
            chunk: None,
            never: false,
        }
    }

    /// This status with this JSON.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response::text(status, &body.to_string()).content_type("application/json")
    }

    /// This status, empty body.
    pub fn status(status: u16) -> Response {
        Response::text(status, "")
    }

    /// No answer at all (the request is still recorded).
    pub fn never() -> Response {
        Response {
            never: true,
            ..Response::status(200)
        }
    }

    pub fn content_type(mut self, ct: &str) -> Response {
        self.content_type = ct.into();
        self
    }

    pub fn delay(mut self, d: Duration) -> Response {
        self.delay = d;
        self
    }

    /// Send the body in chunks of `size` bytes, without `content-length`: only reading
    /// it tells its size.
    pub fn chunked(mut self, size: usize) -> Response {
        self.chunk = Some(size.max(1));
        self
    }
}

type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// The server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Answers every request with what `handler` returns for it.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let recorded = requests.clone();
        let thread = std::thread::Builder::new()
            .name(format!("test-http-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the test server");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                        answer(req, handler.clone(), recorded.clone())
                    });
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends every connection task: pending answers,
                // delays and held connections close with it.
                drop(rt);
            })
            .expect("a thread for the test server");
        Server {
            addr,
            port: addr.port(),
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Answers from `script` in order, then `then` for every later request.
    pub fn scripted(script: Vec<Response>, then: Response) -> Server {
        let script = Mutex::new(script.into_iter().rev().collect::<Vec<_>>());
        Server::start(move |_| {
            script
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_else(|| then.clone())
        })
    }

    /// Accepts connections, reads each request (recorded), never answers.
    pub fn blackhole() -> Server {
        Server::start(|_| Response::never())
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An address on 127.0.0.1 where nothing listens (bound, then released): connecting
/// to it is refused.
pub fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address")
}

async fn answer(
    req: axum::extract::Request,
    handler: Handler,
    recorded: Arc<Mutex<Vec<Request>>>,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let mut headers: HashMap<String, String> = HashMap::new();
    for (k, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let req = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        body,
    };
    recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(req.clone());
    let resp = handler(&req);
    if resp.never {
        std::future::pending::<()>().await;
    }
    if !resp.delay.is_zero() {
        tokio::time::sleep(resp.delay).await;
    }
    let body = match resp.chunk {
        Some(size) => {
            let chunks: Vec<Result<Bytes, std::convert::Infallible>> = resp
                .body
                .chunks(size)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            Body::from_stream(tokio_stream::iter(chunks))
        }
        None => Body::from(resp.body),
    };
    axum::response::Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, resp.content_type)
        .body(body)
        .unwrap_or_else(|_| axum::response::Response::new(Body::empty()))
}
