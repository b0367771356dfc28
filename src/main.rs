//! The `gru` binary: parses the command line, sets up logging, and hands over to the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// The async runtime for `threads` workers (`None`: one per CPU). One worker means tokio's
/// single-threaded scheduler rather than a multi-threaded one with one worker: it runs woken
/// tasks in the order they were woken, with no last-in-first-out slot, so the handlers woken by
/// one id batch all publish before the Redis connection's writer runs and their commands leave
/// in one write.
fn runtime_builder(threads: Option<usize>) -> tokio::runtime::Builder {
    match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    }
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRU_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,openraft=warn,sled=warn,h2=warn,tower=warn,hyper=warn,rocketmq_client_rust=warn,rocketmq_transport=warn,rocketmq_runtime=warn",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match runtime_builder(args.worker_threads()).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
