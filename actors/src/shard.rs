//! The shard actor: one per local disk, the only way to that disk's shard files.
//!
//! Invariants:
//! - A shard file becomes visible under its final name only when it is complete and synced
//!   (`ShardWriter::commit`); a crash before leaves a temp file that scrub removes.
//! - Reads verify the CRC32C of every piece they return; a corrupt piece is an error, never bytes.
//! - I/O runs on the blocking pool, many files at once: the actor's mailbox is never blocked by a disk.
//!   Its own job is to own the `Disk`, count errors, and hand out writers.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hoard_protocol::SegmentId;
use hoard_storage::disk::Disk;
use hoard_storage::disk::DiskEntry;
use hoard_storage::shard_file;
use hoard_storage::shard_file::ShardHeader;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;

use crate::blocking;
use crate::error::Result;
use crate::faults;
use crate::faults::FaultInjector;
use crate::slot::Slot;

/// Deadline for handing out a writer, removing or listing (reads take theirs from the caller).
pub const SHARD_CALL_DEADLINE: Duration = Duration::from_secs(30);
/// How long one piece append, or a file's sync and rename, may take before that disk is given up on for
/// the write (a hung disk must not hang every PUT whose stripe includes it).
pub const SHARD_WRITE_DEADLINE: Duration = Duration::from_secs(30);

pub struct ShardActor;

pub struct ShardArgs {
    pub disk: Arc<dyn Disk>,
    pub faults: Arc<dyn FaultInjector>,
    pub stats: Arc<ShardStats>,
}

pub struct ShardState {
    disk: Arc<dyn Disk>,
    faults: Arc<dyn FaultInjector>,
    stats: Arc<ShardStats>,
}

/// Counters a disk keeps across restarts of its actor.
#[derive(Default)]
pub struct ShardStats {
    pub read_errors: AtomicU64,
    pub write_errors: AtomicU64,
}

pub enum ShardMsg {
    Create(ShardHeader, RpcReplyPort<Result<ShardWriter>>),
    ReadPiece {
        header: ShardHeader,
        block: u64,
        block_len: usize,
        reply: RpcReplyPort<Result<Vec<u8>>>,
    },
    Verify {
        header: ShardHeader,
        size: u64,
        reply: RpcReplyPort<Result<()>>,
    },
    /// Removes a file by name (shard file or leftover temp file).
    Remove(String, RpcReplyPort<Result<()>>),
    List(RpcReplyPort<Result<Vec<DiskEntry>>>),
}

impl Actor for ShardActor {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<ShardMsg>,
        args: ShardArgs,
    ) -> std::result::Result<ShardState, ActorProcessingErr> {
        Ok(ShardState { disk: args.disk, faults: args.faults, stats: args.stats })
    }

    async fn handle(
        &self,
        _me: ActorRef<ShardMsg>,
        msg: ShardMsg,
        state: &mut ShardState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        let disk = state.disk.clone();
        let stats = state.stats.clone();
        match msg {
            ShardMsg::Create(header, reply) => {
                let faults = state.faults.clone();
                tokio::spawn(async move {
                    let d = disk.clone();
                    let r = blocking::run(move || Ok(shard_file::ShardWriter::new(d.as_ref(), &header)?)).await;
                    if r.is_err() {
                        stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = reply.send(r.map(|w| ShardWriter { inner: Some(w), faults, stats }));
                });
            }
            ShardMsg::ReadPiece { header, block, block_len, reply } => {
                tokio::spawn(async move {
                    let r = blocking::run(move || {
                        Ok(shard_file::read_piece(
                            disk.as_ref(),
                            header.segment,
                            header.shard_index,
                            &header,
                            block,
                            block_len,
                        )?)
                    })
                    .await;
                    if r.is_err() {
                        stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = reply.send(r);
                });
            }
            ShardMsg::Verify { header, size, reply } => {
                tokio::spawn(async move {
                    let r = blocking::run(move || {
                        Ok(shard_file::verify(disk.as_ref(), header.segment, header.shard_index, &header, size)?)
                    })
                    .await;
                    let _ = reply.send(r);
                });
            }
            ShardMsg::Remove(name, reply) => {
                tokio::spawn(async move {
                    let r = blocking::run(move || Ok(disk.remove(&name)?)).await;
                    let _ = reply.send(r);
                });
            }
            ShardMsg::List(reply) => {
                tokio::spawn(async move {
                    let r = blocking::run(move || Ok(disk.list()?)).await;
                    let _ = reply.send(r);
                });
            }
        }
        Ok(())
    }
}

/// Appends one shard file's pieces. Dropped without `commit`, the file never becomes visible.
pub struct ShardWriter {
    inner: Option<shard_file::ShardWriter>,
    faults: Arc<dyn FaultInjector>,
    stats: Arc<ShardStats>,
}

impl ShardWriter {
    pub async fn append(&mut self, piece: Bytes) -> Result<()> {
        let mut w = self.inner.take().ok_or(crate::error::ActorError::Invalid("shard writer already failed".into()))?;
        let faults = self.faults.clone();
        let work = blocking::run(move || {
            let r = faults::hit_blocking(faults.as_ref(), "shard.write").and_then(|()| Ok(w.append_piece(&piece)?));
            Ok((w, r))
        });
        let (w, r) = match tokio::time::timeout(SHARD_WRITE_DEADLINE, work).await {
            Ok(done) => done?,
            Err(_) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                return Err(crate::error::ActorError::Timeout("shard write"));
            }
        };
        if r.is_ok() {
            self.inner = Some(w);
        } else {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Syncs the file and makes it visible under its final name.
    pub async fn commit(mut self) -> Result<()> {
        let w = self.inner.take().ok_or(crate::error::ActorError::Invalid("shard writer already failed".into()))?;
        let r = match tokio::time::timeout(SHARD_WRITE_DEADLINE, blocking::run(move || Ok(w.commit()?))).await {
            Ok(r) => r,
            Err(_) => Err(crate::error::ActorError::Timeout("shard sync")),
        };
        if r.is_err() {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

/// The typed handle of one disk's shard actor.
#[derive(Clone)]
pub struct ShardHandle {
    pub index: u32,
    pub slot: Slot<ShardMsg>,
    pub stats: Arc<ShardStats>,
    pub label: String,
}

impl ShardHandle {
    pub fn new(index: u32, label: String) -> Self {
        ShardHandle { index, slot: Slot::new("shard"), stats: Arc::new(ShardStats::default()), label }
    }

    pub async fn create(&self, header: ShardHeader) -> Result<ShardWriter> {
        self.slot.call(|r| ShardMsg::Create(header, r), SHARD_CALL_DEADLINE).await?
    }

    pub async fn read_piece(
        &self,
        header: ShardHeader,
        block: u64,
        block_len: usize,
        deadline: Duration,
    ) -> Result<Vec<u8>> {
        self.slot.call(|reply| ShardMsg::ReadPiece { header, block, block_len, reply }, deadline).await?
    }

    pub async fn verify(&self, header: ShardHeader, size: u64, deadline: Duration) -> Result<()> {
        self.slot.call(|reply| ShardMsg::Verify { header, size, reply }, deadline).await?
    }

    pub async fn remove(&self, segment: SegmentId, index: u8) -> Result<()> {
        self.remove_name(&shard_file::shard_name(segment, index)).await
    }

    pub async fn remove_name(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.slot.call(|r| ShardMsg::Remove(name, r), SHARD_CALL_DEADLINE).await?
    }

    pub async fn list(&self) -> Result<Vec<DiskEntry>> {
        self.slot.call(ShardMsg::List, SHARD_CALL_DEADLINE).await?
    }
}
