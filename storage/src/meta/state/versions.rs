//! Applying versions: noncurrent objects and delete markers of versioned buckets.
//!
//! Invariants (besides the parent module's):
//! - A key's current object is in `objects`; every other version of it is in `versions`, newest first
//!   (`versions_prefix ++ !seq`, `seq` growing with every version filed there), and in `version_idx` under
//!   the version id clients name it by.
//! - A key has at most one null version (written while its bucket was not versioned, or was suspended),
//!   current or not: a new null version removes the old one.
//! - A key without a current object has, as its newest version if it has any, a delete marker (its current
//!   version). A removal that would leave an object newest makes that object current again.
//! - Filing a version away or bringing it back moves no segment reference (the record still names its
//!   segments); only removing a version drops them. So `segrefs` counts noncurrent versions too, and scrub
//!   never takes their shard files for orphans.
//! - Whether a write is the null version is decided by its proposer from the bucket's versioning status (the
//!   record's version id says which it is); applying reads only the id, so it is deterministic whatever the
//!   status is when the entry applies.

use hoard_protocol::decode;
use hoard_protocol::encode;
use hoard_protocol::public_version_id;
use hoard_protocol::ObjectRecord;
use hoard_protocol::VersionRecord;
use hoard_protocol::NULL_VERSION_ID;

use crate::meta::keys::object_key;
use crate::meta::keys::version_idx_key;
use crate::meta::keys::version_key;
use crate::meta::keys::versions_prefix;
use crate::meta::Ks;
use crate::meta::MetaError;
use crate::meta::Result;

use super::txn::Txn;

/// `sm_meta`: the last sequence number given to a filed version.
const VERSION_SEQ: &[u8] = b"version_seq";

/// A noncurrent version as stored: its `versions` key and its record.
pub(super) struct Filed {
    pub(super) map_key: Vec<u8>,
    pub(super) version: VersionRecord,
}

fn next_seq(tx: &mut Txn<'_>) -> Result<u64> {
    let last: u64 = tx.get_decoded(Ks::SmMeta, VERSION_SEQ)?.unwrap_or(0);
    let next = last.checked_add(1).ok_or_else(|| MetaError::Corrupt("version sequence overflows".into()))?;
    tx.put(Ks::SmMeta, VERSION_SEQ.to_vec(), encode(&next));
    Ok(next)
}

/// Files `version` as its key's newest noncurrent version.
pub(super) fn file_version(tx: &mut Txn<'_>, version: VersionRecord) -> Result<()> {
    let map_key = version_key(version.bucket(), version.key(), next_seq(tx)?);
    let public = public_version_id(version.version_id());
    tx.put(Ks::VersionIdx, version_idx_key(version.bucket(), version.key(), public), map_key.clone());
    tx.put(Ks::Versions, map_key, encode(&version));
    Ok(())
}

/// The noncurrent version of `bucket/key` that clients name `public_id`.
pub(super) fn noncurrent(tx: &Txn<'_>, bucket: &str, key: &str, public_id: &str) -> Result<Option<Filed>> {
    let Some(map_key) = tx.get(Ks::VersionIdx, &version_idx_key(bucket, key, public_id))? else {
        return Ok(None);
    };
    let version: Option<VersionRecord> = tx.get_decoded(Ks::Versions, &map_key)?;
    Ok(version.map(|version| Filed { map_key, version }))
}

/// Removes a noncurrent version for good: its segments lose a reference.
fn remove_filed(tx: &mut Txn<'_>, filed: &Filed, now_ms: i64) -> Result<()> {
    let version = &filed.version;
    if let VersionRecord::Object(o) = version {
        for segment in &o.segments {
            tx.decref(segment, now_ms)?;
        }
    }
    let public = public_version_id(version.version_id());
    tx.delete(Ks::VersionIdx, version_idx_key(version.bucket(), version.key(), public));
    tx.delete(Ks::Versions, filed.map_key.clone());
    Ok(())
}

/// Makes way for a new current version of `bucket/key` (an object, or a delete marker, `null` when it is the
/// null version): the current object is filed away, or removed when both it and the newcomer are the null
/// version; a noncurrent null version is removed when the newcomer is the null version. Returns the object
/// removed, if one was. The caller adds the newcomer's references first, so a shared segment never reaches 0.
pub(super) fn make_way(
    tx: &mut Txn<'_>,
    bucket: &str,
    key: &str,
    null: bool,
    now_ms: i64,
) -> Result<Option<ObjectRecord>> {
    let current_key = object_key(bucket, key);
    let current: Option<ObjectRecord> = tx.get_decoded(Ks::Objects, &current_key)?;
    let mut removed = None;
    if null {
        if let Some(filed) = noncurrent(tx, bucket, key, NULL_VERSION_ID)? {
            remove_filed(tx, &filed, now_ms)?;
            if let VersionRecord::Object(o) = filed.version {
                removed = Some(o);
            }
        }
    }
    if let Some(current) = current {
        tx.delete(Ks::Objects, current_key);
        if null && current.is_null_version() {
            for segment in &current.segments {
                tx.decref(segment, now_ms)?;
            }
            removed = Some(current);
        } else {
            file_version(tx, VersionRecord::Object(current))?;
        }
    }
    Ok(removed)
}

/// When `bucket/key` has no current object and its newest version is an object, that object becomes current.
pub(super) fn restore_newest(tx: &mut Txn<'_>, bucket: &str, key: &str) -> Result<()> {
    let current_key = object_key(bucket, key);
    if tx.exists(Ks::Objects, &current_key)? {
        return Ok(());
    }
    // A version key is `versions_prefix` and 8 bytes, and no object key holds 0x00: the prefix bounds exactly
    // this key's versions.
    let Some((map_key, bytes)) = tx.first_with_prefix(Ks::Versions, &versions_prefix(bucket, key))? else {
        return Ok(());
    };
    if let VersionRecord::Object(object) = decode(&bytes)? {
        tx.delete(Ks::VersionIdx, version_idx_key(bucket, key, object.public_version_id()));
        tx.delete(Ks::Versions, map_key);
        tx.put(Ks::Objects, current_key, encode(&object));
    }
    Ok(())
}

/// Removes the version of `bucket/key` clients name `public_id`, current or not; the newest remaining version
/// becomes current where the removed one was. Returns what was removed.
pub(super) fn delete_version(
    tx: &mut Txn<'_>,
    bucket: &str,
    key: &str,
    public_id: &str,
    now_ms: i64,
) -> Result<Option<VersionRecord>> {
    let current_key = object_key(bucket, key);
    let current: Option<ObjectRecord> = tx.get_decoded(Ks::Objects, &current_key)?;
    let removed = match current.filter(|c| c.public_version_id() == public_id) {
        Some(current) => {
            for segment in &current.segments {
                tx.decref(segment, now_ms)?;
            }
            tx.delete(Ks::Objects, current_key);
            VersionRecord::Object(current)
        }
        None => match noncurrent(tx, bucket, key, public_id)? {
            Some(filed) => {
                remove_filed(tx, &filed, now_ms)?;
                filed.version
            }
            None => return Ok(None),
        },
    };
    restore_newest(tx, bucket, key)?;
    Ok(Some(removed))
}

/// The object version of `bucket/key` whose stored id is `version_id`, current or not.
pub(super) fn find_object(tx: &Txn<'_>, bucket: &str, key: &str, version_id: &str) -> Result<Option<Found>> {
    let current: Option<ObjectRecord> = tx.get_decoded(Ks::Objects, &object_key(bucket, key))?;
    if let Some(current) = current.filter(|c| c.version_id == version_id) {
        return Ok(Some(Found::Current(current)));
    }
    Ok(match noncurrent(tx, bucket, key, public_version_id(version_id))? {
        Some(Filed { map_key, version: VersionRecord::Object(o) }) if o.version_id == version_id => {
            Some(Found::Filed { map_key, object: o })
        }
        _ => None,
    })
}

/// An object version and where it is stored.
pub(super) enum Found {
    Current(ObjectRecord),
    Filed { map_key: Vec<u8>, object: ObjectRecord },
}

impl Found {
    pub(super) fn object(&self) -> &ObjectRecord {
        match self {
            Found::Current(o) | Found::Filed { object: o, .. } => o,
        }
    }

    /// Stores `object` (a changed copy of this version's record) where this version is.
    pub(super) fn store(self, tx: &mut Txn<'_>, object: ObjectRecord) {
        match self {
            Found::Current(_) => tx.put(Ks::Objects, object_key(&object.bucket, &object.key), encode(&object)),
            Found::Filed { map_key, .. } => tx.put(Ks::Versions, map_key, encode(&VersionRecord::Object(object))),
        }
    }
}

#[cfg(test)]
mod tests {
    use hoard_protocol::new_version_id;
    use hoard_protocol::DeleteMarker;
    use hoard_protocol::Encryption;
    use hoard_protocol::MetaCommand;
    use hoard_protocol::MetaResponse;
    use hoard_protocol::SegmentId;
    use hoard_protocol::VersioningStatus;

    use crate::meta::test_support::*;
    use crate::meta::VersionQuery;

    use super::*;

    /// A write of `key` holding segment `segment`: versioned with id `v{n}` when `n` is given, else the null
    /// version.
    fn write(key: &str, segment_id: u128, n: Option<u128>) -> MetaCommand {
        let mut r = record("b", key, vec![segment(segment_id, 0)]);
        r.version_id = new_version_id(n.unwrap_or(segment_id), n.is_some());
        MetaCommand::CommitObject { record: r, now_ms: 10 }
    }

    fn vid(n: u128) -> String {
        new_version_id(n, true)
    }

    fn marker(key: &str, n: Option<u128>) -> MetaCommand {
        let version_id = new_version_id(n.unwrap_or(999), n.is_some());
        MetaCommand::PutDeleteMarker {
            marker: DeleteMarker { bucket: "b".into(), key: key.into(), version_id, last_modified_ms: 20 },
            now_ms: 20,
        }
    }

    fn delete_version(key: &str, id: &str) -> MetaCommand {
        MetaCommand::DeleteVersion { bucket: "b".into(), key: key.into(), version_id: id.into(), now_ms: 30 }
    }

    fn versioning(status: VersioningStatus) -> MetaCommand {
        MetaCommand::SetBucketVersioning { bucket: "b".into(), status }
    }

    /// `(key, id as clients see it, is delete marker, is latest)` of every version in the bucket.
    fn listed(node: &TestNode) -> Vec<(String, String, bool, bool)> {
        let q = VersionQuery { max_keys: 1000, ..VersionQuery::default() };
        let page = node.reader.list_versions("b", &q).unwrap();
        page.versions
            .into_iter()
            .map(|e| {
                let id = hoard_protocol::public_version_id(e.version.version_id()).to_string();
                (e.version.key().to_string(), id, e.version.is_delete_marker(), e.is_latest)
            })
            .collect()
    }

    fn row(key: &str, id: &str, marker: bool, latest: bool) -> (String, String, bool, bool) {
        (key.to_string(), id.to_string(), marker, latest)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn versioned_writes_keep_every_version_and_the_newest_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        assert_eq!(node.reader.versioning("b").unwrap(), None);
        assert_eq!(node.write(versioning(VersioningStatus::Enabled)).await, MetaResponse::Ok);
        assert_eq!(node.reader.versioning("b").unwrap(), Some(VersioningStatus::Enabled));
        for n in 1..=3 {
            let r = node.write(write("k", n, Some(n))).await;
            assert_eq!(r, MetaResponse::Replaced { previous: None }, "nothing is removed");
        }
        assert_eq!(node.reader.object("b", "k").unwrap().unwrap().version_id, vid(3));
        assert_eq!(
            listed(&node),
            [row("k", &vid(3), false, true), row("k", &vid(2), false, false), row("k", &vid(1), false, false)]
        );
        assert_eq!(node.reader.referenced_segments().unwrap(), [1, 2, 3].map(SegmentId).into());
        assert!(garbage_ids(&node).is_empty());
        let scrubbed: Vec<SegmentId> = node.reader.segments().unwrap().into_iter().map(|s| s.segment.id).collect();
        assert_eq!(scrubbed.len(), 3, "scrub verifies noncurrent versions too: {scrubbed:?}");
        let old = node.reader.version("b", "k", &vid(1)).unwrap().unwrap();
        assert!(matches!(old, VersionRecord::Object(o) if o.segments[0].id == SegmentId(1)));
        assert_eq!(node.reader.version("b", "k", "null").unwrap(), None);
        let census = node.reader.census().unwrap();
        assert_eq!((census.plain, census.noncurrent), (3, 2));
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delete_marker_hides_the_key_until_it_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(versioning(VersioningStatus::Enabled)).await;
        node.write(write("k", 1, Some(1))).await;
        assert_eq!(node.write(marker("k", Some(2))).await, MetaResponse::Replaced { previous: None });
        assert_eq!(node.reader.object("b", "k").unwrap(), None, "no current object");
        let latest = node.reader.latest("b", "k").unwrap().unwrap();
        assert!(latest.is_delete_marker() && latest.version_id() == vid(2));
        assert_eq!(listed(&node), [row("k", &vid(2), true, true), row("k", &vid(1), false, false)]);
        assert_eq!(
            node.reader
                .list_objects("b", &crate::meta::ListQuery { max_keys: 10, ..Default::default() })
                .unwrap()
                .objects
                .len(),
            0
        );
        // A second marker stacks on the first.
        node.write(marker("k", Some(3))).await;
        assert_eq!(listed(&node).len(), 3);
        // Deleting the markers brings the object back.
        let r = node.write(delete_version("k", &vid(3))).await;
        assert!(matches!(r, MetaResponse::VersionRemoved { removed: Some(v) } if v.is_delete_marker()));
        assert_eq!(node.reader.object("b", "k").unwrap(), None, "the older marker is current now");
        node.write(delete_version("k", &vid(2))).await;
        assert_eq!(node.reader.object("b", "k").unwrap().unwrap().version_id, vid(1));
        assert_eq!(listed(&node), [row("k", &vid(1), false, true)]);
        assert_eq!(node.reader.referenced_segments().unwrap(), [SegmentId(1)].into());
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_keeps_one_null_version() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        // Written before versioning: the null version.
        node.write(write("k", 1, None)).await;
        node.write(versioning(VersioningStatus::Enabled)).await;
        node.write(write("k", 2, Some(2))).await;
        assert_eq!(listed(&node), [row("k", &vid(2), false, true), row("k", "null", false, false)]);
        // Suspended: a new null version replaces the old one, wherever it is.
        node.write(versioning(VersioningStatus::Suspended)).await;
        let r = node.write(write("k", 3, None)).await;
        assert!(
            matches!(&r, MetaResponse::Replaced { previous: Some(p) } if p.segments[0].id == SegmentId(1)),
            "{r:?}"
        );
        assert_eq!(garbage_ids(&node), [SegmentId(1)]);
        assert_eq!(listed(&node), [row("k", "null", false, true), row("k", &vid(2), false, false)]);
        node.write(write("k", 4, None)).await;
        assert_eq!(garbage_ids(&node), [SegmentId(1), SegmentId(3)], "the current null version is replaced");
        // A null delete marker replaces the null version too.
        let r = node.write(marker("k", None)).await;
        assert!(
            matches!(&r, MetaResponse::Replaced { previous: Some(p) } if p.segments[0].id == SegmentId(4)),
            "{r:?}"
        );
        assert_eq!(listed(&node), [row("k", "null", true, true), row("k", &vid(2), false, false)]);
        let removed = node.write(delete_version("k", "null")).await;
        assert!(matches!(removed, MetaResponse::VersionRemoved { removed: Some(v) } if v.is_delete_marker()));
        assert_eq!(node.reader.object("b", "k").unwrap().unwrap().version_id, vid(2), "the versioned one is back");
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_versions_drops_their_segments_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(versioning(VersioningStatus::Enabled)).await;
        for n in 1..=3 {
            node.write(write("k", n, Some(n))).await;
        }
        let r = node.write(delete_version("k", &vid(2))).await;
        assert!(matches!(r, MetaResponse::VersionRemoved { removed: Some(_) }));
        assert_eq!(garbage_ids(&node), [SegmentId(2)]);
        assert_eq!(node.reader.object("b", "k").unwrap().unwrap().version_id, vid(3), "the current one stays");
        node.write(delete_version("k", &vid(3))).await;
        assert_eq!(node.reader.object("b", "k").unwrap().unwrap().version_id, vid(1), "the newest left is current");
        assert_eq!(node.write(delete_version("k", &vid(7))).await, MetaResponse::VersionRemoved { removed: None });
        assert_eq!(node.write(delete_version("nope", "null")).await, MetaResponse::VersionRemoved { removed: None });
        // A bucket with versions left (even only a delete marker) is not empty.
        node.write(delete_version("k", &vid(1))).await;
        node.write(marker("gone", Some(8))).await;
        let delete_bucket = MetaCommand::DeleteBucketAndUploads { name: "b".into(), now_ms: 40 };
        assert_eq!(node.write(delete_bucket.clone()).await, MetaResponse::BucketNotEmpty);
        node.write(delete_version("gone", &vid(8))).await;
        assert_eq!(node.write(delete_bucket).await, MetaResponse::Ok);
        assert!(node.reader.referenced_segments().unwrap().is_empty());
        // A bucket made again under the name starts unversioned.
        node.write(bucket("b")).await;
        assert_eq!(node.reader.versioning("b").unwrap(), None);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unversioned_delete_never_removes_a_versioned_write() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(write("k", 1, None)).await;
        // Versioning turned on and a version written after a delete was proposed as for an unversioned bucket.
        node.write(versioning(VersioningStatus::Enabled)).await;
        node.write(write("k", 2, Some(2))).await;
        let late = MetaCommand::DeleteObject { bucket: "b".into(), key: "k".into(), now_ms: 40 };
        assert_eq!(node.write(late).await, MetaResponse::PreconditionFailed);
        assert_eq!(node.reader.object("b", "k").unwrap().unwrap().version_id, vid(2), "nothing changed");
        assert_eq!(listed(&node).len(), 2);
        assert!(garbage_ids(&node).is_empty());
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_noncurrent_version_can_be_copied_and_rewrapped() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(versioning(VersioningStatus::Enabled)).await;
        let wrapped = |id: u8| hoard_protocol::WrappedKey { format: 1, data_id: [id; 16], wrapped: vec![id; 40] };
        let sse = |key_id: &str, id| Encryption::SseS3 { key_id: key_id.into(), key: wrapped(id) };
        let MetaCommand::CommitObject { record: mut first, now_ms } = write("src", 1, Some(1)) else { unreachable!() };
        first.encryption = sse("k1", 1);
        node.write(MetaCommand::CommitObject { record: first, now_ms }).await;
        node.write(write("src", 2, Some(2))).await;
        let start = MetaCommand::StartRotation { to_key_id: "k2".into(), key_file: "/k2".into(), now_ms: 45 };
        assert_eq!(node.write(start).await, MetaResponse::Ok);
        let rewrap = MetaCommand::RewrapBatch {
            to_key_id: "k2".into(),
            rewraps: vec![hoard_protocol::Rewrap {
                target: hoard_protocol::RewrapTarget::Object {
                    bucket: "b".into(),
                    key: "src".into(),
                    version_id: vid(1),
                },
                before: sse("k1", 1),
                after: sse("k2", 2),
            }],
            cursor: hoard_protocol::RotationCursor::Versions { after: None },
            now_ms: 46,
        };
        assert_eq!(node.write(rewrap).await, MetaResponse::Rewrapped { count: 1 });
        let rewrapped = node.reader.version("b", "src", &vid(1)).unwrap().unwrap();
        assert!(matches!(rewrapped, VersionRecord::Object(o) if o.encryption == sse("k2", 2)));
        let mut copy = record("b", "dst", vec![segment(1, 0)]);
        copy.version_id = vid(5);
        let cmd = MetaCommand::CommitCopy {
            record: copy,
            now_ms: 50,
            source_bucket: "b".into(),
            source_key: "src".into(),
            source_version_id: vid(1),
        };
        assert!(matches!(node.write(cmd).await, MetaResponse::Replaced { .. }));
        assert_eq!(node.reader.object("b", "dst").unwrap().unwrap().segments[0].id, SegmentId(1));
        // Deleting the source version leaves the copy's shared segment referenced.
        node.write(delete_version("src", &vid(1))).await;
        assert!(garbage_ids(&node).is_empty());
        assert!(node.reader.is_referenced(SegmentId(1)).unwrap());
        node.stop().await;
    }
}
