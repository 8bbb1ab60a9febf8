//! The metadata state machine: buckets, objects, multipart uploads, segment reference counts and the
//! garbage queue, applied from the Raft log into fjall keyspaces.
//!
//! Invariants:
//! - Applying a committed entry is total: it never panics and never stops the node. A command that fails
//!   [`MetaCommand::check`], refers to stored records that do not decode, would write a key the engine
//!   cannot hold, or panics while its writes are still buffered is *refused*: none of its writes commit,
//!   `last_applied` moves past it, and its proposer gets [`MetaResponse::Refused`]. Only a failure of the
//!   metadata disk itself (an I/O error) stops applying, since retrying it at the next start is right.
//!   The refusal depends only on the command and the state, so every node refuses the same entries.
//! - One log entry is one atomic batch: its effects and `last_applied` commit together or not at all.
//!   Apply does not fsync; the log is durable and openraft re-applies from `last_applied` after a crash,
//!   so applying is deterministic (only the command and the state are read; times come in the command).
//! - `segrefs[segment]` counts the committed object records plus in-progress parts that name the segment
//!   (a record naming a segment twice counts twice). A segment enters `garbage` exactly when its count
//!   drops to 0, and only then; an entry adds all its references before dropping any, so a segment moved
//!   from a part to an object, or shared by a copy, never passes through 0 on the way.
//! - `garbage` holds `time_key(queued at) ++ segment id → Segment`; `garbage_idx` maps segment id → that
//!   key, so `ForgetGarbage` and a re-reference find the entry without a scan. A segment referenced again
//!   while queued (a copy that raced the delete of its source) leaves the queue.
//! - A snapshot carries every state-machine keyspace, byte for byte, in one versioned file ([`snapshot`]),
//!   written and read as a stream: neither building nor installing holds the state in memory.
//! - Building and installing hold `snapshot_lock` throughout, so a build never sees a half-installed state.
//! - Installing is resumable: the `installing` marker is durable before the first state-machine key
//!   changes and is removed in the batch that completes the install; a node that opens with the marker
//!   set installs that snapshot file again (clearing the keyspaces first) before anything reads the state.
//! - The `current` pointer is durable before the snapshot files it no longer names are deleted.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hoard_protocol::decode;
use hoard_protocol::encode;
use hoard_protocol::Credential;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::StoredCredential;
use openraft::storage::RaftStateMachine;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::Snapshot;
use openraft::SnapshotMeta;
use openraft::StorageError;
use openraft::StorageIOError;
use openraft::StoredMembership;
use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::blocking;
use super::log::sto;
use super::snapshot::SnapshotDir;
use super::snapshot::SnapshotFile;
use super::Ks;
use super::MetaError;
use super::Result;
use super::Store;
use super::TypeConfig;
use apply::apply_command;
use txn::Txn;

mod access;
mod apply;
mod install;
mod moves;
#[cfg(test)]
mod total;
mod txn;
mod versions;

pub(crate) const LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const LAST_MEMBERSHIP: &[u8] = b"last_membership";
/// The root credential as first stored (a `Credential`, in clear); replaced by [`ROOT_CREDENTIAL_V2`].
pub(crate) const ROOT_CREDENTIAL: &[u8] = b"root_credential";
/// The root credential as a `StoredCredential` (sealed where a master key is held).
pub(crate) const ROOT_CREDENTIAL_V2: &[u8] = b"root_credential_v2";
pub(crate) const ENCRYPTION: &[u8] = b"encryption";
/// The cluster's membership record: join tokens and the nodes admitted ([`hoard_protocol::ClusterRecord`]).
pub(crate) const CLUSTER: &[u8] = b"cluster";
/// The nodes being drained ([`hoard_protocol::Draining`]).
pub(crate) const DRAINING: &[u8] = b"draining";
/// Keyspace `snapshot`: the snapshot in force.
const CURRENT_SNAPSHOT: &[u8] = b"current";
/// Keyspace `snapshot`: a snapshot whose install has begun and not finished.
const INSTALLING: &[u8] = b"installing";

/// How many bytes of pairs an install writes per batch: bounds its memory whatever the snapshot's size.
#[cfg(not(test))]
const INSTALL_BATCH_BYTES: usize = 8 << 20;
/// Small in tests, so that every test install runs through many batches.
#[cfg(test)]
const INSTALL_BATCH_BYTES: usize = 512;

/// A snapshot on disk: its meta and the name of its file in the snapshot directory.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta<u64, NodeAddr>,
    pub(crate) file: String,
}

impl hoard_protocol::Persisted for StoredSnapshot {}

/// The root credential in force, from what the two keys that may hold it hold: the current form
/// ([`ROOT_CREDENTIAL_V2`]), else the first one (in clear), read only when there is no current one.
pub(crate) fn root_credential_from<V: AsRef<[u8]>>(
    current: Option<V>,
    first: impl FnOnce() -> Result<Option<V>>,
) -> Result<Option<StoredCredential>> {
    if let Some(current) = current {
        return Ok(Some(decode(current.as_ref())?));
    }
    Ok(first()?.map(|v| decode::<Credential>(v.as_ref())).transpose()?.map(StoredCredential::Plain))
}

/// Applies one command into `tx`, or says why it is refused (see the invariants above). `Err` is a failure of
/// the metadata disk; `Ok(Err(reason))` a refusal, after which `tx` must not be committed.
fn apply_total(tx: &mut Txn<'_>, command: MetaCommand) -> Result<std::result::Result<MetaResponse, String>> {
    if let Err(e) = command.check() {
        return Ok(Err(e.to_string()));
    }
    if let MetaCommand::Batch(commands) = command {
        return apply_batch(tx, commands).map(Ok);
    }
    // Until it commits, a `Txn` only buffers: a panic while it is built leaves the database as it was, and
    // the buffered writes are dropped with it.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| apply_command(tx, command))) {
        Ok(Ok(response)) => Ok(Ok(response)),
        Ok(Err(e)) if e.is_refusal() => Ok(Err(e.to_string())),
        Ok(Err(e)) => Err(e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Ok(Err(format!("applying it panicked: {what}")))
        }
    }
}

/// Applies a batch's commands in order into `tx`, each as if it were an entry of its own: the writes of one
/// that is refused (or would not fit the storage engine) are undone and it is answered `Refused`; the others
/// stand. `Err` is a failure of the metadata disk, which fails the whole entry.
fn apply_batch(tx: &mut Txn<'_>, commands: Vec<MetaCommand>) -> Result<MetaResponse> {
    let mut answers = Vec::with_capacity(commands.len());
    for command in commands {
        tx.savepoint();
        let answer = match apply_total(tx, command)? {
            Ok(response) => match tx.oversized_since_savepoint() {
                None => Ok(response),
                Some(reason) => Err(reason),
            },
            Err(reason) => Err(reason),
        };
        match answer {
            Ok(response) => {
                tx.release();
                answers.push(response);
            }
            Err(reason) => {
                tx.rollback();
                tracing::warn!(%reason, "a command of a committed metadata batch was refused; it changed nothing");
                answers.push(MetaResponse::Refused { reason });
            }
        }
    }
    Ok(MetaResponse::Batch(answers))
}

/// What the state machine says it has applied: the last log id and the membership in force.
type AppliedState = (Option<LogId<u64>>, StoredMembership<u64, NodeAddr>);

/// The Raft state machine (and its snapshot builder). Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct StateMachineStore {
    store: Arc<Store>,
    /// The last number used in a snapshot id, so ids stay unique across rebuilds at the same log id.
    snapshot_counter: Arc<AtomicU64>,
}

impl StateMachineStore {
    /// Opens the state machine, first finishing an install a crash interrupted and removing snapshot
    /// files nothing names.
    pub(crate) fn new(store: Arc<Store>) -> Result<StateMachineStore> {
        let sm = StateMachineStore { store, snapshot_counter: Arc::new(AtomicU64::new(0)) };
        let counter = sm
            .stored_snapshot()?
            .and_then(|s| s.meta.snapshot_id.rsplit('-').next().and_then(|c| c.parse::<u64>().ok()))
            .unwrap_or(0);
        sm.snapshot_counter.store(counter, Ordering::SeqCst);
        if let Some(pending) = sm.pointer(INSTALLING)? {
            tracing::warn!(snapshot = %pending.meta, "finishing a metadata snapshot install that was interrupted");
            sm.apply_snapshot_file(&pending)?;
        }
        sm.remove_unnamed_files()?;
        if let Some(current) = sm.stored_snapshot()? {
            sm.store.growth.snapshot_taken(0, sm.file_len(&current.file));
        }
        Ok(sm)
    }

    fn applied(&self) -> Result<AppliedState> {
        let meta = self.store.ks(Ks::SmMeta);
        let applied = meta.get(LAST_APPLIED)?.map(|v| decode(&v)).transpose()?;
        let membership = meta.get(LAST_MEMBERSHIP)?.map(|v| decode(&v)).transpose()?.unwrap_or_default();
        Ok((applied, membership))
    }

    fn apply_entry(&self, entry: Entry<TypeConfig>) -> Result<MetaResponse> {
        let log_id = entry.log_id;
        let mut tx = Txn::new(&self.store);
        let applied = match entry.payload {
            EntryPayload::Blank => Ok(MetaResponse::Ok),
            EntryPayload::Normal(command) => apply_total(&mut tx, command)?,
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(log_id), membership);
                tx.put(Ks::SmMeta, LAST_MEMBERSHIP.to_vec(), encode(&stored));
                Ok(MetaResponse::Ok)
            }
        };
        let refused = match applied {
            Ok(response) => {
                tx.put(Ks::SmMeta, LAST_APPLIED.to_vec(), encode(&log_id));
                match tx.commit() {
                    Ok(()) => return Ok(response),
                    Err(MetaError::Refused(reason)) => reason,
                    Err(e) => return Err(e),
                }
            }
            Err(reason) => reason,
        };
        // None of the command's writes commit; only the log moves on.
        tracing::warn!(log_index = log_id.index, %refused, "a committed metadata command was refused; nothing changed");
        let mut skip = Txn::new(&self.store);
        skip.put(Ks::SmMeta, LAST_APPLIED.to_vec(), encode(&log_id));
        skip.commit()?;
        Ok(MetaResponse::Refused { reason: refused })
    }

    fn pointer(&self, which: &[u8]) -> Result<Option<StoredSnapshot>> {
        Ok(self.store.ks(Ks::Snapshot).get(which)?.map(|v| decode(&v)).transpose()?)
    }

    fn stored_snapshot(&self) -> Result<Option<StoredSnapshot>> {
        self.pointer(CURRENT_SNAPSHOT)
    }

    fn snapshots(&self) -> &SnapshotDir {
        &self.store.snapshots
    }

    /// The size of snapshot file `file`, or 0 if it cannot be read (then only [`super::SNAPSHOT_LOG_FLOOR`]
    /// decides when the next snapshot is due).
    fn file_len(&self, file: &str) -> u64 {
        std::fs::metadata(self.snapshots().path(file)).map_or(0, |m| m.len())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.store.snapshot_lock.lock().map_err(|_| MetaError::Background("snapshot lock poisoned".into()))
    }

    fn next_counter(&self) -> u64 {
        self.snapshot_counter.fetch_add(1, Ordering::SeqCst) + 1
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let sm = self.clone();
        let built = blocking(move || {
            let built = sm.build()?;
            let file = sm.snapshots().open_file(&built.file)?;
            Ok(Snapshot { meta: built.meta, snapshot: Box::new(file) })
        })
        .await;
        let snapshot = sto(built, |e| StorageIOError::write_snapshot(None, e))?;
        tracing::info!(snapshot = %snapshot.meta, "built a metadata snapshot");
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> std::result::Result<AppliedState, StorageError<u64>> {
        sto(self.applied(), StorageIOError::read_state_machine)
    }

    async fn apply<I>(&mut self, entries: I) -> std::result::Result<Vec<MetaResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            responses.push(sto(self.apply_entry(entry), |e| StorageIOError::apply(log_id, e))?);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachineStore {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> std::result::Result<Box<SnapshotFile>, StorageError<u64>> {
        let file = self.snapshots().incoming(self.next_counter());
        Ok(Box::new(sto(file, |e| StorageIOError::write_snapshot(None, e))?))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, NodeAddr>,
        snapshot: Box<SnapshotFile>,
    ) -> std::result::Result<(), StorageError<u64>> {
        let signature = meta.signature();
        let mut snapshot = snapshot;
        // Everything received must have reached the file before it is fsynced and renamed.
        let flushed = snapshot.flush().await.map_err(MetaError::from);
        sto(flushed, |e| StorageIOError::write_snapshot(Some(signature.clone()), e))?;
        let sm = self.clone();
        let owned_meta = meta.clone();
        let installed = blocking(move || {
            let path = snapshot.path().to_path_buf();
            drop(snapshot);
            sm.install(&owned_meta, &path)
        })
        .await;
        sto(installed, |e| StorageIOError::write_snapshot(Some(signature), e))?;
        tracing::info!(snapshot = %meta, "installed a metadata snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> std::result::Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        sto(self.open_current(), |e| StorageIOError::read_snapshot(None, e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::collections::BTreeSet;

    use hoard_protocol::SegmentId;
    use openraft::storage::RaftLogStorage;
    use openraft::storage::RaftLogStorageExt;
    use openraft::CommittedLeaderId;
    use openraft::Membership;
    use openraft::Vote;

    use super::super::open;
    use super::super::test_support::*;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logged_but_unapplied_commands_are_applied_when_the_node_starts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _sm, reader) = open(dir.path()).unwrap();
            let leader = CommittedLeaderId::new(1, 1);
            let membership =
                Membership::new(vec![BTreeSet::from([1])], BTreeMap::from([(1, NodeAddr { addr: "local".into() })]));
            let entries = vec![
                Entry {
                    log_id: LogId::new(CommittedLeaderId::new(0, 0), 0),
                    payload: EntryPayload::Membership(membership),
                },
                Entry { log_id: LogId::new(leader, 1), payload: EntryPayload::Normal(bucket("b")) },
                Entry { log_id: LogId::new(leader, 2), payload: EntryPayload::Normal(put("b", "k", 1, 1)) },
            ];
            log.blocking_append(entries).await.unwrap();
            log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
            assert_eq!(reader.last_applied().unwrap(), None, "nothing applied yet");
        }
        let node = TestNode::start(dir.path(), config()).await;
        assert!(node.was_initialized);
        node.raft.wait(Some(TIMEOUT)).applied_index_at_least(Some(2), "log applied").await.unwrap();
        assert!(node.reader.object("b", "k").unwrap().is_some());
        assert_eq!(node.reader.referenced_segments().unwrap(), [SegmentId(1)].into());
        node.stop().await;
    }
}
