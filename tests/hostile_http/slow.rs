//! `slow_and_idle_connections_are_closed`, `one_address_holds_at_most_its_connections`: the
//! HTTP port closes connections that send nothing, send headers a byte at a time, or idle
//! between keep-alive requests; and answers one connection too many from an address with 429.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::node::{start, NODE};

const WAIT: Duration = Duration::from_secs(6);

/// Reads until the server closes (EOF or error) or `WAIT` passes; what was read, and whether
/// it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

async fn connect_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((ip, 0)))
        .expect("bind a loopback address");
    socket.connect(to).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let cluster = start(&[("GRU_HTTP__HEADER_READ_TIMEOUT_MS", "1000")]).await;
    let http = cluster.http_addr(NODE);

    let mut silent = TcpStream::connect(http).await.expect("connect");
    let (_, closed) = read_until_closed(&mut silent).await;
    assert!(closed, "a connection that sends nothing is closed");

    // Slowloris: a header line every 300 ms, never the end of the headers.
    let mut slow = TcpStream::connect(http).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("first line");
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < WAIT {
        // The slow client's pace (the thing under test).
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "headers that never end are cut");

    // A keep-alive connection idle after its request.
    let mut idle = TcpStream::connect(http).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let (answer, closed) = read_until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_connections() {
    let cluster = start(&[("GRU_HTTP__MAX_CONNECTIONS_PER_IP", "3")]).await;
    let http = cluster.http_addr(NODE);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], http).await);
    }
    let mut over = connect_from([127, 0, 0, 1], http).await;
    let (answer, closed) = read_until_closed(&mut over).await;
    assert!(closed, "the connection over the limit is closed");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 429"),
        "refused with 429 (or reset before it could be read): {answer}"
    );
    if answer.contains("\r\n\r\n") {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(json["error"]["code"], "too_many_connections");
    }

    let mut other = connect_from([127, 0, 0, 2], http).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let (answer, _) = read_until_closed(&mut other).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "another address: {answer}"
    );

    held.clear();
    cluster
        .wait_for("the slots to come free", Duration::from_secs(5), || async {
            let mut again = connect_from([127, 0, 0, 1], http).await;
            again
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let (answer, _) = read_until_closed(&mut again).await;
            answer.starts_with("HTTP/1.1 200").then_some(())
        })
        .await;
}
