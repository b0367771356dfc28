//! Which spears hold a user or a group, in Redis: a set per channel (`route:{u:UID}`) with an
//! entry `SID:GEN` for each spear that has a recipient for it, written by those spears as
//! their roster changes, through the relay's [`Wanted`](super::super::wanted::Wanted) task
//! (ordered, confirmed before an `auth` or `join` is answered, written again after Redis lost
//! it). Each entry carries its spear's [`Generation`], and each generation has an index of
//! what it wrote (`route:{s:SID:GEN}`) and a place in the set of generations
//! (`route:{spears}`), written before any of its routes. A generation is removed entry by
//! entry ([`remove_generation`]): by its own spear once a newer one has written everything
//! again (at start: the generations of its earlier runs), and by the [`sweeper`](super::sweeper)
//! of any spear once the registry holds the spear dead.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redis::Cmd;

use super::super::wanted::Apply;
use super::names::{self, Generation, Names};
use crate::clock::unix_ms;
use crate::config::NodeId;
use crate::net::redis::{Batch, RedisError, RedisLink};

/// The route entries of one spear.
pub(super) struct Routes {
    link: Arc<RedisLink>,
    names: Names,
    me: NodeId,
    /// Set once this spear reads its topic: no route may point here before.
    consuming: Arc<AtomicBool>,
    /// The generation entries are written in, and earlier ones still to remove.
    generations: Mutex<Generations>,
    /// The link's outage count, plus one, when the current generation was last put in the set
    /// of generations (0: not yet): a Redis that came back may have come back empty.
    enlisted: AtomicU64,
}

struct Generations {
    current: Generation,
    stale: Vec<Generation>,
}

impl Routes {
    /// The routes of spear `me`, in a generation that begins now.
    pub(super) fn new(
        link: Arc<RedisLink>,
        names: Names,
        me: NodeId,
        consuming: Arc<AtomicBool>,
    ) -> Self {
        let current = Generation {
            sid: me,
            began_ms: unix_ms(),
        };
        Self {
            link,
            names,
            me,
            consuming,
            generations: Mutex::new(Generations {
                current,
                stale: Vec::new(),
            }),
            enlisted: AtomicU64::new(0),
        }
    }

    fn generations(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Generation {
        self.generations().current
    }

    fn batch(&self, tags: &[String], command: &str) -> Batch {
        let generation = self.current();
        let (entry, index) = (
            generation.entry(),
            self.names.index(self.me, generation.began_ms),
        );
        let index_tag = Names::index_tag(self.me, generation.began_ms);
        let mut batch = Batch::default();
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
                    .arg(&entry)
                    .clone(),
            );
        }
        batch
    }

    /// Puts `generation` in the set of generations, before it writes any route.
    async fn enlist(&self, generation: Generation) -> Result<(), RedisError> {
        let outages = self.link.health().outages();
        self.link
            .query::<()>(
                Cmd::new()
                    .arg("SADD")
                    .arg(self.names.generations())
                    .arg(generation.entry()),
            )
            .await?;
        self.enlisted.store(outages + 1, Ordering::Release);
        Ok(())
    }

    /// Enlists the current generation again if Redis went away since it last was.
    async fn stay_enlisted(&self) -> Result<(), RedisError> {
        let outages = self.link.health().outages();
        if self.enlisted.load(Ordering::Acquire) == outages + 1 {
            return Ok(());
        }
        self.enlist(self.current()).await
    }

    /// Removes what a gru before generations left: an index of plain `SID` entries.
    async fn remove_unversioned(&self) -> Result<(), RedisError> {
        let index = self.names.unversioned_index(self.me);
        let left: Vec<String> = self
            .link
            .query(Cmd::new().arg("SMEMBERS").arg(&index))
            .await?;
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
        self.link.exec(batch).await?;
        self.link
            .query::<()>(Cmd::new().arg("DEL").arg(&index))
            .await
    }
}

impl Apply for Routes {
    const WHAT: &'static str = "routes";

    /// Enlists this run's generation and marks the earlier runs' for removal ([`Apply::tidy`]
    /// removes them once this one is in place).
    async fn prepare(&self) -> bool {
        if !self.consuming.load(Ordering::Acquire) {
            return false;
        }
        let current = self.current();
        if self.enlist(current).await.is_err() || self.remove_unversioned().await.is_err() {
            return false;
        }
        let Ok(listed) = all_generations(&self.link, &self.names).await else {
            return false;
        };
        let earlier: Vec<Generation> = listed
            .into_iter()
            .filter(|g| g.sid == self.me && *g != current)
            .collect();
        if !earlier.is_empty() {
            tracing::info!(
                generations = earlier.len(),
                "removing the routes of this spear's earlier runs"
            );
        }
        let mut generations = self.generations();
        for g in earlier {
            if !generations.stale.contains(&g) {
                generations.stale.push(g);
            }
        }
        true
    }

    async fn add(&self, tags: &[String]) -> bool {
        self.stay_enlisted().await.is_ok() && self.link.exec(self.batch(tags, "SADD")).await.is_ok()
    }

    async fn remove(&self, tags: &[String]) -> bool {
        self.link.exec(self.batch(tags, "SREM")).await.is_ok()
    }

    /// Begins a generation (enlisted first); the previous one becomes stale.
    async fn restart(&self) -> bool {
        let began_ms = unix_ms().max(self.current().began_ms + 1);
        let next = Generation {
            sid: self.me,
            began_ms,
        };
        if self.enlist(next).await.is_err() {
            return false;
        }
        let mut generations = self.generations();
        let previous = std::mem::replace(&mut generations.current, next);
        generations.stale.push(previous);
        tracing::info!(
            generation = began_ms,
            "registered anew: writing this spear's routes again"
        );
        true
    }

    async fn tidy(&self) {
        let stale = self.generations().stale.clone();
        for generation in stale {
            if remove_generation(&self.link, &self.names, generation)
                .await
                .is_ok()
            {
                self.generations().stale.retain(|g| *g != generation);
            }
        }
    }

    fn reconnections(&self) -> u64 {
        self.link.health().outages()
    }
}

/// Every generation in the set of generations (anything else there is ignored).
pub(super) async fn all_generations(
    link: &RedisLink,
    names: &Names,
) -> Result<Vec<Generation>, RedisError> {
    let listed: Vec<String> = link
        .query(Cmd::new().arg("SMEMBERS").arg(names.generations()))
        .await?;
    Ok(listed.iter().filter_map(|e| Generation::parse(e)).collect())
}

/// Removes every route entry of `generation`, then its index, then its place in the set of
/// generations (so that a failure part-way leaves it listed, to be tried again); returns how
/// many routes it had.
pub(super) async fn remove_generation(
    link: &RedisLink,
    names: &Names,
    generation: Generation,
) -> Result<usize, RedisError> {
    let index = names.index(generation.sid, generation.began_ms);
    let tags: Vec<String> = link.query(Cmd::new().arg("SMEMBERS").arg(&index)).await?;
    let entry = generation.entry();
    for chunk in tags.chunks(super::super::wanted::CHUNK) {
        let mut batch = Batch::default();
        for tag in chunk {
            batch.add(
                tag,
                Cmd::new()
                    .arg("SREM")
                    .arg(names.route(tag))
                    .arg(&entry)
                    .clone(),
            );
        }
        link.exec(batch).await?;
    }
    link.query::<()>(Cmd::new().arg("DEL").arg(&index)).await?;
    link.query::<()>(Cmd::new().arg("SREM").arg(names.generations()).arg(&entry))
        .await?;
    Ok(tags.len())
}

/// The spears that hold the channel named `tag`, each once.
pub(super) async fn lookup(
    link: &RedisLink,
    names: &Names,
    tag: &str,
) -> Result<Vec<NodeId>, RedisError> {
    let entries: Vec<String> = link
        .query(Cmd::new().arg("SMEMBERS").arg(names.route(tag)))
        .await?;
    // Anything else in the set was not written by a spear: ignored. A spear listed twice (a
    // new generation written, the previous one not yet removed) gets one copy.
    let mut spears: Vec<NodeId> = entries.iter().filter_map(|e| names::spear_of(e)).collect();
    spears.sort_unstable();
    spears.dedup();
    Ok(spears)
}
