//! `gru-bench minimal-http` (hidden): the least an axum server can do for `GET /ticket` — one
//! route, no middleware, a fixed JSON body shaped and sized like gru's answer — as a child
//! process of `gru-bench ticket`, on as many runtime threads as gru gets (the global
//! `--worker-threads`). What gru's ticket reaches against it is the ceiling this machine,
//! axum and hyper put on any handler.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;

/// The answer: Gru's ticket envelope with a spear token of the length gru signs for the
/// benchmark's users (`v1.` + 120 + `.` + 43 characters), so that both write about as many
/// bytes per answer (the report prints each target's mean body size).
pub(crate) const BODY: &str = concat!(
    r#"{"success":true,"errorCode":0,"msg":null,"data":{"time":1764071173,"#,
    r#""addr":"http://127.0.0.1:31001","name":"node_1","#,
    r#""token":"v1.eyJ0eXAiOiJ0MiIsInVpZCI6MTAwMDAwMSwibmFtZSI6ImJlbmNoMTAwMDAwMSIsImFwcCI6IndlYiIsImV4cCI6MTc2NDE1NzU3Mywic3BlYXJzIjpbMV19"#,
    r#".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","backupNodes":[]}}"#,
);

/// What `gru-bench minimal-http` serves.
#[derive(clap::Args)]
pub(crate) struct MinimalHttp {
    /// Where to listen.
    #[arg(long)]
    listen: SocketAddr,
}

/// Serves `GET /ticket` on `--listen` until killed.
pub(crate) async fn run(args: MinimalHttp) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?
        // gru's accept loop sets TCP_NODELAY on every connection; so does this one.
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    let app = Router::new().route(
        "/ticket",
        get(|| async { ([(CONTENT_TYPE, "application/json")], BODY) }),
    );
    eprintln!("listening {}", args.listen);
    axum::serve(listener, app)
        .await
        .context("the minimal server failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_json_with_a_token_of_gru_s_length() {
        let v: serde_json::Value = serde_json::from_str(BODY).expect("valid JSON");
        let token = v["data"]["token"].as_str().expect("a token");
        assert_eq!(token.len(), 3 + 120 + 1 + 43);
        assert_eq!(v["success"], true);
    }
}
