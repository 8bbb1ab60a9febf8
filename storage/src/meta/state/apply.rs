//! Applying one command to the state (see the invariants in the parent module).

use std::collections::BTreeMap;

use hoard_protocol::decode;
use hoard_protocol::encode;
use hoard_protocol::BucketRecord;
use hoard_protocol::Credential;
use hoard_protocol::Encryption;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeRecord;
use hoard_protocol::ObjectRecord;
use hoard_protocol::PartRecord;
use hoard_protocol::Rewrap;
use hoard_protocol::RewrapTarget;
use hoard_protocol::Rotation;
use hoard_protocol::RotationCursor;
use hoard_protocol::StoredCredential;
use hoard_protocol::UploadRecord;
use hoard_protocol::VersionRecord;
use hoard_protocol::WriteCondition;
use hoard_protocol::MAX_JOIN_TOKENS;

use crate::meta::keys::bucket_conf_key;
use crate::meta::keys::bucket_prefix;
use crate::meta::keys::object_key;
use crate::meta::keys::part_key;
use crate::meta::keys::part_prefix;
use crate::meta::keys::segment_key;
use crate::meta::keys::upload_key;
use crate::meta::keys::VERSIONING;
use crate::meta::Ks;
use crate::meta::Result;

use super::root_credential_from;
use super::txn::Txn;
use super::versions;
use super::ROOT_CREDENTIAL;
use super::ROOT_CREDENTIAL_V2;

pub(super) fn apply_command(tx: &mut Txn<'_>, command: MetaCommand) -> Result<MetaResponse> {
    Ok(match command {
        // `apply_total` applies batches; one inside a batch is refused by the command check before this.
        MetaCommand::Batch(_) => {
            return Err(crate::meta::MetaError::Refused("a batch of commands inside a batch".into()))
        }
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
        MetaCommand::SetActiveKey { key_id } => {
            let mut settings = tx.encryption_settings()?;
            if settings.active_key_id.is_none() {
                settings.active_key_id = Some(key_id);
                tx.set_encryption_settings(&settings);
            }
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
            rotation.rewrapped = rotation.rewrapped.saturating_add(count);
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
            } else if holds_objects(tx, &name)? || tx.any_with_prefix(Ks::Uploads, &bucket_prefix(&name))? {
                MetaResponse::BucketNotEmpty
            } else {
                forget_bucket(tx, name)?;
                MetaResponse::Ok
            }
        }
        MetaCommand::DeleteBucketAndUploads { name, now_ms } => {
            if !tx.exists(Ks::Buckets, name.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else if holds_objects(tx, &name)? {
                MetaResponse::BucketNotEmpty
            } else {
                for (upload, value) in tx.scan_prefix(Ks::Uploads, &bucket_prefix(&name))? {
                    let record: UploadRecord = decode(&value)?;
                    for (key, part) in upload_parts(tx, &record.upload_id)?.into_values() {
                        tx.decref(&part.segment, now_ms)?;
                        tx.delete(Ks::Parts, key);
                    }
                    tx.delete(Ks::Uploads, upload);
                }
                forget_bucket(tx, name)?;
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
        MetaCommand::CommitCopy { mut record, now_ms, source_bucket, source_key, source_version_id } => {
            if !tx.exists(Ks::Buckets, record.bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else {
                if let Some(source) = versions::find_object(tx, &source_bucket, &source_key, &source_version_id)? {
                    // The shared segments' shards may have moved since the copy read its source.
                    take_layouts(&mut record.segments, &source.object().segments);
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
                // A delete of an unversioned bucket's key removes its null version. When a versioned write has
                // become current since the delete was proposed (versioning was turned on meanwhile), removing
                // it for good would lose a version: nothing changes, and the proposer asks again.
                if previous.as_ref().is_some_and(|p| !p.is_null_version()) {
                    return Ok(MetaResponse::PreconditionFailed);
                }
                if let Some(previous) = &previous {
                    for segment in &previous.segments {
                        tx.decref(segment, now_ms)?;
                    }
                    tx.delete(Ks::Objects, object_key);
                    versions::restore_newest(tx, &bucket, &key)?;
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
        MetaCommand::PutRootCredential { credential, replace } => match stored_credential(tx)? {
            Some(stored) if !replace => MetaResponse::RootCredential(stored),
            _ => {
                if let StoredCredential::Sealed { key, .. } = &credential {
                    note_wrapping_key(tx, key)?;
                }
                tx.put(Ks::SmMeta, ROOT_CREDENTIAL_V2.to_vec(), encode(&credential));
                tx.delete(Ks::SmMeta, ROOT_CREDENTIAL.to_vec());
                MetaResponse::RootCredential(credential)
            }
        },
        MetaCommand::AddJoinToken { hash, expires_ms, now_ms } => {
            let mut cluster = tx.cluster_record()?;
            cluster.join_tokens.retain(|_, expires| *expires > now_ms);
            if cluster.join_tokens.len() >= MAX_JOIN_TOKENS {
                return Ok(MetaResponse::JoinRefused {
                    reason: format!("{MAX_JOIN_TOKENS} join tokens are live; wait for some to expire"),
                });
            }
            cluster.join_tokens.insert(hash, expires_ms);
            tx.set_cluster_record(&cluster);
            MetaResponse::Ok
        }
        MetaCommand::AdmitNode { hash, addr, now_ms } => {
            let mut cluster = tx.cluster_record()?;
            let spent = cluster.join_tokens.remove(&hash);
            cluster.join_tokens.retain(|_, expires| *expires > now_ms);
            let reason = match spent {
                None => Some("the join token is unknown or was used already"),
                Some(expires) if expires <= now_ms => Some("the join token has expired"),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                // An expired token is dropped all the same: the refusal is recorded.
                tx.set_cluster_record(&cluster);
                return Ok(MetaResponse::JoinRefused { reason: reason.to_string() });
            }
            // Never an id the group or any earlier join used.
            let members = tx.membership_ids()?;
            let used = members.into_iter().chain(cluster.nodes.keys().copied()).max().unwrap_or(1);
            let Some(node_id) = used.checked_add(1).map(|next| next.max(cluster.next_node_id).max(2)) else {
                return Ok(MetaResponse::JoinRefused { reason: "no node id is left".to_string() });
            };
            cluster.next_node_id = node_id.saturating_add(1);
            cluster.nodes.insert(node_id, NodeRecord { addr, joined_ms: now_ms, removed_ms: None });
            tx.set_cluster_record(&cluster);
            MetaResponse::Admitted { node_id }
        }
        MetaCommand::RemoveNode { node_id, now_ms } => {
            let mut cluster = tx.cluster_record()?;
            let record = cluster.nodes.entry(node_id).or_insert(NodeRecord {
                addr: String::new(),
                joined_ms: now_ms,
                removed_ms: None,
            });
            record.removed_ms.get_or_insert(now_ms);
            cluster.next_node_id = cluster.next_node_id.max(node_id.saturating_add(1));
            tx.set_cluster_record(&cluster);
            // A removed node is no longer draining: it is gone.
            super::moves::set_draining(tx, node_id, false)?;
            MetaResponse::Ok
        }
        MetaCommand::MoveShards { moves, now_ms } => {
            MetaResponse::Moved { moved: super::moves::apply_moves(tx, moves, now_ms)? }
        }
        MetaCommand::ForgetStaleCopies { copies } => {
            super::moves::forget_stale(tx, copies)?;
            MetaResponse::Ok
        }
        MetaCommand::SetDraining { node_id, draining } => {
            super::moves::set_draining(tx, node_id, draining)?;
            MetaResponse::Ok
        }
        MetaCommand::SetBucketVersioning { bucket, status } => {
            if !tx.exists(Ks::Buckets, bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else {
                tx.put(Ks::BucketConf, bucket_conf_key(&bucket, VERSIONING), encode(&status));
                MetaResponse::Ok
            }
        }
        MetaCommand::PutDeleteMarker { marker, now_ms } => {
            if !tx.exists(Ks::Buckets, marker.bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else {
                let null = hoard_protocol::is_null_version_id(&marker.version_id);
                let removed = versions::make_way(tx, &marker.bucket, &marker.key, null, now_ms)?;
                versions::file_version(tx, VersionRecord::DeleteMarker(marker))?;
                MetaResponse::Replaced { previous: removed.map(Box::new) }
            }
        }
        MetaCommand::DeleteVersion { bucket, key, version_id, now_ms } => {
            if !tx.exists(Ks::Buckets, bucket.as_bytes())? {
                MetaResponse::NoSuchBucket
            } else {
                let removed = versions::delete_version(tx, &bucket, &key, &version_id, now_ms)?;
                MetaResponse::VersionRemoved { removed: removed.map(Box::new) }
            }
        }
        MetaCommand::PutAccessKey(record) => super::access::put_key(tx, record)?,
        MetaCommand::DeleteAccessKey { access_key } => super::access::delete_key(tx, &access_key)?,
        MetaCommand::SetGrant { access_key, bucket, grant } => {
            super::access::set_grant(tx, &access_key, &bucket, grant)?
        }
        MetaCommand::SetKeyCreatesBuckets { access_key, allowed } => {
            match tx.get_decoded::<hoard_protocol::AccessKeyRecord>(Ks::AccessKeys, access_key.as_bytes())? {
                None => MetaResponse::NoSuchAccessKey,
                Some(mut record) => {
                    record.may_create_buckets = allowed;
                    tx.put(Ks::AccessKeys, access_key.into_bytes(), encode(&record));
                    MetaResponse::Ok
                }
            }
        }
        MetaCommand::SetBucketSetting { bucket, setting, value } => {
            super::access::set_bucket_setting(tx, &bucket, setting, value)?
        }
        MetaCommand::CreateOwnedBucket { record, owner, settings } => {
            super::access::create_owned_bucket(tx, record, owner, settings)?
        }
        MetaCommand::SetObjectAcl { bucket, key, version_id, acl } => {
            match versions::find_object(tx, &bucket, &key, &version_id)? {
                None => MetaResponse::NoSuchKey,
                Some(found) => {
                    let mut object = found.object().clone();
                    object.headers.set_acl(acl);
                    found.store(tx, object);
                    MetaResponse::Ok
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
    let mut record = record;
    for segment in &mut record.segments {
        match parts.get(&segment.part_number) {
            // The part's shards may have moved since the upload's parts were read.
            Some((_, part)) if part.segment.id == segment.id => segment.layout = part.segment.layout.clone(),
            _ => return Ok(MetaResponse::InvalidPart { part_number: segment.part_number }),
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

/// Gives each of `segments` the layout `from` holds for the same segment (where its shards are now).
fn take_layouts(segments: &mut [hoard_protocol::Segment], from: &[hoard_protocol::Segment]) {
    for segment in segments {
        if let Some(current) = from.iter().find(|s| s.id == segment.id) {
            segment.layout = current.layout.clone();
        }
    }
}

/// Whether the current version of `record`'s key satisfies a conditional write's `condition`.
fn condition_holds(tx: &Txn<'_>, record: &ObjectRecord, condition: &WriteCondition) -> Result<bool> {
    let current: Option<ObjectRecord> = tx.get_decoded(Ks::Objects, &object_key(&record.bucket, &record.key))?;
    Ok(condition.holds_for(current.as_ref()))
}

/// Makes `record` its key's current version (see `versions` for what happens to the one it replaces),
/// moving segment references to it. Returns the object removed for good, if one was.
fn commit_record(tx: &mut Txn<'_>, record: ObjectRecord, now_ms: i64) -> Result<Option<ObjectRecord>> {
    for segment in &record.segments {
        tx.incref(segment)?;
    }
    let removed = versions::make_way(tx, &record.bucket, &record.key, record.is_null_version(), now_ms)?;
    note_wrapping_key(tx, &record.encryption)?;
    tx.put(Ks::Objects, object_key(&record.bucket, &record.key), encode(&record));
    Ok(removed)
}

/// A record wrapped under a key other than a rotation's target may land behind the rotation's cursor
/// (its writer read the settings before the rotation started): the walk must make one more pass, and a
/// finished rotation opens again.
pub(super) fn note_wrapping_key(tx: &mut Txn<'_>, encryption: &Encryption) -> Result<()> {
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

/// The root credential in force: the current form, else the first one (in clear).
pub(super) fn stored_credential(tx: &Txn<'_>) -> Result<Option<StoredCredential>> {
    root_credential_from(tx.get(Ks::SmMeta, ROOT_CREDENTIAL_V2)?, || tx.get(Ks::SmMeta, ROOT_CREDENTIAL))
}

/// Rewraps one record's data key if the record still carries the wrapping the rotation read.
fn apply_rewrap(tx: &mut Txn<'_>, rewrap: Rewrap) -> Result<bool> {
    match rewrap.target {
        RewrapTarget::Object { bucket, key, version_id } => {
            match versions::find_object(tx, &bucket, &key, &version_id)? {
                Some(found) if found.object().encryption == rewrap.before => {
                    let mut record = found.object().clone();
                    record.encryption = rewrap.after;
                    found.store(tx, record);
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
        RewrapTarget::AccessKey { access_key } => {
            match tx.get_decoded::<hoard_protocol::AccessKeyRecord>(Ks::AccessKeys, access_key.as_bytes())? {
                Some(mut record) => match record.credential {
                    StoredCredential::Sealed { access_key, key, secret } if key == rewrap.before => {
                        record.credential = StoredCredential::Sealed { access_key, key: rewrap.after, secret };
                        tx.put(Ks::AccessKeys, record.credential.access_key().as_bytes().to_vec(), encode(&record));
                        Ok(true)
                    }
                    _ => Ok(false),
                },
                None => Ok(false),
            }
        }
        RewrapTarget::RootCredential => match tx.get_decoded::<StoredCredential>(Ks::SmMeta, ROOT_CREDENTIAL_V2)? {
            Some(StoredCredential::Sealed { access_key, key, secret }) if key == rewrap.before => {
                let rewrapped = StoredCredential::Sealed { access_key, key: rewrap.after, secret };
                tx.put(Ks::SmMeta, ROOT_CREDENTIAL_V2.to_vec(), encode(&rewrapped));
                Ok(true)
            }
            _ => Ok(false),
        },
    }
}

/// Whether the bucket holds an object or any version of one (a delete marker included): S3 refuses to delete
/// such a bucket.
fn holds_objects(tx: &Txn<'_>, bucket: &str) -> Result<bool> {
    Ok(tx.any_with_prefix(Ks::Objects, &bucket_prefix(bucket))?
        || tx.any_with_prefix(Ks::Versions, &bucket_prefix(bucket))?)
}

/// Forgets an empty bucket: its record and its settings.
fn forget_bucket(tx: &mut Txn<'_>, name: String) -> Result<()> {
    super::access::forget_bucket_grants(tx, &name)?;
    for setting in tx.scan_prefix(Ks::BucketConf, &bucket_prefix(&name))?.into_keys() {
        tx.delete(Ks::BucketConf, setting);
    }
    tx.delete(Ks::Buckets, name.into_bytes());
    Ok(())
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

#[cfg(test)]
mod tests {
    use hoard_protocol::SegmentId;

    use super::*;
    use crate::meta::test_support::*;

    #[tokio::test]
    async fn a_join_token_admits_one_node_before_it_expires_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), config()).await;
        let add = |h: u8, expires_ms| MetaCommand::AddJoinToken { hash: [h; 32], expires_ms, now_ms: 100 };
        let admit = |h: u8, now_ms| MetaCommand::AdmitNode { hash: [h; 32], addr: "10.0.0.9:7000".into(), now_ms };
        assert_eq!(node.write(add(1, 1000)).await, MetaResponse::Ok);
        assert_eq!(node.write(add(2, 200)).await, MetaResponse::Ok);
        assert_eq!(node.write(admit(1, 150)).await, MetaResponse::Admitted { node_id: 2 });
        let refused = |r: MetaResponse, why: &str| match r {
            MetaResponse::JoinRefused { reason } => assert!(reason.contains(why), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        };
        refused(node.write(admit(1, 160)).await, "used already");
        refused(node.write(admit(2, 250)).await, "expired");
        refused(node.write(admit(2, 150)).await, "used already");
        assert!(node.reader.cluster_record().unwrap().join_tokens.is_empty(), "spent and expired tokens are gone");

        assert_eq!(node.write(MetaCommand::RemoveNode { node_id: 2, now_ms: 300 }).await, MetaResponse::Ok);
        assert_eq!(node.write(add(3, 1000)).await, MetaResponse::Ok);
        assert_eq!(
            node.write(admit(3, 400)).await,
            MetaResponse::Admitted { node_id: 3 },
            "a removed id is not reused"
        );
        let cluster = node.reader.cluster_record().unwrap();
        assert_eq!(cluster.removed(), [2].into());
        assert_eq!(cluster.nodes[&3].addr, "10.0.0.9:7000");
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
        let target = RewrapTarget::Object { bucket: "b".into(), key: key.into(), version_id: format!("id-{key}") };
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
        newer.version_id = "id-newer".into();
        node.write(MetaCommand::CommitObject { record: newer, now_ms: 105 }).await;
        assert_eq!(node.write(copy("id-src")).await, MetaResponse::SourceChanged);
        assert!(node.reader.object("b", "dst").unwrap().is_none(), "nothing committed");
        assert_eq!(garbage_ids(&node), vec![SegmentId(1)], "the old segment stays garbage");

        assert!(matches!(node.write(copy("id-newer")).await, MetaResponse::Replaced { previous: None }));
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
    async fn deleting_a_bucket_with_only_uploads_aborts_them_and_queues_their_parts() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        let delete = |now_ms| MetaCommand::DeleteBucketAndUploads { name: "b".into(), now_ms };
        node.write(bucket("bb")).await;
        node.write(create_upload("bb", "k", "other")).await;
        node.write(commit_part("bb", "k", "other", 1, 90)).await;
        node.write(create_upload("b", "k", "u1")).await;
        node.write(create_upload("b", "k2", "u2")).await;
        node.write(commit_part("b", "k", "u1", 1, 91)).await;
        node.write(commit_part("b", "k", "u1", 2, 92)).await;
        node.write(commit_part("b", "k2", "u2", 1, 93)).await;
        node.write(put("b", "obj", 94, 1)).await;
        assert_eq!(node.write(delete(5)).await, MetaResponse::BucketNotEmpty, "an object is stored");
        assert!(garbage_ids(&node).is_empty(), "a refused delete aborts nothing");
        assert_eq!(node.reader.all_parts("u1").unwrap().len(), 2);

        node.write(MetaCommand::DeleteObject { bucket: "b".into(), key: "obj".into(), now_ms: 6 }).await;
        assert_eq!(garbage_ids(&node), [SegmentId(94)]);
        assert_eq!(node.write(delete(7)).await, MetaResponse::Ok);
        let mut garbage = garbage_ids(&node);
        garbage.sort_by_key(|s| s.0);
        assert_eq!(garbage, [SegmentId(91), SegmentId(92), SegmentId(93), SegmentId(94)]);
        assert!(node.reader.all_parts("u1").unwrap().is_empty() && node.reader.all_parts("u2").unwrap().is_empty());
        assert_eq!(node.reader.all_parts("other").unwrap().len(), 1, "bucket bb's upload is not b's");
        assert_eq!(node.reader.buckets().unwrap().iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["bb"]);
        assert_eq!(node.write(delete(8)).await, MetaResponse::NoSuchBucket);
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
}
