//! Bytes at rest, without actors: the `Disk` seam and the shard file format, erasure coding, chunk
//! sealing and key wrapping, the `Env` seam, and the fjall-backed Raft log and state machine.
pub mod disk;
pub mod ec;
pub mod env;
pub mod error;
pub mod meta;
pub mod seal;
pub mod shard_file;
