//! Test helpers: a real one-node Raft over the real fjall stores in a directory, and record builders.
//!
//! Invariant: `stop` returns only once every handle to the database is gone, so the same directory can be
//! opened again at once (fjall holds a lock on it while any handle lives).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoard_protocol::BucketRecord;
use hoard_protocol::Checksums;
use hoard_protocol::DiskRef;
use hoard_protocol::Encryption;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::ObjectHeaders;
use hoard_protocol::ObjectRecord;
use hoard_protocol::PartRecord;
use hoard_protocol::Segment;
use hoard_protocol::SegmentId;
use hoard_protocol::ShardLayout;
use hoard_protocol::UploadRecord;
use openraft::Config;
use openraft::ServerState;

use super::open;
use super::LocalOnlyNetwork;
use super::LogStore;
use super::MetaReader;
use super::Raft;

pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) struct TestNode {
    pub(crate) raft: Raft,
    pub(crate) reader: MetaReader,
    pub(crate) log: LogStore,
    /// Whether the directory already held an initialized group when this node started.
    pub(crate) was_initialized: bool,
}

pub(crate) fn config() -> Config {
    Config { cluster_name: "hoard-test".into(), ..Default::default() }
}

impl TestNode {
    /// Opens `dir` and runs node 1 on it, initializing the group only if this directory never was.
    pub(crate) async fn start(dir: &Path, config: Config) -> TestNode {
        let (log, state_machine, reader) = open(dir).expect("open metadata store");
        let initialized = log.is_initialized().expect("read log state");
        let raft = Raft::new(
            1,
            Arc::new(config.validate().expect("valid config")),
            LocalOnlyNetwork,
            log.clone(),
            state_machine,
        )
        .await
        .expect("start raft");
        if !initialized {
            let members = BTreeMap::from([(1, NodeAddr { addr: "local".into() })]);
            raft.initialize(members).await.expect("initialize");
        }
        raft.wait(Some(TIMEOUT)).state(ServerState::Leader, "node 1 leads").await.expect("leader");
        TestNode { raft, reader, log, was_initialized: initialized }
    }

    pub(crate) async fn write(&self, command: MetaCommand) -> MetaResponse {
        self.raft.client_write(command).await.expect("client_write").data
    }

    /// Shuts Raft down and waits until nothing holds the database any more.
    pub(crate) async fn stop(self) {
        let closed = self.reader.closed();
        self.raft.shutdown().await.expect("shutdown");
        drop(self);
        tokio::time::timeout(TIMEOUT, closed)
            .await
            .expect("every handle to the metadata store is dropped after shutdown");
    }
}

/// A node whose store holds bucket `b`.
pub(crate) async fn node_with_bucket(dir: &Path) -> TestNode {
    let node = TestNode::start(dir, config()).await;
    assert_eq!(node.write(bucket("b")).await, MetaResponse::Ok);
    node
}

pub(crate) fn bucket(name: &str) -> MetaCommand {
    MetaCommand::CreateBucket(BucketRecord { name: name.into(), created_ms: 1, encryption: None })
}

pub(crate) fn segment(id: u128, part_number: u32) -> Segment {
    Segment {
        id: SegmentId(id),
        part_number,
        size: 10,
        layout: ShardLayout {
            data: 2,
            parity: 1,
            block_size: 1 << 20,
            disks: vec![DiskRef { node: 1, disk: 0 }, DiskRef { node: 1, disk: 1 }, DiskRef { node: 1, disk: 2 }],
        },
        seal: None,
    }
}

pub(crate) fn record(bucket: &str, key: &str, segments: Vec<Segment>) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        version_id: format!("id-{key}"),
        size: segments.iter().map(|s| s.size).sum(),
        etag: "etag".into(),
        last_modified_ms: 5,
        headers: ObjectHeaders::default(),
        checksums: Checksums::default(),
        segments,
        encryption: Encryption::None,
        inline: None,
    }
}

pub(crate) fn put(bucket: &str, key: &str, segment_id: u128, now_ms: i64) -> MetaCommand {
    MetaCommand::CommitObject { record: record(bucket, key, vec![segment(segment_id, 0)]), now_ms }
}

pub(crate) fn create_upload(bucket: &str, key: &str, upload_id: &str) -> MetaCommand {
    MetaCommand::CreateUpload(UploadRecord {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        initiated_ms: 3,
        headers: ObjectHeaders::default(),
        checksum_algorithm: None,
        encryption: Encryption::None,
    })
}

pub(crate) fn part(part_number: u32, segment_id: u128) -> PartRecord {
    PartRecord {
        part_number,
        etag: format!("etag-{part_number}"),
        size: 10,
        last_modified_ms: 4,
        checksums: Checksums::default(),
        segment: segment(segment_id, part_number),
    }
}

pub(crate) fn commit_part(bucket: &str, key: &str, upload_id: &str, part_number: u32, segment_id: u128) -> MetaCommand {
    MetaCommand::CommitPart {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        part: part(part_number, segment_id),
        now_ms: 4,
    }
}

/// The segments queued as garbage, oldest first.
pub(crate) fn garbage_ids(node: &TestNode) -> Vec<SegmentId> {
    node.reader.garbage(i64::MAX).unwrap().iter().map(|s| s.id).collect()
}
