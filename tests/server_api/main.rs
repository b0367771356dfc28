//! The server API that business servers call (`docs/api.md`, "Server API"): publish to a user,
//! a group, a list and in batches, across spears and idempotently (`publish.rs`); API keys
//! missing, wrong, scoped and rotated without a restart (`auth.rs`); a user's connections on
//! every spear listed and closed (`disconnect.rs`).

mod auth;
mod common;
mod disconnect;
mod publish;
