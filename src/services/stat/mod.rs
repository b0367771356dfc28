//! stat: who is online where. Each spear writes its own presence into Redis
//! ([`PresenceWriter`], fed by the spear's roster); any node reads the union over live spears
//! ([`Presence`]) for the `online` event and the stat HTTP API (`crate::api::http`). Key layout in
//! [`keys`].

pub mod keys;
mod presence;
mod reader;

pub use keys::Keys;
pub use presence::{PresenceMarks, PresenceWriter};
pub use reader::{
    GroupOnline, Presence, SpearGroup, SpearStat, StatError, UserOnSpear, UserPresence,
};
