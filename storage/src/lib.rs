//! Bytes at rest, without actors: the `Disk` seam and the shard file format, erasure coding, chunk
//! sealing and key wrapping, MD5 of several streams at once, the `Env` seam, the fjall-backed Raft log and state machine, and the identity
//! markers that tell which directory is which disk.
pub mod disk;
pub mod ec;
pub mod env;
pub mod error;
pub mod exec;
pub mod identity;
pub mod md5;
pub mod meta;
pub mod pages;
pub mod seal;
pub mod shard_file;
