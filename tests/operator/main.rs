//! What an operator runs against a live cluster: `gru drain` moves a spear's clients to the
//! other spears in waves and keeps ticket from placing users on it (`drain.rs`); `gru status`
//! shows the leader, each member's lag and each spear's connections, and fails without a
//! leader (`status.rs`); the admin commands work against `gru dev` with `--addr` alone
//! (`dev.rs`); and the command line's own rules, which need no node (`cli.rs`).

mod cli;
mod dev;
mod drain;
mod status;

use gru_testkit::gru;

/// Runs `gru args…` to its end; (exit success, stdout, stderr).
async fn run_gru(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let out = tokio::task::spawn_blocking(move || gru().command().args(args).output())
        .await
        .expect("the gru task")
        .expect("run gru");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
