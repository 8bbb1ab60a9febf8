//! The stored forms of the Raft log, vote and snapshot records, frozen: every value below as fjall holds it.
//! A change that moves these bytes (an openraft upgrade that changes its types, say) makes metadata already
//! on disk undecodable: it needs a new format version and a reader of this one, not a new golden file.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use hoard_protocol::encode;
use hoard_protocol::MetaCommand;
use hoard_protocol::NodeAddr;
use openraft::CommittedLeaderId;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::Membership;
use openraft::SnapshotMeta;
use openraft::StoredMembership;
use openraft::Vote;

use super::state::StoredSnapshot;
use super::TypeConfig;

const GOLDEN: &str = include_str!("../../tests/golden/raft_v1.hex");

fn golden_values() -> Vec<(&'static str, Vec<u8>)> {
    let log_id = LogId::new(CommittedLeaderId::new(3, 1), 42);
    let nodes: BTreeMap<u64, NodeAddr> =
        [(1, NodeAddr { addr: "10.0.0.1:9000".into() }), (2, NodeAddr { addr: "10.0.0.2:9000".into() })].into();
    let membership = Membership::new(vec![BTreeSet::from([1, 2])], nodes);
    let stored_membership = StoredMembership::new(Some(log_id), membership.clone());
    let entry = |payload| Entry::<TypeConfig> { log_id, payload };
    vec![
        (
            "entry_normal",
            encode(&entry(EntryPayload::Normal(MetaCommand::DeleteObject {
                bucket: "photos".into(),
                key: "cat.jpg".into(),
                now_ms: 1_700_000_000_000,
            }))),
        ),
        (
            "entry_batch",
            encode(&entry(EntryPayload::Normal(MetaCommand::Batch(vec![
                MetaCommand::DeleteObject { bucket: "photos".into(), key: "cat.jpg".into(), now_ms: 1_700_000_000_000 },
                MetaCommand::DeleteBucket { name: "photos".into() },
            ])))),
        ),
        ("entry_blank", encode(&entry(EntryPayload::Blank))),
        ("entry_membership", encode(&entry(EntryPayload::Membership(membership)))),
        ("vote", encode(&Vote::new_committed(3, 1))),
        ("log_id", encode(&log_id)),
        ("committed", encode(&Some(log_id))),
        ("stored_membership", encode(&stored_membership)),
        (
            "stored_snapshot",
            encode(&StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: Some(log_id),
                    last_membership: stored_membership,
                    snapshot_id: "3-1-42-7".into(),
                },
                file: "snapshot-3-1-42-7".into(),
            }),
        ),
    ]
}

#[test]
fn raft_records_match_the_v1_golden_vector() {
    hoard_protocol::format::assert_golden("storage/tests/golden/raft_v1.hex", GOLDEN, &golden_values());
}
