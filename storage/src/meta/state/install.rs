//! Building and installing metadata snapshots (see the invariants in the parent module).

use fjall::PersistMode;
use fjall::Readable;
use hoard_protocol::decode;
use hoard_protocol::encode;
use hoard_protocol::NodeAddr;
use openraft::LogId;
use openraft::Snapshot;
use openraft::SnapshotMeta;
use openraft::StoredMembership;

use crate::meta::snapshot::Item;
use crate::meta::snapshot::Reader;
use crate::meta::snapshot::SnapshotDir;
use crate::meta::Ks;
use crate::meta::MetaError;
use crate::meta::Result;
use crate::meta::Store;
use crate::meta::TypeConfig;

use super::StateMachineStore;
use super::StoredSnapshot;
use super::CURRENT_SNAPSHOT;
use super::INSTALLING;
use super::INSTALL_BATCH_BYTES;
use super::LAST_APPLIED;
use super::LAST_MEMBERSHIP;

impl StateMachineStore {
    /// Deletes snapshot files that neither the current snapshot nor an unfinished install names.
    pub(super) fn remove_unnamed_files(&self) -> Result<()> {
        let current = self.stored_snapshot()?.map(|s| s.file);
        let installing = self.pointer(INSTALLING)?.map(|s| s.file);
        let keep: Vec<&str> = current.iter().chain(installing.iter()).map(String::as_str).collect();
        self.snapshots().retain_only(&keep)
    }

    /// Writes the state machine as of one database snapshot into a new snapshot file and makes it current.
    /// Blocking: runs on a blocking thread.
    pub(super) fn build(&self) -> Result<StoredSnapshot> {
        let _guard = self.lock()?;
        // Taken before the state is read: what is written from here on counts towards the next snapshot.
        let mark = self.store.growth.mark();
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
        self.store.growth.snapshot_taken(mark, self.file_len(&built.file));
        Ok(built)
    }

    /// Makes the received snapshot file at `received` the state machine. Blocking.
    pub(super) fn install(&self, meta: &SnapshotMeta<u64, NodeAddr>, received: &std::path::Path) -> Result<()> {
        let _guard = self.lock()?;
        let file = SnapshotDir::name(self.next_counter());
        self.snapshots().adopt(received, &file)?;
        // Check the whole file before the state changes at all.
        crate::meta::snapshot::verify(&self.snapshots().path(&file))?;
        let pending = StoredSnapshot { meta: meta.clone(), file };
        self.store.ks(Ks::Snapshot).insert(INSTALLING, encode(&pending))?;
        self.store.db.persist(PersistMode::SyncAll)?;
        self.apply_snapshot_file(&pending)?;
        self.snapshots().retain_only(&[&pending.file])
    }

    /// Replaces every state-machine keyspace with the contents of the snapshot file `pending` names,
    /// in bounded batches, and completes the install (see the invariants above). Idempotent.
    pub(super) fn apply_snapshot_file(&self, pending: &StoredSnapshot) -> Result<()> {
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
        self.store.growth.snapshot_taken(self.store.growth.mark(), self.file_len(&pending.file));
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
    pub(super) fn open_current(&self) -> Result<Option<Snapshot<TypeConfig>>> {
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
