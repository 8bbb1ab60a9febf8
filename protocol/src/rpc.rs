//! The node-to-node gRPC services (`proto/hoard.proto`), generated at build time.
//!
//! The messages are the wire form only: `hoard-actors` converts them to and from its own types at the
//! edge of the transport, so nothing else in hoard depends on them.

#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/hoard.v1.rs"));

/// How a [`RaftMessage`] body is encoded: bincode of openraft's serde form.
pub const RAFT_FORMAT_BINCODE: u32 = 1;
