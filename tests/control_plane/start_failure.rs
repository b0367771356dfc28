//! `start_failure_cleanup`: a node that cannot start fails fast with an error naming the cause
//! (once) and leaves nothing behind. Its listeners are all bound before anything runs, so a
//! taken socket.io or HTTP address stops the start at once, before `gru dev` prints what it
//! serves; a step that fails later (here the Raft store, locked by another node, which the
//! error says) stops every worker, gossip and Raft that the steps before it started, so that
//! all of its ports can be bound again at once.

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gru::config::{ClusterConfig, ListenAddrs};
use gru::node::{start_node, NodeError};

use gru_testkit::ports::{assert_released, free_port};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn listen() -> ListenAddrs {
    ListenAddrs::dev(
        local(free_port()),
        local(free_port()),
        local(free_port()),
        local(free_port()),
    )
}

/// Every port of `listen` can be bound now (TCP, gossip on UDP).
fn assert_all_free(listen: &ListenAddrs, after: &str) {
    let tcp: Vec<SocketAddr> = [listen.grpc, listen.http]
        .into_iter()
        .chain(listen.sio)
        .collect();
    assert_released(&tcp, &[listen.gossip], after);
}

/// Runs `gru dev` on `listen` while `taken` is held by this test.
fn run_with_taken(listen: &ListenAddrs, taken: SocketAddr) {
    let _holder = TcpListener::bind(taken).expect("hold the address");
    let dir = tempfile::tempdir().expect("temp dir");
    let sio = listen.sio.expect("a spear address");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gru"))
        .arg("dev")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http", &listen.http.to_string()])
        .args(["--grpc", &listen.grpc.to_string()])
        .args(["--sio", &sio.to_string()])
        .args(["--gossip", &listen.gossip.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gru dev");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for gru") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gru still running 5 s after failing to bind {taken}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("collect the output");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!status.success(), "gru exited 0 with {taken} taken");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(
        error.contains(&taken.to_string()),
        "the error does not name {taken}:\n{stderr}"
    );
    // The OS's "Address already in use (os error 98)", once.
    assert_eq!(
        error.matches("in use").count(),
        1,
        "the cause once:\n{error}"
    );
    assert!(
        !stdout.contains("gru dev:"),
        "the banner is printed before the ports are bound:\n{stdout}"
    );
    // The holder still has `taken`; every other port is free at once.
    let others = ListenAddrs {
        sio: (sio != taken).then_some(sio),
        http: if listen.http == taken {
            local(free_port())
        } else {
            listen.http
        },
        ..listen.clone()
    };
    assert_all_free(
        &others,
        &format!("after the failed start with {taken} taken"),
    );
}

#[test]
fn start_failure_cleanup_sio_taken() {
    let listen = listen();
    run_with_taken(&listen, listen.sio.expect("sio"));
}

#[test]
fn start_failure_cleanup_http_taken() {
    let listen = listen();
    run_with_taken(&listen, listen.http);
}

/// A failure after gossip, Redis-free workers and the listeners are up: the Raft store of a
/// running node is locked. The failed node's ports must all be free when `start_node` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_failure_cleanup_after_gossip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = ClusterConfig::dev(data.clone(), listen());
    first.validate().expect("dev config is valid");
    let running = start_node(first, 1).await.expect("first node starts");

    let second_listen = listen();
    let second = ClusterConfig::dev(data.clone(), second_listen.clone());
    let started = Instant::now();
    let err = match start_node(second, 1).await {
        Ok(handle) => {
            handle.shutdown().await;
            panic!("a second node opened a locked Raft store");
        }
        Err(e) => e,
    };
    assert!(
        matches!(err, NodeError::Store(_)),
        "expected the store to be refused, got: {err}"
    );
    assert_eq!(
        err.to_string(),
        format!("another gru is using {}", data.display())
    );
    assert!(std::error::Error::source(&err).is_none(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the failed start took {:?}",
        started.elapsed()
    );
    assert_all_free(&second_listen, "after start_node returned its error");
    running.shutdown().await;
}
