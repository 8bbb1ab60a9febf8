//! Applying access keys and their grants.
//!
//! Invariants (besides the parent module's):
//! - An access key id names one key: root's is never given to another, and a taken id is refused.
//! - `grants` (`bucket\0key → Grant`) and `key_grants` (`key\0bucket`) hold the same pairs, written and removed
//!   together; a grant of nothing is no entry. Deleting a key removes its grants; deleting a bucket removes the
//!   grants on it.

use hoard_protocol::encode;
use hoard_protocol::AccessKeyRecord;
use hoard_protocol::Grant;
use hoard_protocol::MetaResponse;

use crate::meta::keys::bucket_prefix;
use crate::meta::keys::grant_key;
use crate::meta::keys::key_grant_key;
use crate::meta::keys::key_grants_prefix;
use crate::meta::keys::utf8;
use crate::meta::Ks;
use crate::meta::Result;

use super::txn::Txn;

pub(super) fn put_key(tx: &mut Txn<'_>, record: AccessKeyRecord) -> Result<MetaResponse> {
    let id = record.credential.access_key().to_string();
    let root = super::apply::stored_credential(tx)?;
    if root.is_some_and(|r| r.access_key() == id) || tx.exists(Ks::AccessKeys, id.as_bytes())? {
        return Ok(MetaResponse::AccessKeyExists);
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
