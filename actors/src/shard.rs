//! The shard actor: one per local disk, the only way to that disk's shard files.
//!
//! Invariants:
//! - A shard file becomes visible under its final name only when it is complete and synced
//!   (`ShardWriter::commit`); a crash before leaves a temp file that scrub removes.
//! - Reads verify the CRC32C of every piece they return; a corrupt piece is an error, never bytes.
//! - I/O runs on the disk's own threads ([`DiskIo`]), many files at once: the actor's mailbox is never
//!   blocked by a disk, and a hung disk holds only its own threads. The actor's job is to count errors and
//!   hand out writers.
//! - A degraded disk gets no new shard file: `Create` fails at once, and the segment goes on without it
//!   (repair writes the shard once the disk answers again). A writer waiting on a disk that becomes
//!   degraded gives up on it at once.

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

use crate::disk_io::DiskIo;
use crate::disk_io::IoKind;
use crate::error::ActorError;
use crate::error::Result;
use crate::faults;
use crate::faults::FaultInjector;
use crate::slot::Slot;
use crate::transport::peer::RemoteShard;
use crate::transport::peer::RemoteWriter;

/// Deadline for handing out a writer, removing or listing (reads take theirs from the caller).
pub const SHARD_CALL_DEADLINE: Duration = Duration::from_secs(30);
/// How long one piece append, or a file's sync and rename, may take before that disk is given up on for
/// the write (a hung disk must not hang every PUT whose stripe includes it).
pub const SHARD_WRITE_DEADLINE: Duration = Duration::from_secs(30);

pub struct ShardActor;

pub struct ShardArgs {
    pub io: DiskIo,
    pub faults: Arc<dyn FaultInjector>,
    pub stats: Arc<ShardStats>,
}

pub struct ShardState {
    io: DiskIo,
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
    Create(ShardHeader, RpcReplyPort<Result<LocalWriter>>),
    ReadPiece {
        header: ShardHeader,
        block: u64,
        block_len: usize,
        reply: RpcReplyPort<Result<Bytes>>,
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
        Ok(ShardState { io: args.io, faults: args.faults, stats: args.stats })
    }

    async fn handle(
        &self,
        _me: ActorRef<ShardMsg>,
        msg: ShardMsg,
        state: &mut ShardState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        let io = state.io.clone();
        let stats = state.stats.clone();
        match msg {
            ShardMsg::Create(header, reply) => {
                let faults = state.faults.clone();
                tokio::spawn(async move {
                    if io.is_degraded() {
                        let _ = reply.send(Err(ActorError::Unavailable("disk (degraded)")));
                        return;
                    }
                    let creating = io.run(IoKind::Write, move |d| Ok(shard_file::ShardWriter::new(d, &header)?));
                    let r = tokio::select! {
                        r = creating => r,
                        _ = io.degraded() => Err(ActorError::Unavailable("disk (degraded)")),
                    };
                    if r.is_err() {
                        stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = reply.send(r.map(|w| LocalWriter { inner: Some(w), io, faults, stats }));
                });
            }
            ShardMsg::ReadPiece { header, block, block_len, reply } => {
                tokio::spawn(async move {
                    let r = io
                        .run(IoKind::Read, move |d| {
                            Ok(shard_file::read_piece(
                                d,
                                header.segment,
                                header.shard_index,
                                &header,
                                block,
                                block_len,
                            )?)
                        })
                        .await;
                    if matches!(r, Err(ActorError::Storage(_))) {
                        stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = reply.send(r);
                });
            }
            ShardMsg::Verify { header, size, reply } => {
                tokio::spawn(async move {
                    let r = io
                        .run(IoKind::Scan, move |d| {
                            Ok(shard_file::verify(d, header.segment, header.shard_index, &header, size)?)
                        })
                        .await;
                    let _ = reply.send(r);
                });
            }
            ShardMsg::Remove(name, reply) => {
                tokio::spawn(async move {
                    let r = io.run(IoKind::Write, move |d| Ok(d.remove(&name)?)).await;
                    let _ = reply.send(r);
                });
            }
            ShardMsg::List(reply) => {
                tokio::spawn(async move {
                    let r = io.run(IoKind::Scan, |d| Ok(d.list()?)).await;
                    let _ = reply.send(r);
                });
            }
        }
        Ok(())
    }
}

/// Appends one shard file's pieces on a local disk. Dropped without `commit`, the file never becomes
/// visible.
pub struct LocalWriter {
    inner: Option<shard_file::ShardWriter>,
    io: DiskIo,
    faults: Arc<dyn FaultInjector>,
    stats: Arc<ShardStats>,
}

impl LocalWriter {
    /// Appends `pieces`, in order, in one job on the disk's threads.
    pub async fn append(&mut self, pieces: Vec<Bytes>) -> Result<()> {
        let mut w = self.inner.take().ok_or(ActorError::Invalid("shard writer already failed".into()))?;
        let faults = self.faults.clone();
        let work = self.io.run(IoKind::Write, move |_| {
            let r = pieces.iter().try_for_each(|piece| {
                faults::hit_blocking(faults.as_ref(), "shard.write").and_then(|()| Ok(w.append_piece(piece)?))
            });
            Ok((w, r))
        });
        let (w, r) = match bounded(&self.io, work, "shard write").await {
            Ok(done) => done,
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
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
        let w = self.inner.take().ok_or(ActorError::Invalid("shard writer already failed".into()))?;
        let r = bounded(&self.io, self.io.run(IoKind::Write, move |_| Ok(w.commit()?)), "shard sync").await;
        if r.is_err() {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

/// An abandoned writer removes its temp file: on the disk's own thread, not on an async worker.
impl Drop for LocalWriter {
    fn drop(&mut self) {
        if let Some(w) = self.inner.take() {
            self.io.release(w);
        }
    }
}

/// `work`, given up after [`SHARD_WRITE_DEADLINE`] or as soon as the disk is degraded.
async fn bounded<T>(io: &DiskIo, work: impl std::future::Future<Output = Result<T>>, what: &'static str) -> Result<T> {
    tokio::select! {
        r = tokio::time::timeout(SHARD_WRITE_DEADLINE, work) => r.unwrap_or(Err(ActorError::Timeout(what))),
        _ = io.degraded() => Err(ActorError::Unavailable("disk (degraded)")),
    }
}

/// The typed handle of one disk's shard actor.
#[derive(Clone)]
pub struct ShardHandle {
    pub index: u32,
    pub slot: Slot<ShardMsg>,
    pub stats: Arc<ShardStats>,
    pub label: String,
    /// The disk's threads and health; they outlive restarts of its actor.
    pub io: DiskIo,
}

impl ShardHandle {
    /// The handle of disk `index`, starting its I/O threads.
    pub fn new(index: u32, disk: Arc<dyn Disk>, faults: Arc<dyn FaultInjector>) -> Self {
        let label = disk.label();
        let io = DiskIo::new(index, disk, faults);
        ShardHandle { index, slot: Slot::new("shard"), stats: Arc::new(ShardStats::default()), label, io }
    }

    pub async fn create(&self, header: ShardHeader) -> Result<LocalWriter> {
        self.slot.call(|r| ShardMsg::Create(header, r), SHARD_CALL_DEADLINE).await?
    }

    pub async fn read_piece(
        &self,
        header: ShardHeader,
        block: u64,
        block_len: usize,
        deadline: Duration,
    ) -> Result<Bytes> {
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

/// A disk as the coordinator of a PUT, GET or repair sees it: one of this node's (or, in an in-process
/// cluster, another node's) shard actors, or a disk of another process reached over the transport. Both
/// speak the same protocol: create, pieces, commit (or drop: abort); read, verify, remove, list.
#[derive(Clone)]
pub enum Shard {
    Local(ShardHandle),
    Remote(RemoteShard),
}

impl Shard {
    pub async fn create(&self, header: ShardHeader) -> Result<ShardWriter> {
        match self {
            Shard::Local(h) => h.create(header).await.map(ShardWriter::Local),
            Shard::Remote(r) => r.create(header).await.map(ShardWriter::Remote),
        }
    }

    pub async fn read_piece(
        &self,
        header: ShardHeader,
        block: u64,
        block_len: usize,
        deadline: Duration,
    ) -> Result<Bytes> {
        match self {
            Shard::Local(h) => h.read_piece(header, block, block_len, deadline).await,
            Shard::Remote(r) => r.read_piece(header, block, block_len, deadline).await,
        }
    }

    pub async fn verify(&self, header: ShardHeader, size: u64, deadline: Duration) -> Result<()> {
        match self {
            Shard::Local(h) => h.verify(header, size, deadline).await,
            Shard::Remote(r) => r.verify(header, size, deadline).await,
        }
    }

    pub async fn remove(&self, segment: SegmentId, index: u8) -> Result<()> {
        self.remove_name(&shard_file::shard_name(segment, index)).await
    }

    pub async fn remove_name(&self, name: &str) -> Result<()> {
        match self {
            Shard::Local(h) => h.remove_name(name).await,
            Shard::Remote(r) => r.remove_name(name).await,
        }
    }

    /// Whether the disk takes no new shard files now (degraded, or its node out of reach).
    pub fn is_degraded(&self) -> bool {
        match self {
            Shard::Local(h) => h.io.is_degraded(),
            Shard::Remote(r) => r.is_degraded(),
        }
    }

    /// Whether reads should go elsewhere first: the disk is stuck on a job, or its node answers slowly.
    pub fn lagging(&self) -> bool {
        match self {
            Shard::Local(h) => h.io.lagging(),
            Shard::Remote(r) => r.lagging(),
        }
    }

    /// How long a piece read may take before a read of another piece is started beside it.
    pub fn hedge_after(&self) -> Duration {
        match self {
            Shard::Local(h) => h.io.hedge_after(),
            Shard::Remote(r) => r.hedge_after(),
        }
    }
}

/// One shard file being written, on a local disk or over the transport. `append` may return before a
/// remote piece is on disk (a bounded window of pieces is in flight); an earlier piece's failure is
/// reported by a later `append` or by `commit`. Dropped without `commit`: aborted, nothing visible.
pub enum ShardWriter {
    Local(LocalWriter),
    Remote(RemoteWriter),
}

impl ShardWriter {
    /// Appends `pieces`, in order: one disk job on a local disk, one frame each over the transport.
    pub async fn append(&mut self, pieces: Vec<Bytes>) -> Result<()> {
        match self {
            ShardWriter::Local(w) => w.append(pieces).await,
            ShardWriter::Remote(w) => {
                for piece in pieces {
                    w.append(piece).await?;
                }
                Ok(())
            }
        }
    }

    /// Syncs the file and makes it visible under its final name.
    pub async fn commit(self) -> Result<()> {
        match self {
            ShardWriter::Local(w) => w.commit().await,
            ShardWriter::Remote(w) => w.commit().await,
        }
    }
}
