//! `slow_request_body`, `keepalive_after_refusal`: a request body must arrive whole within
//! `http.body_timeout_ms` (a key holder sending a byte every half second is answered 408 and
//! let go, not held for as long as it likes), and a refusal answered before the body was read
//! tells the client to close the connection, so that no request of a keep-alive client is sent
//! on a connection that is about to close.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::node::{sio, start, NODE};
use gru_testkit::API_KEY;

/// Sends a POST of `path` on `addr` announcing a 100-byte body, then a byte every 500 ms; returns
/// what the server answered and how long after the headers, once it closed (or 20 s passed).
async fn trickle(addr: std::net::SocketAddr, path: &str) -> (String, Duration) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(20) {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_body() {
    let cluster = start(&[("GRU_HTTP__BODY_TIMEOUT_MS", "2000")]).await;
    let (answer, took) = trickle(cluster.http_addr(NODE), "/api/v1/publish").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(took < Duration::from_secs(10), "held {took:?}");
    // The socket.io port's long-polling POSTs have the same deadline.
    let sio: std::net::SocketAddr = sio(&cluster).parse().expect("an address");
    let (_, took) = trickle(
        sio,
        "/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA",
    )
    .await;
    assert!(
        took < Duration::from_secs(10),
        "a socket.io POST held {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_after_refusal() {
    let cluster = start(&[]).await;
    let url = format!("http://{}/api/v1/publish", cluster.http_addr(NODE));
    let http = reqwest::Client::new();
    let body = format!(
        r#"{{"to":{{"user":1}},"content":"{}"}}"#,
        "x".repeat(200_000)
    );
    let senders = (0..4).map(|_| {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        tokio::spawn(async move {
            let mut failed = Vec::new();
            for _ in 0..750 {
                // No key: refused before the body is read.
                match http.post(&url).body(body.clone()).send().await {
                    Ok(r) if r.status() == 401 => {}
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(format!("{e:?}")),
                }
            }
            failed
        })
    });
    let failed: Vec<String> = futures_util::future::join_all(senders)
        .await
        .into_iter()
        .flat_map(|r| r.expect("sender"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 3000 refused requests failed on a reused connection: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}
