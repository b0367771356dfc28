//! Which spear a user goes to: rendezvous (highest-random-weight) hashing of the user id over
//! the live spears, with a bounded-load cap (Mirrokni, Thorup and Zadimoghaddam 2016, as in
//! HAProxy's `hash-balance-factor`).
//!
//! Rendezvous hashing gives each user an order of all spears; the user goes to the first spear
//! in that order whose load is below `⌈BALANCE_FACTOR × average⌉`, and the following spears are
//! its backups. With equal loads this is plain rendezvous hashing: adding a spear moves only
//! the users that now rank it first (about 1/n of them), removing one moves only its users,
//! and no user moves between two spears that both stay.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::config::NodeId;

/// No spear is handed users beyond this factor of the average load.
pub const BALANCE_FACTOR: f64 = 1.25;

/// A live spear as ticket sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpearSlot {
    /// The spear's node id.
    pub id: NodeId,
    /// Its current connection count.
    pub load: u64,
}

/// Where a user goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The spear to connect to.
    pub primary: NodeId,
    /// The spears to try next, in order.
    pub backups: Vec<NodeId>,
}

/// The rendezvous weight of `spear` for `user`: a fixed, well-mixed hash of both.
fn weight(user: u64, spear: NodeId) -> u64 {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&user.to_be_bytes());
    key[8..].copy_from_slice(&spear.to_be_bytes());
    xxh3_64_with_seed(&key, 0x6772_755f_7469_636b)
}

/// Places `user` on one of `spears` (at most `max_backups` backups), or `None` when there is
/// no spear.
pub fn place(user: u64, spears: &[SpearSlot], max_backups: usize) -> Option<Placement> {
    if spears.is_empty() {
        return None;
    }
    let mut ranked: Vec<&SpearSlot> = spears.iter().collect();
    ranked.sort_by(|a, b| {
        weight(user, b.id)
            .cmp(&weight(user, a.id))
            .then(a.id.cmp(&b.id))
    });
    // Count the newcomer, so the cap is the load after placing them.
    let total: u64 = spears.iter().map(|s| s.load).sum::<u64>() + 1;
    let cap = (BALANCE_FACTOR * total as f64 / spears.len() as f64).ceil() as u64;
    // Some spear is always below the cap: not every load can exceed the average.
    let chosen = ranked.iter().position(|s| s.load < cap).unwrap_or(0);
    let primary = ranked.remove(chosen).id;
    let backups = ranked.iter().take(max_backups).map(|s| s.id).collect();
    Some(Placement { primary, backups })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn equal(ids: &[NodeId]) -> Vec<SpearSlot> {
        ids.iter()
            .map(|id| SpearSlot { id: *id, load: 0 })
            .collect()
    }

    fn assign(users: u64, spears: &[SpearSlot]) -> HashMap<u64, NodeId> {
        (0..users)
            .map(|u| (u, place(u, spears, 2).expect("placed").primary))
            .collect()
    }

    /// The `ticket_placement` acceptance: spread, and what moves when spears come and go.
    #[test]
    fn ticket_placement() {
        let users = 10_000u64;
        let five = assign(users, &equal(&[1, 2, 3, 4, 5]));
        let mut per_spear: HashMap<NodeId, u64> = HashMap::new();
        for spear in five.values() {
            *per_spear.entry(*spear).or_default() += 1;
        }
        let avg = users as f64 / 5.0;
        for (spear, n) in &per_spear {
            let off = (*n as f64 - avg).abs() / avg;
            assert!(
                off <= 0.10,
                "spear {spear} has {n} users, {:.1}% off the average",
                off * 100.0
            );
        }

        let six = assign(users, &equal(&[1, 2, 3, 4, 5, 6]));
        let moved: Vec<u64> = (0..users).filter(|u| five[u] != six[u]).collect();
        let share = moved.len() as f64 / users as f64;
        assert!(
            (share - 1.0 / 6.0).abs() <= 0.03,
            "adding a sixth spear moved {:.1}%",
            share * 100.0
        );
        assert!(
            moved.iter().all(|u| six[u] == 6),
            "a user moved between two old spears"
        );

        let four = assign(users, &equal(&[1, 2, 4, 5]));
        for u in 0..users {
            if five[&u] != 3 {
                assert_eq!(four[&u], five[&u], "user {u} moved though its spear stayed");
            }
        }
    }

    #[test]
    fn no_spear_no_placement() {
        assert_eq!(place(1, &[], 2), None);
    }

    #[test]
    fn backups_are_the_other_spears_in_rank_order() {
        let p = place(42, &equal(&[1, 2, 3, 4]), 2).expect("placed");
        assert_eq!(p.backups.len(), 2);
        assert!(!p.backups.contains(&p.primary));
        // The same user always gets the same answer.
        assert_eq!(place(42, &equal(&[4, 3, 2, 1]), 2), Some(p));
    }

    #[test]
    fn a_loaded_spear_is_skipped_beyond_the_cap() {
        let user = 7;
        let first = place(user, &equal(&[1, 2, 3]), 2).expect("placed").primary;
        let mut spears = equal(&[1, 2, 3]);
        for s in &mut spears {
            s.load = if s.id == first { 100 } else { 10 };
        }
        // average after placing = 121 / 3 ≈ 40.3, cap 51: the first choice (100) is full.
        let p = place(user, &spears, 2).expect("placed");
        assert_ne!(p.primary, first);
        assert_eq!(p.backups[0], first, "the full spear stays the first backup");
    }

    #[test]
    fn no_spear_exceeds_the_cap_when_users_arrive_one_by_one() {
        let mut spears = equal(&[1, 2, 3, 4, 5]);
        for user in 0..5_000u64 {
            let p = place(user, &spears, 0).expect("placed");
            let total: u64 = spears.iter().map(|s| s.load).sum::<u64>() + 1;
            let cap = (BALANCE_FACTOR * total as f64 / 5.0).ceil() as u64;
            let slot = spears
                .iter_mut()
                .find(|s| s.id == p.primary)
                .expect("known");
            slot.load += 1;
            assert!(
                slot.load <= cap,
                "spear {} at {} over cap {cap}",
                slot.id,
                slot.load
            );
        }
    }
}
