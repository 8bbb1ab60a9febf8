//! The metadata store: one fjall database holding the Raft log, the vote and the state machine of the
//! metadata Raft group (DESIGN.md §6).
//!
//! Invariants kept here and in the submodules:
//! - One [`fjall::Database`] per node holds everything, so all writes share one journal. A write that is
//!   durable implies every write before it is durable too; the log store leans on that ordering.
//! - The log is the commit point. A log entry is reported flushed to openraft only after `SyncAll`
//!   ([`log`]); the vote is durable before `save_vote` returns. The state machine is not fsynced on
//!   apply: after a crash openraft re-applies the log from the state machine's `last_applied`.
//! - Each entry's effects and the new `last_applied` are written in one atomic batch ([`state`]), so the
//!   state machine is always exactly "the log applied up to `last_applied`", never in between.
//! - Applying is deterministic: it reads only the command and the state (times come in the command).
//! - Every persisted value carries a leading format byte (`hoard_protocol::encode`).
//! - Keys that nest a name inside another name put a 0x00 byte after the outer name ([`keys`]); bucket
//!   names never contain 0x00, so bucket "a" and bucket "ab" never share a key range.

#[cfg(test)]
mod golden;
mod in_process;
mod keys;
mod log;
mod reader;
mod repair_queue;
pub mod runtime;
mod snapshot;
mod state;
#[cfg(test)]
mod test_support;

use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;

use fjall::Database;
use fjall::Keyspace;
use fjall::KeyspaceCreateOptions;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
pub use in_process::InProcessClient;
pub use in_process::InProcessEndpoint;
pub use in_process::InProcessNetwork;
pub use in_process::MetaClient;
pub use in_process::MetaNetwork;
pub use in_process::RaftRpc;
pub use in_process::RpcFuture;
pub use log::LogStore;
use openraft::error::InstallSnapshotError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::RaftNetwork;
use openraft::RaftNetworkFactory;
pub use reader::Census;
pub use reader::CommittedSegment;
pub use reader::Holding;
pub use reader::ListPage;
pub use reader::ListQuery;
pub use reader::MetaReader;
pub use reader::UploadPage;
pub use reader::UploadQuery;
pub use reader::VersionEntry;
pub use reader::VersionPage;
pub use reader::VersionQuery;
pub use reader::WalkCursor;
pub use repair_queue::RepairQueue;
pub use snapshot::SnapshotFile;
pub use state::StateMachineStore;

openraft::declare_raft_types!(
    /// The openraft type configuration of the metadata group.
    pub TypeConfig:
        D = MetaCommand,
        R = MetaResponse,
        NodeId = u64,
        Node = NodeAddr,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotFile,
        AsyncRuntime = runtime::HoardRuntime,
);

/// A running metadata Raft node.
pub type Raft = openraft::Raft<TypeConfig>;

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata database: {0}")]
    Db(#[from] fjall::Error),
    #[error("metadata encoding: {0}")]
    Decode(#[from] hoard_protocol::ProtocolError),
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    #[error("metadata i/o: {0}")]
    Io(#[from] io::Error),
    #[error("metadata background task failed: {0}")]
    Background(String),
    /// A committed command that cannot be applied; it changes nothing and the log moves on.
    #[error("command refused: {0}")]
    Refused(String),
}

impl MetaError {
    /// Whether this error comes from the command or the records it reads (the same on every node, so the
    /// command is refused), rather than from the metadata disk (which stops applying until it is fixed).
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(self, MetaError::Decode(_) | MetaError::Corrupt(_) | MetaError::Refused(_))
    }
}

/// Results of the metadata store.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// Which keyspace of the database a key lives in. The order is the order of [`Keyspaces::all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Ks {
    RaftLog,
    RaftMeta,
    Buckets,
    Objects,
    Uploads,
    Parts,
    Garbage,
    GarbageIdx,
    SegRefs,
    SmMeta,
    Snapshot,
    RepairQueue,
    Versions,
    VersionIdx,
    BucketConf,
    AccessKeys,
    Grants,
    KeyGrants,
}

impl Ks {
    const ALL: [Ks; 18] = [
        Ks::RaftLog,
        Ks::RaftMeta,
        Ks::Buckets,
        Ks::Objects,
        Ks::Uploads,
        Ks::Parts,
        Ks::Garbage,
        Ks::GarbageIdx,
        Ks::SegRefs,
        Ks::SmMeta,
        Ks::Snapshot,
        Ks::RepairQueue,
        Ks::Versions,
        Ks::VersionIdx,
        Ks::BucketConf,
        Ks::AccessKeys,
        Ks::Grants,
        Ks::KeyGrants,
    ];

    /// The keyspaces that make up the state machine: what a snapshot carries.
    pub(crate) const STATE_MACHINE: [Ks; 14] = [
        Ks::Buckets,
        Ks::Objects,
        Ks::Uploads,
        Ks::Parts,
        Ks::Garbage,
        Ks::GarbageIdx,
        Ks::SegRefs,
        Ks::SmMeta,
        Ks::Versions,
        Ks::VersionIdx,
        Ks::BucketConf,
        Ks::AccessKeys,
        Ks::Grants,
        Ks::KeyGrants,
    ];

    /// The keyspace's name on disk. Never rename one: it is the on-disk format.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ks::RaftLog => "raft_log",
            Ks::RaftMeta => "raft_meta",
            Ks::Buckets => "buckets",
            Ks::Objects => "objects",
            Ks::Uploads => "uploads",
            Ks::Parts => "parts",
            Ks::Garbage => "garbage",
            Ks::GarbageIdx => "garbage_idx",
            Ks::SegRefs => "segrefs",
            Ks::SmMeta => "sm_meta",
            Ks::Snapshot => "snapshot",
            Ks::RepairQueue => "repair_queue",
            Ks::Versions => "versions",
            Ks::VersionIdx => "version_idx",
            Ks::BucketConf => "bucket_conf",
            Ks::AccessKeys => "access_keys",
            Ks::Grants => "grants",
            Ks::KeyGrants => "key_grants",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Ks> {
        Ks::ALL.into_iter().find(|ks| ks.name() == name)
    }
}

/// The open database and a handle to each keyspace, shared by the log store, the state machine and
/// the readers.
pub(crate) struct Store {
    pub(crate) db: Database,
    keyspaces: Vec<Keyspace>,
    flusher: log::Flusher,
    /// Where snapshot files live.
    pub(crate) snapshots: snapshot::SnapshotDir,
    /// Held by a snapshot build and a snapshot install for their whole run: they never overlap.
    pub(crate) snapshot_lock: Mutex<()>,
    /// Set (for good) once an entry naming a configuration of more than one voter has been written to the log
    /// since the store was opened: see [`MetaReader::one_voter_since_open`].
    pub(crate) shared: AtomicBool,
    /// How far the log has grown since the current snapshot: when the next one is due.
    pub(crate) growth: LogGrowth,
    /// Dropped last, after the database: its receivers learn that the store is closed.
    closed: tokio::sync::watch::Sender<()>,
}

/// Log bytes written since the current snapshot below which no snapshot is due, however small the state: about
/// ten thousand entries of small writes.
pub const SNAPSHOT_LOG_FLOOR: u64 = 8 << 20;

/// How much log this node has written since its current snapshot, against that snapshot's size.
///
/// A snapshot copies the whole state machine, so taking one every so many entries costs more and more as the
/// state grows (a million objects make a snapshot of most of a gigabyte). One is due instead once the log
/// written since the last is as large as that snapshot: snapshots then cost at most as many bytes as the log
/// they let go of, and the log kept is at most about the size of the state.
#[derive(Default)]
pub(crate) struct LogGrowth {
    /// Encoded bytes of the log entries written since the store was opened.
    written: AtomicU64,
    /// `written` when the current snapshot was taken (0 for one taken before the store was opened: the log
    /// written before is not counted, which at most delays the next snapshot).
    at_snapshot: AtomicU64,
    /// Bytes of the current snapshot file; 0 when there is none.
    snapshot_len: AtomicU64,
}

impl LogGrowth {
    pub(crate) fn wrote(&self, bytes: usize) {
        self.written.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The mark to pass to [`LogGrowth::snapshot_taken`] for a snapshot whose state is read from now on.
    pub(crate) fn mark(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// A snapshot of `len` bytes is now the current one; `mark` was taken before its state was read.
    pub(crate) fn snapshot_taken(&self, mark: u64, len: u64) {
        self.snapshot_len.store(len, Ordering::Relaxed);
        self.at_snapshot.store(mark, Ordering::Relaxed);
    }

    /// The mark of the current snapshot if the next one is due: the log written since is at least as large
    /// as the snapshot and at least [`SNAPSHOT_LOG_FLOOR`].
    pub(crate) fn due(&self) -> Option<u64> {
        let at = self.at_snapshot.load(Ordering::Relaxed);
        let since = self.written.load(Ordering::Relaxed).saturating_sub(at);
        (since >= SNAPSHOT_LOG_FLOOR.max(self.snapshot_len.load(Ordering::Relaxed))).then_some(at)
    }
}

impl Store {
    pub(crate) fn ks(&self, ks: Ks) -> &Keyspace {
        // `keyspaces` is built from `Ks::ALL` in order, so every variant has its slot.
        &self.keyspaces[ks as usize]
    }
}

/// Opens (or creates) the metadata store in `dir`: one fjall Database (`dir/db`) holding the Raft log,
/// vote and state machine, and the snapshot files (`dir/snapshots`).
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore, MetaReader)> {
    let db = Database::builder(dir.join("db")).open()?;
    let snapshots = snapshot::SnapshotDir::open(&dir.join("snapshots"))?;
    let keyspaces = Ks::ALL
        .iter()
        .map(|ks| db.keyspace(ks.name(), KeyspaceCreateOptions::default))
        .collect::<Result<Vec<_>, _>>()?;
    let store = Arc::new(Store {
        db,
        keyspaces,
        flusher: log::Flusher::spawn()?,
        snapshots,
        snapshot_lock: Mutex::new(()),
        shared: AtomicBool::new(false),
        growth: LogGrowth::default(),
        closed: tokio::sync::watch::Sender::new(()),
    });
    let state_machine = StateMachineStore::new(store.clone())?;
    Ok((LogStore::new(store.clone()), state_machine, MetaReader::new(store)))
}

/// Runs blocking work (an fsync) off the async runtime, or inline in inline mode ([`crate::exec`]), and waits
/// for it.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    crate::exec::blocking(f).await.map_err(|e| MetaError::Background(e.to_string()))?
}

/// The network of a one-node cluster: there are no peers, so every RPC fails as unreachable.
/// A single voter never sends one; a misconfigured membership gets a clear error instead of a hang.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOnlyNetwork;

/// The (never connected) client [`LocalOnlyNetwork`] hands out.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOnlyClient;

fn no_peers() -> Unreachable {
    Unreachable::new(&io::Error::new(
        io::ErrorKind::NotConnected,
        "this node runs without a transport: a one-node cluster has no peers",
    ))
}

impl RaftNetworkFactory<TypeConfig> for LocalOnlyNetwork {
    type Network = LocalOnlyClient;

    async fn new_client(&mut self, _target: u64, _node: &NodeAddr) -> LocalOnlyClient {
        LocalOnlyClient
    }
}

impl RaftNetwork<TypeConfig> for LocalOnlyClient {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64>>> {
        Err(RPCError::Unreachable(no_peers()))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64, InstallSnapshotError>>> {
        Err(RPCError::Unreachable(no_peers()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64>>> {
        Err(RPCError::Unreachable(no_peers()))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorage;
    use openraft::storage::RaftLogStorageExt;
    use openraft::storage::RaftStateMachine;
    use openraft::CommittedLeaderId;
    use openraft::Config;
    use openraft::Entry;
    use openraft::EntryPayload;
    use openraft::LogId;
    use openraft::RaftLogReader;
    use openraft::RaftSnapshotBuilder;
    use openraft::SnapshotPolicy;
    use openraft::Vote;

    use hoard_protocol::SegmentId;

    use super::test_support::*;
    use super::*;

    fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_writes_and_the_vote_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), config()).await;
        assert!(node.log.is_initialized().unwrap());
        assert_eq!(node.write(bucket("photos")).await, MetaResponse::Ok);
        assert_eq!(node.write(bucket("photos")).await, MetaResponse::BucketAlreadyExists);
        let first = put("photos", "cat.jpg", 7, 100);
        assert_eq!(node.write(first).await, MetaResponse::Replaced { previous: None });
        let credential = hoard_protocol::Credential { access_key: "AK".into(), secret_key: "SK".into() };
        let stored = node.write(MetaCommand::SetRootCredential(credential.clone())).await;
        assert_eq!(stored, MetaResponse::Credential(credential.clone()));
        let applied = node.reader.last_applied().unwrap().expect("something applied");
        assert!(!node.was_initialized);
        node.stop().await;

        let node = TestNode::start(dir.path(), config()).await;
        assert!(node.was_initialized, "the reopened log shows the group was initialized");
        node.raft.wait(Some(TIMEOUT)).applied_index_at_least(Some(applied.index), "re-applied").await.unwrap();
        assert_eq!(node.reader.bucket("photos").unwrap().map(|b| b.name), Some("photos".to_string()));
        let object = node.reader.object("photos", "cat.jpg").unwrap().expect("object survives restart");
        assert_eq!(object.segments[0].id, SegmentId(7));
        let first_form = hoard_protocol::StoredCredential::Plain(credential.clone());
        assert_eq!(node.reader.root_credential().unwrap(), Some(first_form.clone()), "the first form still reads");
        let other = hoard_protocol::Credential { access_key: "late".into(), secret_key: "late".into() };
        assert_eq!(
            node.write(MetaCommand::SetRootCredential(other.clone())).await,
            MetaResponse::Credential(credential),
            "the stored credential wins over a later proposal"
        );
        let late = hoard_protocol::StoredCredential::Plain(other);
        let put = |replace| MetaCommand::PutRootCredential { credential: late.clone(), replace };
        assert_eq!(node.write(put(false)).await, MetaResponse::RootCredential(first_form), "kept: no replace");
        assert_eq!(node.write(put(true)).await, MetaResponse::RootCredential(late.clone()), "replaced");
        assert_eq!(node.reader.root_credential().unwrap(), Some(late));
        node.stop().await;
    }

    /// Has `node` snapshot what it has applied, and returns the last entry applied.
    async fn snapshot_now(node: &TestNode) -> LogId<u64> {
        let applied = node.reader.last_applied().unwrap().expect("writes applied");
        node.raft.trigger().snapshot().await.unwrap();
        node.raft
            .wait(Some(TIMEOUT))
            .metrics(|m| m.snapshot.is_some_and(|s| s.index >= applied.index), "snapshot built")
            .await
            .unwrap();
        applied
    }

    #[test]
    fn a_snapshot_is_due_once_the_log_since_the_last_is_as_large_as_it() {
        let growth = LogGrowth::default();
        growth.wrote(SNAPSHOT_LOG_FLOOR as usize - 1);
        assert_eq!(growth.due(), None, "below the floor");
        growth.wrote(1);
        assert_eq!(growth.due(), Some(0));
        let mark = growth.mark();
        assert_eq!(mark, SNAPSHOT_LOG_FLOOR);
        growth.snapshot_taken(mark, 3 * SNAPSHOT_LOG_FLOOR);
        assert_eq!(growth.due(), None, "just taken");
        growth.wrote(3 * SNAPSHOT_LOG_FLOOR as usize - 1);
        assert_eq!(growth.due(), None, "the log since is a byte smaller than the snapshot");
        growth.wrote(1);
        assert_eq!(growth.due(), Some(mark), "due, named by the snapshot it follows");
        // A small state: the floor decides.
        growth.snapshot_taken(growth.mark(), 10);
        growth.wrote(SNAPSHOT_LOG_FLOOR as usize / 2);
        assert_eq!(growth.due(), None);
    }

    /// The log store counts what it writes, a snapshot build records its size and where the log stood, and a
    /// reopened store knows its snapshot's size again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_written_and_the_snapshot_size_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), Config { snapshot_policy: SnapshotPolicy::Never, ..config() }).await;
        let growth = || &node.reader.store().growth;
        assert_eq!(node.write(bucket("b")).await, MetaResponse::Ok);
        let before = growth().mark();
        assert!(before > 0, "the entries written so far are counted");
        let command = put("b", "k", 1, 10);
        let at_least = hoard_protocol::format::encoded_len(&command);
        assert_eq!(node.write(command).await, MetaResponse::Replaced { previous: None });
        assert!(
            growth().mark() >= before + at_least,
            "{} after {before}: the command is in the entry",
            growth().mark()
        );
        assert_eq!(growth().snapshot_len.load(Ordering::Relaxed), 0, "no snapshot yet");

        let mark = growth().mark();
        snapshot_now(&node).await;
        let files: Vec<_> = std::fs::read_dir(dir.path().join("snapshots")).unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let len = files[0].metadata().unwrap().len();
        assert!(len > 0);
        assert_eq!(growth().snapshot_len.load(Ordering::Relaxed), len);
        assert_eq!(growth().at_snapshot.load(Ordering::Relaxed), mark, "the log stood there when the build began");
        node.stop().await;

        let (_log, _sm, reader) = open(dir.path()).unwrap();
        let growth = &reader.store().growth;
        assert_eq!(growth.snapshot_len.load(Ordering::Relaxed), len, "the snapshot's size, known again");
        assert_eq!((growth.mark(), growth.due()), (0, None), "nothing written since the store was opened");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn state_survives_restart_after_snapshot_and_log_purge() {
        let dir = tempfile::tempdir().unwrap();
        // Snapshots and purges are triggered explicitly: a policy-driven snapshot races with apply (a
        // threshold crossed while a build is running is not re-checked until the next write).
        let snapshotting =
            || Config { snapshot_policy: SnapshotPolicy::Never, max_in_snapshot_log_to_keep: 0, ..config() };
        let node = TestNode::start(dir.path(), snapshotting()).await;
        assert_eq!(node.write(bucket("b")).await, MetaResponse::Ok);
        for i in 0..99u128 {
            let response = node.write(put("b", &format!("key-{i:03}"), 1000 + i, 10)).await;
            assert_eq!(response, MetaResponse::Replaced { previous: None });
        }
        let applied = snapshot_now(&node).await;
        node.raft.trigger().purge_log(applied.index).await.unwrap();
        let metrics = node
            .raft
            .wait(Some(TIMEOUT))
            .metrics(|m| m.purged.is_some_and(|p| p.index >= applied.index), "log purged")
            .await
            .unwrap();
        let purged = metrics.purged.unwrap();
        node.stop().await;

        {
            let (mut log, mut sm, _reader) = open(dir.path()).unwrap();
            let state = log.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id, Some(purged));
            let entries = log.try_get_log_entries(0..=purged.index).await.unwrap();
            assert!(entries.is_empty(), "purged entries are gone: {entries:?}");
            let snapshot = sm.get_current_snapshot().await.unwrap().expect("snapshot stored across restart");
            assert!(snapshot.meta.last_log_id >= Some(purged));
        }

        let node = TestNode::start(dir.path(), snapshotting()).await;
        let listed = node.reader.list_objects("b", &ListQuery { max_keys: 1000, ..Default::default() }).unwrap();
        assert_eq!(listed.objects.len(), 99);
        assert_eq!(listed.objects[98].key, "key-098");
        assert_eq!(node.write(put("b", "after-restart", 5000, 10)).await, MetaResponse::Replaced { previous: None });
        assert_eq!(node.reader.referenced_segments().unwrap().len(), 100);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_installed_snapshot_replaces_the_whole_state_machine() {
        let source = tempfile::tempdir().unwrap();
        let node = TestNode::start(source.path(), config()).await;
        node.write(bucket("b")).await;
        node.write(put("b", "x", 1, 10)).await;
        node.write(put("b", "x", 2, 20)).await; // segment 1 becomes garbage
        node.write(create_upload("b", "big", "u1")).await;
        node.write(commit_part("b", "big", "u1", 1, 3)).await;
        node.stop().await;

        let target = tempfile::tempdir().unwrap();
        let node = TestNode::start(target.path(), config()).await;
        node.write(bucket("stale")).await;
        node.write(put("stale", "old", 99, 10)).await;
        node.stop().await;

        let (_log, mut source_sm, source_reader) = open(source.path()).unwrap();
        let snapshot = source_sm.build_snapshot().await.unwrap();
        let (_log, mut target_sm, target_reader) = open(target.path()).unwrap();
        // What a follower does: stream the leader's snapshot into the file it is received in, then install.
        let mut received = target_sm.begin_receiving_snapshot().await.unwrap();
        let mut sent = snapshot.snapshot;
        let copied = tokio::io::copy(&mut sent, &mut received).await.unwrap();
        assert!(copied > 0);
        target_sm.install_snapshot(&snapshot.meta, received).await.unwrap();

        assert_eq!(target_reader.buckets().unwrap(), source_reader.buckets().unwrap());
        assert_eq!(target_reader.bucket("stale").unwrap(), None, "state not in the snapshot is gone");
        assert_eq!(target_reader.object("b", "x").unwrap(), source_reader.object("b", "x").unwrap());
        assert_eq!(target_reader.garbage(i64::MAX).unwrap(), source_reader.garbage(i64::MAX).unwrap());
        assert_eq!(target_reader.garbage(i64::MAX).unwrap()[0].id, SegmentId(1));
        assert_eq!(target_reader.referenced_segments().unwrap(), [SegmentId(2), SegmentId(3)].into());
        assert_eq!(target_reader.all_parts("u1").unwrap(), source_reader.all_parts("u1").unwrap());
        assert_eq!(target_reader.last_applied().unwrap(), snapshot.meta.last_log_id);
        let (applied, membership) = target_sm.applied_state().await.unwrap();
        assert_eq!(applied, snapshot.meta.last_log_id);
        assert_eq!(membership, snapshot.meta.last_membership);
        let current = target_sm.get_current_snapshot().await.unwrap().expect("installed snapshot is current");
        assert_eq!(current.meta, snapshot.meta);
        let growth = &target_reader.store().growth;
        assert_eq!(growth.snapshot_len.load(Ordering::Relaxed), copied, "the next snapshot is due against this one");
    }

    /// A source store with some state and a target store with other, stale state.
    async fn source_and_stale_target() -> (tempfile::TempDir, tempfile::TempDir) {
        let source = tempfile::tempdir().unwrap();
        let node = TestNode::start(source.path(), config()).await;
        node.write(bucket("b")).await;
        for i in 0..40u128 {
            node.write(put("b", &format!("k{i:02}"), 100 + i, 10)).await;
        }
        node.stop().await;
        let target = tempfile::tempdir().unwrap();
        let node = TestNode::start(target.path(), config()).await;
        node.write(bucket("stale")).await;
        node.stop().await;
        (source, target)
    }

    fn file_names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_received_snapshot_is_refused_and_changes_nothing() {
        let (source, target) = source_and_stale_target().await;
        let (_log, mut source_sm, _reader) = open(source.path()).unwrap();
        let snapshot = source_sm.build_snapshot().await.unwrap();
        let mut bytes = std::fs::read(snapshot.snapshot.path()).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;

        let (_log, mut target_sm, target_reader) = open(target.path()).unwrap();
        let mut received = target_sm.begin_receiving_snapshot().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut received, &bytes).await.unwrap();
        let result = target_sm.install_snapshot(&snapshot.meta, received).await;
        assert!(result.is_err(), "a damaged snapshot was installed");
        assert!(target_reader.bucket("stale").unwrap().is_some(), "the state is untouched");
        assert!(target_reader.bucket("b").unwrap().is_none());
        assert!(target_sm.get_current_snapshot().await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_install_cut_short_by_a_crash_is_finished_when_the_store_opens() {
        let (source, target) = source_and_stale_target().await;
        let (_log, mut source_sm, source_reader) = open(source.path()).unwrap();
        let snapshot = source_sm.build_snapshot().await.unwrap();
        {
            // The crash: the received file is in place and the marker durable, the keyspaces untouched.
            let (_log, target_sm, _reader) = open(target.path()).unwrap();
            let name = snapshot::SnapshotDir::name(99);
            target_sm.stage_interrupted_install(&snapshot.meta, snapshot.snapshot.path(), &name).unwrap();
        }
        let (_log, mut target_sm, target_reader) = open(target.path()).unwrap();
        assert_eq!(target_reader.bucket("stale").unwrap(), None, "the interrupted install completed");
        let listed = target_reader.list_objects("b", &ListQuery { max_keys: 1000, ..Default::default() }).unwrap();
        let expected = source_reader.list_objects("b", &ListQuery { max_keys: 1000, ..Default::default() }).unwrap();
        assert_eq!(listed.objects.len(), 40);
        assert_eq!(listed.objects, expected.objects);
        assert_eq!(target_reader.last_applied().unwrap(), snapshot.meta.last_log_id);
        let current = target_sm.get_current_snapshot().await.unwrap().expect("the installed snapshot is current");
        assert_eq!(current.meta, snapshot.meta);
        assert_eq!(file_names(&target.path().join("snapshots")), vec![snapshot::SnapshotDir::name(99)]);
    }

    #[tokio::test]
    async fn only_the_current_snapshot_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut sm, _reader) = open(dir.path()).unwrap();
        let _first = sm.build_snapshot().await.unwrap();
        let second = sm.build_snapshot().await.unwrap();
        let names = file_names(&dir.path().join("snapshots"));
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(Some(names[0].as_str()), second.snapshot.path().file_name().and_then(|n| n.to_str()));
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, second.meta);
    }

    #[tokio::test]
    async fn snapshot_ids_stay_unique_across_rebuilds_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let (_log, mut sm, _reader) = open(dir.path()).unwrap();
            let a = sm.build_snapshot().await.unwrap().meta.snapshot_id;
            let b = sm.build_snapshot().await.unwrap().meta.snapshot_id;
            assert_ne!(a, b);
            b
        };
        let (_log, mut sm, _reader) = open(dir.path()).unwrap();
        let again = sm.build_snapshot().await.unwrap().meta.snapshot_id;
        assert_ne!(again, first);
    }

    #[tokio::test]
    async fn log_store_truncates_purges_and_keeps_the_vote() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _sm, _reader) = open(dir.path()).unwrap();
            assert!(!log.is_initialized().unwrap());
            log.blocking_append((1..=10).map(|i| blank(1, i))).await.unwrap();
            log.truncate(LogId::new(CommittedLeaderId::new(1, 1), 8)).await.unwrap();
            let state = log.get_log_state().await.unwrap();
            assert_eq!(state.last_log_id.map(|l| l.index), Some(7));
            log.purge(LogId::new(CommittedLeaderId::new(1, 1), 3)).await.unwrap();
            log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
            log.save_committed(Some(LogId::new(CommittedLeaderId::new(1, 1), 6))).await.unwrap();
        }
        let (mut log, _sm, _reader) = open(dir.path()).unwrap();
        assert!(log.is_initialized().unwrap());
        let indexes: Vec<u64> = log.try_get_log_entries(0..100).await.unwrap().iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![4, 5, 6, 7]);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(7));
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new_committed(2, 1)));
        assert_eq!(log.read_committed().await.unwrap().map(|l| l.index), Some(6));

        // Purging past the last entry (a snapshot installed ahead of the log) leaves an empty log whose
        // last id is the purged one.
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), 12)).await.unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(12));
        assert!(log.try_get_log_entries(0..100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn local_only_network_reports_every_peer_unreachable() {
        let mut network = LocalOnlyNetwork;
        let mut client = network.new_client(2, &NodeAddr { addr: "elsewhere".into() }).await;
        let vote = VoteRequest::new(Vote::new(1, 1), None);
        let result = client.vote(vote, RPCOption::new(std::time::Duration::from_secs(1))).await;
        assert!(matches!(result, Err(RPCError::Unreachable(_))), "{result:?}");
    }
}
