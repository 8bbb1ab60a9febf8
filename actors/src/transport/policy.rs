//! The deadline and retry policy of every node-to-node RPC, in one place.
//!
//! | call                         | deadline                       | retried by the transport?                   |
//! |------------------------------|--------------------------------|---------------------------------------------|
//! | connect + TLS handshake      | [`CONNECT`]                    | no: the next call connects again            |
//! | shard write: create          | [`SHARD_CALL_DEADLINE`]        | no: the PUT goes on without that disk       |
//! | shard write: each piece      | [`SHARD_WRITE_DEADLINE`]       | no (as above)                               |
//! | shard write: commit          | [`SHARD_WRITE_DEADLINE`]       | no (as above; repair rebuilds the shard)    |
//! | shard read                   | the caller's (a GET's piece deadline) | no: the GET reads another piece     |
//! | shard verify / remove / list | [`SHARD_CALL_DEADLINE`]        | no: scrub and repair try again next pass    |
//! | Raft append / vote / snapshot| openraft's (`RPCOption::hard_ttl`) | openraft's own back-off                  |
//! | forwarded write              | [`FORWARD_DEADLINE`] in all    | on "not leader" or no connection made      |
//! | read index                   | [`FORWARD_DEADLINE`] in all    | on "not leader" and on an unreachable leader |
//! | health                       | [`HEALTH_DEADLINE`]            | polled every [`HEALTH_INTERVAL`]            |
//! | membership change            | [`FORWARD_DEADLINE`] in all    | on "not leader" or no connection made      |
//! | join (a new node's one call) | [`JOIN_DEADLINE`]              | no: the operator runs `cluster join` again  |
//!
//! A forwarded write is never sent again after it may have reached the leader's log (a timeout, a broken
//! connection): only an answer that proves it was not appended ("not leader"), or a failure to connect at
//! all (nothing was sent), is retried, so a command is never applied twice by the transport.

use std::time::Duration;

pub use crate::meta::META_DEADLINE as FORWARD_DEADLINE;
pub use crate::shard::SHARD_CALL_DEADLINE;
pub use crate::shard::SHARD_WRITE_DEADLINE;

/// TCP connect and the TLS handshake to a peer.
pub const CONNECT: Duration = Duration::from_secs(3);
/// How long an accepted connection may take to finish its TLS handshake.
pub const HANDSHAKE: Duration = Duration::from_secs(10);
/// Pieces of one remote shard write sent and not yet acknowledged: bounds the memory a slow receiver makes
/// its sender hold (8 pieces of a 4+2 stripe of 1 MiB blocks: 2 MiB).
pub const PIECE_WINDOW: u64 = 8;
/// How often each peer's health is asked.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(2);
/// Missed health answers in a row after which a peer counts as down: its disks take no new shards and
/// calls to it fail at once instead of waiting for a connect.
pub const DOWN_AFTER_MISSES: u32 = 3;
/// Pause between attempts of a retried call (a leader election takes about one election timeout).
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// HTTP/2 keep-alive pings on peer connections: a peer that vanished without closing its connections (a
/// cut network, a dead host) is noticed within interval + timeout, and the calls waiting on it fail then
/// instead of at their own deadlines.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest message either side decodes: a Raft append of many inline objects, or a snapshot chunk.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// HTTP/2 flow-control windows: large enough that a stream of shard pieces is not held back by the
/// default 64 KiB window on a fast link.
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// A join, from the joiner's connect to its signed certificate (spending the token and adding the learner
/// are two Raft commits).
pub const JOIN_DEADLINE: Duration = Duration::from_secs(60);
/// Join connections served at once (they carry no client certificate: the bound on what strangers hold).
pub const JOIN_CONNECTIONS: usize = 8;
/// Largest join request: a CSR is about 1 KiB.
pub const MAX_JOIN_MESSAGE: usize = 64 * 1024;
/// A learner whose replicated log is within this many entries of the leader's counts as caught up (and
/// may be promoted to voter).
pub const CAUGHT_UP_LAG: u64 = 64;
