//! Reads of the metadata state machine, for S3 requests and maintenance.
//!
//! Invariants:
//! - A reader never writes. Every multi-key read runs on one database snapshot, so a listing never mixes
//!   two states of the log. Linearizability is the caller's job (openraft's read index before the read).
//! - Listings walk keys in byte order inside `bucket ++ 0x00` only ([`super::keys`]), so bucket "a" never
//!   sees bucket "ab"'s keys.
//! - A delimiter roll-up is emitted once and then skipped by seeking past its whole key range, so a
//!   listing costs O(entries returned), not O(keys under the common prefixes).
//! - A common prefix at or before the marker was already returned by an earlier page and is not repeated.
//! - `max == 0` asks for nothing: an empty, untruncated page.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::ops::Bound;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fjall::Iter;
use fjall::Readable;
use hoard_protocol::decode;
use hoard_protocol::BucketRecord;
use hoard_protocol::Encryption;
use hoard_protocol::EncryptionSettings;
use hoard_protocol::ObjectRecord;
use hoard_protocol::PartRecord;
use hoard_protocol::Segment;
use hoard_protocol::SegmentHolder;
use hoard_protocol::SegmentId;
use hoard_protocol::StoredCredential;
use hoard_protocol::UploadRecord;
use hoard_protocol::VersionRecord;
use openraft::LogId;

use super::keys::bucket_end;
use super::keys::bucket_prefix;
use super::keys::object_key;
use super::keys::part_key;
use super::keys::part_prefix;
use super::keys::prefix_successor;
use super::keys::segment_id;
use super::keys::segment_key;
use super::keys::split_upload_key;
use super::keys::time_key;
use super::keys::upload_key;
use super::keys::utf8;
use super::state::root_credential_from;
use super::state::CLUSTER;
use super::state::ENCRYPTION;
use super::state::LAST_APPLIED;
use super::state::ROOT_CREDENTIAL;
use super::state::ROOT_CREDENTIAL_V2;
use super::Ks;
use super::Result;
use super::Store;

mod access;
mod versions;

pub use versions::VersionEntry;
pub use versions::VersionPage;
pub use versions::VersionQuery;

/// A ListObjects request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    /// Roll keys up at the first occurrence of this after the prefix. An empty delimiter is no delimiter.
    pub delimiter: Option<String>,
    /// List keys strictly after this one (V1 `marker`, V2 `start-after` / continuation token).
    pub start_after: Option<String>,
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectRecord>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// When truncated: the last key or common prefix returned, to pass back as `start_after`.
    pub next_marker: Option<String>,
}

/// A ListMultipartUploads request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Uploads of keys after this key, or of this key with an upload id after `upload_id_marker`.
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<String>,
    pub max_uploads: usize,
}

/// One page of ListMultipartUploads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadPage {
    pub uploads: Vec<UploadRecord>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// When truncated: the key (or common prefix) of the last entry returned.
    pub next_key_marker: Option<String>,
    /// When truncated and the last entry was an upload: its id.
    pub next_upload_id_marker: Option<String>,
}

/// A segment of a committed object, with the object naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedSegment {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub segment: Segment,
}

/// How many objects (and uploads in progress) are stored each way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub plain: u64,
    pub sse_s3: u64,
    pub sse_c: u64,
    /// SSE-S3 objects and uploads by the id of the master key their data key is wrapped under.
    pub by_key: BTreeMap<String, u64>,
    pub uploads: u64,
    /// Of the objects counted above, those that are noncurrent versions.
    pub noncurrent: u64,
    pub delete_markers: u64,
}

impl Census {
    fn count(&mut self, encryption: &Encryption, upload: bool) {
        if upload {
            self.uploads += 1;
        } else {
            match encryption {
                Encryption::None => self.plain += 1,
                Encryption::SseS3 { .. } => self.sse_s3 += 1,
                Encryption::SseC { .. } => self.sse_c += 1,
            }
        }
        if let Encryption::SseS3 { key_id, .. } = encryption {
            *self.by_key.entry(key_id.clone()).or_default() += 1;
        }
    }
}

/// Read access to the metadata state machine. Cheap to clone.
#[derive(Clone)]
pub struct MetaReader {
    store: Arc<Store>,
}

/// A key met by a listing walk: either emitted as an entry or rolled up into a common prefix.
enum Step<'k> {
    Entry,
    Prefix(&'k str),
}

/// Decides, for a listing walk, whether `key` is an entry or belongs to a common prefix.
fn classify<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Step<'k> {
    if let Some(delimiter) = delimiter {
        if let Some(pos) = key[prefix.len()..].find(delimiter) {
            return Step::Prefix(&key[..prefix.len() + pos + delimiter.len()]);
        }
    }
    Step::Entry
}

/// The later (tighter) of two lower bounds.
fn max_lower(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    fn key(bound: &Bound<Vec<u8>>) -> Option<(&[u8], bool)> {
        match bound {
            Bound::Unbounded => None,
            Bound::Included(k) => Some((k, false)),
            Bound::Excluded(k) => Some((k, true)),
        }
    }
    if key(&a) >= key(&b) {
        a
    } else {
        b
    }
}

impl MetaReader {
    pub(crate) fn new(store: Arc<Store>) -> MetaReader {
        MetaReader { store }
    }

    /// Whether no configuration of more than one voter has been written to this node's log since the store was
    /// opened. Each membership change passes through a joint configuration holding the old voters and the new,
    /// so while this holds, a node that is the only voter of its configuration has not begun to share it: no
    /// other node can commit. (Raft's metrics say the same, but only once the core publishes them.)
    pub fn one_voter_since_open(&self) -> bool {
        !self.store.shared.load(Ordering::SeqCst)
    }

    /// When this node's next snapshot is due (see [`super::LogGrowth`]): the mark of its current snapshot, the
    /// same until another is taken, or None while not due.
    pub fn snapshot_due(&self) -> Option<u64> {
        self.store.growth.due()
    }

    #[cfg(test)]
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Resolves once every handle to the store is gone and its database is closed; holding the future
    /// does not keep the store open.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closed = self.store.closed.subscribe();
        async move { while closed.changed().await.is_ok() {} }
    }

    pub fn bucket(&self, name: &str) -> Result<Option<BucketRecord>> {
        Ok(self.store.ks(Ks::Buckets).get(name)?.map(|v| decode(&v)).transpose()?)
    }

    /// Every bucket, sorted by name.
    pub fn buckets(&self) -> Result<Vec<BucketRecord>> {
        let mut out = Vec::new();
        for guard in self.store.ks(Ks::Buckets).iter() {
            out.push(decode(&guard.value()?)?);
        }
        Ok(out)
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        Ok(self.store.ks(Ks::Objects).get(object_key(bucket, key))?.map(|v| decode(&v)).transpose()?)
    }

    /// S3 listing: keys in byte order after `start_after` (exclusive) beginning with `prefix`; with a
    /// delimiter, keys containing the delimiter after the prefix are rolled up into common prefixes (each
    /// counted once toward `max_keys`, skipped by seeking past them). At most `max_keys` entries.
    #[tracing::instrument(level = "debug", skip(self, q), fields(prefix = %q.prefix))]
    pub fn list_objects(&self, bucket: &str, q: &ListQuery) -> Result<ListPage> {
        let mut page = ListPage::default();
        if q.max_keys == 0 {
            return Ok(page);
        }
        let view = self.store.db.snapshot();
        let objects = self.store.ks(Ks::Objects);
        let base = bucket_prefix(bucket);
        let end = Bound::Excluded(bucket_end(bucket));
        let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut lower = Bound::Included(object_key(bucket, &q.prefix));
        if let Some(after) = &q.start_after {
            lower = max_lower(lower, Bound::Excluded(object_key(bucket, after)));
        }
        let mut last: Option<String> = None;
        let mut emitted = 0;
        'walk: loop {
            let mut seek_to = None;
            for guard in view.range(objects, (lower.clone(), end.clone())) {
                let (k, v) = guard.into_inner()?;
                let key = utf8(k.get(base.len()..).unwrap_or_default())?;
                if !key.starts_with(&q.prefix) {
                    break 'walk;
                }
                match classify(key, &q.prefix, delimiter) {
                    Step::Prefix(common) => {
                        let seen = q.start_after.as_deref().is_some_and(|after| common <= after);
                        if !seen {
                            if emitted == q.max_keys {
                                page.is_truncated = true;
                                break 'walk;
                            }
                            page.common_prefixes.push(common.to_string());
                            last = Some(common.to_string());
                            emitted += 1;
                        }
                        seek_to = Some(prefix_successor(&object_key(bucket, common)));
                        break;
                    }
                    Step::Entry => {
                        if emitted == q.max_keys {
                            page.is_truncated = true;
                            break 'walk;
                        }
                        page.objects.push(decode(&v)?);
                        last = Some(key.to_string());
                        emitted += 1;
                    }
                }
            }
            match seek_to {
                Some(Some(next)) => lower = Bound::Included(next),
                Some(None) | None => break,
            }
        }
        if page.is_truncated {
            page.next_marker = last;
        }
        Ok(page)
    }

    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<UploadRecord>> {
        Ok(self.store.ks(Ks::Uploads).get(upload_key(bucket, key, upload_id))?.map(|v| decode(&v)).transpose()?)
    }

    /// ListMultipartUploads: uploads in (key, upload_id) order after (key_marker, upload_id_marker), with
    /// prefix/delimiter like [`MetaReader::list_objects`].
    #[tracing::instrument(level = "debug", skip(self, q), fields(prefix = %q.prefix))]
    pub fn list_uploads(&self, bucket: &str, q: &UploadQuery) -> Result<UploadPage> {
        let mut page = UploadPage::default();
        if q.max_uploads == 0 {
            return Ok(page);
        }
        let view = self.store.db.snapshot();
        let uploads = self.store.ks(Ks::Uploads);
        let base = bucket_prefix(bucket);
        let end = Bound::Excluded(bucket_end(bucket));
        let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut lower = Bound::Included(object_key(bucket, &q.prefix));
        if let Some(marker) = &q.key_marker {
            let after = match q.upload_id_marker.as_deref().filter(|id| !id.is_empty()) {
                Some(id) => Bound::Excluded(upload_key(bucket, marker, id)),
                None => {
                    // Past every upload of the marker key: `marker ++ 0x00 ++ id` < `marker ++ 0x01`.
                    let mut past = object_key(bucket, marker);
                    past.push(1);
                    Bound::Included(past)
                }
            };
            lower = max_lower(lower, after);
        }
        let mut last: Option<(String, Option<String>)> = None;
        let mut emitted = 0;
        'walk: loop {
            let mut seek_to = None;
            for guard in view.range(uploads, (lower.clone(), end.clone())) {
                let (k, v) = guard.into_inner()?;
                let (key, upload_id) = split_upload_key(k.get(base.len()..).unwrap_or_default())?;
                if !key.starts_with(&q.prefix) {
                    break 'walk;
                }
                match classify(key, &q.prefix, delimiter) {
                    Step::Prefix(common) => {
                        let seen = q.key_marker.as_deref().is_some_and(|marker| common <= marker);
                        if !seen {
                            if emitted == q.max_uploads {
                                page.is_truncated = true;
                                break 'walk;
                            }
                            page.common_prefixes.push(common.to_string());
                            last = Some((common.to_string(), None));
                            emitted += 1;
                        }
                        seek_to = Some(prefix_successor(&object_key(bucket, common)));
                        break;
                    }
                    Step::Entry => {
                        if emitted == q.max_uploads {
                            page.is_truncated = true;
                            break 'walk;
                        }
                        page.uploads.push(decode(&v)?);
                        last = Some((key.to_string(), Some(upload_id.to_string())));
                        emitted += 1;
                    }
                }
            }
            match seek_to {
                Some(Some(next)) => lower = Bound::Included(next),
                Some(None) | None => break,
            }
        }
        if page.is_truncated {
            if let Some((key, upload_id)) = last {
                page.next_key_marker = Some(key);
                page.next_upload_id_marker = upload_id;
            }
        }
        Ok(page)
    }

    /// Parts with number > `part_number_marker`, ascending, at most `max_parts`; and whether more follow.
    pub fn parts(&self, upload_id: &str, part_number_marker: u32, max_parts: usize) -> Result<(Vec<PartRecord>, bool)> {
        let mut out = Vec::new();
        let Some(first) = part_number_marker.checked_add(1) else {
            return Ok((out, false));
        };
        if max_parts == 0 {
            return Ok((out, false));
        }
        for guard in self.part_range(upload_id, first) {
            if out.len() == max_parts {
                return Ok((out, true));
            }
            out.push(decode(&guard.value()?)?);
        }
        Ok((out, false))
    }

    /// Every part of the upload, ascending by part number.
    pub fn all_parts(&self, upload_id: &str) -> Result<Vec<PartRecord>> {
        self.part_range(upload_id, 0).map(|guard| Ok(decode(&guard.value()?)?)).collect()
    }

    fn part_range(&self, upload_id: &str, first: u32) -> Iter {
        let start = Bound::Included(part_key(upload_id, first));
        let end = match prefix_successor(&part_prefix(upload_id)) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        self.store.ks(Ks::Parts).range((start, end))
    }

    /// The root credential in force: the current form, else the first one (in clear).
    pub fn root_credential(&self) -> Result<Option<StoredCredential>> {
        let sm = self.store.ks(Ks::SmMeta);
        root_credential_from(sm.get(ROOT_CREDENTIAL_V2)?, || Ok(sm.get(ROOT_CREDENTIAL)?))
    }

    /// The node's encryption settings (`hoard cluster encrypt`).
    /// The cluster's membership record: live join tokens and the nodes admitted or removed.
    pub fn cluster_record(&self) -> Result<hoard_protocol::ClusterRecord> {
        Ok(self.store.ks(Ks::SmMeta).get(CLUSTER)?.map(|v| decode(&v)).transpose()?.unwrap_or_default())
    }

    pub fn encryption_settings(&self) -> Result<EncryptionSettings> {
        Ok(self.store.ks(Ks::SmMeta).get(ENCRYPTION)?.map(|v| decode(&v)).transpose()?.unwrap_or_default())
    }

    /// Up to `limit` objects after the map key `after` (exclusive), in map order, with their map keys:
    /// the pages of a walk over every object of every bucket.
    pub fn objects_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, ObjectRecord)>> {
        self.page_after(Ks::Objects, after, limit)
    }

    /// Like [`MetaReader::objects_after`], over noncurrent versions and delete markers.
    pub fn versions_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, VersionRecord)>> {
        self.page_after(Ks::Versions, after, limit)
    }

    /// Like [`MetaReader::objects_after`], over access keys.
    pub fn access_keys_after(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, hoard_protocol::AccessKeyRecord)>> {
        self.page_after(Ks::AccessKeys, after, limit)
    }

    /// Like [`MetaReader::objects_after`], over multipart uploads in progress.
    pub fn uploads_after(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, UploadRecord)>> {
        self.page_after(Ks::Uploads, after, limit)
    }

    fn page_after<T: hoard_protocol::Persisted>(
        &self,
        ks: Ks,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>> {
        let lower = match after {
            Some(a) => Bound::Excluded(a.to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for guard in self.store.ks(ks).range((lower, Bound::<Vec<u8>>::Unbounded)).take(limit) {
            let (k, v) = guard.into_inner()?;
            out.push((k.to_vec(), decode(&v)?));
        }
        Ok(out)
    }

    /// How objects (every version) and uploads in progress are stored: plaintext, SSE-S3 (by master key id)
    /// or SSE-C.
    /// Reads one consistent view of the whole store.
    pub fn census(&self) -> Result<Census> {
        let view = self.store.db.snapshot();
        let mut census = Census::default();
        for guard in view.iter(self.store.ks(Ks::Objects)) {
            let record: ObjectRecord = decode(&guard.into_inner()?.1)?;
            census.count(&record.encryption, false);
        }
        for guard in view.iter(self.store.ks(Ks::Uploads)) {
            let upload: UploadRecord = decode(&guard.into_inner()?.1)?;
            census.count(&upload.encryption, true);
        }
        for guard in view.iter(self.store.ks(Ks::Versions)) {
            match decode(&guard.into_inner()?.1)? {
                VersionRecord::Object(record) => {
                    census.count(&record.encryption, false);
                    census.noncurrent += 1;
                }
                VersionRecord::DeleteMarker(_) => census.delete_markers += 1,
            }
        }
        Ok(census)
    }

    /// How many segments of committed objects (every version) and uploaded parts have a shard on a disk of
    /// `node`.
    pub fn segments_on_node(&self, node: u64) -> Result<u64> {
        let view = self.store.db.snapshot();
        let on_node = |segment: &hoard_protocol::Segment| segment.layout.disks.iter().any(|d| d.node == node);
        let mut held = 0u64;
        for guard in view.iter(self.store.ks(Ks::Objects)) {
            let record: ObjectRecord = decode(&guard.into_inner()?.1)?;
            held += record.segments.iter().filter(|s| on_node(s)).count() as u64;
        }
        for guard in view.iter(self.store.ks(Ks::Versions)) {
            if let VersionRecord::Object(record) = decode(&guard.into_inner()?.1)? {
                held += record.segments.iter().filter(|s| on_node(s)).count() as u64;
            }
        }
        for guard in view.iter(self.store.ks(Ks::Parts)) {
            let part: hoard_protocol::PartRecord = decode(&guard.into_inner()?.1)?;
            held += u64::from(on_node(&part.segment));
        }
        Ok(held)
    }

    /// The nodes being drained.
    pub fn draining(&self) -> Result<std::collections::BTreeSet<hoard_protocol::NodeId>> {
        let set: Option<hoard_protocol::Draining> =
            self.store.ks(Ks::SmMeta).get(super::state::DRAINING)?.map(|v| decode(&v)).transpose()?;
        Ok(set.unwrap_or_default().nodes)
    }

    /// Every stale copy of a moved shard not yet forgotten.
    pub fn stale_copies(&self) -> Result<Vec<hoard_protocol::StaleCopy>> {
        let mut out = Vec::new();
        for guard in self.store.ks(Ks::SmMeta).prefix(super::keys::STALE_PREFIX) {
            out.push(decode(&guard.value()?)?);
        }
        Ok(out)
    }

    /// Those of `copies` that are recorded as they are (same move time).
    pub fn stale_copies_among(&self, copies: &[hoard_protocol::StaleCopy]) -> Result<Vec<hoard_protocol::StaleCopy>> {
        let mut out = Vec::new();
        for copy in copies {
            let key = super::keys::stale_key(copy.segment, copy.shard, copy.disk);
            let stored: Option<hoard_protocol::StaleCopy> =
                self.store.ks(Ks::SmMeta).get(key)?.map(|v| decode(&v)).transpose()?;
            if stored.as_ref() == Some(copy) {
                out.push(*copy);
            }
        }
        Ok(out)
    }

    /// Whether shard `shard` of `segment` moved away from `disk` (its copy there is stale).
    pub fn is_stale(&self, segment: SegmentId, shard: u8, disk: hoard_protocol::DiskRef) -> Result<bool> {
        Ok(self.store.ks(Ks::SmMeta).contains_key(super::keys::stale_key(segment, shard, disk))?)
    }

    /// Up to `limit` records after `cursor` with the segments they name (objects, noncurrent versions, then
    /// parts of uploads in progress), and where the walk goes on: the pages of a walk over every segment a record names.
    pub fn holdings_after(&self, cursor: &WalkCursor, limit: usize) -> Result<(Vec<Holding>, WalkCursor)> {
        let mut out = Vec::new();
        let next = match cursor {
            WalkCursor::Objects(after) => {
                let page: Vec<(Vec<u8>, ObjectRecord)> = self.page_after(Ks::Objects, after.as_deref(), limit)?;
                for (_, record) in &page {
                    for segment in &record.segments {
                        let holder = SegmentHolder::Object { bucket: record.bucket.clone(), key: record.key.clone() };
                        out.push(self.holding(holder, segment.clone())?);
                    }
                }
                match page.last() {
                    Some((key, _)) if page.len() == limit => WalkCursor::Objects(Some(key.clone())),
                    _ => WalkCursor::Versions(None),
                }
            }
            WalkCursor::Versions(after) => {
                let page: Vec<(Vec<u8>, VersionRecord)> = self.page_after(Ks::Versions, after.as_deref(), limit)?;
                for (_, version) in &page {
                    if let VersionRecord::Object(record) = version {
                        for segment in &record.segments {
                            out.push(self.holding(version_holder(record), segment.clone())?);
                        }
                    }
                }
                match page.last() {
                    Some((key, _)) if page.len() == limit => WalkCursor::Versions(Some(key.clone())),
                    _ => WalkCursor::Parts(None),
                }
            }
            WalkCursor::Parts(after) => {
                let page: Vec<(Vec<u8>, PartRecord)> = self.page_after(Ks::Parts, after.as_deref(), limit)?;
                for (key, part) in &page {
                    let (upload_id, part_number) = super::keys::split_part_key(key)?;
                    let holder = SegmentHolder::Part { upload_id: upload_id.to_string(), part_number };
                    out.push(self.holding(holder, part.segment.clone())?);
                }
                match page.last() {
                    Some((key, _)) if page.len() == limit => WalkCursor::Parts(Some(key.clone())),
                    _ => WalkCursor::End,
                }
            }
            WalkCursor::End => WalkCursor::End,
        };
        Ok((out, next))
    }

    fn holding(&self, holder: SegmentHolder, segment: Segment) -> Result<Holding> {
        let refs = match self.store.ks(Ks::SegRefs).get(segment_key(segment.id))? {
            Some(v) => decode(&v)?,
            None => 0,
        };
        Ok(Holding { holder, segment, refs })
    }

    /// Every record naming one of `wanted` (a walk over all records: for the few segments shared by copies).
    pub fn holders_of(&self, wanted: &HashSet<SegmentId>) -> Result<BTreeMap<SegmentId, Vec<SegmentHolder>>> {
        let mut out: BTreeMap<SegmentId, Vec<SegmentHolder>> = BTreeMap::new();
        self.walk_naming(wanted, |holder, segment| {
            out.entry(segment.id).or_default().push(holder());
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// The segment `id` as a record names it now (every record naming it places it alike), or `None` when no
    /// record does. A walk over all records: for repair, when a report's layout no longer holds.
    pub fn current_segment(&self, id: SegmentId) -> Result<Option<Segment>> {
        let mut found = None;
        self.walk_naming(&HashSet::from([id]), |_, segment| {
            found = Some(segment.clone());
            ControlFlow::Break(())
        })?;
        Ok(found)
    }

    /// Calls `visit` with each record's holder (made on demand) and its segment, for every segment in `wanted`
    /// that an object, a noncurrent version or an upload's part names, until it breaks.
    fn walk_naming(
        &self,
        wanted: &HashSet<SegmentId>,
        mut visit: impl FnMut(&dyn Fn() -> SegmentHolder, &Segment) -> ControlFlow<()>,
    ) -> Result<()> {
        if wanted.is_empty() {
            return Ok(());
        }
        let view = self.store.db.snapshot();
        for guard in view.iter(self.store.ks(Ks::Objects)) {
            let record: ObjectRecord = decode(&guard.into_inner()?.1)?;
            let holder = || SegmentHolder::Object { bucket: record.bucket.clone(), key: record.key.clone() };
            for segment in record.segments.iter().filter(|s| wanted.contains(&s.id)) {
                if visit(&holder, segment).is_break() {
                    return Ok(());
                }
            }
        }
        for guard in view.iter(self.store.ks(Ks::Versions)) {
            if let VersionRecord::Object(record) = decode(&guard.into_inner()?.1)? {
                let holder = || version_holder(&record);
                for segment in record.segments.iter().filter(|s| wanted.contains(&s.id)) {
                    if visit(&holder, segment).is_break() {
                        return Ok(());
                    }
                }
            }
        }
        for guard in view.iter(self.store.ks(Ks::Parts)) {
            let (key, value) = guard.into_inner()?;
            let part: PartRecord = decode(&value)?;
            if wanted.contains(&part.segment.id) {
                let (upload_id, part_number) = super::keys::split_part_key(&key)?;
                let holder = || SegmentHolder::Part { upload_id: upload_id.to_string(), part_number };
                if visit(&holder, &part.segment).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Whether a committed object, version or part still holds the segment.
    pub fn is_referenced(&self, id: SegmentId) -> Result<bool> {
        Ok(self.store.ks(Ks::SegRefs).contains_key(segment_key(id))?)
    }

    /// The node-local queue of segments waiting for repair.
    pub fn repair_queue(&self) -> super::RepairQueue {
        super::RepairQueue { store: self.store.clone() }
    }

    /// Every segment id some object or in-progress part references (for scrub: anything else on disk
    /// is an orphan).
    pub fn referenced_segments(&self) -> Result<HashSet<SegmentId>> {
        self.referenced_in(&self.store.db.snapshot())
    }

    fn referenced_in(&self, view: &impl Readable) -> Result<HashSet<SegmentId>> {
        let mut out = HashSet::new();
        for guard in view.iter(self.store.ks(Ks::SegRefs)) {
            out.insert(segment_id(&guard.key()?)?);
        }
        Ok(out)
    }

    /// The referenced segments and the segments queued as garbage, read from one consistent view: a
    /// segment moving between the two (a copy taking a queued segment back) is seen in exactly one.
    pub fn references_and_queued(&self) -> Result<(HashSet<SegmentId>, HashSet<SegmentId>)> {
        let view = self.store.db.snapshot();
        let referenced = self.referenced_in(&view)?;
        let mut queued = HashSet::new();
        for guard in view.iter(self.store.ks(Ks::Garbage)) {
            let segment: Segment = decode(&guard.value()?)?;
            queued.insert(segment.id);
        }
        Ok((referenced, queued))
    }

    /// Every segment of every committed object (every version), with the object naming it (scrub's
    /// verification walk). Parts of uploads in progress are not included.
    pub fn segments(&self) -> Result<Vec<CommittedSegment>> {
        let view = self.store.db.snapshot();
        let mut out = Vec::new();
        let mut add = |record: ObjectRecord| {
            for segment in record.segments {
                out.push(CommittedSegment {
                    bucket: record.bucket.clone(),
                    key: record.key.clone(),
                    version_id: record.version_id.clone(),
                    segment,
                });
            }
        };
        for guard in view.iter(self.store.ks(Ks::Objects)) {
            add(decode(&guard.into_inner()?.1)?);
        }
        for guard in view.iter(self.store.ks(Ks::Versions)) {
            if let VersionRecord::Object(record) = decode(&guard.into_inner()?.1)? {
                add(record);
            }
        }
        Ok(out)
    }

    /// Garbage segments queued at or before `older_than_ms`, oldest first.
    pub fn garbage(&self, older_than_ms: i64) -> Result<Vec<Segment>> {
        let mut end = time_key(older_than_ms).to_vec();
        end.extend_from_slice(&[0xFF; 16]);
        let mut out = Vec::new();
        for guard in self.store.ks(Ks::Garbage).range(..=end) {
            out.push(decode(&guard.value()?)?);
        }
        Ok(out)
    }

    /// The log id the state machine has applied up to.
    pub fn last_applied(&self) -> Result<Option<LogId<u64>>> {
        Ok(self.store.ks(Ks::SmMeta).get(LAST_APPLIED)?.map(|v| decode(&v)).transpose()?)
    }
}

/// How a noncurrent version is named as a segment's holder.
fn version_holder(record: &ObjectRecord) -> SegmentHolder {
    SegmentHolder::Version {
        bucket: record.bucket.clone(),
        key: record.key.clone(),
        version_id: record.public_version_id().to_string(),
    }
}

/// Where a walk over every segment a record names is (see [`MetaReader::holdings_after`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkCursor {
    /// In the objects, after this map key.
    Objects(Option<Vec<u8>>),
    /// In the noncurrent versions, after this map key.
    Versions(Option<Vec<u8>>),
    /// In the parts of uploads in progress, after this map key.
    Parts(Option<Vec<u8>>),
    End,
}

/// A segment as one record names it, and how many records name it.
#[derive(Debug, Clone)]
pub struct Holding {
    pub holder: SegmentHolder,
    pub segment: Segment,
    pub refs: u32,
}

#[cfg(test)]
mod tests {
    use hoard_protocol::MetaCommand;
    use hoard_protocol::MetaResponse;

    use super::super::test_support::*;
    use super::*;

    async fn node_with(dir: &std::path::Path, bucket_name: &str, keys: &[&str]) -> TestNode {
        let node = TestNode::start(dir, config()).await;
        node.write(bucket(bucket_name)).await;
        for (i, key) in keys.iter().enumerate() {
            node.write(put(bucket_name, key, i as u128 + 1, 1)).await;
        }
        node
    }

    fn query(prefix: &str, delimiter: Option<&str>, start_after: Option<&str>, max_keys: usize) -> ListQuery {
        ListQuery {
            prefix: prefix.into(),
            delimiter: delimiter.map(Into::into),
            start_after: start_after.map(Into::into),
            max_keys,
        }
    }

    fn keys(page: &ListPage) -> Vec<&str> {
        page.objects.iter().map(|o| o.key.as_str()).collect()
    }

    const TREE: &[&str] = &["a/1", "a/2", "a/b/3", "b/1", "c", "d/x/y", "d/z", "e"];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing_filters_by_prefix_in_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with(dir.path(), "b", TREE).await;
        let page = node.reader.list_objects("b", &query("a/", None, None, 100)).unwrap();
        assert_eq!(keys(&page), ["a/1", "a/2", "a/b/3"]);
        assert!(!page.is_truncated);
        assert_eq!(page.next_marker, None);
        let all = node.reader.list_objects("b", &query("", None, None, 100)).unwrap();
        assert_eq!(keys(&all), TREE);
        assert!(node.reader.list_objects("b", &query("zzz", None, None, 100)).unwrap().objects.is_empty());
        assert_eq!(node.reader.list_objects("b", &query("", None, None, 0)).unwrap(), ListPage::default());
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delimiter_rolls_keys_up_into_common_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with(dir.path(), "b", TREE).await;
        let top = node.reader.list_objects("b", &query("", Some("/"), None, 100)).unwrap();
        assert_eq!(keys(&top), ["c", "e"]);
        assert_eq!(top.common_prefixes, ["a/", "b/", "d/"]);
        let nested = node.reader.list_objects("b", &query("d/", Some("/"), None, 100)).unwrap();
        assert_eq!(keys(&nested), ["d/z"]);
        assert_eq!(nested.common_prefixes, ["d/x/"]);
        let multi_char = node.reader.list_objects("b", &query("", Some("/b/"), None, 100)).unwrap();
        assert_eq!(multi_char.common_prefixes, ["a/b/"]);
        assert_eq!(keys(&multi_char).len(), TREE.len() - 1);
        let empty_delimiter = node.reader.list_objects("b", &query("", Some(""), None, 100)).unwrap();
        assert_eq!(keys(&empty_delimiter), TREE, "an empty delimiter rolls nothing up");
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn start_after_skips_keys_and_rolled_up_prefixes_already_returned() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with(dir.path(), "b", TREE).await;
        let page = node.reader.list_objects("b", &query("", None, Some("b/1"), 100)).unwrap();
        assert_eq!(keys(&page), ["c", "d/x/y", "d/z", "e"]);
        let inside_prefix = node.reader.list_objects("b", &query("", Some("/"), Some("a/1"), 100)).unwrap();
        assert_eq!(inside_prefix.common_prefixes, ["b/", "d/"], "a/ sorts at or before the marker");
        let before_prefix = node.reader.list_objects("b", &query("d/", None, Some("a"), 100)).unwrap();
        assert_eq!(keys(&before_prefix), ["d/x/y", "d/z"]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_keys_truncates_and_the_marker_pages_through_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with(dir.path(), "b", TREE).await;
        let first = node.reader.list_objects("b", &query("", Some("/"), None, 2)).unwrap();
        assert_eq!(first.common_prefixes, ["a/", "b/"]);
        assert!(first.is_truncated);
        assert_eq!(first.next_marker.as_deref(), Some("b/"));

        let mut seen = Vec::new();
        let mut marker = None;
        loop {
            let page = node.reader.list_objects("b", &query("", Some("/"), marker.as_deref(), 1)).unwrap();
            assert_eq!(page.objects.len() + page.common_prefixes.len(), 1);
            seen.extend(page.common_prefixes.iter().cloned());
            seen.extend(page.objects.iter().map(|o| o.key.clone()));
            if !page.is_truncated {
                break;
            }
            marker = page.next_marker;
        }
        assert_eq!(seen, ["a/", "b/", "c", "d/", "e"]);

        let exact = node.reader.list_objects("b", &query("a/", None, None, 3)).unwrap();
        assert_eq!(keys(&exact).len(), 3);
        assert!(!exact.is_truncated, "nothing is left after exactly max_keys entries");
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_common_prefix_over_many_keys_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..50).map(|i| format!("logs/{i:02}")).chain(["z".to_string()]).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let node = node_with(dir.path(), "b", &refs).await;
        let page = node.reader.list_objects("b", &query("", Some("/"), None, 2)).unwrap();
        assert_eq!(page.common_prefixes, ["logs/"]);
        assert_eq!(keys(&page), ["z"]);
        assert!(!page.is_truncated);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buckets_whose_names_share_a_prefix_never_see_each_others_keys() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with(dir.path(), "a", &["k1"]).await;
        node.write(bucket("ab")).await;
        node.write(put("ab", "k2", 50, 1)).await;
        // The smallest key there is (keys are never empty): it sorts right after bucket "ab"'s prefix.
        node.write(put("ab", "\u{1}", 51, 1)).await;
        let a = node.reader.list_objects("a", &query("", None, None, 100)).unwrap();
        assert_eq!(keys(&a), ["k1"]);
        let ab = node.reader.list_objects("ab", &query("", None, None, 100)).unwrap();
        assert_eq!(keys(&ab), ["\u{1}", "k2"]);
        assert_eq!(node.reader.object("a", "bk2").unwrap(), None);
        node.write(create_upload("ab", "u", "id")).await;
        let uploads = node.reader.list_uploads("a", &UploadQuery { max_uploads: 10, ..Default::default() }).unwrap();
        assert!(uploads.uploads.is_empty());
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_list_in_key_then_id_order_with_markers_and_rollups() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), config()).await;
        node.write(bucket("b")).await;
        for (key, id) in [("k", "u2"), ("k", "u1"), ("k/x", "u3"), ("dir/a", "u4"), ("dir/b", "u5"), ("l", "u6")] {
            assert_eq!(node.write(create_upload("b", key, id)).await, MetaResponse::Ok);
        }
        let ids = |page: &UploadPage| page.uploads.iter().map(|u| u.upload_id.clone()).collect::<Vec<_>>();
        let q = |key_marker: Option<&str>, id_marker: Option<&str>, max| UploadQuery {
            prefix: String::new(),
            delimiter: None,
            key_marker: key_marker.map(Into::into),
            upload_id_marker: id_marker.map(Into::into),
            max_uploads: max,
        };
        let all = node.reader.list_uploads("b", &q(None, None, 100)).unwrap();
        assert_eq!(ids(&all), ["u4", "u5", "u1", "u2", "u3", "u6"]);

        let first = node.reader.list_uploads("b", &q(None, None, 3)).unwrap();
        assert!(first.is_truncated);
        assert_eq!(first.next_key_marker.as_deref(), Some("k"));
        assert_eq!(first.next_upload_id_marker.as_deref(), Some("u1"));
        let rest = node.reader.list_uploads("b", &q(Some("k"), Some("u1"), 100)).unwrap();
        assert_eq!(ids(&rest), ["u2", "u3", "u6"]);
        let after_key = node.reader.list_uploads("b", &q(Some("k"), None, 100)).unwrap();
        assert_eq!(ids(&after_key), ["u3", "u6"], "without an id marker every upload of the marker key is skipped");

        let rolled = UploadQuery { delimiter: Some("/".into()), ..q(None, None, 100) };
        let page = node.reader.list_uploads("b", &rolled).unwrap();
        assert_eq!(page.common_prefixes, ["dir/", "k/"]);
        assert_eq!(ids(&page), ["u1", "u2", "u6"]);
        let prefixed = UploadQuery { prefix: "dir/".into(), ..q(None, None, 100) };
        assert_eq!(ids(&node.reader.list_uploads("b", &prefixed).unwrap()), ["u4", "u5"]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_page_by_part_number_after_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), config()).await;
        node.write(bucket("b")).await;
        node.write(create_upload("b", "k", "u1")).await;
        node.write(create_upload("b", "k", "u10")).await;
        for number in [1, 2, 10, 300] {
            node.write(commit_part("b", "k", "u1", number, number as u128)).await;
        }
        node.write(commit_part("b", "k", "u10", 5, 500)).await;
        let numbers = |parts: &[PartRecord]| parts.iter().map(|p| p.part_number).collect::<Vec<_>>();
        let (page, truncated) = node.reader.parts("u1", 0, 2).unwrap();
        assert_eq!((numbers(&page), truncated), (vec![1, 2], true));
        let (page, truncated) = node.reader.parts("u1", 2, 2).unwrap();
        assert_eq!((numbers(&page), truncated), (vec![10, 300], false));
        let (page, truncated) = node.reader.parts("u1", u32::MAX, 2).unwrap();
        assert_eq!((page.len(), truncated), (0, false));
        assert_eq!(numbers(&node.reader.all_parts("u1").unwrap()), [1, 2, 10, 300], "u10's parts are not u1's");
        assert_eq!(numbers(&node.reader.all_parts("u10").unwrap()), [5]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buckets_are_listed_by_name_and_read_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), config()).await;
        for name in ["zeta", "alpha", "mid"] {
            node.write(bucket(name)).await;
        }
        let names: Vec<String> = node.reader.buckets().unwrap().into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
        assert!(node.reader.bucket("mid").unwrap().is_some());
        assert!(node.reader.bucket("nope").unwrap().is_none());
        assert_eq!(node.write(MetaCommand::DeleteBucket { name: "mid".into() }).await, MetaResponse::Ok);
        assert!(node.reader.bucket("mid").unwrap().is_none());
        node.stop().await;
    }
}
