//! The Raft log and vote, in the keyspaces `raft_log` (index as u64 BE → versioned entry) and `raft_meta`.
//!
//! Invariants:
//! - Entries are reported flushed (`LogFlushed`) only after the journal is fsynced (`SyncAll`). The fsync
//!   runs on one dedicated thread, in the order the appends were written, so a later append's flush is
//!   never reported before an earlier one's; appends queued while an fsync runs share the next one. A store
//!   opened in inline mode ([`crate::exec`], the simulation) has no such thread: each append is fsynced and
//!   reported before `append` returns, which keeps the same order.
//! - `save_vote` returns only once the vote is fsynced.
//! - `purge` fsyncs first: the state machine's writes (same journal, not fsynced by apply) must be durable
//!   before the log entries that could rebuild them disappear.
//! - Every change of the log is one atomic batch (append, truncate, purge + last purged id), so the log
//!   never has a hole, whatever a crash interrupts.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use fjall::PersistMode;
use hoard_protocol::decode;
use hoard_protocol::encode;
use openraft::storage::LogFlushed;
use openraft::storage::RaftLogStorage;
use openraft::AnyError;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::StorageError;
use openraft::StorageIOError;
use openraft::Vote;

use super::blocking;
use super::keys::log_index;
use super::keys::log_key;
use super::Ks;
use super::MetaError;
use super::Result;
use super::Store;
use super::TypeConfig;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// Maps a store error into the openraft error of the operation that failed.
// openraft's storage traits fix the (large) error type; boxing it here would not shrink their results.
#[allow(clippy::result_large_err)]
pub(crate) fn sto<T>(
    result: Result<T>,
    kind: impl FnOnce(AnyError) -> StorageIOError<u64>,
) -> std::result::Result<T, StorageError<u64>> {
    result.map_err(|e| StorageError::from(kind(AnyError::new(&e))))
}

/// One write waiting for its fsync: a log append (told when it is durable), or a node-local write that
/// only asks to become durable soon. It holds the store so the database outlives the fsync.
pub(crate) struct FlushJob {
    store: Arc<Store>,
    callback: Option<LogFlushed<TypeConfig>>,
}

/// Where fsyncs run: the sending end of the fsync thread, which ends when the store (and so this sender) is
/// dropped; or, for a store opened in inline mode, the caller.
pub(crate) enum Flusher {
    Thread(mpsc::Sender<FlushJob>),
    Inline,
}

impl Flusher {
    pub(crate) fn spawn() -> Result<Flusher> {
        if crate::exec::is_inline() {
            return Ok(Flusher::Inline);
        }
        let (tx, rx) = mpsc::channel::<FlushJob>();
        std::thread::Builder::new().name("hoard-meta-fsync".into()).spawn(move || flush_loop(rx))?;
        Ok(Flusher::Thread(tx))
    }

    /// Makes everything written to `store` so far durable soon, without waiting for it (the next group
    /// commit covers it). A failed fsync is logged.
    pub(crate) fn request(&self, store: Arc<Store>) {
        self.submit(FlushJob { store, callback: None });
    }

    /// Hands `job` to the fsync thread, or fsyncs at once in inline mode.
    fn submit(&self, job: FlushJob) {
        match self {
            // A send fails only once the thread has stopped, i.e. the store is closing.
            Flusher::Thread(tx) => {
                if let Err(mpsc::SendError(FlushJob { callback: Some(callback), .. })) = tx.send(job) {
                    callback.log_io_completed(Err(io::Error::other("the metadata fsync thread has stopped")));
                }
            }
            Flusher::Inline => flush(vec![job]),
        }
    }
}

fn flush_loop(rx: mpsc::Receiver<FlushJob>) {
    while let Ok(first) = rx.recv() {
        // Group commit: one fsync covers every append written before it.
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        flush(jobs);
    }
}

/// One fsync of the store of `jobs` (a flusher serves one store), then each append waiting is told.
fn flush(jobs: Vec<FlushJob>) {
    let Some(first) = jobs.first() else { return };
    let result = first.store.db.persist(PersistMode::SyncAll);
    if let Err(e) = &result {
        tracing::error!(error = %e, "fsync of the metadata journal failed");
    }
    for job in jobs {
        let outcome = match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::other(format!("fsync of the metadata journal failed: {e}"))),
        };
        if let Some(callback) = job.callback {
            callback.log_io_completed(outcome);
        }
    }
}

/// The Raft log storage. Cheap to clone; clones share the database (one is the log reader).
#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
}

impl LogStore {
    pub(crate) fn new(store: Arc<Store>) -> LogStore {
        LogStore { store }
    }

    /// Whether this node has ever been part of a Raft group (a vote or any log was written), i.e. whether
    /// `Raft::initialize` has already run here and must not run again.
    pub fn is_initialized(&self) -> Result<bool> {
        Ok(self.read_vote_sync()?.is_some()
            || self.store.ks(Ks::RaftLog).first_key_value().is_some()
            || self.last_purged()?.is_some())
    }

    fn read_vote_sync(&self) -> Result<Option<Vote<u64>>> {
        self.store.ks(Ks::RaftMeta).get(VOTE)?.map(|v| decode(&v)).transpose().map_err(Into::into)
    }

    fn last_purged(&self) -> Result<Option<LogId<u64>>> {
        self.store.ks(Ks::RaftMeta).get(LAST_PURGED)?.map(|v| decode(&v)).transpose().map_err(Into::into)
    }

    fn last_log_id(&self) -> Result<Option<LogId<u64>>> {
        match self.store.ks(Ks::RaftLog).last_key_value() {
            None => Ok(None),
            Some(guard) => {
                let (_, value) = guard.into_inner()?;
                let entry: Entry<TypeConfig> = decode(&value)?;
                Ok(Some(entry.log_id))
            }
        }
    }

    fn entries(&self, start: Bound<&u64>, end: Bound<&u64>) -> Result<Vec<Entry<TypeConfig>>> {
        let range = (start.map(|i| log_key(*i)), end.map(|i| log_key(*i)));
        let mut out = Vec::new();
        for guard in self.store.ks(Ks::RaftLog).range(range) {
            let (key, value) = guard.into_inner()?;
            let entry: Entry<TypeConfig> = decode(&value)?;
            let index = log_index(&key)?;
            if entry.log_id.index != index {
                return Err(MetaError::Corrupt(format!("log entry {} stored at index {index}", entry.log_id)));
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn write_entries(&self, entries: impl IntoIterator<Item = Entry<TypeConfig>>) -> Result<()> {
        let log = self.store.ks(Ks::RaftLog);
        let mut batch = self.store.db.batch();
        let mut bytes = 0;
        for entry in entries {
            if let EntryPayload::Membership(m) = &entry.payload {
                if m.voter_ids().nth(1).is_some() {
                    // Before the entry is in the log, from where it is sent to other nodes.
                    self.store.shared.store(true, Ordering::SeqCst);
                }
            }
            let value = encode(&entry);
            bytes += value.len();
            batch.insert(log, log_key(entry.log_id.index), value);
        }
        batch.commit()?;
        self.store.growth.wrote(bytes);
        Ok(())
    }

    /// Removes `[from, to)` in one batch, optionally recording the new last purged id with it.
    fn remove_range(&self, from: Bound<u64>, to: Bound<u64>, purged: Option<&LogId<u64>>) -> Result<()> {
        let log = self.store.ks(Ks::RaftLog);
        let mut batch = self.store.db.batch();
        let range = (from.map(log_key), to.map(log_key));
        for guard in log.range(range) {
            batch.remove(log, guard.key()?);
        }
        if let Some(purged) = purged {
            batch.insert(self.store.ks(Ks::RaftMeta), LAST_PURGED, encode(purged));
        }
        batch.commit()?;
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        let store = self.store.clone();
        blocking(move || store.db.persist(PersistMode::SyncAll).map_err(MetaError::from)).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        sto(self.entries(range.start_bound(), range.end_bound()), StorageIOError::read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> std::result::Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged_log_id = sto(self.last_purged(), StorageIOError::read_logs)?;
        let last = sto(self.last_log_id(), StorageIOError::read_logs)?;
        let last_log_id = std::cmp::max(last, last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> std::result::Result<(), StorageError<u64>> {
        let written = self.store.ks(Ks::RaftMeta).insert(VOTE, encode(vote)).map_err(MetaError::from);
        sto(written, StorageIOError::write_vote)?;
        sto(self.sync().await, StorageIOError::write_vote)
    }

    async fn read_vote(&mut self) -> std::result::Result<Option<Vote<u64>>, StorageError<u64>> {
        sto(self.read_vote_sync(), StorageIOError::read_vote)
    }

    /// Not fsynced: it is a hint that lets a restart re-apply the log without waiting for an election;
    /// losing it only delays that.
    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> std::result::Result<(), StorageError<u64>> {
        let written = self.store.ks(Ks::RaftMeta).insert(COMMITTED, encode(&committed)).map_err(MetaError::from);
        sto(written, StorageIOError::write)
    }

    async fn read_committed(&mut self) -> std::result::Result<Option<LogId<u64>>, StorageError<u64>> {
        let read = self.store.ks(Ks::RaftMeta).get(COMMITTED).map_err(MetaError::from).and_then(|v| match v {
            None => Ok(None),
            Some(v) => decode::<Option<LogId<u64>>>(&v).map_err(MetaError::from),
        });
        sto(read, StorageIOError::read)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> std::result::Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        sto(self.write_entries(entries), StorageIOError::write_logs)?;
        self.store.flusher.submit(FlushJob { store: self.store.clone(), callback: Some(callback) });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> std::result::Result<(), StorageError<u64>> {
        tracing::debug!(%log_id, "truncating the metadata log");
        sto(self.remove_range(Bound::Included(log_id.index), Bound::Unbounded, None), StorageIOError::write_logs)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> std::result::Result<(), StorageError<u64>> {
        tracing::debug!(%log_id, "purging the metadata log");
        sto(self.sync().await, StorageIOError::write_logs)?;
        sto(
            self.remove_range(Bound::Unbounded, Bound::Included(log_id.index), Some(&log_id)),
            StorageIOError::write_logs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::test_support::bucket;
    use crate::meta::test_support::config;
    use crate::meta::test_support::TestNode;

    /// In inline mode (the simulation) a store starts no fsync thread: each append is fsynced and reported on
    /// the calling task, so a one-node group elects itself and commits on a current-thread runtime.
    #[test]
    fn a_store_opened_inline_fsyncs_on_the_calling_task() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        crate::exec::set_inline(true);
        runtime.block_on(async {
            let node = TestNode::start(dir.path(), config()).await;
            assert!(matches!(node.log.store.flusher, Flusher::Inline));
            node.write(bucket("b")).await;
            assert!(node.reader.bucket("b").unwrap().is_some());
            node.stop().await;
        });
        crate::exec::set_inline(false);
        let (log, _, _) = crate::meta::open(dir.path()).unwrap();
        assert!(matches!(log.store.flusher, Flusher::Thread(_)), "a store opened outside inline mode has its thread");
    }

    /// A membership entry naming a second voter marks the store as shared the moment it is written (before any
    /// fsync, before it could be sent anywhere); one naming a single voter does not. The mark lasts until the
    /// store is opened again.
    #[test]
    fn a_log_entry_naming_a_second_voter_marks_the_store_shared() {
        use std::collections::BTreeMap;
        use std::collections::BTreeSet;

        use hoard_protocol::NodeAddr;
        use openraft::CommittedLeaderId;
        use openraft::Membership;

        let dir = tempfile::tempdir().unwrap();
        let membership = |index: u64, configs: Vec<Vec<u64>>| {
            let configs: Vec<BTreeSet<u64>> = configs.into_iter().map(|c| c.into_iter().collect()).collect();
            let nodes: BTreeMap<u64, NodeAddr> =
                configs.iter().flatten().map(|&id| (id, NodeAddr { addr: format!("n{id}") })).collect();
            Entry::<TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Membership(Membership::new(configs, nodes)),
            }
        };
        {
            let (log, _, reader) = crate::meta::open(dir.path()).unwrap();
            assert!(reader.one_voter_since_open());
            log.write_entries([
                membership(1, vec![vec![1]]),
                Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), 2), payload: EntryPayload::Blank },
            ])
            .unwrap();
            assert!(reader.one_voter_since_open(), "one voter, and a blank entry");
            log.write_entries([membership(3, vec![vec![1], vec![1, 2]])]).unwrap();
            assert!(!reader.one_voter_since_open(), "a joint configuration adding node 2");
            log.write_entries([membership(4, vec![vec![1]])]).unwrap();
            assert!(!reader.one_voter_since_open(), "stays marked");
        }
        let (_, _, reader) = crate::meta::open(dir.path()).unwrap();
        assert!(reader.one_voter_since_open(), "a store opened again starts unmarked");
    }
}
