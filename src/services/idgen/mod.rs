//! idgen: message ids. Strict mode (default) issues strictly increasing ids from the Raft
//! leader; unique mode issues snowflake ids from every node. See `docs/idgen.md`.

mod client;
mod clock;
mod control;
pub mod layout;
mod strict;
mod unique;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;

pub use client::{IdClient, IdClientCounts};
pub use clock::clock_steps_back;
pub use strict::{StrictIssuer, StrictSettings};
pub use unique::UniqueIssuer;

use crate::config::IdgenMode;
use crate::raft::LeaderRef;

/// `count` consecutive ids starting at `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdBlock {
    /// The first id.
    pub first: u64,
    /// How many.
    pub count: u32,
}

impl IdBlock {
    /// Every id of the block.
    pub fn ids(&self) -> impl Iterator<Item = u64> {
        self.first..self.first + u64::from(self.count)
    }
}

/// Why ids could not be issued.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdError {
    /// Strict ids come from the leader; this node is not it.
    #[error("not the leader; strict ids are issued by the leader")]
    NotLeader {
        /// Where the leader is, if known.
        leader: Option<LeaderRef>,
    },
    /// The count is outside 1..=max.
    #[error("count must be a whole number between 1 and {max}")]
    BadCount {
        /// The largest count allowed.
        max: u32,
    },
    /// No ids can be issued right now (no leader, lease not confirmed, worker id pending).
    #[error("ids unavailable: {0}")]
    Unavailable(String),
    /// A bounded request (the HTTP API's) would run the strict issuer further ahead of its
    /// clock than it may (half of `idgen.window_ms`): retry once the clock caught up.
    #[error("{0}")]
    Ahead(String),
}

/// The ids a node serves: what the gRPC and HTTP edges call.
pub struct IdService {
    mode: IdgenMode,
    max_batch: u32,
    strict: Option<Arc<StrictIssuer>>,
    unique: OnceLock<(UniqueIssuer, u64)>,
    forward: IdClient,
    /// How long a caller waits for ids (`idgen.wait_ms`).
    wait: Duration,
    /// Ids this node issued itself (not those fetched from the leader).
    issued: AtomicU64,
}

/// What a node says of its id issuing (`GET /api/v1/idgen`, the dashboard, `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdgenReport {
    /// The cluster's mode.
    pub mode: IdgenMode,
    /// Whether this node issues ids now: the strict leader with an open window, or (unique
    /// mode) a node with its worker id.
    pub issuing: bool,
    /// Ids this node issued itself since it started.
    pub ids_issued: u64,
    /// Times this node became the strict issuer of a new term since it started (0 in unique
    /// mode).
    pub leader_changes: u64,
    /// Since when it has issued, Unix ms by its clock; `None` when it does not.
    pub issuer_since_ms: Option<u64>,
    /// Strict mode, while it issues: how far ahead of its clock its next id is, ms (at most
    /// `idgen.window_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead_ms: Option<u64>,
}

impl IdService {
    /// A service in `mode`; `strict` is the local issuer on core nodes; `forward` reaches the
    /// leader from anywhere; a caller waits at most `wait` for its ids.
    pub fn new(
        mode: IdgenMode,
        (max_batch, wait): (u32, Duration),
        strict: Option<Arc<StrictIssuer>>,
        forward: IdClient,
    ) -> Self {
        Self {
            mode,
            max_batch,
            strict,
            unique: OnceLock::new(),
            forward,
            wait,
            issued: AtomicU64::new(0),
        }
    }

    /// `ids`, or [`IdError::Unavailable`] once the wait is over: a sender is answered, never
    /// held until a leader is back. Ids issued for a request given up on are never used; a
    /// gap in the ids is all it leaves.
    async fn within_wait(
        &self,
        ids: impl std::future::Future<Output = Result<Vec<IdBlock>, IdError>>,
    ) -> Result<Vec<IdBlock>, IdError> {
        tokio::time::timeout(self.wait, ids)
            .await
            .unwrap_or_else(|_| {
                Err(IdError::Unavailable(format!(
                    "the id leader is unavailable (no ids within {} ms: a leader change, or the \
                 core has no quorum); retry later",
                    self.wait.as_millis()
                )))
            })
    }

    /// How this node issues ids now.
    pub fn report(&self) -> IdgenReport {
        let (since, changes) = match self.mode {
            IdgenMode::Unique => (self.unique.get().map(|(_, since)| *since), 0),
            IdgenMode::Strict => self
                .strict
                .as_ref()
                .map_or((None, 0), |s| (s.issuing_since_ms(), s.terms_led())),
        };
        IdgenReport {
            mode: self.mode,
            issuing: since.is_some(),
            ids_issued: self.issued.load(Ordering::Relaxed),
            leader_changes: changes,
            issuer_since_ms: since,
            ahead_ms: self.strict.as_ref().and_then(|s| s.ahead_ms()),
        }
    }

    /// The mode.
    pub fn mode(&self) -> IdgenMode {
        self.mode
    }

    /// The largest count one request may ask for.
    pub fn max_batch(&self) -> u32 {
        self.max_batch
    }

    /// Installs the unique issuer once the worker id is assigned.
    pub fn set_worker(&self, worker: u16) {
        if self
            .unique
            .set((UniqueIssuer::new(worker), crate::clock::unix_ms()))
            .is_ok()
        {
            tracing::info!(worker, "unique idgen worker id assigned");
        }
    }

    /// Checks a requested count.
    pub fn check_count(&self, count: u64) -> Result<u32, IdError> {
        u32::try_from(count)
            .ok()
            .filter(|c| (1..=self.max_batch).contains(c))
            .ok_or(IdError::BadCount {
                max: self.max_batch,
            })
    }

    /// Ids issued here: by the local strict issuer, or the local unique worker. A follower
    /// answers `NotLeader` (gRPC callers follow the redirect).
    pub async fn issue_local(&self, count: u32) -> Result<Vec<IdBlock>, IdError> {
        self.issue_local_with(count, false).await
    }

    /// [`Self::issue_local`], bounded as [`StrictIssuer::issue_bounded`] is when `bounded`.
    pub async fn issue_local_with(
        &self,
        count: u32,
        bounded: bool,
    ) -> Result<Vec<IdBlock>, IdError> {
        self.check_count(u64::from(count))?;
        let blocks = match self.mode {
            IdgenMode::Unique => {
                let (issuer, _) = self
                    .unique
                    .get()
                    .ok_or_else(|| IdError::Unavailable("worker id not assigned yet".into()))?;
                issuer.issue(count).await
            }
            IdgenMode::Strict => match &self.strict {
                Some(issuer) if bounded => vec![issuer.issue_bounded(count).await?],
                Some(issuer) => vec![issuer.issue(count).await?],
                None => return Err(IdError::NotLeader { leader: None }),
            },
        };
        let n: u64 = blocks.iter().map(|b| u64::from(b.count)).sum();
        self.issued.fetch_add(n, Ordering::Relaxed);
        Ok(blocks)
    }

    /// Ids for a caller that does not follow redirects (HTTP): issued here when possible,
    /// otherwise fetched from the leader.
    pub async fn issue(&self, count: u32) -> Result<Vec<IdBlock>, IdError> {
        self.within_wait(async {
            match self.issue_local(count).await {
                Err(IdError::NotLeader { .. }) => self.forward.next(count).await,
                other => other,
            }
        })
        .await
    }

    /// Ids for `GET /api/v1/ids`: as [`Self::issue`], but in strict mode refused with
    /// [`IdError::Ahead`] rather than run the issuer more than half its window ahead of its
    /// clock (the other half stays for messages), also when the leader issues them.
    pub async fn issue_for_api(&self, count: u32) -> Result<Vec<IdBlock>, IdError> {
        self.within_wait(async {
            match self.issue_local_with(count, true).await {
                Err(IdError::NotLeader { .. }) => self.forward.next_bounded(count).await,
                other => other,
            }
        })
        .await
    }
}
