//! The Markdown report of `gru-bench ticket`: a row per target and round, then each target's
//! median over the rounds during which the machine was quiet, gru's endpoints against the
//! minimal handler, and the target (gru ≥ 50 % of the minimal handler's requests per
//! second).

use super::{Measured, Target, TicketBench};
use crate::http_load::LoadResult;

/// The target: gru's ticket at least this share of the minimal handler's requests/s.
const TARGET_RATIO: f64 = 0.5;

/// CPU time others may take during a window, as a share of the window, before the report
/// says the machine was not quiet: its daemons and the softirq work charged to neither side
/// take up to about 10 % of one core; a build beside the benchmark takes most of one.
const QUIET: f64 = 0.25;

/// One figure of a measurement, when it has it.
type Figure = fn(&LoadResult) -> Option<f64>;

/// The header of [`row`].
fn header() -> &'static str {
    "| target | round | answers | req/s | p50 ms | p99 ms | max ms | errors | server CPU s | server CPU µs/req | client CPU s | machine CPU s | others' CPU s | body bytes | redials |\n\
     | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
}

/// One Markdown row: what `target` measured in `round`.
pub(super) fn row(target: Target, round: usize, r: &LoadResult) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let opt = |v: Option<f64>, decimals: usize| v.map_or("-".into(), |v| format!("{v:.decimals$}"));
    format!(
        "| {target} | {round} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
        r.ok,
        r.per_sec(),
        ms(r.latency_us[0]),
        ms(r.latency_us[1]),
        ms(r.latency_us[2]),
        r.errors,
        opt(r.server_cpu_s, 2),
        opt(r.server_cpu_us_per_request(), 1),
        r.client_cpu_s,
        r.machine_cpu_s,
        r.other_cpu_s,
        r.body_bytes,
        r.redials,
    )
}

/// The median of `values` (the lower middle one of an even count); `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    values.get(values.len().saturating_sub(1) / 2).copied()
}

/// Prints every row, the medians with the ratios to the minimal handler, and the verdict.
pub(super) fn print(args: &TicketBench, measured: &[Measured]) {
    println!();
    println!("{}", header());
    for m in measured {
        match &m.result {
            Ok(r) => println!("{}", row(m.target, m.round, r)),
            Err(e) => println!("| {} | {} | not measured: {e} |", m.target, m.round),
        }
    }
    let mut targets: Vec<Target> = Vec::new();
    for m in measured {
        if !targets.contains(&m.target) {
            targets.push(m.target);
        }
    }
    // Each target's figures are the medians of its quiet rounds, or of all its rounds when
    // none was quiet.
    let used = |t: Target| -> Vec<&LoadResult> {
        let all: Vec<&LoadResult> = measured
            .iter()
            .filter(|m| m.target == t)
            .filter_map(|m| m.result.as_ref().ok())
            .collect();
        let quiet: Vec<&LoadResult> = all.iter().copied().filter(|r| quiet(r)).collect();
        if quiet.is_empty() {
            all
        } else {
            quiet
        }
    };
    let of = |t: Target, f: Figure| median(used(t).into_iter().filter_map(f).collect());
    let figures: [(&str, Figure, usize); 5] = [
        ("requests/s", |r| Some(r.per_sec()), 0),
        ("p50 ms", |r| Some(r.latency_us[0] as f64 / 1000.0), 2),
        ("p99 ms", |r| Some(r.latency_us[1] as f64 / 1000.0), 2),
        (
            "server CPU µs per request",
            |r| r.server_cpu_us_per_request(),
            1,
        ),
        (
            "server CPU, % of one core",
            |r| r.server_cpu_s.map(|c| c * 100.0 / r.seconds),
            0,
        ),
    ];
    let gru: Vec<Target> = targets.iter().copied().filter(|t| t.is_gru()).collect();
    let minimal = targets.contains(&Target::Minimal);
    println!();
    let mut head = String::from("| figure (median of the quiet rounds) |");
    let mut rule = String::from("| --- |");
    for t in &targets {
        head.push_str(&format!(" {t} |"));
        rule.push_str(" ---: |");
    }
    if minimal {
        for t in &gru {
            head.push_str(&format!(" {t} / minimal |"));
            rule.push_str(" ---: |");
        }
    }
    println!("{head}");
    println!("{rule}");
    let mut line = String::from("| rounds used (quiet / measured) |");
    for &t in &targets {
        let (n, quiet_n) = measured
            .iter()
            .filter(|m| m.target == t)
            .filter_map(|m| m.result.as_ref().ok())
            .fold((0, 0), |(n, q), r| (n + 1, q + usize::from(quiet(r))));
        let cell = if quiet_n == 0 {
            format!("0 / {n} (all used)")
        } else {
            format!("{quiet_n} / {n}")
        };
        line.push_str(&format!(" {cell} |"));
    }
    if minimal {
        line.push_str(&" |".repeat(gru.len()));
    }
    println!("{line}");
    for (what, f, decimals) in figures {
        let mut line = format!("| {what} |");
        for &t in &targets {
            line.push_str(&format!(
                " {} |",
                of(t, f).map_or("-".into(), |v| format!("{v:.decimals$}"))
            ));
        }
        if minimal {
            for &t in &gru {
                line.push_str(&format!(
                    " {} |",
                    ratio(of(t, f), of(Target::Minimal, f))
                        .map_or("-".into(), |r| format!("{r:.2}×"))
                ));
            }
        }
        println!("{line}");
    }
    println!();
    let threads = match args.server_threads {
        0 => "one per CPU".to_string(),
        n => n.to_string(),
    };
    println!(
        "{} s measured per target after {} s of warm-up, {} keep-alive connections, {} users, {} round(s); \
         server runtime threads: {threads} (gru and the minimal handler); load generator: {} runtime thread(s) on the same cores; \
         gru's ticket rate limit off (ticket.requests_per_ip_per_sec = 0).",
        args.seconds,
        args.warmup_seconds,
        args.concurrency,
        args.users,
        args.rounds,
        tokio::runtime::Handle::current().metrics().num_workers(),
    );
    if minimal {
        let rate: Figure = |r| Some(r.per_sec());
        // A side measured only while the machine was busy makes the ratio a measure of the
        // other load, not of gru.
        let busy_only = |t: Target| used(t).iter().all(|r| !quiet(r));
        for &t in &gru {
            match ratio(of(t, rate), of(Target::Minimal, rate)) {
                Some(r) => println!(
                    "Target ≥ {:.0} % of the minimal handler's requests/s: {t} at {:.0} % — {}{}.",
                    TARGET_RATIO * 100.0,
                    r * 100.0,
                    if r >= TARGET_RATIO { "met" } else { "NOT met" },
                    if busy_only(t) || busy_only(Target::Minimal) {
                        " (NOT TRUSTWORTHY: a side has no quiet round; run again on a quiet machine)"
                    } else {
                        ""
                    }
                ),
                None => println!("Target: {t} against the minimal handler could not be compared."),
            }
        }
    }
    for m in measured {
        if let Ok(r) = &m.result {
            if !quiet(r) {
                println!(
                    "WARNING: the machine was not quiet during {} (round {}): others took {:.2} CPU s of the {:.0} s window; its figures are low and left out of the medians unless no round of it was quiet.",
                    m.target, m.round, r.other_cpu_s, r.seconds
                );
            }
        }
    }
    let errors: u64 = measured
        .iter()
        .filter_map(|m| m.result.as_ref().ok())
        .map(|r| r.errors)
        .sum();
    if errors > 0 {
        println!("WARNING: {errors} request(s) failed or got a bad answer; first of each target:");
        for m in measured {
            if let Ok(LoadResult {
                first_error: Some(e),
                errors,
                ..
            }) = &m.result
            {
                println!(
                    "  {} (round {}): {errors} errors, first: {e}",
                    m.target, m.round
                );
            }
        }
    } else {
        println!("No request failed: every answer in every measured window was a good one.");
    }
}

/// Whether the machine was quiet during `r`: others took at most [`QUIET`] of its window.
fn quiet(r: &LoadResult) -> bool {
    r.other_cpu_s <= QUIET * r.seconds
}

/// `n / d` when both are known and `d` is positive.
fn ratio(n: Option<f64>, d: Option<f64>) -> Option<f64> {
    match (n, d) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(1.0), Some(2.0)), Some(0.5));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
    }
}
