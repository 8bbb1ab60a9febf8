//! Bytes at rest, without actors: the `Disk` seam and the shard file format, erasure coding, chunk
//! sealing and key wrapping, the `Env` seam, the fjall-backed Raft log and state machine, and the identity
//! markers that tell which directory is which disk.
pub mod disk;
pub mod ec;
pub mod env;
pub mod error;
pub mod identity;
pub mod meta;
pub mod seal;
pub mod shard_file;
