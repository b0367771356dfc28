//! The Markdown report at the end of `gru-bench relay`: every step, then the gru/peer ratios.

use super::stats::StepResult;
use super::RelayBench;

/// Prints the tables and the gru/peer ratios.
pub(super) fn print_report(args: &RelayBench, results: &[StepResult]) {
    println!();
    println!("{}", StepResult::header());
    for r in results {
        println!("{}", r.row());
    }
    let best = |target: &str, scenario: &str| {
        results
            .iter()
            .filter(|r| r.target == target && r.scenario == scenario && r.sustained())
            .max_by(|a, b| a.delivered_per_sec().total_cmp(&b.delivered_per_sec()))
    };
    println!();
    println!(
        "Kept up: ≥ 99.9 % of the expected deliveries arrived, p99 < 10 ms (unicast) or < 1 s (fan-out), no connection lost. Sending {} s per step, {} pairs, {} group members{}; gru: idgen {}, {} runtime thread(s) per server; load generator: {} runtime thread(s).",
        args.seconds,
        args.pairs,
        args.fanout_members,
        if args.same_spear { ", every connection on spear A (--same-spear)" } else { "" },
        args.gru_idgen,
        if args.gru_worker_threads == 0 { "one per CPU".to_string() } else { args.gru_worker_threads.to_string() },
        tokio::runtime::Handle::current().metrics().num_workers()
    );
    println!();
    println!("| figure | gru | peer | gru / peer |");
    println!("| --- | ---: | ---: | ---: |");
    for scenario in ["unicast", "fan-out"] {
        let (g, p) = (best("gru", scenario), best("peer", scenario));
        let rate = |r: Option<&StepResult>| r.map(StepResult::delivered_per_sec);
        let cpu = |r: Option<&StepResult>| r.map(StepResult::cpu_us_per_delivery);
        let p99 = |r: Option<&StepResult>| r.map(|r| r.lat_us[1] as f64 / 1000.0);
        row(
            &format!("{scenario}: sustained deliveries/s"),
            rate(g),
            rate(p),
            0,
        );
        row(
            &format!("{scenario}: server CPU µs per delivery at that rate"),
            cpu(g),
            cpu(p),
            2,
        );
        row(
            &format!("{scenario}: p99 ms at that rate"),
            p99(g),
            p99(p),
            2,
        );
        // What each side delivered at most, whatever the latency and loss: a system that
        // queues instead of refusing shows its capacity here.
        let most = |target: &str| {
            results
                .iter()
                .filter(|r| r.target == target && r.scenario == scenario)
                .map(StepResult::delivered_per_sec)
                .max_by(f64::total_cmp)
        };
        row(
            &format!("{scenario}: most deliveries/s in any step (latency, loss unbounded)"),
            most("gru"),
            most("peer"),
            0,
        );
        // The same offered rate on both sides, the highest both kept up with.
        let common = results
            .iter()
            .filter(|r| r.target == "gru" && r.scenario == scenario && r.sustained())
            .filter_map(|g| {
                results
                    .iter()
                    .find(|p| {
                        p.target == "peer"
                            && p.scenario == scenario
                            && p.offered == g.offered
                            && p.sustained()
                    })
                    .map(|p| (g, p))
            })
            .max_by_key(|(g, _)| g.offered);
        if let Some((g, p)) = common {
            let what = format!("{scenario} at {} msg/s (both kept up)", g.offered);
            row(
                &format!("{what}: CPU µs per delivery"),
                cpu(Some(g)),
                cpu(Some(p)),
                2,
            );
            row(
                &format!("{what}: p50 ms"),
                Some(g.lat_us[0] as f64 / 1000.0),
                Some(p.lat_us[0] as f64 / 1000.0),
                2,
            );
            row(&format!("{what}: p99 ms"), p99(Some(g)), p99(Some(p)), 2);
        }
    }
}

/// One row of the ratio table; `-` where a side has no figure.
fn row(what: &str, gru: Option<f64>, peer: Option<f64>, decimals: usize) {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.decimals$}"));
    let ratio = match (gru, peer) {
        (Some(g), Some(p)) if p > 0.0 => format!("{:.2}×", g / p),
        _ => "-".into(),
    };
    println!("| {what} | {} | {} | {ratio} |", fmt(gru), fmt(peer));
}
