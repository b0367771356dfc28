//! How values are encoded in sled: serde JSON, with errors mapped to openraft's storage error.

use openraft::{AnyError, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::NodeId;

/// Encodes a value for sled.
pub(super) fn encode<T: Serialize>(
    value: &T,
    on_err: fn(AnyError) -> StorageIOError<NodeId>,
) -> Result<Vec<u8>, StorageIOError<NodeId>> {
    serde_json::to_vec(value).map_err(|e| on_err(AnyError::new(&e)))
}

/// Decodes a value read from sled.
pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    on_err: fn(AnyError) -> StorageIOError<NodeId>,
) -> Result<T, StorageIOError<NodeId>> {
    serde_json::from_slice(bytes).map_err(|e| on_err(AnyError::new(&e)))
}

/// Maps a sled error with the given constructor.
pub(super) fn sled_err(
    on_err: fn(AnyError) -> StorageIOError<NodeId>,
) -> impl Fn(sled::Error) -> StorageIOError<NodeId> {
    move |e| on_err(AnyError::new(&e))
}
