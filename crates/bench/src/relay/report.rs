//! The Markdown report at the end of `gru-bench relay`: every step, each row labelled with its
//! target ("gru (redis)", "gru (rocketmq)", "peer (redis)"), then a table of each target's
//! best figures side by side with the ratios between them (each gru against the peer, and
//! gru's RocketMQ relay against its Redis relay).

use super::stats::StepResult;
use super::{RelayBench, Target};

/// The ratios the summary shows, `(numerator, denominator)`, when both targets ran.
const RATIOS: [(Target, Target); 4] = [
    (Target::Gru, Target::Peer),
    (Target::GruRocketMq, Target::Peer),
    (Target::GruRocketMq, Target::Gru),
    (Target::Gru, Target::GruNoMetrics),
];

/// Prints the tables and the ratios between `targets`, those that were run (a target that
/// failed has `-` in its column).
pub(super) fn print_report(args: &RelayBench, targets: &[Target], results: &[StepResult]) {
    println!();
    println!("{}", StepResult::header());
    for r in results {
        println!("{}", r.row());
    }
    let best = |target: Target, scenario: &str| {
        results
            .iter()
            .filter(|r| r.target == target && r.scenario == scenario && r.sustained())
            .max_by(|a, b| a.delivered_per_sec().total_cmp(&b.delivered_per_sec()))
    };
    println!();
    println!(
        "Kept up: ≥ 99.9 % of the expected deliveries arrived, p99 < 10 ms (unicast) or < 1 s (fan-out), no connection lost. Sending {} s per step, {} pairs, {} group members{}; gru: idgen {}, {} runtime thread(s) per server; load generator: {} runtime thread(s).{}",
        args.seconds,
        args.pairs,
        args.fanout_members,
        if args.same_spear { ", every connection on spear A (--same-spear)" } else { "" },
        args.gru_idgen,
        if args.gru_worker_threads == 0 { "one per CPU".to_string() } else { args.gru_worker_threads.to_string() },
        tokio::runtime::Handle::current().metrics().num_workers(),
        if targets.contains(&Target::GruRocketMq) {
            " gru (rocketmq): one RocketMQ name server and one broker on this machine (gru's default 4 queues per spear topic), their CPU time counted with the servers'."
        } else {
            ""
        },
    );
    println!();
    let ratios: Vec<(usize, usize)> = RATIOS
        .iter()
        .filter_map(|(n, d)| {
            let at = |t: &Target| targets.iter().position(|x| x == t);
            Some((at(n)?, at(d)?))
        })
        .collect();
    let mut head = String::from("| figure |");
    let mut rule = String::from("| --- |");
    for t in targets {
        head.push_str(&format!(" {t} |"));
        rule.push_str(" ---: |");
    }
    for &(n, d) in &ratios {
        head.push_str(&format!(" {} / {} |", targets[n], targets[d]));
        rule.push_str(" ---: |");
    }
    println!("{head}");
    println!("{rule}");
    let row = |what: &str, values: &[Option<f64>], decimals: usize| {
        println!("{}", row(what, values, &ratios, decimals));
    };
    for scenario in ["unicast", "fan-out"] {
        let bests: Vec<Option<&StepResult>> = targets.iter().map(|&t| best(t, scenario)).collect();
        let rate = |r: &Option<&StepResult>| r.map(StepResult::delivered_per_sec);
        let cpu = |r: &Option<&StepResult>| r.map(StepResult::cpu_us_per_delivery);
        let p50 = |r: &Option<&StepResult>| r.map(|r| r.lat_us[0] as f64 / 1000.0);
        let p99 = |r: &Option<&StepResult>| r.map(|r| r.lat_us[1] as f64 / 1000.0);
        row(
            &format!("{scenario}: sustained deliveries/s"),
            &bests.iter().map(rate).collect::<Vec<_>>(),
            0,
        );
        row(
            &format!("{scenario}: server CPU µs per delivery at that rate"),
            &bests.iter().map(cpu).collect::<Vec<_>>(),
            2,
        );
        row(
            &format!("{scenario}: p99 ms at that rate"),
            &bests.iter().map(p99).collect::<Vec<_>>(),
            2,
        );
        // What each side delivered at most, whatever the latency and loss: a system that
        // queues instead of refusing shows its capacity here.
        let most: Vec<Option<f64>> = targets
            .iter()
            .map(|&t| {
                results
                    .iter()
                    .filter(|r| r.target == t && r.scenario == scenario)
                    .map(StepResult::delivered_per_sec)
                    .max_by(f64::total_cmp)
            })
            .collect();
        row(
            &format!("{scenario}: most deliveries/s in any step (latency, loss unbounded)"),
            &most,
            0,
        );
        // The same offered rate on every side, the highest all kept up with.
        if targets.len() < 2 {
            continue;
        }
        let kept_up = |t: Target, offered: u64| {
            results.iter().find(|r| {
                r.target == t && r.scenario == scenario && r.offered == offered && r.sustained()
            })
        };
        let common = results
            .iter()
            .filter(|r| r.scenario == scenario && r.sustained())
            .map(|r| r.offered)
            .filter(|&offered| targets.iter().all(|&t| kept_up(t, offered).is_some()))
            .max();
        if let Some(offered) = common {
            let at: Vec<Option<&StepResult>> =
                targets.iter().map(|&t| kept_up(t, offered)).collect();
            let all = if targets.len() == 2 { "both" } else { "all" };
            let what = format!("{scenario} at {offered} msg/s ({all} kept up)");
            row(
                &format!("{what}: CPU µs per delivery"),
                &at.iter().map(cpu).collect::<Vec<_>>(),
                2,
            );
            row(
                &format!("{what}: p50 ms"),
                &at.iter().map(p50).collect::<Vec<_>>(),
                2,
            );
            row(
                &format!("{what}: p99 ms"),
                &at.iter().map(p99).collect::<Vec<_>>(),
                2,
            );
        }
    }
}

/// One row of the summary: a value per target (`-` where it has none), then each ratio
/// `(numerator, denominator)` of `ratios`, indexes into `values`.
fn row(what: &str, values: &[Option<f64>], ratios: &[(usize, usize)], decimals: usize) -> String {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.decimals$}"));
    let mut line = format!("| {what} |");
    for &v in values {
        line.push_str(&format!(" {} |", fmt(v)));
    }
    for &(n, d) in ratios {
        let ratio = match (
            values.get(n).copied().flatten(),
            values.get(d).copied().flatten(),
        ) {
            (Some(n), Some(d)) if d > 0.0 => format!("{:.2}×", n / d),
            _ => "-".into(),
        };
        line.push_str(&format!(" {ratio} |"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_values_and_ratios() {
        let line = row("x", &[Some(4.0), None, Some(2.0)], &[(0, 2), (1, 2)], 1);
        assert_eq!(line, "| x | 4.0 | - | 2.0 | 2.00× | - |");
    }
}
