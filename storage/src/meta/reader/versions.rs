//! Reads of versioned buckets: a bucket's versioning, one version by id, a key's latest version, and
//! ListObjectVersions.
//!
//! Invariants (besides the parent module's):
//! - A listing merges two walks in key order, the current objects (`objects`) and the other versions
//!   (`versions`, newest first per key); for one key the current object comes first. Every page reads one
//!   database snapshot.
//! - A key's delete marker is its latest version exactly when the key has no current object and the marker
//!   is its newest version (see `state::versions`).
//! - A page that starts inside a key (key and version-id markers) never calls that key's versions latest: the
//!   latest one was on an earlier page.

use std::ops::Bound;

use fjall::Iter;
use fjall::Readable;
use fjall::UserValue;
use hoard_protocol::decode;
use hoard_protocol::ObjectRecord;
use hoard_protocol::VersionRecord;
use hoard_protocol::VersioningStatus;

use super::classify;
use super::max_lower;
use super::MetaReader;
use super::Step;
use crate::meta::keys::bucket_conf_key;
use crate::meta::keys::bucket_end;
use crate::meta::keys::bucket_prefix;
use crate::meta::keys::object_key;
use crate::meta::keys::prefix_successor;
use crate::meta::keys::split_version_key;
use crate::meta::keys::utf8;
use crate::meta::keys::version_idx_key;
use crate::meta::keys::versions_prefix;
use crate::meta::keys::VERSIONING;
use crate::meta::Ks;
use crate::meta::Result;

/// A ListObjectVersions request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionQuery {
    pub prefix: String,
    /// An empty delimiter is no delimiter.
    pub delimiter: Option<String>,
    /// Versions of keys after this one, or of this key after `version_id_marker`.
    pub key_marker: Option<String>,
    /// A version id as clients name it (`null` included).
    pub version_id_marker: Option<String>,
    pub max_keys: usize,
}

/// One version in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    pub version: VersionRecord,
    /// Whether it is its key's current version.
    pub is_latest: bool,
}

/// One page of ListObjectVersions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPage {
    pub versions: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// When truncated: the key (or common prefix) of the last entry returned.
    pub next_key_marker: Option<String>,
    /// When truncated and the last entry was a version: its id as clients name it.
    pub next_version_id_marker: Option<String>,
}

/// A walk over one keyspace that can look at its next pair before taking it.
struct Walk {
    iter: Iter,
    head: Option<(Vec<u8>, UserValue)>,
}

impl Walk {
    fn new(iter: Iter) -> Walk {
        Walk { iter, head: None }
    }

    fn peek(&mut self) -> Result<Option<&(Vec<u8>, UserValue)>> {
        if self.head.is_none() {
            if let Some(guard) = self.iter.next() {
                let (k, v) = guard.into_inner()?;
                self.head = Some((k.to_vec(), v));
            }
        }
        Ok(self.head.as_ref())
    }

    fn take(&mut self) -> Option<(Vec<u8>, UserValue)> {
        self.head.take()
    }
}

impl MetaReader {
    /// The bucket's versioning status; `None` for a bucket that never had versioning turned on.
    pub fn versioning(&self, bucket: &str) -> Result<Option<VersioningStatus>> {
        let stored = self.store.ks(Ks::BucketConf).get(bucket_conf_key(bucket, VERSIONING))?;
        Ok(stored.map(|v| decode(&v)).transpose()?)
    }

    /// The version of `bucket/key` that clients name `public_id` (`null` included), current or not.
    pub fn version(&self, bucket: &str, key: &str, public_id: &str) -> Result<Option<VersionRecord>> {
        let view = self.store.db.snapshot();
        let current: Option<ObjectRecord> =
            view.get(self.store.ks(Ks::Objects), object_key(bucket, key))?.map(|v| decode(&v)).transpose()?;
        if let Some(current) = current.filter(|c| c.public_version_id() == public_id) {
            return Ok(Some(VersionRecord::Object(current)));
        }
        let Some(map_key) = view.get(self.store.ks(Ks::VersionIdx), version_idx_key(bucket, key, public_id))? else {
            return Ok(None);
        };
        Ok(view.get(self.store.ks(Ks::Versions), map_key)?.map(|v| decode(&v)).transpose()?)
    }

    /// The key's current version: its current object, else its newest version (then a delete marker), else
    /// none.
    pub fn latest(&self, bucket: &str, key: &str) -> Result<Option<VersionRecord>> {
        let view = self.store.db.snapshot();
        if let Some(current) = view.get(self.store.ks(Ks::Objects), object_key(bucket, key))? {
            return Ok(Some(VersionRecord::Object(decode(&current)?)));
        }
        match view.prefix(self.store.ks(Ks::Versions), versions_prefix(bucket, key)).next() {
            Some(guard) => Ok(Some(decode(&guard.value()?)?)),
            None => Ok(None),
        }
    }

    /// ListObjectVersions: every version of the keys beginning with `prefix`, by key, newest first, after the
    /// markers; with a delimiter, keys are rolled up into common prefixes as in [`MetaReader::list_objects`].
    /// At most `max_keys` entries (versions, delete markers and common prefixes together).
    #[tracing::instrument(level = "debug", skip(self, q), fields(prefix = %q.prefix))]
    pub fn list_versions(&self, bucket: &str, q: &VersionQuery) -> Result<VersionPage> {
        let mut page = VersionPage::default();
        if q.max_keys == 0 {
            return Ok(page);
        }
        let view = self.store.db.snapshot();
        let (objects_ks, versions_ks) = (self.store.ks(Ks::Objects), self.store.ks(Ks::Versions));
        let base = bucket_prefix(bucket).len();
        let end = Bound::Excluded(bucket_end(bucket));
        let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let start = Bound::Included(object_key(bucket, &q.prefix));
        let (mut objects_from, mut versions_from) = (start.clone(), start);
        // The key whose newest versions an earlier page returned.
        let mut inside: Option<String> = None;
        if let Some(marker) = &q.key_marker {
            objects_from = max_lower(objects_from, Bound::Excluded(object_key(bucket, marker)));
            let after_version = match q.version_id_marker.as_deref() {
                None => None,
                Some(id) => {
                    let current: Option<ObjectRecord> =
                        view.get(objects_ks, object_key(bucket, marker))?.map(|v| decode(&v)).transpose()?;
                    if current.is_some_and(|c| c.public_version_id() == id) {
                        Some(Bound::Included(versions_prefix(bucket, marker)))
                    } else {
                        let idx = view.get(self.store.ks(Ks::VersionIdx), version_idx_key(bucket, marker, id))?;
                        idx.map(|map_key| Bound::Excluded(map_key.to_vec()))
                    }
                }
            };
            let from = match after_version {
                Some(from) => {
                    inside = Some(marker.clone());
                    from
                }
                // After every version of the marker's key (also when its version marker is gone).
                None => {
                    let mut past = object_key(bucket, marker);
                    past.push(1);
                    Bound::Included(past)
                }
            };
            versions_from = max_lower(versions_from, from);
        }
        let mut objects = Walk::new(view.range(objects_ks, (objects_from, end.clone())));
        let mut versions = Walk::new(view.range(versions_ks, (versions_from, end.clone())));
        let mut current_of: Option<String> = None;
        let mut last: Option<(String, Option<String>)> = None;
        let mut emitted = 0;
        loop {
            let object_key_next = match objects.peek()? {
                Some((k, _)) => Some(utf8(&k[base..])?.to_string()),
                None => None,
            };
            let version_key_next = match versions.peek()? {
                Some((k, _)) => Some(split_version_key(&k[base..])?.to_string()),
                None => None,
            };
            let (key, from_objects) = match (object_key_next, version_key_next) {
                (None, None) => break,
                (Some(o), None) => (o, true),
                (None, Some(v)) => (v, false),
                (Some(o), Some(v)) if o <= v => (o, true),
                (Some(_), Some(v)) => (v, false),
            };
            if !key.starts_with(&q.prefix) {
                break;
            }
            if let Step::Prefix(common) = classify(&key, &q.prefix, delimiter) {
                let seen = q.key_marker.as_deref().is_some_and(|marker| common <= marker);
                if !seen {
                    if emitted == q.max_keys {
                        page.is_truncated = true;
                        break;
                    }
                    page.common_prefixes.push(common.to_string());
                    last = Some((common.to_string(), None));
                    emitted += 1;
                }
                let Some(next) = prefix_successor(&object_key(bucket, common)) else { break };
                objects = Walk::new(view.range(objects_ks, (Bound::Included(next.clone()), end.clone())));
                versions = Walk::new(view.range(versions_ks, (Bound::Included(next), end.clone())));
                continue;
            }
            if emitted == q.max_keys {
                page.is_truncated = true;
                break;
            }
            let entry = if from_objects {
                let Some((_, value)) = objects.take() else { break };
                current_of = Some(key.clone());
                VersionEntry { version: VersionRecord::Object(decode(&value)?), is_latest: true }
            } else {
                let Some((_, value)) = versions.take() else { break };
                let first_of_key = inside.as_deref() != Some(key.as_str());
                let is_latest = first_of_key && current_of.as_deref() != Some(key.as_str());
                inside = Some(key.clone());
                VersionEntry { version: decode(&value)?, is_latest }
            };
            let id = hoard_protocol::public_version_id(entry.version.version_id()).to_string();
            page.versions.push(entry);
            last = Some((key, Some(id)));
            emitted += 1;
        }
        if page.is_truncated {
            if let Some((key, id)) = last {
                page.next_key_marker = Some(key);
                page.next_version_id_marker = id;
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use hoard_protocol::new_version_id;
    use hoard_protocol::DeleteMarker;
    use hoard_protocol::MetaCommand;
    use hoard_protocol::VersioningStatus;

    use super::*;
    use crate::meta::test_support::*;

    fn vid(n: u128) -> String {
        new_version_id(n, true)
    }

    async fn versioned_write(node: &TestNode, key: &str, n: u128) {
        let mut r = record("b", key, vec![segment(n, 0)]);
        r.version_id = vid(n);
        node.write(MetaCommand::CommitObject { record: r, now_ms: 10 }).await;
    }

    fn query(prefix: &str, delimiter: Option<&str>, markers: Option<(&str, Option<&str>)>, max: usize) -> VersionQuery {
        VersionQuery {
            prefix: prefix.into(),
            delimiter: delimiter.map(Into::into),
            key_marker: markers.map(|(k, _)| k.to_string()),
            version_id_marker: markers.and_then(|(_, v)| v.map(Into::into)),
            max_keys: max,
        }
    }

    fn ids(page: &VersionPage) -> Vec<(String, String)> {
        page.versions
            .iter()
            .map(|e| {
                (e.version.key().to_string(), hoard_protocol::public_version_id(e.version.version_id()).to_string())
            })
            .collect()
    }

    /// Keys `a/1` (versions 1, 2), `a/2` (3, then a delete marker 4), `b` (the null version 5, then 6), `c` (7).
    async fn store(dir: &std::path::Path) -> TestNode {
        let node = node_with_bucket(dir).await;
        let mut null = record("b", "b", vec![segment(5, 0)]);
        null.version_id = new_version_id(5, false);
        node.write(MetaCommand::CommitObject { record: null, now_ms: 10 }).await;
        node.write(MetaCommand::SetBucketVersioning { bucket: "b".into(), status: VersioningStatus::Enabled }).await;
        for (key, n) in [("a/1", 1), ("a/1", 2), ("a/2", 3), ("b", 6), ("c", 7)] {
            versioned_write(&node, key, n).await;
        }
        let marker = DeleteMarker { bucket: "b".into(), key: "a/2".into(), version_id: vid(4), last_modified_ms: 11 };
        node.write(MetaCommand::PutDeleteMarker { marker, now_ms: 11 }).await;
        node
    }

    fn all() -> Vec<(String, String)> {
        [
            ("a/1", vid(2)),
            ("a/1", vid(1)),
            ("a/2", vid(4)),
            ("a/2", vid(3)),
            ("b", vid(6)),
            ("b", "null".into()),
            ("c", vid(7)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn versions_list_by_key_newest_first_and_page_through_markers() {
        let dir = tempfile::tempdir().unwrap();
        let node = store(dir.path()).await;
        let page = node.reader.list_versions("b", &query("", None, None, 1000)).unwrap();
        assert_eq!(ids(&page), all());
        let latest: Vec<bool> = page.versions.iter().map(|e| e.is_latest).collect();
        assert_eq!(latest, [true, false, true, false, true, false, true]);
        assert!(page.versions[2].version.is_delete_marker());
        assert!(!page.is_truncated);

        // Pages of every size put the whole listing back together, each page starting where the last ended.
        for size in 1..=7 {
            let mut got = Vec::new();
            let mut markers: Option<(String, Option<String>)> = None;
            loop {
                let m = markers.as_ref().map(|(k, v)| (k.as_str(), v.as_deref()));
                let page = node.reader.list_versions("b", &query("", None, m, size)).unwrap();
                assert!(page.versions.len() <= size);
                got.extend(ids(&page));
                if !page.is_truncated {
                    break;
                }
                markers = Some((page.next_key_marker.clone().unwrap(), page.next_version_id_marker.clone()));
            }
            assert_eq!(got, all(), "pages of {size}");
        }
        // A page starting inside a key calls none of its versions latest.
        let page = node.reader.list_versions("b", &query("", None, Some(("a/1", Some(&vid(2)))), 1)).unwrap();
        assert_eq!(ids(&page), [("a/1".to_string(), vid(1))]);
        assert!(!page.versions[0].is_latest);
        // A key marker alone starts after every version of the key.
        let page = node.reader.list_versions("b", &query("", None, Some(("a/2", None)), 1000)).unwrap();
        assert_eq!(ids(&page), all()[4..]);
        // `null` as a version marker.
        let page = node.reader.list_versions("b", &query("", None, Some(("b", Some("null"))), 1000)).unwrap();
        assert_eq!(ids(&page), all()[6..]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn versions_roll_up_under_a_delimiter_and_filter_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let node = store(dir.path()).await;
        let page = node.reader.list_versions("b", &query("", Some("/"), None, 1000)).unwrap();
        assert_eq!(page.common_prefixes, ["a/"]);
        assert_eq!(ids(&page), all()[4..]);
        let page = node.reader.list_versions("b", &query("", Some("/"), None, 1)).unwrap();
        assert_eq!((page.common_prefixes.as_slice(), page.versions.len()), (&["a/".to_string()][..], 0));
        assert!(page.is_truncated);
        assert_eq!((page.next_key_marker.as_deref(), page.next_version_id_marker.as_deref()), (Some("a/"), None));
        let next = node.reader.list_versions("b", &query("", Some("/"), Some(("a/", None)), 1000)).unwrap();
        assert!(next.common_prefixes.is_empty(), "a common prefix is not repeated");
        assert_eq!(ids(&next), all()[4..]);
        let page = node.reader.list_versions("b", &query("a/", None, None, 1000)).unwrap();
        assert_eq!(ids(&page), all()[..4]);
        assert_eq!(node.reader.list_versions("b", &query("", None, None, 0)).unwrap(), VersionPage::default());
        assert!(node.reader.list_versions("b", &query("zz", None, None, 10)).unwrap().versions.is_empty());
        node.stop().await;
    }
}
