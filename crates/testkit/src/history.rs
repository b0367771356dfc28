//! A history checker for ids (after etcd's robustness tests and Jepsen): every successful
//! request with its send time, reply time and ids.

use std::time::{Duration, Instant};

/// One successful request.
#[derive(Clone, Debug)]
pub struct IdOp {
    /// When it was sent.
    pub sent: Instant,
    /// When its reply arrived.
    pub replied: Instant,
    /// The ids it got.
    pub ids: Vec<u64>,
}

/// Checks that no id was served twice and that whenever A's reply came before B was sent,
/// every id of A is below every id of B. Returns how many ids were checked.
pub fn check_strict(ops: &[IdOp]) -> Result<usize, String> {
    let mut all: Vec<u64> = ops.iter().flat_map(|op| op.ids.iter().copied()).collect();
    all.sort_unstable();
    if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("id {} was served twice", w[0]));
    }
    let mut by_reply: Vec<&IdOp> = ops.iter().collect();
    by_reply.sort_by_key(|op| op.replied);
    let mut by_send: Vec<&IdOp> = ops.iter().collect();
    by_send.sort_by_key(|op| op.sent);
    let mut done = 0;
    let mut max_done: Option<(u64, &IdOp)> = None;
    for op in by_send {
        while done < by_reply.len() && by_reply[done].replied < op.sent {
            let a = by_reply[done];
            if let Some(&m) = a.ids.iter().max() {
                if max_done.is_none_or(|(x, _)| m > x) {
                    max_done = Some((m, a));
                }
            }
            done += 1;
        }
        if let (Some((max, a)), Some(&min)) = (max_done, op.ids.iter().min()) {
            if min <= max {
                return Err(format!(
                    "real-time order violated: id {max} was returned at {:?} and id {min} was \
                     returned to a request sent {:?} after that",
                    a.replied,
                    op.sent.duration_since(a.replied)
                ));
            }
        }
    }
    Ok(all.len())
}

/// The longest time between consecutive replies within [`from`, `to`).
pub fn longest_gap(ops: &[IdOp], from: Instant, to: Instant) -> Duration {
    let mut replies: Vec<Instant> = ops
        .iter()
        .map(|op| op.replied)
        .filter(|t| *t >= from && *t < to)
        .collect();
    replies.sort();
    let mut longest = replies.first().map_or(to - from, |first| *first - from);
    for w in replies.windows(2) {
        longest = longest.max(w[1] - w[0]);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(base: Instant, sent: u64, replied: u64, ids: &[u64]) -> IdOp {
        IdOp {
            sent: base + Duration::from_millis(sent),
            replied: base + Duration::from_millis(replied),
            ids: ids.to_vec(),
        }
    }

    #[test]
    fn the_checker_finds_what_it_should() {
        let t = Instant::now();
        assert!(check_strict(&[op(t, 0, 5, &[10]), op(t, 6, 8, &[11])]).is_ok());
        // Concurrent requests may come back in any order.
        assert!(check_strict(&[op(t, 0, 5, &[12]), op(t, 1, 6, &[11])]).is_ok());
        assert!(check_strict(&[op(t, 0, 5, &[10]), op(t, 6, 8, &[9])]).is_err());
        assert!(check_strict(&[op(t, 0, 5, &[10]), op(t, 1, 8, &[10])]).is_err());
    }
}
