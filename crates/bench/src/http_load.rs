//! A closed-loop HTTP/1.1 load generator: a fixed number of keep-alive connections, each
//! sending its next request as soon as the answer to the last one arrived, for a warm-up and
//! then a measured window. It counts every answer that is not the expected one and every
//! request that failed as an error, records latencies, and reads the CPU time of the server
//! process and of this one over exactly the window.
//!
//! It knows nothing of gru: a [`Load`] is an address, requests (any method, headers and body,
//! taken in turn), what a good answer looks like and how long to run. Each connection is
//! hyper's bare HTTP/1 client connection (no pool, no redirects, no decompression), so the
//! client's own cost per request stays small beside the servers it shares the cores with.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cpu;
use crate::histogram::Histogram;

/// How long a connection waits before it dials again after a failed dial, so that a server
/// that is down is not hammered in a tight loop (each failure is still counted).
const REDIAL_PAUSE: Duration = Duration::from_millis(20);

/// One request the load sends, built once and sent many times.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The method.
    method: Method,
    /// The path and query (`/ticket?userId=1&…`).
    uri: Uri,
    /// Headers besides `Host`, which the connection adds.
    headers: HeaderMap,
    /// The body (empty for a GET).
    body: Bytes,
}

impl Request {
    /// A GET of `path_and_query`.
    pub(crate) fn get(path_and_query: &str) -> Result<Self> {
        Self::new(Method::GET, path_and_query, Bytes::new())
    }

    /// A POST of `body` as JSON to `path_and_query`.
    #[allow(dead_code)] // For `gru-bench publish`, which sends JSON bodies.
    pub(crate) fn post_json(path_and_query: &str, body: impl Into<Bytes>) -> Result<Self> {
        Self::new(Method::POST, path_and_query, body.into())?
            .header("content-type", "application/json")
    }

    /// A request of `method` to `path_and_query` with `body`.
    pub(crate) fn new(method: Method, path_and_query: &str, body: Bytes) -> Result<Self> {
        let uri: Uri = path_and_query
            .parse()
            .with_context(|| format!("not a request path: {path_and_query:?}"))?;
        Ok(Self {
            method,
            uri,
            headers: HeaderMap::new(),
            body,
        })
    }

    /// The same request with header `name: value` too.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Result<Self> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("not a header name: {name:?}"))?;
        let value = HeaderValue::from_str(value)
            .with_context(|| format!("not a header value: {value:?}"))?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// The path and query it asks for.
    pub(crate) fn path_and_query(&self) -> String {
        self.uri.to_string()
    }

    /// The hyper request, with `host` as its `Host` header.
    fn build(&self, host: &HeaderValue) -> hyper::Request<Full<Bytes>> {
        let mut req = hyper::Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req.headers_mut().insert(HOST, host.clone());
        req
    }
}

/// What a good answer is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    /// Its status.
    pub(crate) status: StatusCode,
    /// Bytes its body must contain, when the status alone does not tell success (Gru's
    /// `/ticket` answers 200 to everything and says `"success":false` in the body).
    pub(crate) body_contains: Option<&'static str>,
}

impl Expect {
    /// A 200, whatever the body.
    pub(crate) const OK: Expect = Expect {
        status: StatusCode::OK,
        body_contains: None,
    };

    /// Why `status` and `body` are not a good answer, if they are not.
    fn check(&self, status: StatusCode, body: &[u8]) -> Option<String> {
        let snippet = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        if status != self.status {
            return Some(format!("HTTP {status}: {}", snippet()));
        }
        match self.body_contains {
            Some(needle) if !contains(body, needle.as_bytes()) => {
                Some(format!("HTTP {status} without {needle:?}: {}", snippet()))
            }
            _ => None,
        }
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// One run of load against one server.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    /// The server.
    pub(crate) addr: SocketAddr,
    /// The requests, taken in turn (connection i sends i, i + concurrency, …, wrapping).
    pub(crate) requests: Arc<[Request]>,
    /// What a good answer is.
    pub(crate) expect: Expect,
    /// Keep-alive connections, each with one request in flight.
    pub(crate) concurrency: usize,
    /// Load before the window, not measured (connections opened, caches and allocators warm).
    pub(crate) warmup: Duration,
    /// The measured window.
    pub(crate) duration: Duration,
    /// Longest a request may take before it counts as failed (its connection is dropped).
    pub(crate) timeout: Duration,
    /// The server process whose CPU time is read over the window.
    pub(crate) server_pid: Option<u32>,
}

/// What one window measured.
#[derive(Debug, Clone)]
pub(crate) struct LoadResult {
    /// Good answers completed in the window.
    pub(crate) ok: u64,
    /// Good answers over the whole run: warm-up, window, and answers to the requests still in
    /// flight when it ended (what a server accepted, for counting deliveries).
    pub(crate) ok_total: u64,
    /// Bad answers and failed requests (dials, IO, timeouts) in the window.
    pub(crate) errors: u64,
    /// What the first of them was.
    pub(crate) first_error: Option<String>,
    /// The window's length, s.
    pub(crate) seconds: f64,
    /// Latency of the good answers, µs: p50, p99, max (within 0.1 %).
    pub(crate) latency_us: [u64; 3],
    /// Mean body size of the good answers, bytes.
    pub(crate) body_bytes: f64,
    /// Connections dialled in the window beyond the first ones (the server closed them, or
    /// they failed).
    pub(crate) redials: u64,
    /// CPU seconds of the server process over the window.
    pub(crate) server_cpu_s: Option<f64>,
    /// CPU seconds of this process over the window.
    pub(crate) client_cpu_s: f64,
    /// CPU seconds the whole machine was busy over the window, all cores together (in
    /// processes and in interrupts, where the loopback network's receive path runs).
    pub(crate) machine_cpu_s: f64,
    /// Of that, what was neither the server's nor the client's: other processes, or softirq
    /// work the kernel did outside both. Much of it means a machine that was not quiet.
    pub(crate) other_cpu_s: f64,
}

impl LoadResult {
    /// Good answers per second.
    pub(crate) fn per_sec(&self) -> f64 {
        if self.seconds <= 0.0 {
            return 0.0;
        }
        self.ok as f64 / self.seconds
    }

    /// Server CPU µs per good answer.
    pub(crate) fn server_cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.server_cpu_s?;
        (self.ok > 0).then(|| cpu * 1e6 / self.ok as f64)
    }
}

/// What the connections count, shared by all of them.
struct Tally {
    /// When the measured window starts and ends.
    window: (Instant, Instant),
    /// Good answers in the window.
    ok: AtomicU64,
    /// Good answers from the first request to the last (warm-up and stragglers too).
    ok_total: AtomicU64,
    /// Errors in the window.
    errors: AtomicU64,
    /// Body bytes of the good answers in the window.
    body_bytes: AtomicU64,
    /// Dials in the window.
    dials: AtomicU64,
    /// Latencies of the good answers in the window, µs.
    latency: Histogram,
    /// The first error of the window.
    first_error: Mutex<Option<String>>,
}

impl Tally {
    /// Whether `at` falls in the measured window.
    fn in_window(&self, at: Instant) -> bool {
        at >= self.window.0 && at < self.window.1
    }

    /// Counts an error that happened at `at`, if in the window.
    fn error(&self, at: Instant, why: impl FnOnce() -> String) {
        if !self.in_window(at) {
            return;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            if first.is_none() {
                *first = Some(why());
            }
        }
    }
}

/// Runs `load`: warm-up, then the window; returns once every connection stopped.
pub(crate) async fn run(load: &Load) -> Result<LoadResult> {
    if load.requests.is_empty() || load.concurrency == 0 || load.duration.is_zero() {
        bail!("a load needs requests, connections and a duration");
    }
    let ticks = cpu::clock_ticks() as f64;
    let start = Instant::now() + load.warmup;
    let end = start + load.duration;
    let tally = Arc::new(Tally {
        window: (start, end),
        ok: AtomicU64::new(0),
        ok_total: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        body_bytes: AtomicU64::new(0),
        dials: AtomicU64::new(0),
        latency: Histogram::new(),
        first_error: Mutex::new(None),
    });
    let host = HeaderValue::from_str(&load.addr.to_string())
        .context("the server's address is no Host header")?;
    let workers: Vec<_> = (0..load.concurrency)
        .map(|i| {
            let (load, tally, host) = (load.clone(), tally.clone(), host.clone());
            tokio::spawn(async move { connection(&load, i, &host, &tally).await })
        })
        .collect();
    // The CPU readings bracket the window; this task is otherwise idle, so it wakes on time
    // unless the client's threads are saturated (then the window it reads is a little late,
    // by as much on both ends).
    let read = |pid: Option<u32>| -> Result<(Option<u64>, u64, cpu::MachineTicks)> {
        let server = pid.map(|p| cpu::cpu_ticks(&p.to_string())).transpose()?;
        Ok((server, cpu::cpu_ticks("self")?, cpu::machine_ticks()?))
    };
    tokio::time::sleep_until(start.into()).await;
    let before = read(load.server_pid).context("reading CPU times at the window's start")?;
    let dials_before = tally.dials.load(Ordering::Relaxed);
    tokio::time::sleep_until(end.into()).await;
    let after = read(load.server_pid).context("reading CPU times at the window's end")?;
    let dials_after = tally.dials.load(Ordering::Relaxed);
    for w in workers {
        w.await.context("a load connection's task failed")?;
    }
    let seconds = |a: u64, b: u64| b.saturating_sub(a) as f64 / ticks;
    let server_cpu_s = match (before.0, after.0) {
        (Some(a), Some(b)) => Some(seconds(a, b)),
        _ => None,
    };
    let client_cpu_s = seconds(before.1, after.1);
    // A process's time includes the softirq work done in its context, which /proc/stat
    // counts as interrupts: the machine's busy time is both. Tick counts of different files
    // round differently, so a few ticks either way are noise.
    let machine_cpu_s = seconds(
        before.2.tasks + before.2.interrupts,
        after.2.tasks + after.2.interrupts,
    );
    let other_cpu_s = (machine_cpu_s - server_cpu_s.unwrap_or(0.0) - client_cpu_s).max(0.0);
    let ok = tally.ok.load(Ordering::Relaxed);
    let q = tally.latency.quantiles(&[0.5, 0.99, 1.0]);
    Ok(LoadResult {
        ok,
        ok_total: tally.ok_total.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        first_error: tally.first_error.lock().ok().and_then(|e| e.clone()),
        seconds: load.duration.as_secs_f64(),
        latency_us: [q[0], q[1], q[2]],
        body_bytes: if ok == 0 {
            0.0
        } else {
            tally.body_bytes.load(Ordering::Relaxed) as f64 / ok as f64
        },
        redials: dials_after.saturating_sub(dials_before),
        server_cpu_s,
        client_cpu_s,
        machine_cpu_s,
        other_cpu_s,
    })
}

/// Connection `index` of `load`: dials, sends its requests one after the other until the
/// window ends, dials again after a failure.
async fn connection(load: &Load, index: usize, host: &HeaderValue, tally: &Tally) {
    let end = tally.window.1;
    let mut next = index % load.requests.len();
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    while Instant::now() < end {
        let conn = match sender.as_mut().filter(|s| !s.is_closed()) {
            Some(conn) => conn,
            None => match dial(load.addr, load.timeout, tally).await {
                Ok(conn) => sender.insert(conn),
                Err(e) => {
                    tally.error(Instant::now(), || format!("{e:#}"));
                    tokio::time::sleep(REDIAL_PAUSE).await;
                    continue;
                }
            },
        };
        let request = &load.requests[next];
        next = (next + load.concurrency) % load.requests.len();
        let sent = Instant::now();
        let answer = tokio::time::timeout(load.timeout, exchange(conn, request.build(host))).await;
        let done = Instant::now();
        match answer {
            Ok(Ok((status, body))) => match load.expect.check(status, &body) {
                None if tally.in_window(done) => {
                    tally.ok_total.fetch_add(1, Ordering::Relaxed);
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    tally
                        .body_bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    let us = u64::try_from(done.duration_since(sent).as_micros());
                    tally.latency.record(us.unwrap_or(u64::MAX));
                }
                None => {
                    tally.ok_total.fetch_add(1, Ordering::Relaxed);
                }
                Some(why) => tally.error(done, || why),
            },
            Ok(Err(e)) => {
                tally.error(done, || format!("request failed: {e:#}"));
                sender = None;
            }
            Err(_) => {
                tally.error(done, || format!("no answer within {:?}", load.timeout));
                sender = None;
            }
        }
    }
}

/// Opens a keep-alive HTTP/1.1 connection to `addr` (`TCP_NODELAY`, as servers set it);
/// its IO runs in a task of its own until the sender is dropped.
async fn dial(
    addr: SocketAddr,
    timeout: Duration,
    tally: &Tally,
) -> Result<http1::SendRequest<Full<Bytes>>> {
    tally.dials.fetch_add(1, Ordering::Relaxed);
    let open = async {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        tcp.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .context("HTTP/1.1 handshake failed")?;
        tokio::spawn(async move {
            // An error here also fails the request in flight, which counts it.
            let _ = conn.await;
        });
        anyhow::Ok(sender)
    };
    tokio::time::timeout(timeout, open)
        .await
        .with_context(|| format!("connecting to {addr} took over {timeout:?}"))?
}

/// Sends `req` on `conn` and reads the whole answer.
async fn exchange(
    conn: &mut http1::SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes)> {
    conn.ready().await.context("connection closed")?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the body")?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_answer_has_the_status_and_the_marker() {
        let expect = Expect {
            status: StatusCode::OK,
            body_contains: Some(r#""success":true"#),
        };
        assert!(expect
            .check(StatusCode::OK, br#"{"success":true,"data":{}}"#)
            .is_none());
        let why = expect
            .check(StatusCode::OK, br#"{"success":false,"errorCode":711}"#)
            .expect("a refusal in a 200 is an error");
        assert!(why.contains("711"), "{why}");
        assert!(expect.check(StatusCode::TOO_MANY_REQUESTS, b"{}").is_some());
        assert!(Expect::OK.check(StatusCode::OK, b"").is_none());
    }

    #[test]
    fn requests_keep_their_headers_and_get_a_host() {
        let req = Request::post_json("/api/v1/msg?x=1", r#"{"a":1}"#)
            .and_then(|r| r.header("authorization", "Bearer t"))
            .expect("a valid request");
        let host = HeaderValue::from_static("127.0.0.1:80");
        let built = req.build(&host);
        assert_eq!(built.method(), Method::POST);
        assert_eq!(built.uri().to_string(), "/api/v1/msg?x=1");
        assert_eq!(built.headers()["host"], "127.0.0.1:80");
        assert_eq!(built.headers()["content-type"], "application/json");
        assert_eq!(built.headers()["authorization"], "Bearer t");
        assert!(Request::get("not a path").is_err());
    }

    /// A server that answers 200 "ok", or 500 on `/fail`, on a port of its own; the load
    /// counts both.
    #[tokio::test]
    async fn counts_answers_and_errors_against_a_real_server() {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let app = axum::Router::new()
            .route("/a", get(|| async { "ok" }))
            .route(
                "/fail",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no") }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let requests: Arc<[Request]> = vec![
            Request::get("/a").expect("path"),
            Request::get("/fail").expect("path"),
        ]
        .into();
        let result = run(&Load {
            addr,
            requests,
            expect: Expect::OK,
            concurrency: 2,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(300),
            timeout: Duration::from_secs(2),
            server_pid: Some(std::process::id()),
        })
        .await
        .expect("the load runs");
        // Connection 0 sends only /a, connection 1 only /fail.
        assert!(result.ok > 0 && result.errors > 0, "{result:?}");
        assert!(result
            .first_error
            .as_deref()
            .is_some_and(|e| e.contains("500")));
        assert_eq!(result.body_bytes, 2.0);
        assert_eq!(result.redials, 0);
        assert!(result.server_cpu_s.is_some());
    }
}
