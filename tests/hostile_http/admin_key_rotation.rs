//! `admin_key_rotation`: two admin keys in force; a dashboard session opened with the old one
//! and its bearer both work. The config drops the old key and SIGHUP reloads it: the old
//! key's bearer and its session get 401 from then on, the new key goes on working, and no
//! restart happened.

use std::time::Duration;

use gru_testkit::{ClusterOptions, TestCluster, ADMIN_KEY, BUSINESS_SECRET, SPEAR_SECRET};

const OLD: &str = "rotation-old-admin-key-0123456789abcdef0123";
const NEW: &str = "rotation-new-admin-key-0123456789abcdef0123";

/// The `[auth]` body with `keys` and the harness's own admin key (which it watches the cluster
/// with).
fn auth(keys: &[(&str, &str)]) -> String {
    let mut body =
        format!("business_secret = \"{BUSINESS_SECRET}\"\nspear_secret = \"{SPEAR_SECRET}\"\n");
    for (name, secret) in keys.iter().chain(&[("harness", ADMIN_KEY)]) {
        body.push_str(&format!(
            "[[auth.admin_keys]]\nname = \"{name}\"\nsecret = \"{secret}\"\n"
        ));
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_key_rotation() {
    let options = ClusterOptions {
        auth_toml: Some(auth(&[("old", OLD), ("new", NEW)])),
        separate_surfaces: true,
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::single_spear(gru_testkit::gru(), options).await;
    let base = format!("http://{}", cluster.admin_addr(1));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={OLD}&next=%2F"))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 303, "logged in with the old key");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let status = |bearer: Option<&'static str>, cookie: Option<String>| {
        let mut req = http.get(format!("{base}/api/v1/cluster"));
        if let Some(key) = bearer {
            req = req.bearer_auth(key);
        }
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        async move { req.send().await.expect("answer").status().as_u16() }
    };
    assert_eq!(status(Some(OLD), None).await, 200);
    assert_eq!(status(Some(NEW), None).await, 200);
    assert_eq!(status(None, Some(cookie.clone())).await, 200, "the session");
    let pid = cluster.pid(1);

    cluster.set_auth_toml(&auth(&[("new", NEW)]));
    cluster.signal(1, "HUP");
    cluster
        .wait_for("the old key refused", Duration::from_secs(10), || async {
            (status(Some(OLD), None).await == 401).then_some(())
        })
        .await;
    assert_eq!(
        status(None, Some(cookie)).await,
        401,
        "the old key's session ended"
    );
    assert_eq!(status(Some(NEW), None).await, 200, "the new key goes on");
    assert_eq!(cluster.pid(1), pid, "no restart");
}
