//! The monitor's pages in a real browser: headless Debian Chromium, driven by `playwright-core`
//! from the scripts in `tests/e2e/browser/`, against real clusters. `dashboard_browser`
//! (`dashboard.rs`): behind its login, the numbers the dashboard shows are the `/api/v1`
//! answers, every node is listed, the charts have a time axis and a gap where a spear was down,
//! the user lookup finds a user and disconnects it, and the panels dim when the stream is lost.
//! `playground_browser` (`playground.rs`): two users on two spears
//! exchange a unicast and a group message through the playground (on the JavaScript SDK).
//! `playground_resume` (`playground_resume.rs`): the first user's spear is killed and the
//! conversation goes on with nothing missing and nothing twice; then 3,000 messages a second
//! pour into the page, which stays responsive and counts them all. Each saves screenshots
//! under `<target>/screenshots/`.

mod dashboard;
mod playground;
mod playground_resume;

use std::path::PathBuf;
use std::time::Duration;

use gru_testkit::e2e::NodeScript;
use gru_testkit::{ClusterOptions, TestCluster, API_KEY, API_KEY_NAME, SPEAR_SECRET};
use serde_json::Value;

/// Where screenshots go: `screenshots/` in the target directory this test was built in.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // <target>/<profile>/deps/<test binary>
    let target = exe
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

/// A browser script running, speaking JSON lines: [`Script::step`] reads its steps and
/// [`Script::reply`] answers one. Killed when dropped (node's exit takes the browser down).
struct Script {
    node: NodeScript,
    name: &'static str,
}

impl Script {
    /// Runs `tests/e2e/browser/<name>` with `env` (and `SCREENSHOTS`).
    fn start(name: &'static str, env: &[(&str, String)]) -> Self {
        let mut env = env.to_vec();
        env.push((
            "SCREENSHOTS",
            screenshot_dir().to_string_lossy().into_owned(),
        ));
        Self {
            node: NodeScript::start(&format!("browser/{name}"), &env),
            name,
        }
    }

    /// Panics on a step that says the script failed.
    fn check(&self, step: &Value) {
        eprintln!("[{}] {step}", self.name);
        assert_ne!(
            step["step"], "failed",
            "{} failed: {}",
            self.name, step["error"]
        );
    }

    /// The next step named `want`, skipping progress notes; panics on a failure, an early
    /// exit, or after `deadline`.
    async fn step(&mut self, want: &str, deadline: Duration) -> Value {
        let until = std::time::Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let step = self.node.next(left).await;
            self.check(&step);
            if step["step"] == want {
                return step;
            }
        }
    }

    /// Tells the script its step was done.
    fn reply(&mut self) {
        self.node.send("done");
    }

    /// Waits for the script to exit on its own and checks that it succeeded.
    async fn finish(mut self, deadline: Duration) {
        let (status, steps) = self.node.wait_exit(deadline).await;
        for step in &steps {
            self.check(step);
        }
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

/// The playground tests' cluster: one core (with ticket and stat) and two spears on the Redis
/// relay, signing with `gru dev`'s public business secret so that the playground may mint
/// token1s, with the test API key; returned once ticket knows both spears live.
async fn playground_cluster() -> TestCluster {
    let options = ClusterOptions {
        auth_toml: Some(format!(
            "business_secret = \"INSECURE-dev-business-secret\"\n\
             spear_secret = \"{SPEAR_SECRET}\"\n\
             [[auth.api_keys]]\nname = \"{API_KEY_NAME}\"\nsecret = \"{API_KEY}\""
        )),
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::builder()
        .node(1, &["core", "ticket", "stat"])
        .spears(&PLAYGROUND_SPEARS)
        .options(options)
        .launch()
        .await;
    // The ticket places users only on spears it knows live (lease and gossip).
    cluster.wait_announced(1, &PLAYGROUND_SPEARS).await;
    cluster
}

/// The spears of [`playground_cluster`].
const PLAYGROUND_SPEARS: [u64; 2] = [2, 3];
