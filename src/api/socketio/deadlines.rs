//! The one timer of every connection's deadline: authenticate by a time, or leave when the
//! token expires. One task and one timer wheel for all connections, instead of a sleeping
//! task per connection.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::time::{delay_queue, DelayQueue};

use super::closer::{CloseReason, Closer};
use super::links::Links;
use super::ConnId;

/// What a connection must do by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Authenticate.
    Auth,
    /// Leave: its token expires.
    TokenExpiry,
}

enum Command {
    Set(ConnId, Deadline, Duration),
    Clear(ConnId),
}

/// Sets and clears deadlines; cheap to clone.
#[derive(Clone)]
pub struct Deadlines {
    tx: mpsc::UnboundedSender<Command>,
}

impl Deadlines {
    /// Starts the timer task; `due` is called for each deadline that passes (not for cleared
    /// ones) until `cancel`.
    pub fn spawn<F>(due: F, cancel: CancellationToken) -> (Self, tokio::task::JoinHandle<()>)
    where
        F: Fn(ConnId, Deadline) + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(run(rx, due, cancel)))
    }

    /// Gives `conn` until `after` from now to meet `deadline` (replacing any earlier one).
    pub fn set(&self, conn: ConnId, deadline: Deadline, after: Duration) {
        let _ = self.tx.send(Command::Set(conn, deadline, after));
    }

    /// Forgets `conn`'s deadline (it met it, or it is gone).
    pub fn clear(&self, conn: ConnId) {
        let _ = self.tx.send(Command::Clear(conn));
    }
}

async fn run<F>(mut rx: mpsc::UnboundedReceiver<Command>, due: F, cancel: CancellationToken)
where
    F: Fn(ConnId, Deadline),
{
    let mut queue: DelayQueue<(ConnId, Deadline)> = DelayQueue::new();
    let mut keys: HashMap<ConnId, delay_queue::Key> = HashMap::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            command = rx.recv() => match command {
                None => return,
                Some(Command::Set(conn, deadline, after)) => {
                    if let Some(key) = keys.remove(&conn) {
                        queue.remove(&key);
                    }
                    keys.insert(conn, queue.insert((conn, deadline), after));
                }
                Some(Command::Clear(conn)) => {
                    if let Some(key) = keys.remove(&conn) {
                        queue.remove(&key);
                    }
                }
            },
            Some(expired) = queue.next(), if !queue.is_empty() => {
                let (conn, deadline) = expired.into_inner();
                keys.remove(&conn);
                due(conn, deadline);
            }
        }
    }
}

/// What a deadline that passed does to its connection: one that has not authenticated is
/// told why and closed; so is one whose token expired.
pub fn on_deadline(links: &Links, closer: &Closer, sid: ConnId, deadline: Deadline) {
    let Some(link) = links.get(sid) else {
        return;
    };
    let authenticated = link.state().is_some_and(|state| state.uid().is_some());
    match deadline {
        Deadline::Auth if !authenticated => {
            let msg =
                "not authenticated in time; get a ticket and send auth right after connecting";
            closer.close(&link, CloseReason::AuthTimeout, Some(msg));
        }
        Deadline::Auth => {}
        Deadline::TokenExpiry => {
            let msg = "the token expired; get a new one from ticket (send auth with a fresh token2 before it expires to stay connected)";
            closer.close(&link, CloseReason::TokenExpired, Some(msg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test(start_paused = true)]
    async fn deadlines_fire_once_unless_cleared_or_replaced() {
        let fired = Arc::new(Mutex::new(Vec::new()));
        let log = fired.clone();
        let cancel = CancellationToken::new();
        let (deadlines, task) = Deadlines::spawn(
            move |conn, deadline| log.lock().expect("log").push((conn, deadline)),
            cancel.clone(),
        );
        let (a, b, c) = (ConnId::new(), ConnId::new(), ConnId::new());
        deadlines.set(a, Deadline::Auth, Duration::from_secs(10));
        deadlines.set(b, Deadline::Auth, Duration::from_secs(10));
        deadlines.set(c, Deadline::Auth, Duration::from_secs(10));
        deadlines.clear(b);
        // c authenticated: its deadline becomes the token's expiry.
        deadlines.set(c, Deadline::TokenExpiry, Duration::from_secs(30));
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(*fired.lock().expect("log"), vec![(a, Deadline::Auth)]);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(
            *fired.lock().expect("log"),
            vec![(a, Deadline::Auth), (c, Deadline::TokenExpiry)]
        );
        cancel.cancel();
        task.await.expect("stops");
    }
}
