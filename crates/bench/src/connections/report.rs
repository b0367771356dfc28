//! What a capacity run measured for one target, and its Markdown rows for
//! `bench/results/connections.md`.

use std::fmt::Write as _;

/// One spear's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct SpearResult {
    /// Its node id.
    pub(super) id: u64,
    /// Sessions opened on it.
    pub(super) opened: u64,
    /// VmRSS after warm-up, before the sessions, KiB.
    pub(super) rss_before_kib: u64,
    /// VmRSS with the sessions open and idle, KiB.
    pub(super) rss_after_kib: u64,
    /// CPU seconds over the window before any session opened (the spear's fixed part).
    pub(super) fixed_cpu_s: f64,
    /// CPU seconds over the idle window.
    pub(super) idle_cpu_s: f64,
    /// CPU seconds over the load.
    pub(super) load_cpu_s: f64,
    /// Sessions per second from its first connect to its last join acknowledged.
    pub(super) connect_rate: f64,
}

impl SpearResult {
    /// Bytes of resident memory per session.
    pub(super) fn bytes_per_session(&self) -> f64 {
        if self.opened == 0 {
            return f64::NAN;
        }
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0 / self.opened as f64
    }

    /// Percent of one core per 10,000 idle sessions over `secs` seconds.
    pub(super) fn idle_cpu_per_10k(&self, secs: f64) -> f64 {
        if self.opened == 0 || secs <= 0.0 {
            return f64::NAN;
        }
        self.idle_cpu_s / secs * 100.0 / (self.opened as f64 / 10_000.0)
    }

    /// Percent of one core the spear spends with no session open, over `secs` seconds.
    pub(super) fn fixed_cpu_pct(&self, secs: f64) -> f64 {
        if secs <= 0.0 {
            return f64::NAN;
        }
        self.fixed_cpu_s / secs * 100.0
    }

    /// The sessions' part of the idle CPU: percent of one core per 10,000 idle sessions
    /// above the spear's fixed part (`idle_secs` of idle, `fixed_secs` of no sessions).
    pub(super) fn sessions_cpu_per_10k(&self, idle_secs: f64, fixed_secs: f64) -> f64 {
        if self.opened == 0 || idle_secs <= 0.0 || fixed_secs <= 0.0 {
            return f64::NAN;
        }
        let above = self.idle_cpu_s / idle_secs - self.fixed_cpu_s / fixed_secs;
        above * 100.0 / (self.opened as f64 / 10_000.0)
    }
}

/// The load phase's figures, all workers together.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct LoadResult {
    /// Offered messages per second.
    pub(super) rate: u64,
    /// Seconds of sending.
    pub(super) secs: f64,
    /// `msg` events written.
    pub(super) sent: u64,
    /// Acknowledged with success.
    pub(super) acked: u64,
    /// Acknowledged with an error.
    pub(super) ack_errors: u64,
    /// Deliveries the plan expects for what was sent.
    pub(super) expected: u64,
    /// Deliveries received.
    pub(super) received: u64,
    /// p50, p99 and max send → receive latency, µs.
    pub(super) latency_us: [u64; 3],
    /// Sessions closed without being asked to, from their open to the end of the load.
    pub(super) disconnects: u64,
    /// CPU seconds of the target's other processes (core nodes, Redis) over the load.
    pub(super) support_cpu_s: f64,
    /// CPU seconds of the client workers over the load.
    pub(super) client_cpu_s: f64,
}

impl LoadResult {
    /// Received over expected, percent.
    pub(super) fn completeness(&self) -> f64 {
        if self.expected == 0 {
            return f64::NAN;
        }
        self.received as f64 * 100.0 / self.expected as f64
    }
}

/// What one target measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct TargetResult {
    /// `gru` or `node`.
    pub(super) target: &'static str,
    /// Sessions the plan has per spear.
    pub(super) per_spear: u64,
    /// Sessions that failed to open.
    pub(super) failed: u64,
    /// Seconds from the first connect to the last session open, all spears.
    pub(super) open_secs: f64,
    /// CPU seconds over the open phase: the spears together, the rest of the target (core
    /// nodes, Redis), the client workers together (which of them limited the connect rate).
    pub(super) open_cpu_s: [f64; 3],
    /// p50 and p99 time to open one session (connect to join acknowledged), µs.
    pub(super) open_latency_us: [u64; 2],
    /// Seconds of the idle window.
    pub(super) idle_secs: f64,
    /// Seconds of the window with no session open (0: not measured).
    pub(super) fixed_secs: f64,
    /// Each spear.
    pub(super) spears: Vec<SpearResult>,
    /// Redis's VmRSS before and after the sessions opened, KiB.
    pub(super) redis_rss_kib: [u64; 2],
    /// The client workers' VmRSS with every session open, KiB, all together.
    pub(super) client_rss_kib: u64,
    /// The load phase, when it ran.
    pub(super) load: Option<LoadResult>,
    /// What went wrong: first failures, disconnects, error acknowledgements.
    pub(super) notes: Vec<String>,
}

/// The mean of the finite values of `values` (NaN when none).
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / f64::from(n)
    }
}

impl TargetResult {
    /// Sessions open in all.
    pub(super) fn opened(&self) -> u64 {
        self.spears.iter().map(|s| s.opened).sum()
    }

    /// Bytes per session, mean over the spears.
    pub(super) fn bytes_per_session(&self) -> f64 {
        mean(self.spears.iter().map(SpearResult::bytes_per_session))
    }

    /// Percent of a core per 10,000 idle sessions, mean over the spears.
    pub(super) fn idle_cpu_per_10k(&self) -> f64 {
        mean(
            self.spears
                .iter()
                .map(|s| s.idle_cpu_per_10k(self.idle_secs)),
        )
    }

    /// The spear's fixed part: percent of a core with no session open, mean over the spears.
    pub(super) fn fixed_cpu_pct(&self) -> f64 {
        mean(self.spears.iter().map(|s| s.fixed_cpu_pct(self.fixed_secs)))
    }

    /// The sessions' part of the idle CPU, percent of a core per 10,000 sessions, mean over
    /// the spears.
    pub(super) fn sessions_cpu_per_10k(&self) -> f64 {
        mean(
            self.spears
                .iter()
                .map(|s| s.sessions_cpu_per_10k(self.idle_secs, self.fixed_secs)),
        )
    }

    /// Spear CPU ms per session opened: what the connect rate per spear would be limited to
    /// with a core of its own (1000 / this, sessions/s).
    pub(super) fn open_cpu_ms_per_session(&self) -> f64 {
        let opened = self.opened();
        if opened == 0 {
            return f64::NAN;
        }
        self.open_cpu_s[0] * 1000.0 / opened as f64
    }

    /// Sessions per second per spear, mean over the spears.
    pub(super) fn connect_rate(&self) -> f64 {
        mean(self.spears.iter().map(|s| s.connect_rate))
    }
}

/// `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A float with `decimals` places, or `-` when it is not a number.
fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".into()
    }
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// The report: the capacity table, the load table, ratios when both targets ran, notes.
pub(super) fn render(results: &[TargetResult]) -> String {
    let mut out = String::new();
    out.push_str(
        "| target | spears | sessions open (planned) | bytes per session, mean (each spear) | idle CPU % of a core per 10k sessions | … the spear's fixed part, % of a core / the sessions' part, % per 10k | connect rate per spear, sessions/s (each) | open s | open p50 / p99 ms | open CPU s, spears / cores + Redis / clients | spear CPU ms per session open | Redis RSS before → after | client RSS |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in results {
        let each = |f: &dyn Fn(&SpearResult) -> String| {
            r.spears.iter().map(f).collect::<Vec<_>>().join(" / ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} ({}) | {} ({}) | {} | {} / {} | {} ({}) | {} | {} / {} | {} / {} / {} | {} | {} → {} MiB | {} MiB |",
            r.target,
            r.spears.len(),
            thousands(r.opened()),
            thousands(r.per_spear * r.spears.len() as u64),
            num(r.bytes_per_session(), 0),
            each(&|s| num(s.bytes_per_session(), 0)),
            num(r.idle_cpu_per_10k(), 2),
            num(r.fixed_cpu_pct(), 2),
            num(r.sessions_cpu_per_10k(), 2),
            num(r.connect_rate(), 0),
            each(&|s| num(s.connect_rate, 0)),
            num(r.open_secs, 1),
            ms(r.open_latency_us[0]),
            ms(r.open_latency_us[1]),
            num(r.open_cpu_s[0], 1),
            num(r.open_cpu_s[1], 1),
            num(r.open_cpu_s[2], 1),
            num(r.open_cpu_ms_per_session(), 3),
            r.redis_rss_kib[0] / 1024,
            r.redis_rss_kib[1] / 1024,
            r.client_rss_kib / 1024,
        );
    }
    if results.iter().any(|r| r.load.is_some()) {
        out.push_str(
            "\n| target | sessions | msg/s | seconds | sent | acked (errors) | expected | received | completeness | p50 ms | p99 ms | max ms | disconnects | spear CPU s (each) | core + Redis CPU s | client CPU s |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for r in results {
            let Some(l) = &r.load else { continue };
            let spear_cpu: Vec<String> = r.spears.iter().map(|s| num(s.load_cpu_s, 1)).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} % | {} | {} | {} | {} | {} | {} | {} |",
                r.target,
                thousands(r.opened()),
                thousands(l.rate),
                num(l.secs, 0),
                thousands(l.sent),
                thousands(l.acked),
                l.ack_errors,
                thousands(l.expected),
                thousands(l.received),
                num(l.completeness(), 3),
                ms(l.latency_us[0]),
                ms(l.latency_us[1]),
                ms(l.latency_us[2]),
                l.disconnects,
                spear_cpu.join(" / "),
                num(l.support_cpu_s, 1),
                num(l.client_cpu_s, 1),
            );
        }
    }
    if let Some(n) = results.iter().find(|r| r.target == "node") {
        for g in results.iter().filter(|r| r.target != "node") {
            compare(&mut out, g, n);
        }
    }
    for r in results {
        for note in &r.notes {
            let _ = writeln!(out, "\n{}: {note}", r.target);
        }
    }
    out
}

/// One gru target against the peer, as ratios.
fn compare(out: &mut String, g: &TargetResult, n: &TargetResult) {
    let ratio = |a: f64, b: f64| num(a / b, 2);
    let _ = write!(
        out,
        "\n{} / node: bytes per session {}, idle CPU per 10k sessions {} (the sessions' part {}), connect rate per spear {}",
        g.target,
        ratio(g.bytes_per_session(), n.bytes_per_session()),
        ratio(g.idle_cpu_per_10k(), n.idle_cpu_per_10k()),
        ratio(g.sessions_cpu_per_10k(), n.sessions_cpu_per_10k()),
        ratio(g.connect_rate(), n.connect_rate()),
    );
    if let (Some(gl), Some(nl)) = (&g.load, &n.load) {
        let _ = write!(
            out,
            ", p99 latency {}, spear CPU under load {}",
            ratio(gl.latency_us[1] as f64, nl.latency_us[1] as f64),
            ratio(
                g.spears.iter().map(|s| s.load_cpu_s).sum(),
                n.spears.iter().map(|s| s.load_cpu_s).sum()
            ),
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(target: &'static str, bytes_kib: u64, idle_cpu_s: f64) -> TargetResult {
        let spear = |id| SpearResult {
            id,
            opened: 10_000,
            rss_before_kib: 20_000,
            rss_after_kib: 20_000 + bytes_kib * 10_000 / 1024,
            // 0.25 % of a core over 20 s.
            fixed_cpu_s: 0.05,
            idle_cpu_s,
            load_cpu_s: 3.0,
            connect_rate: 5000.0,
        };
        TargetResult {
            target,
            per_spear: 10_000,
            open_secs: 2.0,
            open_cpu_s: [3.0, 1.0, 4.0],
            open_latency_us: [1500, 40_000],
            idle_secs: 25.0,
            fixed_secs: 20.0,
            spears: vec![spear(4), spear(5)],
            redis_rss_kib: [10_240, 20_480],
            client_rss_kib: 512_000,
            load: Some(LoadResult {
                rate: 1000,
                secs: 60.0,
                sent: 60_000,
                acked: 60_000,
                expected: 330_000,
                received: 330_000,
                latency_us: [1200, 8000, 25_000],
                ..LoadResult::default()
            }),
            ..TargetResult::default()
        }
    }

    #[test]
    fn per_session_figures_come_from_the_deltas() {
        let r = result("gru", 1024, 0.5);
        assert_eq!(r.opened(), 20_000);
        assert!((r.spears[0].bytes_per_session() - 1024.0).abs() < 1.0);
        // 0.5 s over 25 s is 2 % of a core, for 10,000 sessions.
        assert!((r.idle_cpu_per_10k() - 2.0).abs() < 1e-9);
        // Of which 0.25 % is the spear's own, with no session open.
        assert!((r.fixed_cpu_pct() - 0.25).abs() < 1e-9);
        assert!((r.sessions_cpu_per_10k() - 1.75).abs() < 1e-9);
        let unmeasured = TargetResult {
            fixed_secs: 0.0,
            ..r.clone()
        };
        assert!(unmeasured.sessions_cpu_per_10k().is_nan());
        assert!(SpearResult::default().bytes_per_session().is_nan());
        assert_eq!(r.load.as_ref().map(LoadResult::completeness), Some(100.0));
    }

    #[test]
    fn the_report_has_both_tables_and_the_ratios() {
        let text = render(&[result("gru", 1024, 0.5), result("node", 4096, 1.0)]);
        assert!(text.contains("| gru | 2 | 20,000 (20,000) | 1024 (1024 / 1024) | 2.00 | 0.25 / 1.75 | 5000 (5000 / 5000) | 2.0 | 1.5 / 40.0 | 3.0 / 1.0 / 4.0 | 0.150 | 10 → 20 MiB | 500 MiB |"), "{text}");
        assert!(text.contains("| gru | 20,000 | 1,000 | 60 | 60,000 | 60,000 (0) | 330,000 | 330,000 | 100.000 % | 1.2 | 8.0 | 25.0 | 0 | 3.0 / 3.0 | 0.0 | 0.0 |"), "{text}");
        assert!(text.contains("gru / node: bytes per session 0.25, idle CPU per 10k sessions 0.50 (the sessions' part 0.47), connect rate per spear 1.00, p99 latency 1.00"), "{text}");
        let alone = render(&[result("node", 4096, 1.0)]);
        assert!(!alone.contains("gru / node"));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
