//! Applying access keys and their grants.
//!
//! Invariants (besides the parent module's):
//! - An access key id names one key: root's is never given to another, and a taken id is refused.
//! - `grants` (`bucket\0key → Grant`) and `key_grants` (`key\0bucket`) hold the same pairs, written and removed
//!   together; a grant of nothing is no entry. Deleting a key removes its grants; deleting a bucket removes the
//!   grants on it.
//! - A bucket's owner (`bucket_conf` `owner`) is an access key that held a full grant when the bucket was made
//!   in the same entry; a bucket without one is root's. Settings are stored as the S3 layer gave them, bounded
//!   by [`MAX_BUCKET_SETTING`] (checked again here: applying never trusts the proposer).

use hoard_protocol::encode;
use hoard_protocol::AccessKeyRecord;
use hoard_protocol::BucketRecord;
use hoard_protocol::BucketSetting;
use hoard_protocol::Grant;
use hoard_protocol::MetaResponse;
use hoard_protocol::MAX_BUCKET_SETTING;

use crate::meta::keys::bucket_conf_key;
use crate::meta::keys::bucket_prefix;
use crate::meta::keys::grant_key;
use crate::meta::keys::key_grant_key;
use crate::meta::keys::key_grants_prefix;
use crate::meta::keys::utf8;
use crate::meta::keys::OWNER;
use crate::meta::Ks;
use crate::meta::Result;

use super::txn::Txn;

pub(super) fn put_key(tx: &mut Txn<'_>, record: AccessKeyRecord) -> Result<MetaResponse> {
    let id = record.credential.access_key().to_string();
    let root = super::apply::stored_credential(tx)?;
    if root.is_some_and(|r| r.access_key() == id) || tx.exists(Ks::AccessKeys, id.as_bytes())? {
        return Ok(MetaResponse::AccessKeyExists);
    }
    if tx.scan_prefix(Ks::AccessKeys, &[])?.len() >= hoard_protocol::MAX_ACCESS_KEYS {
        return Ok(MetaResponse::Refused { reason: "the cluster holds as many access keys as it may".into() });
    }
    if let hoard_protocol::StoredCredential::Sealed { key, .. } = &record.credential {
        super::apply::note_wrapping_key(tx, key)?;
    }
    tx.put(Ks::AccessKeys, id.into_bytes(), encode(&record));
    Ok(MetaResponse::Ok)
}

pub(super) fn delete_key(tx: &mut Txn<'_>, access_key: &str) -> Result<MetaResponse> {
    if !tx.exists(Ks::AccessKeys, access_key.as_bytes())? {
        return Ok(MetaResponse::NoSuchAccessKey);
    }
    let prefix = key_grants_prefix(access_key);
    for entry in tx.scan_prefix(Ks::KeyGrants, &prefix)?.into_keys() {
        let bucket = utf8(&entry[prefix.len()..])?.to_string();
        tx.delete(Ks::Grants, grant_key(&bucket, access_key));
        tx.delete(Ks::KeyGrants, entry);
    }
    tx.delete(Ks::AccessKeys, access_key.as_bytes().to_vec());
    Ok(MetaResponse::Ok)
}

pub(super) fn set_grant(tx: &mut Txn<'_>, access_key: &str, bucket: &str, grant: Grant) -> Result<MetaResponse> {
    if !tx.exists(Ks::AccessKeys, access_key.as_bytes())? {
        return Ok(MetaResponse::NoSuchAccessKey);
    }
    if !tx.exists(Ks::Buckets, bucket.as_bytes())? {
        return Ok(MetaResponse::NoSuchBucket);
    }
    if grant.is_none() {
        tx.delete(Ks::Grants, grant_key(bucket, access_key));
        tx.delete(Ks::KeyGrants, key_grant_key(access_key, bucket));
    } else {
        tx.put(Ks::Grants, grant_key(bucket, access_key), encode(&grant));
        tx.put(Ks::KeyGrants, key_grant_key(access_key, bucket), Vec::new());
    }
    Ok(MetaResponse::Ok)
}

pub(super) fn set_bucket_setting(
    tx: &mut Txn<'_>,
    bucket: &str,
    setting: BucketSetting,
    value: Option<String>,
) -> Result<MetaResponse> {
    if !tx.exists(Ks::Buckets, bucket.as_bytes())? {
        return Ok(MetaResponse::NoSuchBucket);
    }
    let key = bucket_conf_key(bucket, setting.name());
    match value {
        Some(v) if v.len() > MAX_BUCKET_SETTING => return Ok(too_large()),
        Some(v) => tx.put(Ks::BucketConf, key, encode(&v)),
        None => tx.delete(Ks::BucketConf, key),
    }
    Ok(MetaResponse::Ok)
}

pub(super) fn create_owned_bucket(
    tx: &mut Txn<'_>,
    record: BucketRecord,
    owner: Option<String>,
    settings: Vec<(BucketSetting, String)>,
) -> Result<MetaResponse> {
    if tx.exists(Ks::Buckets, record.name.as_bytes())? {
        return Ok(MetaResponse::BucketAlreadyExists);
    }
    if let Some(owner) = &owner {
        if !tx.exists(Ks::AccessKeys, owner.as_bytes())? {
            return Ok(MetaResponse::NoSuchAccessKey);
        }
    }
    if settings.iter().any(|(_, v)| v.len() > MAX_BUCKET_SETTING) {
        return Ok(too_large());
    }
    let name = record.name.clone();
    tx.put(Ks::Buckets, name.as_bytes().to_vec(), encode(&record));
    if let Some(owner) = owner {
        let full = Grant { read: true, write: true, owner: true };
        tx.put(Ks::Grants, grant_key(&name, &owner), encode(&full));
        tx.put(Ks::KeyGrants, key_grant_key(&owner, &name), Vec::new());
        tx.put(Ks::BucketConf, bucket_conf_key(&name, OWNER), encode(&owner));
    }
    for (setting, value) in settings {
        tx.put(Ks::BucketConf, bucket_conf_key(&name, setting.name()), encode(&value));
    }
    Ok(MetaResponse::Ok)
}

fn too_large() -> MetaResponse {
    MetaResponse::Refused { reason: "a bucket setting is larger than hoard keeps".into() }
}

/// Removes every grant on `bucket` (it is being deleted).
pub(super) fn forget_bucket_grants(tx: &mut Txn<'_>, bucket: &str) -> Result<()> {
    let prefix = bucket_prefix(bucket);
    for entry in tx.scan_prefix(Ks::Grants, &prefix)?.into_keys() {
        let access_key = utf8(&entry[prefix.len()..])?.to_string();
        tx.delete(Ks::KeyGrants, key_grant_key(&access_key, bucket));
        tx.delete(Ks::Grants, entry);
    }
    Ok(())
}
