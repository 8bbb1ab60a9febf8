//! The metadata state machine: buckets, objects, multipart uploads, segment reference counts and the
//! garbage queue, applied from the Raft log into fjall keyspaces.
//!
//! Invariants:
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

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fjall::PersistMode;
use fjall::Readable;
use hoard_protocol::decode;
use hoard_protocol::encode;
use hoard_protocol::BucketRecord;
use hoard_protocol::Credential;
use hoard_protocol::Encryption;
use hoard_protocol::EncryptionSettings;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::ObjectRecord;
use hoard_protocol::PartRecord;
use hoard_protocol::Rewrap;
use hoard_protocol::RewrapTarget;
use hoard_protocol::Rotation;
use hoard_protocol::RotationCursor;
use hoard_protocol::Segment;
use hoard_protocol::SegmentId;
use hoard_protocol::UploadRecord;
use hoard_protocol::WriteCondition;
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
use super::keys::bucket_prefix;
use super::keys::garbage_key;
use super::keys::object_key;
use super::keys::part_key;
use super::keys::part_prefix;
use super::keys::segment_key;
use super::keys::upload_key;
use super::log::sto;
use super::snapshot::Item;
use super::snapshot::Reader;
use super::snapshot::SnapshotDir;
use super::snapshot::SnapshotFile;
use super::Ks;
use super::MetaError;
use super::Result;
use super::Store;
use super::TypeConfig;

pub(crate) const LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const LAST_MEMBERSHIP: &[u8] = b"last_membership";
pub(crate) const ROOT_CREDENTIAL: &[u8] = b"root_credential";
pub(crate) const ENCRYPTION: &[u8] = b"encryption";
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
struct StoredSnapshot {
    meta: SnapshotMeta<u64, NodeAddr>,
    file: String,
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
        Ok(sm)
    }

    fn applied(&self) -> Result<AppliedState> {
        let meta = self.store.ks(Ks::SmMeta);
        let applied = meta.get(LAST_APPLIED)?.map(|v| decode(&v)).transpose()?;
        let membership = meta.get(LAST_MEMBERSHIP)?.map(|v| decode(&v)).transpose()?.unwrap_or_default();
        Ok((applied, membership))
    }

    fn apply_entry(&self, entry: Entry<TypeConfig>) -> Result<MetaResponse> {
        let mut tx = Txn::new(&self.store);
        let response = match entry.payload {
            EntryPayload::Blank => MetaResponse::Ok,
            EntryPayload::Normal(command) => apply_command(&mut tx, command)?,
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(entry.log_id), membership);
                tx.put(Ks::SmMeta, LAST_MEMBERSHIP.to_vec(), encode(&stored));
                MetaResponse::Ok
            }
        };
        tx.put(Ks::SmMeta, LAST_APPLIED.to_vec(), encode(&entry.log_id));
        tx.commit()?;
        Ok(response)
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

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.store.snapshot_lock.lock().map_err(|_| MetaError::Background("snapshot lock poisoned".into()))
    }

    fn next_counter(&self) -> u64 {
        self.snapshot_counter.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Deletes snapshot files that neither the current snapshot nor an unfinished install names.
    fn remove_unnamed_files(&self) -> Result<()> {
        let current = self.stored_snapshot()?.map(|s| s.file);
        let installing = self.pointer(INSTALLING)?.map(|s| s.file);
        let keep: Vec<&str> = current.iter().chain(installing.iter()).map(String::as_str).collect();
        self.snapshots().retain_only(&keep)
    }

    /// Writes the state machine as of one database snapshot into a new snapshot file and makes it current.
    /// Blocking: runs on a blocking thread.
    fn build(&self) -> Result<StoredSnapshot> {
        let _guard = self.lock()?;
        // One database snapshot: the file and the applied id it claims are the same instant.
        let view = self.store.db.snapshot();
        let sm_meta = self.store.ks(Ks::SmMeta);
        let last_log_id: Option<LogId<u64>> = view.get(sm_meta, LAST_APPLIED)?.map(|v| decode(&v)).transpose()?;
        let last_membership: StoredMembership<u64, NodeAddr> =
            view.get(sm_meta, LAST_MEMBERSHIP)?.map(|v| decode(&v)).transpose()?.unwrap_or_default();
        let counter = self.next_counter();
        let snapshot_id = match &last_log_id {
            Some(id) => format!("{}-{}-{counter}", id.leader_id.term, id.index),
            None => format!("0-0-{counter}"),
        };
        let file = SnapshotDir::name(counter);
        self.snapshots().write(&file, |w| {
            for ks in Ks::STATE_MACHINE {
                w.keyspace(ks.name())?;
                for guard in view.iter(self.store.ks(ks)) {
                    let (k, v) = guard.into_inner()?;
                    w.pair(&k, &v)?;
                }
            }
            Ok(())
        })?;
        drop(view);
        let built = StoredSnapshot { meta: SnapshotMeta { last_log_id, last_membership, snapshot_id }, file };
        let current = self.stored_snapshot()?;
        if current.as_ref().is_some_and(|c| c.meta.last_log_id > built.meta.last_log_id) {
            // An install moved past this build while it ran: keep the newer snapshot.
            self.snapshots().retain_only(&[current.as_ref().map_or("", |c| c.file.as_str())])?;
            return current.ok_or_else(|| MetaError::Corrupt("current snapshot vanished".into()));
        }
        self.store.ks(Ks::Snapshot).insert(CURRENT_SNAPSHOT, encode(&built))?;
        self.store.db.persist(PersistMode::SyncAll)?;
        self.snapshots().retain_only(&[&built.file])?;
        Ok(built)
    }

    /// Makes the received snapshot file at `received` the state machine. Blocking.
    fn install(&self, meta: &SnapshotMeta<u64, NodeAddr>, received: &std::path::Path) -> Result<()> {
        let _guard = self.lock()?;
        let file = SnapshotDir::name(self.next_counter());
        self.snapshots().adopt(received, &file)?;
        // Check the whole file before the state changes at all.
        super::snapshot::verify(&self.snapshots().path(&file))?;
        let pending = StoredSnapshot { meta: meta.clone(), file };
        self.store.ks(Ks::Snapshot).insert(INSTALLING, encode(&pending))?;
        self.store.db.persist(PersistMode::SyncAll)?;
        self.apply_snapshot_file(&pending)?;
        self.snapshots().retain_only(&[&pending.file])
    }

    /// Replaces every state-machine keyspace with the contents of the snapshot file `pending` names,
    /// in bounded batches, and completes the install (see the invariants above). Idempotent.
    fn apply_snapshot_file(&self, pending: &StoredSnapshot) -> Result<()> {
        let mut batch = Batcher::new(&self.store);
        for ks in Ks::STATE_MACHINE {
            let handle = self.store.ks(ks);
            for guard in handle.iter() {
                let key = guard.key()?;
                batch.remove(ks, key.to_vec())?;
            }
        }
        let mut reader = Reader::open(&self.snapshots().path(&pending.file))?;
        let mut into: Option<Ks> = None;
        while let Some(item) = reader.next_item()? {
            match item {
                Item::Keyspace(name) => {
                    into =
                        Some(Ks::from_name(&name).filter(|ks| Ks::STATE_MACHINE.contains(ks)).ok_or_else(|| {
                            MetaError::Corrupt(format!("snapshot carries unknown keyspace {name:?}"))
                        })?);
                }
                Item::Pair(key, value) => {
                    let ks = into.ok_or_else(|| MetaError::Corrupt("a snapshot pair outside any keyspace".into()))?;
                    // The snapshot's meta, not its pairs, says what it applied and which membership holds.
                    if ks == Ks::SmMeta && (key == LAST_APPLIED || key == LAST_MEMBERSHIP) {
                        continue;
                    }
                    batch.insert(ks, key, value)?;
                }
            }
        }
        let meta = &pending.meta;
        match &meta.last_log_id {
            Some(id) => batch.insert(Ks::SmMeta, LAST_APPLIED.to_vec(), encode(id))?,
            None => batch.remove(Ks::SmMeta, LAST_APPLIED.to_vec())?,
        }
        batch.insert(Ks::SmMeta, LAST_MEMBERSHIP.to_vec(), encode(&meta.last_membership))?;
        batch.insert(Ks::Snapshot, CURRENT_SNAPSHOT.to_vec(), encode(pending))?;
        batch.remove(Ks::Snapshot, INSTALLING.to_vec())?;
        batch.commit()?;
        self.store.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Stages what a crash in the middle of [`Self::install`] leaves: the received file in place as
    /// `file` and the `installing` marker durable, the keyspaces not yet touched.
    #[cfg(test)]
    pub(crate) fn stage_interrupted_install(
        &self,
        meta: &SnapshotMeta<u64, NodeAddr>,
        received: &std::path::Path,
        file: &str,
    ) -> Result<()> {
        self.snapshots().adopt(received, file)?;
        let pending = StoredSnapshot { meta: meta.clone(), file: file.to_string() };
        self.store.ks(Ks::Snapshot).insert(INSTALLING, encode(&pending))?;
        self.store.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Opens the current snapshot's file for openraft.
    fn open_current(&self) -> Result<Option<Snapshot<TypeConfig>>> {
        let Some(current) = self.stored_snapshot()? else { return Ok(None) };
        let file = self.snapshots().open_file(&current.file)?;
        Ok(Some(Snapshot { meta: current.meta, snapshot: Box::new(file) }))
    }
}

/// Writes to the database in batches of about [`INSTALL_BATCH_BYTES`], so a large install stays in
/// bounded memory. Only an install uses it: its atomicity comes from the `installing` marker.
struct Batcher<'a> {
    store: &'a Store,
    batch: fjall::OwnedWriteBatch,
    bytes: usize,
}

impl<'a> Batcher<'a> {
    fn new(store: &'a Store) -> Batcher<'a> {
        Batcher { store, batch: store.db.batch(), bytes: 0 }
    }

    fn insert(&mut self, ks: Ks, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.bytes += key.len() + value.len();
        self.batch.insert(self.store.ks(ks), key, value);
        self.flush_if_full()
    }

    fn remove(&mut self, ks: Ks, key: Vec<u8>) -> Result<()> {
        self.bytes += key.len();
        self.batch.remove(self.store.ks(ks), key);
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.bytes >= INSTALL_BATCH_BYTES {
            let full = std::mem::replace(&mut self.batch, self.store.db.batch());
            full.commit()?;
            self.bytes = 0;
        }
        Ok(())
    }

    fn commit(self) -> Result<()> {
        self.batch.commit()?;
        Ok(())
    }
}

/// The writes of one log entry, readable before they commit: a segment touched twice in one entry must
/// see its own earlier count.
struct Txn<'a> {
    store: &'a Store,
    writes: BTreeMap<(Ks, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    fn new(store: &'a Store) -> Txn<'a> {
        Txn { store, writes: BTreeMap::new() }
    }

    fn get(&self, ks: Ks, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(pending) = self.writes.get(&(ks, key.to_vec())) {
            return Ok(pending.clone());
        }
        Ok(self.store.ks(ks).get(key)?.map(|v| v.to_vec()))
    }

    fn get_decoded<T: for<'de> Deserialize<'de>>(&self, ks: Ks, key: &[u8]) -> Result<Option<T>> {
        Ok(self.get(ks, key)?.map(|v| decode(&v)).transpose()?)
    }

    /// The encryption settings as this transaction sees them (defaults when none were ever written).
    fn encryption_settings(&self) -> Result<EncryptionSettings> {
        Ok(self.get_decoded(Ks::SmMeta, ENCRYPTION)?.unwrap_or_default())
    }

    fn set_encryption_settings(&mut self, settings: &EncryptionSettings) {
        self.put(Ks::SmMeta, ENCRYPTION.to_vec(), encode(settings));
    }

    fn exists(&self, ks: Ks, key: &[u8]) -> Result<bool> {
        Ok(self.get(ks, key)?.is_some())
    }

    fn put(&mut self, ks: Ks, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert((ks, key), Some(value));
    }

    fn delete(&mut self, ks: Ks, key: Vec<u8>) {
        self.writes.insert((ks, key), None);
    }

    fn pending_in<'p>(
        &'p self,
        ks: Ks,
        prefix: &'p [u8],
    ) -> impl Iterator<Item = (&'p Vec<u8>, &'p Option<Vec<u8>>)> + 'p {
        self.writes
            .range((ks, prefix.to_vec())..)
            .take_while(move |((in_ks, key), _)| *in_ks == ks && key.starts_with(prefix))
            .map(|((_, key), value)| (key, value))
    }

    /// Whether any key of `ks` starts with `prefix`, pending writes included.
    fn any_with_prefix(&self, ks: Ks, prefix: &[u8]) -> Result<bool> {
        if self.pending_in(ks, prefix).any(|(_, v)| v.is_some()) {
            return Ok(true);
        }
        for guard in self.store.ks(ks).prefix(prefix) {
            let key = guard.key()?;
            if !matches!(self.writes.get(&(ks, key.to_vec())), Some(None)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every pair of `ks` whose key starts with `prefix`, pending writes included, in key order.
    fn scan_prefix(&self, ks: Ks, prefix: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut out = BTreeMap::new();
        for guard in self.store.ks(ks).prefix(prefix) {
            let (k, v) = guard.into_inner()?;
            out.insert(k.to_vec(), v.to_vec());
        }
        for (k, v) in self.pending_in(ks, prefix) {
            match v {
                Some(v) => out.insert(k.clone(), v.clone()),
                None => out.remove(k),
            };
        }
        Ok(out)
    }

    fn refs(&self, id: SegmentId) -> Result<u32> {
        match self.get(Ks::SegRefs, &segment_key(id))? {
            None => Ok(0),
            Some(v) => decode(&v).map_err(Into::into),
        }
    }

    /// One more record or part names `segment`.
    fn incref(&mut self, segment: &Segment) -> Result<()> {
        let count = self.refs(segment.id)?;
        if count == 0 {
            if let Some(queued) = self.get(Ks::GarbageIdx, &segment_key(segment.id))? {
                tracing::warn!(segment = %segment.id, "a queued garbage segment is referenced again; unqueueing it");
                self.delete(Ks::Garbage, queued);
                self.delete(Ks::GarbageIdx, segment_key(segment.id).to_vec());
            }
        }
        let count = count
            .checked_add(1)
            .ok_or_else(|| MetaError::Corrupt(format!("reference count of segment {} overflows", segment.id)))?;
        self.put(Ks::SegRefs, segment_key(segment.id).to_vec(), encode(&count));
        Ok(())
    }

    /// One record or part no longer names `segment`; at 0 it is queued as garbage at `now_ms`.
    fn decref(&mut self, segment: &Segment, now_ms: i64) -> Result<()> {
        let key = segment_key(segment.id).to_vec();
        match self.refs(segment.id)? {
            0 => {
                // A count that is already 0 means the counts are off. Leaking is safe (scrub finds
                // unreferenced shard files as orphans); queueing could delete data still named somewhere.
                tracing::error!(segment = %segment.id, "reference count underflow; leaving the segment to scrub");
            }
            1 => {
                self.delete(Ks::SegRefs, key.clone());
                let queued = garbage_key(now_ms, segment.id);
                self.put(Ks::Garbage, queued.clone(), encode(segment));
                self.put(Ks::GarbageIdx, key, queued);
            }
            n => self.put(Ks::SegRefs, key, encode(&(n - 1))),
        }
        Ok(())
    }

    fn commit(self) -> Result<()> {
        let mut batch = self.store.db.batch();
        for ((ks, key), value) in self.writes {
            let handle = self.store.ks(ks);
            match value {
                Some(value) => batch.insert(handle, key, value),
                None => batch.remove(handle, key),
            }
        }
        batch.commit()?;
        Ok(())
    }
}

fn apply_command(tx: &mut Txn<'_>, command: MetaCommand) -> Result<MetaResponse> {
    Ok(match command {
        MetaCommand::CreateBucket(bucket) => {
            if tx.exists(Ks::Buckets, bucket.name.as_bytes())? {
                MetaResponse::BucketAlreadyExists
            } else {
                tx.put(Ks::Buckets, bucket.name.as_bytes().to_vec(), encode(&bucket));
                MetaResponse::Ok
            }
        }
        MetaCommand::SetBucketEncryption { bucket, encryption } => {
            match tx.get_decoded::<BucketRecord>(Ks::Buckets, bucket.as_bytes())? {
                None => MetaResponse::NoSuchBucket,
                Some(mut record) => {
                    record.encryption = encryption;
                    tx.put(Ks::Buckets, bucket.into_bytes(), encode(&record));
                    MetaResponse::Ok
                }
            }
        }
        MetaCommand::EncryptAll { key_id } => {
            let mut settings = tx.encryption_settings()?;
            settings.encrypt_all = true;
            settings.active_key_id.get_or_insert(key_id);
            tx.set_encryption_settings(&settings);
            MetaResponse::Ok
        }
        MetaCommand::StartRotation { to_key_id, key_file, now_ms } => {
            let mut settings = tx.encryption_settings()?;
            match &settings.rotation {
                Some(r) if r.finished_ms.is_none() && r.to_key_id != to_key_id => {
                    return Ok(MetaResponse::RotationInProgress { to_key_id: r.to_key_id.clone() })
                }
                Some(r) if r.finished_ms.is_none() => return Ok(MetaResponse::Ok),
                _ => {}
            }
            settings.active_key_id = Some(to_key_id.clone());
            settings.rotation = Some(Rotation {
                to_key_id,
                key_file,
                started_ms: now_ms,
                cursor: RotationCursor::Objects { after: None },
                again: false,
                rewrapped: 0,
                finished_ms: None,
            });
            tx.set_encryption_settings(&settings);
            MetaResponse::Ok
        }
        MetaCommand::RewrapBatch { to_key_id, rewraps, cursor, now_ms } => {
            let mut settings = tx.encryption_settings()?;
            let Some(rotation) = settings.rotation.as_mut() else {
                return Ok(MetaResponse::Rewrapped { count: 0 });
            };
            if rotation.to_key_id != to_key_id {
                return Ok(MetaResponse::RotationInProgress { to_key_id: rotation.to_key_id.clone() });
            }
            if rotation.finished_ms.is_some() {
                return Ok(MetaResponse::Rewrapped { count: 0 });
            }
            let mut count = 0;
            for rewrap in rewraps {
                if apply_rewrap(tx, rewrap)? {
                    count += 1;
                }
            }
            rotation.rewrapped += count;
            rotation.cursor = cursor;
            if rotation.cursor == RotationCursor::End {
                if rotation.again {
                    rotation.again = false;
                    rotation.cursor = RotationCursor::Objects { after: None };
                } else {
                    rotation.finished_ms = Some(now_ms);
                }
            }
            tx.set_encryption_settings(&settings);
            MetaResponse::Rewrapped { count }
        }
        MetaCommand::DeleteBucket { name } => {
            if !tx.exists(Ks::Buckets, name.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else if tx.any_with_prefix(Ks::Objects, &bucket_prefix(&name))?
                || tx.any_with_prefix(Ks::Uploads, &bucket_prefix(&name))?
            {
                MetaResponse::BucketNotEmpty
            } else {
                tx.delete(Ks::Buckets, name.into_bytes());
                MetaResponse::Ok
            }
        }
        MetaCommand::CommitObject { record, now_ms } => {
            if !tx.exists(Ks::Buckets, record.bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else {
                let previous = commit_record(tx, record, now_ms)?;
                MetaResponse::Replaced { previous: previous.map(Box::new) }
            }
        }
        MetaCommand::CommitObjectIf { record, now_ms, condition } => {
            if !tx.exists(Ks::Buckets, record.bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else if condition_holds(tx, &record, &condition)? {
                let previous = commit_record(tx, record, now_ms)?;
                MetaResponse::Replaced { previous: previous.map(Box::new) }
            } else {
                MetaResponse::PreconditionFailed
            }
        }
        MetaCommand::CommitCopy { record, now_ms, source_bucket, source_key, source_version_id } => {
            if !tx.exists(Ks::Buckets, record.bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else {
                let source: Option<ObjectRecord> =
                    tx.get_decoded(Ks::Objects, &object_key(&source_bucket, &source_key))?;
                if source.is_some_and(|s| s.version_id == source_version_id) {
                    let previous = commit_record(tx, record, now_ms)?;
                    MetaResponse::Replaced { previous: previous.map(Box::new) }
                } else {
                    MetaResponse::SourceChanged
                }
            }
        }
        MetaCommand::DeleteObject { bucket, key, now_ms } => {
            if !tx.exists(Ks::Buckets, bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else {
                let object_key = object_key(&bucket, &key);
                let previous: Option<ObjectRecord> = tx.get_decoded(Ks::Objects, &object_key)?;
                if let Some(previous) = &previous {
                    for segment in &previous.segments {
                        tx.decref(segment, now_ms)?;
                    }
                    tx.delete(Ks::Objects, object_key);
                }
                MetaResponse::Replaced { previous: previous.map(Box::new) }
            }
        }
        MetaCommand::CreateUpload(upload) => {
            if !tx.exists(Ks::Buckets, upload.bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else {
                let key = upload_key(&upload.bucket, &upload.key, &upload.upload_id);
                note_wrapping_key(tx, &upload.encryption)?;
                tx.put(Ks::Uploads, key, encode(&upload));
                MetaResponse::Ok
            }
        }
        MetaCommand::CommitPart { bucket, key, upload_id, part, now_ms } => {
            if !tx.exists(Ks::Uploads, &upload_key(&bucket, &key, &upload_id))? {
                MetaResponse::NoSuchUpload
            } else {
                let part_key = part_key(&upload_id, part.part_number);
                let replaced: Option<PartRecord> = tx.get_decoded(Ks::Parts, &part_key)?;
                tx.incref(&part.segment)?;
                if let Some(replaced) = replaced {
                    tx.decref(&replaced.segment, now_ms)?;
                }
                tx.put(Ks::Parts, part_key, encode(&part));
                MetaResponse::Ok
            }
        }
        MetaCommand::CompleteUpload { upload_id, record, now_ms } => {
            complete_upload(tx, upload_id, record, now_ms, None)?
        }
        MetaCommand::CompleteUploadIf { upload_id, record, now_ms, condition } => {
            complete_upload(tx, upload_id, record, now_ms, Some(&condition))?
        }
        MetaCommand::AbortUpload { bucket, key, upload_id, now_ms } => {
            let upload = upload_key(&bucket, &key, &upload_id);
            if !tx.exists(Ks::Uploads, &upload)? {
                MetaResponse::NoSuchUpload
            } else {
                for (key, part) in upload_parts(tx, &upload_id)?.into_values() {
                    tx.decref(&part.segment, now_ms)?;
                    tx.delete(Ks::Parts, key);
                }
                tx.delete(Ks::Uploads, upload);
                MetaResponse::Ok
            }
        }
        MetaCommand::SetRootCredential(credential) => {
            match tx.get_decoded::<Credential>(Ks::SmMeta, ROOT_CREDENTIAL)? {
                Some(stored) => MetaResponse::Credential(stored),
                None => {
                    tx.put(Ks::SmMeta, ROOT_CREDENTIAL.to_vec(), encode(&credential));
                    MetaResponse::Credential(credential)
                }
            }
        }
        MetaCommand::ForgetGarbage { segments } => {
            for id in segments {
                let idx = segment_key(id);
                if let Some(queued) = tx.get(Ks::GarbageIdx, &idx)? {
                    tx.delete(Ks::Garbage, queued);
                    tx.delete(Ks::GarbageIdx, idx.to_vec());
                }
            }
            MetaResponse::Ok
        }
    })
}

/// Turns an upload into an object, if `condition` (when given) holds for the key's current version.
fn complete_upload(
    tx: &mut Txn<'_>,
    upload_id: String,
    record: ObjectRecord,
    now_ms: i64,
    condition: Option<&WriteCondition>,
) -> Result<MetaResponse> {
    let upload = upload_key(&record.bucket, &record.key, &upload_id);
    if !tx.exists(Ks::Uploads, &upload)? {
        return Ok(MetaResponse::NoSuchUpload);
    }
    if !tx.exists(Ks::Buckets, record.bucket.as_bytes())? {
        return Ok(MetaResponse::NoSuchBucket);
    }
    if let Some(condition) = condition {
        if !condition_holds(tx, &record, condition)? {
            return Ok(MetaResponse::PreconditionFailed);
        }
    }
    let parts = upload_parts(tx, &upload_id)?;
    for segment in &record.segments {
        let named = parts.get(&segment.part_number).is_some_and(|(_, part)| part.segment.id == segment.id);
        if !named {
            return Ok(MetaResponse::InvalidPart { part_number: segment.part_number });
        }
    }
    // The object's references are added before the parts' are dropped, so a named part's
    // segment moves to the object without reaching 0; an unnamed part's segment becomes garbage.
    let previous = commit_record(tx, record, now_ms)?;
    for (key, part) in parts.into_values() {
        tx.decref(&part.segment, now_ms)?;
        tx.delete(Ks::Parts, key);
    }
    tx.delete(Ks::Uploads, upload);
    Ok(MetaResponse::Replaced { previous: previous.map(Box::new) })
}

/// Whether the current version of `record`'s key satisfies a conditional write's `condition`.
fn condition_holds(tx: &Txn<'_>, record: &ObjectRecord, condition: &WriteCondition) -> Result<bool> {
    let current: Option<ObjectRecord> = tx.get_decoded(Ks::Objects, &object_key(&record.bucket, &record.key))?;
    Ok(condition.holds_for(current.as_ref()))
}

/// Puts `record` in place of the key's current record, moving segment references from the old record
/// to the new one. Returns the replaced record.
fn commit_record(tx: &mut Txn<'_>, record: ObjectRecord, now_ms: i64) -> Result<Option<ObjectRecord>> {
    let key = object_key(&record.bucket, &record.key);
    let previous: Option<ObjectRecord> = tx.get_decoded(Ks::Objects, &key)?;
    for segment in &record.segments {
        tx.incref(segment)?;
    }
    if let Some(previous) = &previous {
        for segment in &previous.segments {
            tx.decref(segment, now_ms)?;
        }
    }
    note_wrapping_key(tx, &record.encryption)?;
    tx.put(Ks::Objects, key, encode(&record));
    Ok(previous)
}

/// A record wrapped under a key other than a rotation's target may land behind the rotation's cursor
/// (its writer read the settings before the rotation started): the walk must make one more pass, and a
/// finished rotation opens again.
fn note_wrapping_key(tx: &mut Txn<'_>, encryption: &Encryption) -> Result<()> {
    let Encryption::SseS3 { key_id, .. } = encryption else {
        return Ok(());
    };
    let mut settings = tx.encryption_settings()?;
    let Some(rotation) = settings.rotation.as_mut() else {
        return Ok(());
    };
    if rotation.to_key_id == *key_id {
        return Ok(());
    }
    if rotation.finished_ms.take().is_some() {
        rotation.cursor = RotationCursor::Objects { after: None };
    } else {
        rotation.again = true;
    }
    tx.set_encryption_settings(&settings);
    Ok(())
}

/// Rewraps one record's data key if the record still carries the wrapping the rotation read.
fn apply_rewrap(tx: &mut Txn<'_>, rewrap: Rewrap) -> Result<bool> {
    match rewrap.target {
        RewrapTarget::Object { bucket, key, version_id } => {
            let map_key = object_key(&bucket, &key);
            match tx.get_decoded::<ObjectRecord>(Ks::Objects, &map_key)? {
                Some(mut record) if record.version_id == version_id && record.encryption == rewrap.before => {
                    record.encryption = rewrap.after;
                    tx.put(Ks::Objects, map_key, encode(&record));
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        RewrapTarget::Upload { bucket, key, upload_id } => {
            let map_key = upload_key(&bucket, &key, &upload_id);
            match tx.get_decoded::<UploadRecord>(Ks::Uploads, &map_key)? {
                Some(mut upload) if upload.encryption == rewrap.before => {
                    upload.encryption = rewrap.after;
                    tx.put(Ks::Uploads, map_key, encode(&upload));
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }
}

/// The upload's parts by part number, with their keys.
fn upload_parts(tx: &Txn<'_>, upload_id: &str) -> Result<BTreeMap<u32, (Vec<u8>, PartRecord)>> {
    let mut parts = BTreeMap::new();
    for (key, value) in tx.scan_prefix(Ks::Parts, &part_prefix(upload_id))? {
        let part: PartRecord = decode(&value)?;
        parts.insert(part.part_number, (key, part));
    }
    Ok(parts)
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

    fn garbage_ids(node: &TestNode) -> Vec<SegmentId> {
        node.reader.garbage(i64::MAX).unwrap().iter().map(|s| s.id).collect()
    }

    async fn node_with_bucket(dir: &std::path::Path) -> TestNode {
        let node = TestNode::start(dir, config()).await;
        assert_eq!(node.write(bucket("b")).await, MetaResponse::Ok);
        node
    }

    fn sse_s3(key_id: &str, wrapped: u8) -> Encryption {
        let key = hoard_protocol::WrappedKey { format: 1, data_id: [7; 16], wrapped: vec![wrapped; 40] };
        Encryption::SseS3 { key_id: key_id.into(), key }
    }

    fn put_sealed(key: &str, encryption: Encryption) -> MetaCommand {
        let mut r = record("b", key, Vec::new());
        r.encryption = encryption;
        MetaCommand::CommitObject { record: r, now_ms: 10 }
    }

    fn rewrap_object(key: &str, before: Encryption, after: Encryption) -> Rewrap {
        let target = RewrapTarget::Object { bucket: "b".into(), key: key.into(), version_id: format!("v-{key}") };
        Rewrap { target, before, after }
    }

    fn rotation(node: &TestNode) -> Rotation {
        node.reader.encryption_settings().unwrap().rotation.expect("a rotation is recorded")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_rewraps_only_what_is_unchanged_and_passes_again_after_a_late_write() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put_sealed("x", sse_s3("old", 1))).await;
        node.write(put_sealed("y", sse_s3("old", 2))).await;
        let start = |to: &str| MetaCommand::StartRotation { to_key_id: to.into(), key_file: "/k".into(), now_ms: 20 };
        assert_eq!(node.write(start("new")).await, MetaResponse::Ok);
        assert_eq!(node.reader.encryption_settings().unwrap().active_key_id.as_deref(), Some("new"));
        assert_eq!(
            node.write(start("other")).await,
            MetaResponse::RotationInProgress { to_key_id: "new".into() },
            "a second rotation waits for the first"
        );

        // `y` changed after the walk read it: its rewrap must not apply.
        node.write(put_sealed("y", sse_s3("new", 3))).await;
        let batch = MetaCommand::RewrapBatch {
            to_key_id: "new".into(),
            rewraps: vec![
                rewrap_object("x", sse_s3("old", 1), sse_s3("new", 9)),
                rewrap_object("y", sse_s3("old", 2), sse_s3("new", 8)),
            ],
            cursor: RotationCursor::Uploads { after: None },
            now_ms: 30,
        };
        assert_eq!(node.write(batch).await, MetaResponse::Rewrapped { count: 1 });
        assert_eq!(node.reader.object("b", "x").unwrap().unwrap().encryption, sse_s3("new", 9));
        assert_eq!(node.reader.object("b", "y").unwrap().unwrap().encryption, sse_s3("new", 3));

        // A write under the old key lands while the walk runs: reaching the end starts another pass.
        node.write(put_sealed("a", sse_s3("old", 4))).await;
        assert!(rotation(&node).again);
        let end = |rewraps| MetaCommand::RewrapBatch {
            to_key_id: "new".into(),
            rewraps,
            cursor: RotationCursor::End,
            now_ms: 40,
        };
        assert_eq!(node.write(end(vec![])).await, MetaResponse::Rewrapped { count: 0 });
        let r = rotation(&node);
        assert_eq!((r.cursor, r.again, r.finished_ms), (RotationCursor::Objects { after: None }, false, None));
        let fix = vec![rewrap_object("a", sse_s3("old", 4), sse_s3("new", 5))];
        assert_eq!(node.write(end(fix)).await, MetaResponse::Rewrapped { count: 1 });
        let r = rotation(&node);
        assert_eq!((r.rewrapped, r.finished_ms), (2, Some(40)));
        let census = node.reader.census().unwrap();
        assert_eq!(census.by_key, [("new".to_string(), 3)].into());

        // A late write after the end opens the rotation again from the start.
        node.write(put_sealed("z", sse_s3("old", 6))).await;
        let r = rotation(&node);
        assert_eq!((r.cursor, r.finished_ms), (RotationCursor::Objects { after: None }, None));
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sharing_copy_commits_only_while_its_source_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "src", 1, 100)).await;
        let copy = |version: &str| {
            let mut r = record("b", "dst", vec![segment(1, 0)]);
            r.version_id = "copy".into();
            MetaCommand::CommitCopy {
                record: r,
                now_ms: 110,
                source_bucket: "b".into(),
                source_key: "src".into(),
                source_version_id: version.into(),
            }
        };
        // The source is overwritten (its segment queued as garbage) before the copy of the old version lands.
        let mut newer = record("b", "src", vec![segment(2, 0)]);
        newer.version_id = "v-newer".into();
        node.write(MetaCommand::CommitObject { record: newer, now_ms: 105 }).await;
        assert_eq!(node.write(copy("v-src")).await, MetaResponse::SourceChanged);
        assert!(node.reader.object("b", "dst").unwrap().is_none(), "nothing committed");
        assert_eq!(garbage_ids(&node), vec![SegmentId(1)], "the old segment stays garbage");

        assert!(matches!(node.write(copy("v-newer")).await, MetaResponse::Replaced { previous: None }));
        assert_eq!(node.reader.object("b", "dst").unwrap().unwrap().version_id, "copy");
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overwrite_queues_the_old_segment_as_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "k", 1, 100)).await;
        let response = node.write(put("b", "k", 2, 200)).await;
        let MetaResponse::Replaced { previous: Some(previous) } = response else {
            panic!("expected the first record back, got {response:?}");
        };
        assert_eq!(previous.segments[0].id, SegmentId(1));
        assert_eq!(garbage_ids(&node), vec![SegmentId(1)]);
        assert_eq!(node.reader.referenced_segments().unwrap(), [SegmentId(2)].into());
        let both = node.reader.references_and_queued().unwrap();
        assert_eq!(both, ([SegmentId(2)].into(), [SegmentId(1)].into()));
        assert!(node.reader.garbage(199).unwrap().is_empty(), "queued at 200, not before");
        assert_eq!(node.reader.garbage(200).unwrap().len(), 1);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_segment_shared_by_a_copy_is_garbage_only_when_both_records_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "original", 1, 10)).await;
        node.write(put("b", "copy", 1, 20)).await;
        let delete = |key: &str, now_ms| MetaCommand::DeleteObject { bucket: "b".into(), key: key.into(), now_ms };
        node.write(delete("original", 30)).await;
        assert!(garbage_ids(&node).is_empty(), "the copy still references segment 1");
        assert!(node.reader.referenced_segments().unwrap().contains(&SegmentId(1)));
        let response = node.write(delete("copy", 40)).await;
        assert!(matches!(response, MetaResponse::Replaced { previous: Some(_) }));
        assert_eq!(garbage_ids(&node), vec![SegmentId(1)]);
        assert!(node.reader.referenced_segments().unwrap().is_empty());
        let again = node.write(delete("copy", 50)).await;
        assert_eq!(again, MetaResponse::Replaced { previous: None }, "deleting a missing key succeeds");
        assert_eq!(garbage_ids(&node), vec![SegmentId(1)], "and queues nothing twice");
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overwriting_a_key_with_a_record_sharing_its_segment_queues_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "k", 1, 10)).await;
        node.write(put("b", "k", 1, 20)).await;
        assert!(garbage_ids(&node).is_empty());
        assert_eq!(node.reader.referenced_segments().unwrap(), [SegmentId(1)].into());
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn complete_upload_moves_named_parts_and_queues_unnamed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "big", 9, 5)).await;
        assert_eq!(node.write(create_upload("b", "big", "u1")).await, MetaResponse::Ok);
        for (number, segment_id) in [(1, 11), (2, 12), (3, 13)] {
            assert_eq!(node.write(commit_part("b", "big", "u1", number, segment_id)).await, MetaResponse::Ok);
        }
        assert_eq!(node.reader.referenced_segments().unwrap(), [9, 11, 12, 13].map(SegmentId).into());
        let complete = MetaCommand::CompleteUpload {
            upload_id: "u1".into(),
            record: record("b", "big", vec![segment(11, 1), segment(13, 3)]),
            now_ms: 60,
        };
        let response = node.write(complete).await;
        let MetaResponse::Replaced { previous: Some(previous) } = response else {
            panic!("expected the replaced single-PUT record, got {response:?}");
        };
        assert_eq!(previous.segments[0].id, SegmentId(9));
        let mut garbage = garbage_ids(&node);
        garbage.sort();
        assert_eq!(garbage, vec![SegmentId(9), SegmentId(12)], "old object and the unnamed part 2");
        assert_eq!(node.reader.referenced_segments().unwrap(), [11, 13].map(SegmentId).into());
        assert_eq!(node.reader.upload("b", "big", "u1").unwrap(), None);
        assert!(node.reader.all_parts("u1").unwrap().is_empty());
        let object = node.reader.object("b", "big").unwrap().unwrap();
        assert_eq!(object.segments.iter().map(|s| s.id).collect::<Vec<_>>(), vec![SegmentId(11), SegmentId(13)]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn complete_upload_refuses_parts_that_were_not_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(create_upload("b", "k", "u1")).await;
        node.write(commit_part("b", "k", "u1", 1, 11)).await;
        let complete = |segments| MetaCommand::CompleteUpload {
            upload_id: "u1".into(),
            record: record("b", "k", segments),
            now_ms: 9,
        };
        let wrong_number = node.write(complete(vec![segment(11, 1), segment(12, 2)])).await;
        assert_eq!(wrong_number, MetaResponse::InvalidPart { part_number: 2 });
        let wrong_segment = node.write(complete(vec![segment(99, 1)])).await;
        assert_eq!(wrong_segment, MetaResponse::InvalidPart { part_number: 1 }, "a stale upload of part 1");
        assert_eq!(node.reader.object("b", "k").unwrap(), None);
        assert!(node.reader.upload("b", "k", "u1").unwrap().is_some(), "a refused completion keeps the upload");
        assert_eq!(node.reader.referenced_segments().unwrap(), [SegmentId(11)].into());
        let missing = MetaCommand::CompleteUpload {
            upload_id: "nope".into(),
            record: record("b", "k", vec![segment(11, 1)]),
            now_ms: 9,
        };
        assert_eq!(node.write(missing).await, MetaResponse::NoSuchUpload);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_conditional_completion_applies_only_when_its_condition_holds() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(create_upload("b", "k", "u1")).await;
        node.write(commit_part("b", "k", "u1", 1, 11)).await;
        let complete = |condition| MetaCommand::CompleteUploadIf {
            upload_id: "u1".into(),
            record: record("b", "k", vec![segment(11, 1)]),
            now_ms: 9,
            condition,
        };
        // The key has no version: If-Match fails, and the upload stays open.
        let r = node.write(complete(WriteCondition::ETag("nope".into()))).await;
        assert_eq!(r, MetaResponse::PreconditionFailed);
        assert_eq!(node.reader.object("b", "k").unwrap(), None);
        assert!(node.reader.upload("b", "k", "u1").unwrap().is_some(), "a refused completion keeps the upload");
        assert_eq!(node.reader.referenced_segments().unwrap(), [SegmentId(11)].into());
        // If-None-Match: * completes it.
        let r = node.write(complete(WriteCondition::Absent)).await;
        assert!(matches!(r, MetaResponse::Replaced { previous: None }), "{r:?}");
        assert!(node.reader.object("b", "k").unwrap().is_some());
        assert_eq!(node.reader.upload("b", "k", "u1").unwrap(), None);

        // A second upload of the key may not complete with If-None-Match: * now.
        node.write(create_upload("b", "k", "u2")).await;
        node.write(commit_part("b", "k", "u2", 1, 12)).await;
        let again = MetaCommand::CompleteUploadIf {
            upload_id: "u2".into(),
            record: record("b", "k", vec![segment(12, 1)]),
            now_ms: 10,
            condition: WriteCondition::Absent,
        };
        assert_eq!(node.write(again).await, MetaResponse::PreconditionFailed);
        let kept = node.reader.object("b", "k").unwrap().unwrap();
        assert_eq!(kept.segments[0].id, SegmentId(11), "the first completion stays");
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reuploading_a_part_queues_the_replaced_segment() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(create_upload("b", "k", "u1")).await;
        node.write(commit_part("b", "k", "u1", 1, 11)).await;
        node.write(commit_part("b", "k", "u1", 1, 21)).await;
        assert_eq!(garbage_ids(&node), vec![SegmentId(11)]);
        assert_eq!(node.reader.all_parts("u1").unwrap()[0].segment.id, SegmentId(21));
        assert_eq!(node.write(commit_part("b", "k", "other", 1, 31)).await, MetaResponse::NoSuchUpload);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abort_upload_queues_every_part_and_forgets_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(create_upload("b", "k", "u1")).await;
        node.write(commit_part("b", "k", "u1", 1, 11)).await;
        node.write(commit_part("b", "k", "u1", 2, 12)).await;
        let abort =
            MetaCommand::AbortUpload { bucket: "b".into(), key: "k".into(), upload_id: "u1".into(), now_ms: 70 };
        assert_eq!(node.write(abort.clone()).await, MetaResponse::Ok);
        assert_eq!(node.write(abort).await, MetaResponse::NoSuchUpload);
        let mut garbage = garbage_ids(&node);
        garbage.sort();
        assert_eq!(garbage, vec![SegmentId(11), SegmentId(12)]);
        assert!(node.reader.all_parts("u1").unwrap().is_empty());
        assert!(node.reader.referenced_segments().unwrap().is_empty());
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delete_bucket_refuses_while_objects_or_uploads_remain() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        let delete_bucket = || MetaCommand::DeleteBucket { name: "b".into() };
        node.write(bucket("bb")).await;
        node.write(put("bb", "in-a-longer-named-bucket", 5, 1)).await;
        node.write(put("b", "k", 1, 1)).await;
        assert_eq!(node.write(delete_bucket()).await, MetaResponse::BucketNotEmpty);
        node.write(MetaCommand::DeleteObject { bucket: "b".into(), key: "k".into(), now_ms: 2 }).await;
        node.write(create_upload("b", "k", "u1")).await;
        assert_eq!(node.write(delete_bucket()).await, MetaResponse::BucketNotEmpty, "an upload is in progress");
        node.write(MetaCommand::AbortUpload { bucket: "b".into(), key: "k".into(), upload_id: "u1".into(), now_ms: 3 })
            .await;
        assert_eq!(node.write(delete_bucket()).await, MetaResponse::Ok, "bucket bb's keys are not b's");
        assert_eq!(node.write(delete_bucket()).await, MetaResponse::NoSuchBucket);
        assert_eq!(node.reader.buckets().unwrap().iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["bb"]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_on_a_missing_bucket_answer_no_such_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        assert_eq!(node.write(put("nope", "k", 1, 1)).await, MetaResponse::NoSuchBucket);
        let delete = MetaCommand::DeleteObject { bucket: "nope".into(), key: "k".into(), now_ms: 1 };
        assert_eq!(node.write(delete).await, MetaResponse::NoSuchBucket);
        assert_eq!(node.write(create_upload("nope", "k", "u")).await, MetaResponse::NoSuchBucket);
        assert!(node.reader.referenced_segments().unwrap().is_empty(), "a refused commit references nothing");
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conditional_commits_apply_only_when_their_condition_holds() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        let cond = |id: u128, condition: WriteCondition| MetaCommand::CommitObjectIf {
            record: record("b", "k", vec![segment(id, 0)]),
            now_ms: 5,
            condition,
        };
        assert!(matches!(node.write(cond(1, WriteCondition::Absent)).await, MetaResponse::Replaced { previous: None }));
        assert_eq!(node.write(cond(2, WriteCondition::Absent)).await, MetaResponse::PreconditionFailed);
        let etag = node.reader.object("b", "k").unwrap().unwrap().etag;
        assert_eq!(node.write(cond(3, WriteCondition::ETag("other".into()))).await, MetaResponse::PreconditionFailed);
        assert!(matches!(node.write(cond(4, WriteCondition::ETag(etag))).await, MetaResponse::Replaced { .. }));
        let refs = node.reader.referenced_segments().unwrap();
        assert!(refs.contains(&SegmentId(4)) && !refs.contains(&SegmentId(2)) && !refs.contains(&SegmentId(3)));
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forget_garbage_drops_only_the_named_segments() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "k", 1, 10)).await;
        node.write(put("b", "k", 2, 20)).await;
        node.write(put("b", "k", 3, 30)).await;
        assert_eq!(garbage_ids(&node), vec![SegmentId(1), SegmentId(2)], "oldest first");
        let forget = MetaCommand::ForgetGarbage { segments: vec![SegmentId(1), SegmentId(404)] };
        assert_eq!(node.write(forget).await, MetaResponse::Ok);
        assert_eq!(garbage_ids(&node), vec![SegmentId(2)]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queued_segment_referenced_again_leaves_the_garbage_queue() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "src", 1, 10)).await;
        node.write(MetaCommand::DeleteObject { bucket: "b".into(), key: "src".into(), now_ms: 11 }).await;
        assert_eq!(garbage_ids(&node), vec![SegmentId(1)]);
        // A copy proposed before the delete committed, after it.
        node.write(put("b", "dst", 1, 12)).await;
        assert!(garbage_ids(&node).is_empty());
        assert_eq!(node.reader.referenced_segments().unwrap(), [SegmentId(1)].into());
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_lists_every_committed_segment_with_its_object() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "one", 1, 10)).await;
        let two =
            MetaCommand::CommitObject { record: record("b", "two", vec![segment(2, 1), segment(3, 2)]), now_ms: 10 };
        node.write(two).await;
        node.write(create_upload("b", "k", "u1")).await;
        node.write(commit_part("b", "k", "u1", 1, 4)).await;
        let listed: Vec<(String, SegmentId)> =
            node.reader.segments().unwrap().into_iter().map(|s| (s.key, s.segment.id)).collect();
        let expected = [("one", 1), ("two", 2), ("two", 3)].map(|(k, id)| (k.to_string(), SegmentId(id)));
        assert_eq!(listed, expected);
        node.stop().await;
    }

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
