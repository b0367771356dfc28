//! `public_tls`: a node with `http.tls_cert` serves its public, admin and socket.io listeners
//! over TLS only (plain HTTP gets no answer), marks the admin session cookie `Secure`, and takes
//! a new certificate on SIGHUP for new connections. `trusted_proxies`: behind a trusted proxy
//! the ticket's per-address limit counts the client `X-Forwarded-For` names; from anyone else
//! the header changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use gru::net::tls::make_certs;
use gru_testkit::{wait_for, ClusterOptions, TestCluster, ADMIN_KEY};

use gru_testkit::tokens::token1;

/// The name the test certificates carry (those of `make_certs`), resolved to the node.
const NAME: &str = "gru-cluster";

/// A client that trusts only the CA in `ca_dir` and finds `NAME` at `addr`.
fn client(ca_dir: &Path, addr: SocketAddr, local: Option<IpAddr>) -> reqwest::Client {
    let ca = std::fs::read(ca_dir.join("ca.pem")).expect("ca");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("pem")])
        .resolve(NAME, addr)
        .local_address(local)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_tls() {
    gru::net::tls::install_crypto_provider();
    let (first, second) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    make_certs(first.path(), &[1], false).expect("first CA");
    make_certs(second.path(), &[1], false).expect("second CA");
    let edge = tempfile::tempdir().expect("dir");
    let (cert, key) = (edge.path().join("node.pem"), edge.path().join("node.key"));
    std::fs::copy(first.path().join("node-1.pem"), &cert).expect("copy");
    std::fs::copy(first.path().join("node-1.key"), &key).expect("copy");
    let options = ClusterOptions {
        separate_surfaces: true,
        extra_toml: format!(
            "[http]\ntls_cert = {:?}\ntls_key = {:?}\ntrusted_proxies = [\"127.0.0.1\"]\n\
             [ticket]\nrequests_per_ip_per_sec = 1\nburst = 2\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
        ..ClusterOptions::default()
    };
    // Started by hand: the harness's readiness probes speak plain HTTP.
    let mut cluster = TestCluster::builder()
        .node(1, &["core", "spear", "ticket", "stat"])
        .options(options)
        .build();
    cluster.start_all();
    let (http, admin, sio) = (
        cluster.http_addr(1),
        cluster.admin_addr(1),
        cluster.sio_addr(1).parse::<SocketAddr>().expect("sio"),
    );
    let trusting_first = client(first.path(), http, None);
    let healthy = wait_for("healthz over TLS", Duration::from_secs(20), || async {
        let r = trusting_first
            .get(format!("https://{NAME}:{}/healthz", http.port()))
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    })
    .await;
    assert_eq!(healthy, 200, "healthz over TLS");

    // Plain HTTP gets no HTTP answer on any listener.
    for addr in [http, admin, sio] {
        let plain = reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        assert!(plain.is_err(), "{addr}: plain HTTP answered {plain:?}");
    }
    // socket.io's handshake over TLS.
    let open = client(first.path(), sio, None)
        .get(format!(
            "https://{NAME}:{}/socket.io/?EIO=4&transport=polling",
            sio.port()
        ))
        .send()
        .await
        .expect("socket.io over TLS");
    let body = open.text().await.expect("body");
    assert!(body.starts_with("0{"), "an engine.io open packet: {body}");
    // The admin login's cookie is Secure.
    let login = client(first.path(), admin, None)
        .post(format!("https://{NAME}:{}/login", admin.port()))
        .form(&[("key", ADMIN_KEY), ("next", "/")])
        .send()
        .await
        .expect("login");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );

    // trusted_proxies: from 127.0.0.1 (trusted) each forwarded client has its own budget of
    // two; from 127.0.0.2 the header is not believed and the address's budget runs out.
    let ticket = |c: &reqwest::Client, xff: &str| {
        let url = format!(
            "https://{NAME}:{}/api/v1/ticket?user_id=5&user_name=u&app_type=web&token={}",
            http.port(),
            token1(5, "u")
        );
        let request = c.get(url).header("x-forwarded-for", xff.to_string());
        async move { request.send().await.expect("ticket").status().as_u16() }
    };
    let proxy = client(first.path(), http, Some("127.0.0.1".parse().expect("ip")));
    for client_ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        for _ in 0..2 {
            assert_ne!(
                ticket(&proxy, client_ip).await,
                429,
                "{client_ip} within its budget"
            );
        }
        assert_eq!(
            ticket(&proxy, client_ip).await,
            429,
            "{client_ip} over its budget"
        );
    }
    let stranger = client(first.path(), http, Some("127.0.0.2".parse().expect("ip")));
    let mut refused = 0;
    for (i, forged) in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
    ]
    .iter()
    .enumerate()
    {
        if ticket(&stranger, forged).await == 429 {
            refused += 1;
            assert!(i >= 2, "refused within the address's budget");
        }
    }
    assert!(
        refused >= 1,
        "a forged X-Forwarded-For does not reset the budget"
    );

    // A new certificate (another CA) on SIGHUP: new connections get it.
    std::fs::copy(second.path().join("node-1.pem"), &cert).expect("copy");
    std::fs::copy(second.path().join("node-1.key"), &key).expect("copy");
    cluster.signal(1, "HUP");
    let trusting_second = client(second.path(), http, None);
    wait_for(
        "the reloaded certificate served",
        Duration::from_secs(5),
        || async {
            trusting_second
                .get(format!("https://{NAME}:{}/healthz", http.port()))
                .send()
                .await
                .ok()
                .map(drop)
        },
    )
    .await;
    let stale = client(first.path(), http, None)
        .get(format!("https://{NAME}:{}/healthz", http.port()))
        .send()
        .await;
    assert!(stale.is_err(), "the old certificate is gone: {stale:?}");
    assert!(cluster.log(1).contains("TLS certificate reloaded"));
}
