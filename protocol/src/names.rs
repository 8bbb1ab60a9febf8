//! The names that reach metadata, and the one check every command passes before it is proposed and again
//! before it is applied.
//!
//! Invariants:
//! - A command that passes [`MetaCommand::check`] can be stored: every key the state machine builds from
//!   it is far below the storage engine's key limit (64 KiB), and no name that another field follows in a
//!   stored key contains the 0x00 separator.
//! - The check reads only the command, so every node decides the same way on the same entry: applying
//!   is deterministic whether the command is applied or refused.
//! - The limits are S3's where S3 has one (object keys: 1 to 1024 bytes of UTF-8; bucket names: 3 to 63
//!   bytes), and generous bounds on what hoard generates itself (upload and version ids, key ids).

use std::fmt;

use crate::Encryption;
use crate::MetaCommand;
use crate::ObjectRecord;
use crate::RewrapTarget;
use crate::SegmentHolder;
use crate::StoredCredential;
use crate::UploadRecord;
use crate::WriteCondition;

/// S3's limit on an object key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// S3's limit on a bucket name.
pub const MAX_BUCKET_BYTES: usize = 63;
/// Upload ids, version ids and master-key ids are made by hoard (32 hex digits today); anything past this
/// did not come from hoard.
pub const MAX_ID_BYTES: usize = 128;
/// ETags (an MD5 in hex with a part count; a client's `If-Match` may say anything, so the bound is wide).
pub const MAX_TAG_BYTES: usize = 1024;
/// A master-key file path named by a rotation.
pub const MAX_PATH_BYTES: usize = 4096;
/// A node's address (`host:port`; a DNS name is at most 253 bytes).
pub const MAX_ADDR_BYTES: usize = 300;

/// Why a name cannot reach metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// An object key longer than [`MAX_KEY_BYTES`].
    KeyTooLong { len: usize },
    /// An empty object key.
    KeyEmpty,
    /// An object key containing U+0000.
    KeyHasNul,
    /// A bucket name that is empty, too long or holds U+0000.
    Bucket,
    /// An upload id hoard cannot have made.
    UploadId,
    /// Any other field (version id, ETag, key id, path) out of bounds.
    Field(&'static str),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::KeyTooLong { len } => {
                write!(f, "an object key of {len} bytes is longer than the limit of {MAX_KEY_BYTES}")
            }
            NameError::KeyEmpty => f.write_str("an object key must not be empty"),
            NameError::KeyHasNul => f.write_str("an object key must not contain the NUL character"),
            NameError::Bucket => write!(f, "a bucket name must be 1 to {MAX_BUCKET_BYTES} bytes without NUL"),
            NameError::UploadId => f.write_str("the upload id is not one this store issued"),
            NameError::Field(what) => write!(f, "the {what} is out of bounds"),
        }
    }
}

impl std::error::Error for NameError {}

/// An object key: 1 to 1024 bytes of UTF-8 (a `&str` is UTF-8 already), without U+0000.
pub fn check_key(key: &str) -> Result<(), NameError> {
    if key.is_empty() {
        return Err(NameError::KeyEmpty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(NameError::KeyTooLong { len: key.len() });
    }
    if key.contains('\0') {
        return Err(NameError::KeyHasNul);
    }
    Ok(())
}

/// A bucket name as metadata stores it. S3's full naming rules are checked where the name enters (the URL);
/// this is the bound every stored bucket name keeps.
pub fn check_bucket(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_BUCKET_BYTES || name.contains('\0') {
        return Err(NameError::Bucket);
    }
    Ok(())
}

/// An upload id: what hoard issues is non-empty, short and free of U+0000.
pub fn check_upload_id(id: &str) -> Result<(), NameError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.contains('\0') {
        return Err(NameError::UploadId);
    }
    Ok(())
}

/// An access key id: non-empty, bounded, without U+0000 (it is followed by a bucket name in stored keys).
pub fn check_access_key(id: &str) -> Result<(), NameError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.contains('\0') {
        return Err(NameError::Field("access key id"));
    }
    Ok(())
}

/// A version id as a client or a record names it: hoard's (at most [`MAX_ID_BYTES`]) or `null`.
pub fn check_version_id(id: &str) -> Result<(), NameError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(NameError::Field("version id"));
    }
    Ok(())
}

fn bounded(value: &str, max: usize, what: &'static str) -> Result<(), NameError> {
    if value.len() > max {
        return Err(NameError::Field(what));
    }
    Ok(())
}

fn check_encryption(encryption: &Encryption) -> Result<(), NameError> {
    match encryption {
        Encryption::SseS3 { key_id, .. } => bounded(key_id, MAX_ID_BYTES, "master key id"),
        _ => Ok(()),
    }
}

/// A stored credential's secret, in clear or sealed, at most [`MAX_KEY_BYTES`].
fn check_secret(credential: &StoredCredential) -> Result<(), NameError> {
    match credential {
        StoredCredential::Plain(c) => bounded(&c.secret_key, MAX_KEY_BYTES, "secret key"),
        StoredCredential::Sealed { key, secret, .. } => {
            check_encryption(key)?;
            if secret.len() > MAX_KEY_BYTES {
                return Err(NameError::Field("sealed secret key"));
            }
            Ok(())
        }
    }
}

fn check_record(record: &ObjectRecord) -> Result<(), NameError> {
    check_bucket(&record.bucket)?;
    check_key(&record.key)?;
    bounded(&record.version_id, MAX_ID_BYTES, "version id")?;
    bounded(&record.etag, MAX_TAG_BYTES, "ETag")?;
    check_encryption(&record.encryption)
}

fn check_upload(upload: &UploadRecord) -> Result<(), NameError> {
    check_bucket(&upload.bucket)?;
    check_key(&upload.key)?;
    check_upload_id(&upload.upload_id)?;
    check_encryption(&upload.encryption)
}

fn check_condition(condition: &WriteCondition) -> Result<(), NameError> {
    match condition {
        WriteCondition::Absent => Ok(()),
        WriteCondition::ETag(etag) => bounded(etag, MAX_TAG_BYTES, "ETag condition"),
    }
}

impl MetaCommand {
    /// Whether every name and bounded field of the command can be stored (see the module's invariants).
    pub fn check(&self) -> Result<(), NameError> {
        match self {
            MetaCommand::CreateBucket(bucket) => check_bucket(&bucket.name),
            MetaCommand::DeleteBucket { name } | MetaCommand::DeleteBucketAndUploads { name, .. } => check_bucket(name),
            MetaCommand::AdmitNode { addr, .. } => bounded(addr, MAX_ADDR_BYTES, "node address"),
            MetaCommand::SetBucketEncryption { bucket, .. } => check_bucket(bucket),
            MetaCommand::CommitObject { record, .. } => check_record(record),
            MetaCommand::CommitObjectIf { record, condition, .. } => {
                check_record(record)?;
                check_condition(condition)
            }
            MetaCommand::CommitCopy { record, source_bucket, source_key, source_version_id, .. } => {
                check_record(record)?;
                check_bucket(source_bucket)?;
                check_key(source_key)?;
                bounded(source_version_id, MAX_ID_BYTES, "source version id")
            }
            MetaCommand::DeleteObject { bucket, key, .. } => {
                check_bucket(bucket)?;
                check_key(key)
            }
            MetaCommand::CreateUpload(upload) => check_upload(upload),
            MetaCommand::CommitPart { bucket, key, upload_id, part, .. } => {
                check_bucket(bucket)?;
                check_key(key)?;
                check_upload_id(upload_id)?;
                bounded(&part.etag, MAX_TAG_BYTES, "part ETag")
            }
            MetaCommand::CompleteUpload { upload_id, record, .. } => {
                check_upload_id(upload_id)?;
                check_record(record)
            }
            MetaCommand::CompleteUploadIf { upload_id, record, condition, .. } => {
                check_upload_id(upload_id)?;
                check_record(record)?;
                check_condition(condition)
            }
            MetaCommand::AbortUpload { bucket, key, upload_id, .. } => {
                check_bucket(bucket)?;
                check_key(key)?;
                check_upload_id(upload_id)
            }
            MetaCommand::SetRootCredential(credential) => {
                bounded(&credential.access_key, MAX_ID_BYTES, "access key")?;
                bounded(&credential.secret_key, MAX_KEY_BYTES, "secret key")
            }
            MetaCommand::PutRootCredential { credential, .. } => {
                bounded(credential.access_key(), MAX_ID_BYTES, "access key")?;
                check_secret(credential)
            }
            MetaCommand::ForgetGarbage { .. }
            | MetaCommand::AddJoinToken { .. }
            | MetaCommand::RemoveNode { .. }
            | MetaCommand::ForgetStaleCopies { .. }
            | MetaCommand::SetDraining { .. } => Ok(()),
            MetaCommand::MoveShards { moves, .. } => {
                for m in moves {
                    for holder in &m.holders {
                        match holder {
                            SegmentHolder::Object { bucket, key } => {
                                check_bucket(bucket)?;
                                check_key(key)?;
                            }
                            SegmentHolder::Part { upload_id, .. } => check_upload_id(upload_id)?,
                            SegmentHolder::Version { bucket, key, version_id } => {
                                check_bucket(bucket)?;
                                check_key(key)?;
                                check_version_id(version_id)?;
                            }
                        }
                    }
                }
                Ok(())
            }
            MetaCommand::SetBucketVersioning { bucket, .. } => check_bucket(bucket),
            MetaCommand::PutAccessKey(record) => {
                check_access_key(record.credential.access_key())?;
                bounded(&record.name, MAX_ID_BYTES, "access key name")?;
                check_secret(&record.credential)
            }
            MetaCommand::DeleteAccessKey { access_key } | MetaCommand::SetKeyCreatesBuckets { access_key, .. } => {
                check_access_key(access_key)
            }
            MetaCommand::SetGrant { access_key, bucket, .. } => {
                check_access_key(access_key)?;
                check_bucket(bucket)
            }
            MetaCommand::SetBucketSetting { bucket, value, .. } => {
                check_bucket(bucket)?;
                value.as_deref().map_or(Ok(()), |v| bounded(v, crate::MAX_BUCKET_SETTING, "bucket setting"))
            }
            MetaCommand::CreateOwnedBucket { record, owner, settings } => {
                check_bucket(&record.name)?;
                owner.as_deref().map_or(Ok(()), check_access_key)?;
                if settings.len() > 4 {
                    return Err(NameError::Field("bucket settings"));
                }
                settings.iter().try_for_each(|(_, v)| bounded(v, crate::MAX_BUCKET_SETTING, "bucket setting"))
            }
            MetaCommand::Batch(commands) => {
                if commands.is_empty() || commands.len() > crate::MAX_BATCH_COMMANDS {
                    return Err(NameError::Field("batch"));
                }
                commands.iter().try_for_each(|c| match c {
                    MetaCommand::Batch(_) => Err(NameError::Field("batch")),
                    c => c.check(),
                })
            }
            MetaCommand::SetObjectAcl { bucket, key, version_id, acl } => {
                check_bucket(bucket)?;
                check_key(key)?;
                check_version_id(version_id)?;
                acl.as_deref().map_or(Ok(()), |v| bounded(v, crate::MAX_BUCKET_SETTING, "object ACL"))
            }
            MetaCommand::PutDeleteMarker { marker, .. } => {
                check_bucket(&marker.bucket)?;
                check_key(&marker.key)?;
                check_version_id(&marker.version_id)
            }
            MetaCommand::DeleteVersion { bucket, key, version_id, .. } => {
                check_bucket(bucket)?;
                check_key(key)?;
                check_version_id(version_id)
            }
            MetaCommand::EncryptAll { key_id } | MetaCommand::SetActiveKey { key_id } => {
                bounded(key_id, MAX_ID_BYTES, "master key id")
            }
            MetaCommand::StartRotation { to_key_id, key_file, .. } => {
                bounded(to_key_id, MAX_ID_BYTES, "master key id")?;
                bounded(key_file, MAX_PATH_BYTES, "key file path")
            }
            MetaCommand::RewrapBatch { to_key_id, rewraps, .. } => {
                bounded(to_key_id, MAX_ID_BYTES, "master key id")?;
                for rewrap in rewraps {
                    check_encryption(&rewrap.before)?;
                    check_encryption(&rewrap.after)?;
                    match &rewrap.target {
                        RewrapTarget::Object { bucket, key, version_id } => {
                            check_bucket(bucket)?;
                            check_key(key)?;
                            bounded(version_id, MAX_ID_BYTES, "version id")?;
                        }
                        RewrapTarget::Upload { bucket, key, upload_id } => {
                            check_bucket(bucket)?;
                            check_key(key)?;
                            check_upload_id(upload_id)?;
                        }
                        RewrapTarget::RootCredential => {}
                        RewrapTarget::AccessKey { access_key } => check_access_key(access_key)?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_1024_bytes_without_nul() {
        assert_eq!(check_key(""), Err(NameError::KeyEmpty));
        assert_eq!(check_key(&"a".repeat(MAX_KEY_BYTES)), Ok(()));
        assert_eq!(check_key(&"a".repeat(MAX_KEY_BYTES + 1)), Err(NameError::KeyTooLong { len: 1025 }));
        // 342 three-byte characters: 1026 bytes, though only 342 characters.
        assert_eq!(check_key(&"€".repeat(342)), Err(NameError::KeyTooLong { len: 1026 }));
        assert_eq!(check_key("a\0b"), Err(NameError::KeyHasNul));
        assert_eq!(check_key("dir/ünïcode key"), Ok(()));
    }

    #[test]
    fn a_delete_of_a_70_000_byte_key_is_refused() {
        let cmd = MetaCommand::DeleteObject { bucket: "b".into(), key: "k".repeat(70_000), now_ms: 1 };
        assert_eq!(cmd.check(), Err(NameError::KeyTooLong { len: 70_000 }));
    }

    #[test]
    fn upload_ids_and_buckets_are_bounded() {
        assert_eq!(check_upload_id(""), Err(NameError::UploadId));
        assert_eq!(check_upload_id(&"f".repeat(MAX_ID_BYTES + 1)), Err(NameError::UploadId));
        assert_eq!(check_upload_id("0123abcd"), Ok(()));
        assert_eq!(check_bucket(""), Err(NameError::Bucket));
        assert_eq!(check_bucket(&"b".repeat(64)), Err(NameError::Bucket));
        assert_eq!(check_bucket("photos"), Ok(()));
    }
}
