//! Property tests: applying any committed command, however hostile its fields, never panics and never stops
//! the state machine; a refused command changes nothing; and a node that replays the same log from the
//! start reaches the same state.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use hoard_protocol::encode;
use hoard_protocol::BucketEncryption;
use hoard_protocol::BucketRecord;
use hoard_protocol::Credential;
use hoard_protocol::DeleteMarker;
use hoard_protocol::DiskRef;
use hoard_protocol::Encryption;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::ObjectRecord;
use hoard_protocol::Rewrap;
use hoard_protocol::RewrapTarget;
use hoard_protocol::RotationCursor;
use hoard_protocol::SegmentHolder;
use hoard_protocol::SegmentId;
use hoard_protocol::ShardMove;
use hoard_protocol::StaleCopy;
use hoard_protocol::StoredCredential;
use hoard_protocol::UploadRecord;
use hoard_protocol::VersioningStatus;
use hoard_protocol::WrappedKey;
use hoard_protocol::WriteCondition;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftLogStorageExt;
use openraft::storage::RaftStateMachine;
use openraft::CommittedLeaderId;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::Membership;
use openraft::Vote;
use proptest::prelude::*;

use super::StateMachineStore;
use super::LAST_APPLIED;
use super::LAST_MEMBERSHIP;
use crate::meta::open;
use crate::meta::test_support::*;
use crate::meta::Ks;
use crate::meta::Store;
use crate::meta::TypeConfig;

/// Names that interact (a few short ones) mixed with hostile ones: huge, just over S3's limit, NUL,
/// multi-byte characters over the byte limit, empty, and arbitrary text.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["b", "k", "dir/k", "u1"]).prop_map(String::from),
        1 => Just(String::new()),
        1 => Just("x".repeat(70_000)),
        1 => Just("k".repeat(1025)),
        1 => Just("nul\0key".to_string()),
        1 => Just("€".repeat(400)),
        1 => "\\PC{0,40}",
    ]
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), -5i64..100]
}

fn seg_id() -> impl Strategy<Value = u128> {
    prop_oneof![1u128..6, Just(u128::MAX)]
}

fn part_number() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..4, Just(u32::MAX)]
}

fn encryption() -> impl Strategy<Value = Encryption> {
    prop_oneof![
        Just(Encryption::None),
        (name(), any::<u8>()).prop_map(|(key_id, b)| Encryption::SseS3 {
            key_id,
            key: WrappedKey { format: 1, data_id: [b; 16], wrapped: vec![b; 40] },
        }),
    ]
}

fn object(bucket: String, key: String, segments: Vec<(u128, u32)>, etag: String, enc: Encryption) -> ObjectRecord {
    let mut r = record(&bucket, &key, segments.into_iter().map(|(id, n)| segment(id, n)).collect());
    r.etag = etag;
    r.encryption = enc;
    r
}

/// Version ids: a few versioned ones and null ones that collide, `null` itself, and hostile names.
fn version_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u128..3, any::<bool>()).prop_map(|(n, versioned)| hoard_protocol::new_version_id(n, versioned)),
        1 => Just(hoard_protocol::NULL_VERSION_ID.to_string()),
        1 => name(),
    ]
}

fn record_strategy() -> impl Strategy<Value = ObjectRecord> {
    (name(), name(), prop::collection::vec((seg_id(), part_number()), 0..4), name(), encryption(), version_id())
        .prop_map(|(b, k, segs, etag, enc, v)| ObjectRecord { version_id: v, ..object(b, k, segs, etag, enc) })
}

fn condition() -> impl Strategy<Value = WriteCondition> {
    prop_oneof![Just(WriteCondition::Absent), name().prop_map(WriteCondition::ETag)]
}

fn cursor() -> impl Strategy<Value = RotationCursor> {
    prop_oneof![
        Just(RotationCursor::End),
        Just(RotationCursor::Objects { after: None }),
        Just(RotationCursor::Uploads { after: None }),
        Just(RotationCursor::Versions { after: None }),
        Just(RotationCursor::AccessKeys { after: None }),
    ]
}

fn rewrap() -> impl Strategy<Value = Rewrap> {
    let target = prop_oneof![
        (name(), name(), name()).prop_map(|(bucket, key, version_id)| RewrapTarget::Object { bucket, key, version_id }),
        (name(), name(), name()).prop_map(|(bucket, key, upload_id)| RewrapTarget::Upload { bucket, key, upload_id }),
        Just(RewrapTarget::RootCredential),
        name().prop_map(|access_key| RewrapTarget::AccessKey { access_key }),
    ];
    (target, encryption(), encryption()).prop_map(|(target, before, after)| Rewrap { target, before, after })
}

fn stored_credential() -> impl Strategy<Value = StoredCredential> {
    prop_oneof![
        (name(), name())
            .prop_map(|(access_key, secret_key)| StoredCredential::Plain(Credential { access_key, secret_key })),
        (name(), encryption(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(access_key, key, secret)| StoredCredential::Sealed { access_key, key, secret }),
        (name(), encryption()).prop_map(|(access_key, key)| StoredCredential::Sealed {
            access_key,
            key,
            secret: vec![7; 5000]
        }),
    ]
}

/// Every command variant, with every field drawn from the hostile strategies above.
fn command() -> impl Strategy<Value = MetaCommand> {
    prop_oneof![
        (name(), time()).prop_map(|(name, created_ms)| MetaCommand::CreateBucket(BucketRecord {
            name,
            created_ms,
            encryption: None
        })),
        name().prop_map(|name| MetaCommand::DeleteBucket { name }),
        (record_strategy(), time()).prop_map(|(record, now_ms)| MetaCommand::CommitObject { record, now_ms }),
        (name(), name(), time()).prop_map(|(bucket, key, now_ms)| MetaCommand::DeleteObject { bucket, key, now_ms }),
        (name(), name(), name(), encryption()).prop_map(|(bucket, key, upload_id, encryption)| {
            MetaCommand::CreateUpload(UploadRecord {
                bucket,
                key,
                upload_id,
                initiated_ms: 1,
                headers: Default::default(),
                checksum_algorithm: None,
                encryption,
            })
        }),
        (name(), name(), name(), part_number(), seg_id(), time()).prop_map(
            |(bucket, key, upload_id, n, id, now_ms)| {
                MetaCommand::CommitPart { bucket, key, upload_id, part: part(n, id), now_ms }
            }
        ),
        (name(), record_strategy(), time()).prop_map(|(upload_id, record, now_ms)| MetaCommand::CompleteUpload {
            upload_id,
            record,
            now_ms
        }),
        (name(), name(), name(), time()).prop_map(|(bucket, key, upload_id, now_ms)| MetaCommand::AbortUpload {
            bucket,
            key,
            upload_id,
            now_ms
        }),
        (name(), name())
            .prop_map(|(access_key, secret_key)| MetaCommand::SetRootCredential(Credential { access_key, secret_key })),
        prop::collection::vec(seg_id(), 0..4)
            .prop_map(|ids| MetaCommand::ForgetGarbage { segments: ids.into_iter().map(SegmentId).collect() }),
        (record_strategy(), time(), condition())
            .prop_map(|(record, now_ms, condition)| { MetaCommand::CommitObjectIf { record, now_ms, condition } }),
        (record_strategy(), time(), name(), name(), name()).prop_map(|(record, now_ms, sb, sk, sv)| {
            MetaCommand::CommitCopy { record, now_ms, source_bucket: sb, source_key: sk, source_version_id: sv }
        }),
        (name(), prop::option::of(Just(BucketEncryption::SseS3)))
            .prop_map(|(bucket, encryption)| MetaCommand::SetBucketEncryption { bucket, encryption }),
        name().prop_map(|key_id| MetaCommand::EncryptAll { key_id }),
        (name(), name(), time()).prop_map(|(to_key_id, key_file, now_ms)| MetaCommand::StartRotation {
            to_key_id,
            key_file,
            now_ms
        }),
        (name(), prop::collection::vec(rewrap(), 0..3), cursor(), time()).prop_map(
            |(to_key_id, rewraps, cursor, now_ms)| MetaCommand::RewrapBatch { to_key_id, rewraps, cursor, now_ms }
        ),
        (name(), record_strategy(), time(), condition()).prop_map(|(upload_id, record, now_ms, condition)| {
            MetaCommand::CompleteUploadIf { upload_id, record, now_ms, condition }
        }),
        (stored_credential(), any::<bool>())
            .prop_map(|(credential, replace)| MetaCommand::PutRootCredential { credential, replace }),
        (name(), time()).prop_map(|(name, now_ms)| MetaCommand::DeleteBucketAndUploads { name, now_ms }),
        (0u8..3, time(), time()).prop_map(|(h, expires_ms, now_ms)| MetaCommand::AddJoinToken {
            hash: [h; 32],
            expires_ms,
            now_ms
        }),
        (0u8..3, name(), time()).prop_map(|(h, addr, now_ms)| MetaCommand::AdmitNode { hash: [h; 32], addr, now_ms }),
        (any::<u64>(), time()).prop_map(|(node_id, now_ms)| MetaCommand::RemoveNode { node_id, now_ms }),
        name().prop_map(|key_id| MetaCommand::SetActiveKey { key_id }),
        (prop::collection::vec(shard_move(), 0..4), time())
            .prop_map(|(moves, now_ms)| MetaCommand::MoveShards { moves, now_ms }),
        prop::collection::vec((seg_id(), any::<u8>(), disk(), time()), 0..3).prop_map(|copies| {
            MetaCommand::ForgetStaleCopies {
                copies: copies
                    .into_iter()
                    .map(|(id, shard, disk, since_ms)| StaleCopy { segment: SegmentId(id), shard, disk, since_ms })
                    .collect(),
            }
        }),
        (0u64..4, any::<bool>()).prop_map(|(node_id, draining)| MetaCommand::SetDraining { node_id, draining }),
        (name(), any::<bool>()).prop_map(|(bucket, enabled)| MetaCommand::SetBucketVersioning {
            bucket,
            status: if enabled { VersioningStatus::Enabled } else { VersioningStatus::Suspended },
        }),
        (name(), name(), version_id(), time()).prop_map(|(bucket, key, version_id, now_ms)| {
            MetaCommand::PutDeleteMarker {
                marker: DeleteMarker { bucket, key, version_id, last_modified_ms: now_ms },
                now_ms,
            }
        }),
        (name(), name(), version_id(), time()).prop_map(|(bucket, key, version_id, now_ms)| {
            MetaCommand::DeleteVersion { bucket, key, version_id, now_ms }
        }),
        (name(), stored_credential(), any::<bool>()).prop_map(|(name, credential, may_create_buckets)| {
            MetaCommand::PutAccessKey(hoard_protocol::AccessKeyRecord {
                name,
                credential,
                created_ms: 1,
                may_create_buckets,
            })
        }),
        name().prop_map(|access_key| MetaCommand::DeleteAccessKey { access_key }),
        (name(), name(), any::<(bool, bool, bool)>()).prop_map(|(access_key, bucket, (read, write, owner))| {
            MetaCommand::SetGrant { access_key, bucket, grant: hoard_protocol::Grant { read, write, owner } }
        }),
        (name(), 0u8..4, prop::option::of(name())).prop_map(|(bucket, s, value)| MetaCommand::SetBucketSetting {
            bucket,
            setting: setting(s),
            value,
        }),
        (name(), prop::option::of(name()), prop::collection::vec((0u8..4, name()), 0..3)).prop_map(
            |(name, owner, settings)| MetaCommand::CreateOwnedBucket {
                record: BucketRecord { name, created_ms: 1, encryption: None },
                owner,
                settings: settings.into_iter().map(|(s, v)| (setting(s), v)).collect(),
            }
        ),
        (name(), any::<bool>())
            .prop_map(|(access_key, allowed)| MetaCommand::SetKeyCreatesBuckets { access_key, allowed }),
        (name(), name(), version_id(), prop::option::of(name()))
            .prop_map(|(bucket, key, version_id, acl)| { MetaCommand::SetObjectAcl { bucket, key, version_id, acl } }),
    ]
}

fn setting(n: u8) -> hoard_protocol::BucketSetting {
    use hoard_protocol::BucketSetting::*;
    [Acl, Policy, PublicAccessBlock, Cors][usize::from(n) % 4]
}

fn disk() -> impl Strategy<Value = DiskRef> {
    (0u64..3, 0u32..4).prop_map(|(node, disk)| DiskRef { node, disk })
}

fn shard_move() -> impl Strategy<Value = ShardMove> {
    let holder = prop_oneof![
        (name(), name()).prop_map(|(bucket, key)| SegmentHolder::Object { bucket, key }),
        (name(), name(), version_id()).prop_map(|(bucket, key, version_id)| SegmentHolder::Version {
            bucket,
            key,
            version_id
        }),
        (name(), part_number()).prop_map(|(upload_id, part_number)| SegmentHolder::Part { upload_id, part_number }),
    ];
    (seg_id(), prop_oneof![0u8..4, Just(u8::MAX)], disk(), disk(), prop::collection::vec(holder, 0..3))
        .prop_map(|(id, shard, from, to, holders)| ShardMove { segment: SegmentId(id), shard, from, to, holders })
}

/// Every pair of every state-machine keyspace but the applied position, which a refusal moves on.
fn state(store: &Store) -> BTreeMap<(&'static str, Vec<u8>), Vec<u8>> {
    let mut out = BTreeMap::new();
    for ks in Ks::STATE_MACHINE {
        for guard in store.ks(ks).iter() {
            let (k, v) = guard.into_inner().expect("read the state");
            if ks == Ks::SmMeta && (*k == *LAST_APPLIED || *k == *LAST_MEMBERSHIP) {
                continue;
            }
            out.insert((ks.name(), k.to_vec()), v.to_vec());
        }
    }
    out
}

fn entries(commands: Vec<MetaCommand>) -> Vec<Entry<TypeConfig>> {
    let leader = CommittedLeaderId::new(1, 1);
    let membership =
        Membership::new(vec![BTreeSet::from([1])], BTreeMap::from([(1, NodeAddr { addr: "local".into() })]));
    let mut out = vec![Entry {
        log_id: LogId::new(CommittedLeaderId::new(0, 0), 0),
        payload: EntryPayload::Membership(membership),
    }];
    // A bucket that the short names hit, so that commands reach past the bucket check.
    out.push(Entry { log_id: LogId::new(leader, 1), payload: EntryPayload::Normal(bucket("b")) });
    for (i, command) in commands.into_iter().enumerate() {
        out.push(Entry { log_id: LogId::new(leader, i as u64 + 2), payload: EntryPayload::Normal(command) });
    }
    out
}

/// Applies every entry one by one, checking each refusal; returns the final state and how many were refused.
async fn apply_checking(sm: &mut StateMachineStore, entries: Vec<Entry<TypeConfig>>) -> (usize, usize) {
    let mut refused = 0;
    let mut applied = 0;
    for entry in entries {
        let before = state(&sm.store);
        let described = format!("{:?}", entry.payload).chars().take(300).collect::<String>();
        let responses = sm.apply(vec![entry]).await.unwrap_or_else(|e| panic!("apply stopped on {described}: {e}"));
        assert_eq!(responses.len(), 1);
        if let MetaResponse::Refused { reason } = &responses[0] {
            refused += 1;
            assert!(before == state(&sm.store), "the refused command {described} ({reason}) changed the state");
        } else {
            applied += 1;
        }
        check_invariants(&sm.store, &described);
    }
    (applied, refused)
}

/// The state machine's invariants on references and versions (see `state` and `state::versions`): every
/// segment's count is the number of records naming it (current objects, other versions, parts); every filed
/// version is indexed under its public id and every index entry names a filed version; a key has at most one
/// null version; and a key without a current object has no object as its newest version.
fn check_invariants(store: &Store, after: &str) {
    use hoard_protocol::decode;
    use hoard_protocol::PartRecord;
    use hoard_protocol::VersionRecord;
    let pairs = |ks: Ks| -> Vec<(Vec<u8>, Vec<u8>)> {
        store.ks(ks).iter().map(|g| g.into_inner().map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect()
    };
    let mut named: BTreeMap<SegmentId, u32> = BTreeMap::new();
    let mut nulls: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut current: BTreeSet<(String, String)> = BTreeSet::new();
    for (_, v) in pairs(Ks::Objects) {
        let o: ObjectRecord = decode(&v).unwrap();
        o.segments.iter().for_each(|s| *named.entry(s.id).or_default() += 1);
        *nulls.entry((o.bucket.clone(), o.key.clone())).or_default() += u32::from(o.is_null_version());
        current.insert((o.bucket, o.key));
    }
    let index: BTreeMap<Vec<u8>, Vec<u8>> = pairs(Ks::VersionIdx).into_iter().collect();
    let mut newest_seen: BTreeSet<(String, String)> = BTreeSet::new();
    let filed = pairs(Ks::Versions);
    for (k, v) in &filed {
        let version: VersionRecord = decode(v).unwrap();
        let (bucket, key) = (version.bucket().to_string(), version.key().to_string());
        if let VersionRecord::Object(o) = &version {
            o.segments.iter().for_each(|s| *named.entry(s.id).or_default() += 1);
        }
        let public = hoard_protocol::public_version_id(version.version_id());
        *nulls.entry((bucket.clone(), key.clone())).or_default() += u32::from(public == "null");
        let idx = crate::meta::keys::version_idx_key(&bucket, &key, public);
        assert_eq!(index.get(&idx), Some(k), "after {after}: version {public} of {key} is not indexed");
        if newest_seen.insert((bucket.clone(), key.clone())) && !current.contains(&(bucket, key.clone())) {
            assert!(version.is_delete_marker(), "after {after}: {key} has an object newest but no current one");
        }
    }
    assert_eq!(index.len(), filed.len(), "after {after}: the version index names versions that are gone");
    for (_, v) in pairs(Ks::Parts) {
        let p: PartRecord = decode(&v).unwrap();
        *named.entry(p.segment.id).or_default() += 1;
    }
    let counted: BTreeMap<SegmentId, u32> = pairs(Ks::SegRefs)
        .into_iter()
        .map(|(k, v)| (crate::meta::keys::segment_id(&k).unwrap(), decode(&v).unwrap()))
        .collect();
    assert_eq!(counted, named, "after {after}: reference counts differ from the records naming segments");
    assert!(nulls.values().all(|&n| n <= 1), "after {after}: a key has two null versions: {nulls:?}");
    assert_eq!(pairs(Ks::Grants).len(), pairs(Ks::KeyGrants).len(), "after {after}: grants and their index differ");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Hostile commands in any order: apply never fails or panics, a refusal changes nothing, and a node
    /// replaying the same committed log at its start reaches the same state.
    #[test]
    fn applying_any_command_is_total_and_replays_to_the_same_state(commands in prop::collection::vec(command(), 1..30)) {
        runtime().block_on(async move {
            let direct = tempfile::tempdir().unwrap();
            let (_log, mut sm, _reader) = open(direct.path()).unwrap();
            let all = entries(commands);
            let count = all.len() as u64;
            apply_checking(&mut sm, all.clone()).await;
            let expected = state(&sm.store);

            // The same entries, committed but not yet applied, on a node that then starts.
            let replayed = tempfile::tempdir().unwrap();
            {
                let (mut log, _sm, _reader) = open(replayed.path()).unwrap();
                log.blocking_append(all).await.unwrap();
                log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
            }
            let node = TestNode::start(replayed.path(), config()).await;
            node.raft.wait(Some(TIMEOUT)).applied_index_at_least(Some(count - 1), "log replayed").await.unwrap();
            assert!(expected == state(node.reader.store()), "a replay reached another state");
            node.stop().await;
        });
    }

    /// Commands proposed together as batches (those whose names fail the check alone, as the proposer sends
    /// them) give every command the answer it gets applied alone, and the same state: a refused command
    /// inside a batch undoes its own writes and nothing else.
    #[test]
    fn a_batch_applies_as_its_commands_one_by_one(
        commands in prop::collection::vec(command(), 1..30),
        sizes in prop::collection::vec(1usize..6, 30),
    ) {
        runtime().block_on(async move {
            let alone_dir = tempfile::tempdir().unwrap();
            let (_log, mut alone, _reader) = open(alone_dir.path()).unwrap();
            let mut answers = Vec::new();
            for entry in entries(commands.clone()) {
                answers.extend(alone.apply(vec![entry]).await.unwrap());
            }

            let mut proposed = Vec::new();
            let mut rest = commands.into_iter().peekable();
            for size in sizes {
                let mut batch = Vec::new();
                while batch.len() < size {
                    match rest.next_if(|c| c.check().is_ok()) {
                        Some(c) => batch.push(c),
                        None => break,
                    }
                }
                match batch.len() {
                    0 => proposed.extend(rest.next()),
                    1 => proposed.extend(batch),
                    _ => proposed.push(MetaCommand::Batch(batch)),
                }
            }
            proposed.extend(rest);
            let together_dir = tempfile::tempdir().unwrap();
            let (_log, mut together, _reader) = open(together_dir.path()).unwrap();
            let mut batched_answers = Vec::new();
            for entry in entries(proposed) {
                let described = format!("{:?}", entry.payload).chars().take(300).collect::<String>();
                for answer in together.apply(vec![entry]).await.unwrap() {
                    match answer {
                        MetaResponse::Batch(each) => batched_answers.extend(each),
                        one => batched_answers.push(one),
                    }
                }
                check_invariants(&together.store, &described);
            }
            prop_assert_eq!(&batched_answers, &answers);
            prop_assert!(state(&alone.store) == state(&together.store), "batches reached another state");
            Ok(())
        })?;
    }

    /// Bytes that arrive as a command (a corrupted or hostile encoding) either fail to decode, and never
    /// reach apply, or decode to a command that applies totally.
    #[test]
    fn mutated_encodings_never_break_apply(
        command in command(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = encode(&command);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(decoded) = hoard_protocol::decode::<MetaCommand>(&bytes) {
            runtime().block_on(async move {
                let dir = tempfile::tempdir().unwrap();
                let (_log, mut sm, _reader) = open(dir.path()).unwrap();
                apply_checking(&mut sm, entries(vec![decoded])).await;
            });
        }
    }
}

#[test]
fn a_batch_inside_a_batch_or_an_empty_one_is_refused_whole() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut sm, _reader) = open(dir.path()).unwrap();
        let nested = MetaCommand::Batch(vec![bucket("x"), MetaCommand::Batch(vec![bucket("y")])]);
        let too_many = MetaCommand::Batch(vec![bucket("z"); hoard_protocol::MAX_BATCH_COMMANDS + 1]);
        let (applied, refused) =
            apply_checking(&mut sm, entries(vec![nested, MetaCommand::Batch(Vec::new()), too_many])).await;
        assert_eq!((applied, refused), (2, 3), "the membership and the first bucket apply; the three batches not");
        for name in ["x", "y", "z"] {
            assert!(sm.store.ks(Ks::Buckets).get(name.as_bytes()).unwrap().is_none(), "bucket {name} was created");
        }
    });
}

#[test]
fn a_string_that_is_not_utf8_never_decodes_into_a_command() {
    let mut bytes = encode(&MetaCommand::DeleteBucket { name: "abc".into() });
    let at = bytes.len() - 2;
    bytes[at] = 0xFF;
    assert!(hoard_protocol::decode::<MetaCommand>(&bytes).is_err(), "invalid UTF-8 must not decode to a String");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_70_000_byte_delete_is_refused_and_the_node_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), config()).await;
    node.write(bucket("b")).await;
    let huge = MetaCommand::DeleteObject { bucket: "b".into(), key: "k".repeat(70_000), now_ms: 1 };
    let response = node.write(huge).await;
    assert!(matches!(response, MetaResponse::Refused { .. }), "{response:?}");
    // The node goes on: later commands apply, and a restart replays past the refused entry.
    assert_eq!(node.write(put("b", "after", 1, 2)).await, MetaResponse::Replaced { previous: None });
    node.stop().await;
    let node = TestNode::start(dir.path(), config()).await;
    assert!(node.reader.object("b", "after").unwrap().is_some());
    assert_eq!(node.write(put("b", "again", 2, 3)).await, MetaResponse::Replaced { previous: None });
    node.stop().await;
}
