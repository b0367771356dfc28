//! `every_error_is_json`: whatever is wrong with a request, the answer is the API's JSON error
//! with a status from its one table, and names the parameter of the endpoint called.

use serde_json::Value;

use crate::node::{start, NODE};

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json() {
    let cluster = start(&[]).await;
    let base = format!("http://{}", cluster.http_addr(NODE));
    // The admin routes need the key; the public ones ignore it.
    let http = gru_testkit::admin_http();
    let cases: &[(&str, &str, u16, &str)] = &[
        ("GET", "/no/such/path", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("DELETE", "/ticket", 405, "method_not_allowed"),
        (
            "GET",
            "/api/v1/cluster?consistency=bogus",
            400,
            "bad_request",
        ),
        ("GET", "/api/v1/ids?count=abc", 400, "bad_request"),
        ("GET", "/api/v1/groups/%FF%FE/online", 400, "bad_request"),
        ("GET", "/api/v1/users/abc", 400, "bad_request"),
        ("GET", "/getGroupStat?groupId=%ZZ", 400, "bad_request"),
        ("GET", "/getGroupStat", 400, "bad_request"),
        (
            "GET",
            "/api/v1/ticket?user_id=abc&user_name=a&app_type=web&token=t",
            400,
            "bad_request",
        ),
    ];
    for (method, path, status, code) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status().as_u16(), *status, "{method} {path}");
        let text = resp.text().await.expect("body");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text:?}"));
        assert_eq!(body["error"]["code"], *code, "{method} {path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}: {body}"
        );
    }

    // Errors name the parameters of the endpoint that was called.
    let modern = get_json(
        &http,
        &format!("{base}/api/v1/ticket?user_id=abc&user_name=a&app_type=web&token=t"),
    )
    .await;
    let message = modern["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("user_id "), "{message}");
    let missing = get_json(
        &http,
        &format!("{base}/api/v1/ticket?user_id=1&user_name=a&app_type=web"),
    )
    .await;
    assert_eq!(
        missing["error"]["message"], "token is required",
        "{missing}"
    );
    let legacy = get_json(
        &http,
        &format!("{base}/ticket?userId=abc&userName=a&appType=web&token1=t"),
    )
    .await;
    assert_eq!(legacy["errorCode"], 710, "{legacy}");
    let message = legacy["msg"].as_str().unwrap_or_default();
    assert!(message.starts_with("userId "), "{message}");
}
