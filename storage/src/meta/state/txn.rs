//! The writes of one log entry, buffered until the entry commits as one batch.

use std::collections::BTreeMap;

use hoard_protocol::decode;
use hoard_protocol::encode;
use hoard_protocol::ClusterRecord;
use hoard_protocol::EncryptionSettings;
use hoard_protocol::NodeAddr;
use hoard_protocol::Persisted;
use hoard_protocol::Segment;
use hoard_protocol::SegmentId;

use crate::meta::keys::garbage_key;
use crate::meta::keys::segment_key;
use crate::meta::Ks;
use crate::meta::MetaError;
use crate::meta::Result;
use crate::meta::Store;

use openraft::StoredMembership;

use super::CLUSTER;
use super::ENCRYPTION;
use super::LAST_MEMBERSHIP;

/// The writes of one log entry, readable before they commit: a segment touched twice in one entry must
/// see its own earlier count.
/// The longest key a transaction writes. Names are checked long before (an object key is at most 1 KiB);
/// this is the last guard, far below the storage engine's own limit of 64 KiB.
const MAX_STORED_KEY_BYTES: usize = 16 << 10;

/// A pending write: the value, or `None` for a delete.
type Write = Option<Vec<u8>>;
/// A key written since the savepoint and what was pending for it before (`None`: nothing was).
type Undo = ((Ks, Vec<u8>), Option<Write>);

pub(super) struct Txn<'a> {
    store: &'a Store,
    writes: BTreeMap<(Ks, Vec<u8>), Write>,
    /// Since the savepoint, if one is set: each key written and what was pending for it before.
    undo: Option<Vec<Undo>>,
}

impl<'a> Txn<'a> {
    pub(super) fn new(store: &'a Store) -> Txn<'a> {
        Txn { store, writes: BTreeMap::new(), undo: None }
    }

    /// Marks the writes so far: [`Txn::rollback`] undoes every write made after it (one command of a batch).
    pub(super) fn savepoint(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Undoes every write since the savepoint, which is then gone.
    pub(super) fn rollback(&mut self) {
        for (key, before) in self.undo.take().unwrap_or_default().into_iter().rev() {
            match before {
                Some(value) => self.writes.insert(key, value),
                None => self.writes.remove(&key),
            };
        }
    }

    /// Keeps the writes since the savepoint, which is then gone.
    pub(super) fn release(&mut self) {
        self.undo = None;
    }

    fn write(&mut self, ks: Ks, key: Vec<u8>, value: Option<Vec<u8>>) {
        match &mut self.undo {
            Some(undo) => {
                let before = self.writes.insert((ks, key.clone()), value);
                undo.push(((ks, key), before));
            }
            None => {
                self.writes.insert((ks, key), value);
            }
        }
    }

    pub(super) fn get(&self, ks: Ks, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(pending) = self.writes.get(&(ks, key.to_vec())) {
            return Ok(pending.clone());
        }
        Ok(self.store.ks(ks).get(key)?.map(|v| v.to_vec()))
    }

    pub(super) fn get_decoded<T: Persisted>(&self, ks: Ks, key: &[u8]) -> Result<Option<T>> {
        Ok(self.get(ks, key)?.map(|v| decode(&v)).transpose()?)
    }

    /// The encryption settings as this transaction sees them (defaults when none were ever written).
    pub(super) fn encryption_settings(&self) -> Result<EncryptionSettings> {
        Ok(self.get_decoded(Ks::SmMeta, ENCRYPTION)?.unwrap_or_default())
    }

    pub(super) fn set_encryption_settings(&mut self, settings: &EncryptionSettings) {
        self.put(Ks::SmMeta, ENCRYPTION.to_vec(), encode(settings));
    }

    /// The cluster's membership record (empty when no node ever joined).
    pub(super) fn cluster_record(&self) -> Result<ClusterRecord> {
        Ok(self.get_decoded(Ks::SmMeta, CLUSTER)?.unwrap_or_default())
    }

    pub(super) fn set_cluster_record(&mut self, record: &ClusterRecord) {
        self.put(Ks::SmMeta, CLUSTER.to_vec(), encode(record));
    }

    /// Every node of the last applied membership, voter or learner.
    pub(super) fn membership_ids(&self) -> Result<Vec<u64>> {
        let membership: Option<StoredMembership<u64, NodeAddr>> = self.get_decoded(Ks::SmMeta, LAST_MEMBERSHIP)?;
        Ok(membership.map(|m| m.membership().nodes().map(|(id, _)| *id).collect()).unwrap_or_default())
    }

    pub(super) fn exists(&self, ks: Ks, key: &[u8]) -> Result<bool> {
        Ok(self.get(ks, key)?.is_some())
    }

    pub(super) fn put(&mut self, ks: Ks, key: Vec<u8>, value: Vec<u8>) {
        self.write(ks, key, Some(value));
    }

    pub(super) fn delete(&mut self, ks: Ks, key: Vec<u8>) {
        self.write(ks, key, None);
    }

    pub(super) fn pending_in<'p>(
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
    pub(super) fn any_with_prefix(&self, ks: Ks, prefix: &[u8]) -> Result<bool> {
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

    /// The first pair of `ks` (in key order) whose key starts with `prefix`, pending writes included.
    pub(super) fn first_with_prefix(&self, ks: Ks, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let pending = self.pending_in(ks, prefix).find_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())));
        let mut stored = None;
        for guard in self.store.ks(ks).prefix(prefix) {
            let (k, v) = guard.into_inner()?;
            // A key this entry deleted or rewrote is pending; the pending side has the rewrite.
            if !self.writes.contains_key(&(ks, k.to_vec())) {
                stored = Some((k.to_vec(), v.to_vec()));
                break;
            }
        }
        Ok(match (pending, stored) {
            (Some(p), Some(s)) => Some(if p.0 <= s.0 { p } else { s }),
            (p, s) => p.or(s),
        })
    }

    /// Every pair of `ks` whose key starts with `prefix`, pending writes included, in key order.
    pub(super) fn scan_prefix(&self, ks: Ks, prefix: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
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

    pub(super) fn refs(&self, id: SegmentId) -> Result<u32> {
        match self.get(Ks::SegRefs, &segment_key(id))? {
            None => Ok(0),
            Some(v) => decode(&v).map_err(Into::into),
        }
    }

    /// One more record or part names `segment`.
    pub(super) fn incref(&mut self, segment: &Segment) -> Result<()> {
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
    pub(super) fn decref(&mut self, segment: &Segment, now_ms: i64) -> Result<()> {
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

    /// Why the storage engine could not hold a pending write, if it could not.
    pub(super) fn oversized(&self) -> Option<String> {
        self.writes.keys().find_map(|(ks, key)| oversized_key(*ks, key))
    }

    /// Why the storage engine could not hold a write made since the savepoint, if it could not (the writes
    /// before it were checked when their own command ended).
    pub(super) fn oversized_since_savepoint(&self) -> Option<String> {
        self.undo.as_ref()?.iter().find_map(|((ks, key), _)| oversized_key(*ks, key))
    }

    /// Commits every write as one batch. A key the storage engine could not hold refuses the whole entry
    /// before anything is written (the engine would panic on it).
    pub(super) fn commit(self) -> Result<()> {
        if let Some(reason) = self.oversized() {
            return Err(MetaError::Refused(reason));
        }
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

/// Why the storage engine could not hold `key`, if it could not.
fn oversized_key(ks: Ks, key: &[u8]) -> Option<String> {
    (key.len() > MAX_STORED_KEY_BYTES).then(|| format!("a key of {} bytes in keyspace {}", key.len(), ks.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_undoes_the_writes_since_the_savepoint_and_keeps_the_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, _sm, reader) = crate::meta::open(dir.path()).unwrap();
        let store = reader.store();
        store.ks(Ks::Buckets).insert(b"stored", b"on disk").unwrap();
        let mut tx = Txn::new(store);
        tx.put(Ks::Buckets, b"a".to_vec(), b"1".to_vec());
        tx.savepoint();
        tx.put(Ks::Buckets, b"a".to_vec(), b"2".to_vec());
        tx.put(Ks::Buckets, b"b".to_vec(), b"3".to_vec());
        tx.put(Ks::Buckets, b"b".to_vec(), b"4".to_vec());
        tx.delete(Ks::Buckets, b"stored".to_vec());
        assert_eq!(tx.get(Ks::Buckets, b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(tx.get(Ks::Buckets, b"stored").unwrap(), None);
        tx.rollback();
        assert_eq!(tx.get(Ks::Buckets, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(tx.get(Ks::Buckets, b"b").unwrap(), None);
        assert_eq!(tx.get(Ks::Buckets, b"stored").unwrap(), Some(b"on disk".to_vec()));
        // After release, later writes stay even if rollback is called without a new savepoint.
        tx.savepoint();
        tx.put(Ks::Buckets, b"c".to_vec(), b"5".to_vec());
        tx.release();
        tx.rollback();
        assert_eq!(tx.get(Ks::Buckets, b"c").unwrap(), Some(b"5".to_vec()));
        tx.commit().unwrap();
        assert_eq!(store.ks(Ks::Buckets).get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(store.ks(Ks::Buckets).get(b"b").unwrap().is_none());
    }
}
