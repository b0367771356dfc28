//! Which spears hold a user or a group, in Redis: a set per channel (`route:{u:UID}`) with the
//! spears that have a recipient for it, written by those spears as their roster changes,
//! through the relay's [`Wanted`](super::super::wanted::Wanted) task (ordered, confirmed before
//! an `auth` or `join` is answered, written again after Redis lost it). Each spear also keeps an
//! index of what it wrote (`route:{s:SID}`), so that a spear starting again first removes what
//! it left behind when it stopped without saying so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redis::Cmd;

use super::super::wanted::Apply;
use super::names::Names;
use crate::config::NodeId;
use crate::net::redis::{Batch, RedisError, RedisLink};

/// The route entries of one spear.
pub(super) struct Routes {
    pub(super) link: Arc<RedisLink>,
    pub(super) names: Names,
    pub(super) me: NodeId,
    /// Set once this spear reads its topic: no route may point here before.
    pub(super) consuming: Arc<AtomicBool>,
}

impl Routes {
    fn batch(&self, tags: &[String], command: &str) -> Batch {
        let mut batch = Batch::default();
        let index_tag = Names::index_tag(self.me);
        let index = self.names.index(self.me);
        for tag in tags {
            batch.add(
                &index_tag,
                Cmd::new().arg(command).arg(&index).arg(tag).clone(),
            );
            batch.add(
                tag,
                Cmd::new()
                    .arg(command)
                    .arg(self.names.route(tag))
                    .arg(self.me)
                    .clone(),
            );
        }
        batch
    }
}

impl Apply for Routes {
    const WHAT: &'static str = "routes";

    async fn prepare(&self) -> bool {
        if !self.consuming.load(Ordering::Acquire) {
            return false;
        }
        let index = self.names.index(self.me);
        let left: Vec<String> = match self
            .link
            .query(Cmd::new().arg("SMEMBERS").arg(&index))
            .await
        {
            Ok(left) => left,
            Err(_) => return false,
        };
        if !left.is_empty() {
            tracing::info!(
                routes = left.len(),
                "removing the routes of this spear's last run"
            );
        }
        let mut batch = Batch::default();
        for tag in &left {
            batch.add(
                tag,
                Cmd::new()
                    .arg("SREM")
                    .arg(self.names.route(tag))
                    .arg(self.me)
                    .clone(),
            );
        }
        if self.link.exec(batch).await.is_err() {
            return false;
        }
        self.link
            .query::<()>(Cmd::new().arg("DEL").arg(&index))
            .await
            .is_ok()
    }

    async fn add(&self, tags: &[String]) -> bool {
        self.link.exec(self.batch(tags, "SADD")).await.is_ok()
    }

    async fn remove(&self, tags: &[String]) -> bool {
        self.link.exec(self.batch(tags, "SREM")).await.is_ok()
    }

    fn reconnections(&self) -> u64 {
        self.link.health().outages()
    }
}

/// The spears that hold the channel named `tag`.
pub(super) async fn lookup(
    link: &RedisLink,
    names: &Names,
    tag: &str,
) -> Result<Vec<NodeId>, RedisError> {
    let members: Vec<String> = link
        .query(Cmd::new().arg("SMEMBERS").arg(names.route(tag)))
        .await?;
    // Anything else in the set was not written by a spear: ignored.
    Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
}
