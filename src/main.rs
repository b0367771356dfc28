//! The `gru` binary: parses the command line, sets up logging, and hands over to the library.

mod cli;

use std::process::ExitCode;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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

/// Log lines with the node's id in each of them: a prefix `node=N ` in the human format, a
/// `"node":N` member in JSON. It is added where a line is formatted, so lines from spawned
/// tasks and from openraft carry it too, which a root span would not guarantee.
struct WithNode<F> {
    node: Option<gru::config::NodeId>,
    json: bool,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for WithNode<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some(node) = self.node else {
            return self.inner.format_event(ctx, writer, event);
        };
        if !self.json {
            write!(writer, "node={node} ")?;
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"node\":{node},{rest}"),
            None => writer.write_str(&line),
        }
    }
}

/// Sends log lines to stderr in `format`, filtered by `GRU_LOG` (`EnvFilter` syntax).
fn init_logs(format: cli::LogFormat, node: Option<gru::config::NodeId>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRU_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,openraft=warn,sled=warn,h2=warn,tower=warn,hyper=warn,rocketmq_client_rust=warn,rocketmq_transport=warn,rocketmq_runtime=warn",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .event_format(WithNode {
                node,
                json: false,
                inner: tracing_subscriber::fmt::format(),
            })
            .init(),
        cli::LogFormat::Json => builder
            .json()
            .event_format(WithNode {
                node,
                json: true,
                inner: tracing_subscriber::fmt::format().json(),
            })
            .init(),
    }
}

/// `error` and each cause under it, joined by `: `. A cause is left out when the text before it
/// already ends with it: an error that writes its source into its own message and also returns
/// it from `source()` (as `#[error("…: {source}")]` does) would print it twice.
fn report(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn main() -> ExitCode {
    let args = cli::parse();
    init_logs(args.log_format(), args.node_id());
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
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::report;

    /// An error that writes its source into its message and returns it as `source()` too.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:1: {source}")]
    struct Embeds {
        source: std::io::Error,
    }

    /// One that does not.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Wraps {
        #[source]
        source: Embeds,
    }

    fn in_use() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use")
    }

    #[test]
    fn each_cause_is_printed_once() {
        let e = anyhow::Error::new(Embeds { source: in_use() });
        assert_eq!(report(&e), "cannot listen on 127.0.0.1:1: address in use");
        let e = anyhow::Error::new(Wraps {
            source: Embeds { source: in_use() },
        })
        .context("gru dev");
        assert_eq!(
            report(&e),
            "gru dev: cannot start: cannot listen on 127.0.0.1:1: address in use"
        );
        let plain = anyhow::Error::new(in_use()).context("binding");
        assert_eq!(report(&plain), "binding: address in use");
    }
}
