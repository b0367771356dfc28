//! The command line itself, no node needed: where `--config` may stand, which options each
//! subcommand's help shows, and the refusals that need no server.

use crate::run_gru;

/// The error of a `gru` run that must fail (its stderr).
async fn fails(args: &[&str]) -> String {
    let (ok, out, err) = run_gru(args).await;
    assert!(!ok, "gru {args:?} succeeded:\n{out}");
    err
}

/// `--config` before the subcommand, after it, and after a nested action are all read: each
/// run names the (missing) file it was given, none is refused by the parser.
#[tokio::test]
async fn config_is_read_before_and_after_the_subcommand() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.toml");
    let file = missing.to_str().expect("utf-8 path");
    let runs: [&[&str]; 9] = [
        &["--config", file, "status"],
        &["status", "--config", file],
        &["--config", file, "meta", "get", "k"],
        &["meta", "--config", file, "get", "k"],
        &["meta", "get", "k", "--config", file],
        &["cluster", "remove", "--node", "2", "--config", file],
        &["drain", "--node", "4", "--config", file],
        &["--config", file, "run", "--node", "1"],
        &["--config", file, "token", "--user", "1", "--name", "a"],
    ];
    for args in runs {
        let err = fails(args).await;
        assert!(
            err.contains(&format!("cannot read config {file}")),
            "gru {args:?} did not read {file}:\n{err}"
        );
    }
    // After the subcommand wins over before it.
    let other = dir.path().join("other.toml");
    let other = other.to_str().expect("utf-8 path");
    let err = fails(&["--config", other, "status", "--config", file]).await;
    assert!(err.contains(file) && !err.contains(other), "{err}");
    // `gru dev` reads no config: saying one is an error, not silently ignored.
    let err = fails(&["--config", file, "dev"]).await;
    assert!(err.contains("gru dev reads no config file"), "{err}");
}

/// The runtime and log options are those of the subcommands that run a node; `--config` is
/// not offered by `gru dev`.
#[tokio::test]
async fn help_shows_only_the_options_that_apply() {
    let help = |sub: &'static str| async move {
        let (ok, out, err) = run_gru(&[sub, "--help"]).await;
        assert!(ok, "gru {sub} --help: {err}");
        out
    };
    for sub in ["run", "dev"] {
        let out = help(sub).await;
        assert!(
            out.contains("--worker-threads") && out.contains("--log-format"),
            "gru {sub} --help:\n{out}"
        );
    }
    for sub in ["status", "drain", "meta", "cluster", "token", "certs"] {
        let out = help(sub).await;
        assert!(
            !out.contains("--worker-threads") && !out.contains("--log-format"),
            "gru {sub} --help shows options of a node:\n{out}"
        );
    }
    assert!(!help("dev").await.contains("--config"));
}

/// A legacy token for `gru dev`, whose ticket refuses every legacy token, is refused at once.
#[tokio::test]
async fn no_legacy_token_for_dev() {
    let err = fails(&["token", "--dev", "--legacy", "--user", "1", "--name", "a"]).await;
    assert!(
        err.contains("legacy tokens are off in gru dev"),
        "gru token --dev --legacy:\n{err}"
    );
}

/// An `https://` admin address or one with a path is refused naming it, not asked as
/// `http://https://…`.
#[tokio::test]
async fn admin_addresses_that_cannot_be_asked_are_refused() {
    let err = fails(&["status", "--addr", "https://127.0.0.1:1"]).await;
    assert!(err.contains("plain HTTP"), "{err}");
    assert!(!err.contains("http://https://"), "{err}");
    let err = fails(&["status", "--addr", "http://127.0.0.1:1/api"]).await;
    assert!(err.contains("without a path"), "{err}");
}
