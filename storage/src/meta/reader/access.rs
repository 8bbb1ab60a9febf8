//! Reads of access keys and their grants.

use std::collections::BTreeMap;

use hoard_protocol::decode;
use hoard_protocol::AccessKeyRecord;
use hoard_protocol::BucketSetting;
use hoard_protocol::Grant;

use super::MetaReader;
use crate::meta::keys::bucket_conf_key;
use crate::meta::keys::bucket_prefix;
use crate::meta::keys::grant_key;
use crate::meta::keys::key_grants_prefix;
use crate::meta::keys::utf8;
use crate::meta::keys::OWNER;
use crate::meta::Ks;
use crate::meta::Result;

impl MetaReader {
    /// The access key of this id (root's is not one of them: see `root_credential`).
    pub fn access_key(&self, access_key: &str) -> Result<Option<AccessKeyRecord>> {
        Ok(self.store.ks(Ks::AccessKeys).get(access_key)?.map(|v| decode(&v)).transpose()?)
    }

    /// Every access key besides root, by id.
    pub fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        let mut out = Vec::new();
        for guard in self.store.ks(Ks::AccessKeys).iter() {
            out.push(decode(&guard.value()?)?);
        }
        Ok(out)
    }

    /// What `access_key` may do in `bucket` (nothing when it holds no grant there).
    pub fn grant(&self, bucket: &str, access_key: &str) -> Result<Grant> {
        let stored = self.store.ks(Ks::Grants).get(grant_key(bucket, access_key))?;
        Ok(stored.map(|v| decode(&v)).transpose()?.unwrap_or_default())
    }

    /// Every key holding a grant in `bucket`, with the grant.
    pub fn bucket_grants(&self, bucket: &str) -> Result<BTreeMap<String, Grant>> {
        let prefix = bucket_prefix(bucket);
        let mut out = BTreeMap::new();
        for guard in self.store.ks(Ks::Grants).prefix(&prefix) {
            let (key, value) = guard.into_inner()?;
            out.insert(utf8(&key[prefix.len()..])?.to_string(), decode(&value)?);
        }
        Ok(out)
    }

    /// The access key that owns `bucket`; `None` for root's buckets.
    pub fn bucket_owner(&self, bucket: &str) -> Result<Option<String>> {
        let stored = self.store.ks(Ks::BucketConf).get(bucket_conf_key(bucket, OWNER))?;
        Ok(stored.map(|v| decode(&v)).transpose()?)
    }

    /// One of the bucket's access settings, as it was set.
    pub fn bucket_setting(&self, bucket: &str, setting: BucketSetting) -> Result<Option<String>> {
        let stored = self.store.ks(Ks::BucketConf).get(bucket_conf_key(bucket, setting.name()))?;
        Ok(stored.map(|v| decode(&v)).transpose()?)
    }

    /// Every bucket where `access_key` holds a grant, with the grant; one consistent view.
    pub fn grants_of(&self, access_key: &str) -> Result<BTreeMap<String, Grant>> {
        use fjall::Readable as _;
        let view = self.store.db.snapshot();
        let prefix = key_grants_prefix(access_key);
        let mut out = BTreeMap::new();
        for guard in view.prefix(self.store.ks(Ks::KeyGrants), &prefix) {
            let key = guard.key()?;
            let bucket = utf8(&key[prefix.len()..])?.to_string();
            let grant = view.get(self.store.ks(Ks::Grants), grant_key(&bucket, access_key))?;
            out.insert(bucket, grant.map(|v| decode(&v)).transpose()?.unwrap_or_default());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use hoard_protocol::Credential;
    use hoard_protocol::MetaCommand;
    use hoard_protocol::MetaResponse;
    use hoard_protocol::StoredCredential;

    use super::*;
    use crate::meta::test_support::*;

    fn key(id: &str) -> MetaCommand {
        MetaCommand::PutAccessKey(AccessKeyRecord {
            name: format!("{id} app"),
            credential: StoredCredential::Plain(Credential { access_key: id.into(), secret_key: "s".into() }),
            created_ms: 1,
            may_create_buckets: false,
        })
    }

    fn grant(id: &str, bucket: &str, read: bool, write: bool) -> MetaCommand {
        MetaCommand::SetGrant {
            access_key: id.into(),
            bucket: bucket.into(),
            grant: Grant { read, write, owner: false },
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_hold_grants_that_go_with_the_key_or_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(bucket("other")).await;
        assert_eq!(node.write(key("AK1")).await, MetaResponse::Ok);
        assert_eq!(node.write(key("AK1")).await, MetaResponse::AccessKeyExists, "an id names one key");
        assert_eq!(node.write(key("AK2")).await, MetaResponse::Ok);
        assert_eq!(node.write(grant("AK1", "b", true, false)).await, MetaResponse::Ok);
        assert_eq!(node.write(grant("AK1", "other", true, true)).await, MetaResponse::Ok);
        assert_eq!(node.write(grant("AK2", "b", false, true)).await, MetaResponse::Ok);
        assert_eq!(node.write(grant("nobody", "b", true, true)).await, MetaResponse::NoSuchAccessKey);
        assert_eq!(node.write(grant("AK1", "missing", true, true)).await, MetaResponse::NoSuchBucket);
        let r = &node.reader;
        assert_eq!(r.access_keys().unwrap().len(), 2);
        assert_eq!(r.access_key("AK1").unwrap().unwrap().name, "AK1 app");
        assert_eq!(r.grant("b", "AK1").unwrap(), Grant { read: true, write: false, owner: false });
        assert_eq!(r.grant("b", "AK3").unwrap(), Grant::default(), "no grant is no access");
        assert_eq!(r.grants_of("AK1").unwrap().keys().collect::<Vec<_>>(), ["b", "other"]);

        // A grant of nothing removes it.
        node.write(grant("AK1", "other", false, false)).await;
        assert_eq!(r.grants_of("AK1").unwrap().keys().collect::<Vec<_>>(), ["b"]);
        // Deleting the bucket takes its grants.
        assert_eq!(
            node.write(MetaCommand::DeleteBucketAndUploads { name: "b".into(), now_ms: 5 }).await,
            MetaResponse::Ok
        );
        assert!(r.grants_of("AK1").unwrap().is_empty() && r.grants_of("AK2").unwrap().is_empty());
        // Deleting a key takes its grants.
        node.write(grant("AK2", "other", true, false)).await;
        assert_eq!(node.write(MetaCommand::DeleteAccessKey { access_key: "AK2".into() }).await, MetaResponse::Ok);
        assert_eq!(r.grant("other", "AK2").unwrap(), Grant::default());
        assert_eq!(r.access_key("AK2").unwrap(), None);
        let again = MetaCommand::DeleteAccessKey { access_key: "AK2".into() };
        assert_eq!(node.write(again).await, MetaResponse::NoSuchAccessKey);
        node.stop().await;
    }
}
