//! The deterministic plan of a capacity run: which session lives on which spear and in which
//! worker, which user it is, which two groups it joins, which source address it connects
//! from, and so how many deliveries each message must make. Orchestrator and workers compute
//! the same plan from the same few numbers; nothing of it travels.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// User id of session 0; session `s` is user `UID_BASE + s` (one connection per user).
pub(crate) const UID_BASE: u64 = 1_000_000;
/// Group id of the first group; the two layers of groups follow each other from here.
pub(crate) const GROUP_BASE: u64 = 1_000_000;
/// The last octet of the first and last client source address (127.0.0.2 …
/// 127.0.0.254); 127.0.0.1 is the servers'.
const FIRST_SOURCE: u8 = 2;
const LAST_SOURCE: u8 = 254;
/// Most connections one source address may open: each takes an ephemeral port of its own
/// (32768–60999 here, 28,232 ports), with room for what else runs.
pub(crate) const MAX_PER_SOURCE: u64 = 20_000;

/// The numbers every process derives the plan from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// Server processes the sessions spread over.
    pub(crate) spears: u64,
    /// Sessions on each of them.
    pub(crate) per_spear: u64,
    /// Members of each group (the last group of a layer may have fewer).
    pub(crate) group_size: u64,
    /// Client processes.
    pub(crate) workers: u64,
}

impl Plan {
    /// Sessions in all.
    pub(crate) fn sessions(&self) -> u64 {
        self.spears * self.per_spear
    }

    /// The spear (index, 0-based) session `s` connects to: round robin, so neighbouring
    /// sessions — the members of a first-layer group — sit on different spears.
    pub(crate) fn spear_of(&self, s: u64) -> u64 {
        s % self.spears
    }

    /// The worker that holds session `s`: whole rounds of the spears, so each worker
    /// connects to every spear about equally.
    pub(crate) fn worker_of(&self, s: u64) -> u64 {
        (s / self.spears) % self.workers
    }

    /// The sessions of worker `w`, in the order it opens them.
    pub(crate) fn sessions_of(&self, w: u64) -> impl Iterator<Item = u64> + '_ {
        (0..self.sessions()).filter(move |&s| self.worker_of(s) == w)
    }

    /// How many sessions worker `w` holds.
    pub(crate) fn count_of(&self, w: u64) -> u64 {
        let rounds = self.per_spear;
        // Worker w holds rounds w, w + W, …: ceil((rounds - w) / W) of them.
        let own = rounds.saturating_sub(w).div_ceil(self.workers);
        own * self.spears
    }

    /// The user id of session `s`.
    pub(crate) fn uid(&self, s: u64) -> u64 {
        UID_BASE + s
    }

    /// Groups per layer.
    fn groups_per_layer(&self) -> u64 {
        self.sessions().div_ceil(self.group_size)
    }

    /// The multiplier that scatters sessions over the second layer: the first number from
    /// 7919 (a prime) up that is coprime with the session count, so `s ↦ s·m mod S` is a
    /// permutation.
    fn scatter(&self) -> u64 {
        let n = self.sessions().max(1);
        (7919..).step_by(2).find(|m| gcd(*m, n) == 1).unwrap_or(1)
    }

    /// The two groups session `s` joins: in the first layer with its `group_size - 1`
    /// neighbours (one per spear, round robin), in the second with sessions scattered over
    /// the whole run (and so over every spear). Every group has `group_size` members.
    pub(crate) fn groups(&self, s: u64) -> [u64; 2] {
        let n = self.sessions();
        let layer = self.groups_per_layer();
        let scattered = ((s as u128 * self.scatter() as u128) % n as u128) as u64;
        [
            GROUP_BASE + s / self.group_size,
            GROUP_BASE + layer + scattered / self.group_size,
        ]
    }

    /// Members of group `gid` (0 for a group outside the plan): every message to it is
    /// delivered that many times, the sender's own connection included (gru's rule,
    /// `docs/api.md`; the peer's `io.to(room)` does the same).
    pub(crate) fn members(&self, gid: u64) -> u64 {
        let layer = self.groups_per_layer();
        let Some(j) = gid.checked_sub(GROUP_BASE).filter(|j| *j < 2 * layer) else {
            return 0;
        };
        let first = (j % layer) * self.group_size;
        self.group_size.min(self.sessions() - first)
    }

    /// The source addresses of worker `w`: an equal slice of 127.0.0.2 … 127.0.0.254. Fails
    /// when a slice would have to carry more than [`MAX_PER_SOURCE`] connections.
    pub(crate) fn sources(&self, w: u64) -> anyhow::Result<Vec<Ipv4Addr>> {
        let all = u64::from(LAST_SOURCE - FIRST_SOURCE) + 1;
        let per_worker = all / self.workers.max(1);
        if per_worker == 0 {
            anyhow::bail!(
                "{} workers are more than {all} source addresses",
                self.workers
            );
        }
        let need = self.count_of(w).div_ceil(MAX_PER_SOURCE);
        if need > per_worker {
            anyhow::bail!(
                "worker {w} would hold {} connections from {per_worker} addresses, over {MAX_PER_SOURCE} each: add workers",
                self.count_of(w)
            );
        }
        let first = u64::from(FIRST_SOURCE) + w * per_worker;
        Ok((first..first + per_worker)
            .map(|last| Ipv4Addr::new(127, 0, 0, last as u8))
            .collect())
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn plan(spears: u64, per_spear: u64, group_size: u64, workers: u64) -> Plan {
        Plan {
            spears,
            per_spear,
            group_size,
            workers,
        }
    }

    /// Members of every group, by walking every session.
    fn membership(p: &Plan) -> BTreeMap<u64, Vec<u64>> {
        let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for s in 0..p.sessions() {
            let [a, b] = p.groups(s);
            assert_ne!(a, b);
            groups.entry(a).or_default().push(s);
            groups.entry(b).or_default().push(s);
        }
        groups
    }

    #[test]
    fn every_group_has_the_members_the_expectations_count() {
        for p in [
            plan(2, 2000, 10, 2),
            plan(7, 15_000, 10, 7),
            plan(3, 101, 10, 2),
            plan(1, 5, 10, 1),
        ] {
            let groups = membership(&p);
            assert_eq!(groups.len() as u64, 2 * p.sessions().div_ceil(p.group_size));
            for (gid, members) in &groups {
                assert_eq!(p.members(*gid), members.len() as u64, "{p:?} group {gid}");
            }
            let total: u64 = groups.keys().map(|g| p.members(*g)).sum();
            assert_eq!(total, 2 * p.sessions());
        }
        assert_eq!(plan(2, 10, 10, 1).members(1), 0);
        assert_eq!(plan(2, 10, 10, 1).members(GROUP_BASE + 4), 0);
    }

    #[test]
    fn groups_spread_over_every_spear() {
        let p = plan(7, 15_000, 10, 7);
        let groups = membership(&p);
        // The first layer is round robin; the scattered layer lands on at least 5 of 7
        // spears almost always.
        let spread: Vec<usize> = groups
            .values()
            .map(|m| {
                m.iter()
                    .map(|s| p.spear_of(*s))
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .collect();
        let wide = spread.iter().filter(|n| **n >= 5).count();
        assert!(
            wide * 100 >= spread.len() * 95,
            "{wide} of {}",
            spread.len()
        );
    }

    #[test]
    fn workers_share_the_sessions_and_every_spear() {
        let p = plan(3, 1000, 10, 4);
        let mut seen = 0;
        for w in 0..p.workers {
            let mine: Vec<u64> = p.sessions_of(w).collect();
            assert_eq!(mine.len() as u64, p.count_of(w));
            let spears: BTreeSet<u64> = mine.iter().map(|s| p.spear_of(*s)).collect();
            assert_eq!(spears.len(), 3);
            seen += mine.len() as u64;
        }
        assert_eq!(seen, p.sessions());
    }

    #[test]
    fn workers_get_disjoint_source_addresses_within_the_port_range() {
        let p = plan(7, 15_000, 10, 7);
        let mut all = BTreeSet::new();
        for w in 0..p.workers {
            let ips = p.sources(w).expect("fits");
            assert!(p.count_of(w).div_ceil(ips.len() as u64) <= MAX_PER_SOURCE);
            for ip in ips {
                assert!(ip.octets()[3] >= 2 && ip.octets()[3] <= 254);
                assert!(all.insert(ip), "{ip} twice");
            }
        }
        // One worker for 105,000 sessions still fits (253 addresses).
        assert!(plan(7, 15_000, 10, 1).sources(0).is_ok());
        assert!(plan(1, 10, 10, 300).sources(0).is_err());
    }
}
