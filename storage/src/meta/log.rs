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
//! - The entries appended last are also kept decoded in memory ([`Recent`]), changed under one lock with
//!   the database: a read is answered from them only when they hold its whole range, and they are always a
//!   run of the log as stored, so a read gives the same entries either way.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;

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

/// The committed index is written when it has moved this many entries past the one written last (and the
/// first time after each open): it is a hint (see `save_committed`), and writing it on every commit would
/// cost a journal write per commit round.
const COMMITTED_HINT_EVERY: u64 = 256;

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

/// At most this many entries are kept in [`Recent`]...
const RECENT_ENTRIES: usize = 1024;
/// ...and at most this many bytes of them, as stored.
const RECENT_BYTES: usize = 1 << 20;

/// The entries appended last, decoded. The state machine applies each entry moments after its append, and
/// reading it back from the database (a range scan and a decode) would sit on every commit's path. They are
/// a run of consecutive entries ending at the last one appended, or none (after a start, or after a change
/// that left them otherwise), bounded by [`RECENT_ENTRIES`] and [`RECENT_BYTES`].
#[derive(Default)]
struct Recent {
    /// Each entry with its stored size.
    entries: VecDeque<(Entry<TypeConfig>, usize)>,
    bytes: usize,
}

impl Recent {
    fn push(&mut self, entry: Entry<TypeConfig>, size: usize) {
        if self.entries.back().is_some_and(|(last, _)| last.log_id.index.checked_add(1) != Some(entry.log_id.index)) {
            self.clear();
        }
        self.bytes += size;
        self.entries.push_back((entry, size));
        while self.entries.len() > RECENT_ENTRIES || self.bytes > RECENT_BYTES {
            match self.entries.pop_front() {
                Some((_, size)) => self.bytes -= size,
                None => break,
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Drops the entries in `range`; all of them if what is left is not one run.
    fn remove(&mut self, range: (Bound<u64>, Bound<u64>)) {
        self.entries.retain(|(e, _)| !range.contains(&e.log_id.index));
        self.bytes = self.entries.iter().map(|(_, size)| size).sum();
        let run = self
            .entries
            .iter()
            .zip(self.entries.iter().skip(1))
            .all(|((a, _), (b, _))| a.log_id.index.checked_add(1) == Some(b.log_id.index));
        if !run {
            self.clear();
        }
    }

    /// The entries in `[start, end)` if every one of them is here (an empty range whose start is here too).
    fn get(&self, start: Bound<&u64>, end: Bound<&u64>) -> Option<Vec<Entry<TypeConfig>>> {
        let first = self.entries.front()?.0.log_id.index;
        let next = self.entries.back()?.0.log_id.index.checked_add(1)?;
        let from = match start {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        let to = match end {
            Bound::Included(i) => i.checked_add(1)?,
            Bound::Excluded(i) => *i,
            Bound::Unbounded => next,
        };
        if from < first || from > next || to > next {
            return None;
        }
        let (from, to) = ((from - first) as usize, (to.max(from) - first) as usize);
        Some(self.entries.range(from..to).map(|(e, _)| e.clone()).collect())
    }
}

/// The Raft log storage. Cheap to clone; clones share the database and the recent entries (one clone is the
/// log reader).
#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
    recent: Arc<Mutex<Recent>>,
    /// The committed index written last since the store was opened, or `u64::MAX` for none.
    hint_written: Arc<AtomicU64>,
}

impl LogStore {
    pub(crate) fn new(store: Arc<Store>) -> LogStore {
        LogStore { store, recent: Arc::default(), hint_written: Arc::new(AtomicU64::new(u64::MAX)) }
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        // Every change leaves `Recent` whole or empties it first: a panic elsewhere left it usable.
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
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
        // The lock is let go before a scan of the database, which appends need not wait for.
        if let Some(entries) = self.recent().get(start, end) {
            return Ok(entries);
        }
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
        let mut written = Vec::new();
        let mut recent = self.recent();
        for entry in entries {
            if let EntryPayload::Membership(m) = &entry.payload {
                if m.voter_ids().nth(1).is_some() {
                    // Before the entry is in the log, from where it is sent to other nodes.
                    self.store.shared.store(true, Ordering::SeqCst);
                }
            }
            let value = encode(&entry);
            let size = value.len();
            bytes += size;
            batch.insert(log, log_key(entry.log_id.index), value);
            written.push((entry, size));
        }
        batch.commit()?;
        self.store.growth.wrote(bytes);
        for (entry, size) in written {
            recent.push(entry, size);
        }
        Ok(())
    }

    /// Removes `[from, to)` in one batch, optionally recording the new last purged id with it.
    fn remove_range(&self, from: Bound<u64>, to: Bound<u64>, purged: Option<&LogId<u64>>) -> Result<()> {
        let mut recent = self.recent();
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
        // A purge removes everything up to `to`, whatever it starts the scan at.
        recent.remove((if purged.is_some() { Bound::Unbounded } else { from }, to));
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

    /// Not fsynced, and written only every [`COMMITTED_HINT_EVERY`] entries: it is a hint that lets a restart
    /// re-apply the log without waiting for an election. The state machine records what it applied with each
    /// apply, so a hint that lags only leaves the entries after both to be applied once a leader commits again.
    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> std::result::Result<(), StorageError<u64>> {
        let last = self.hint_written.load(Ordering::Relaxed);
        if let Some(id) = &committed {
            if last != u64::MAX && id.index >= last && id.index - last < COMMITTED_HINT_EVERY {
                return Ok(());
            }
        }
        let written = self.store.ks(Ks::RaftMeta).insert(COMMITTED, encode(&committed)).map_err(MetaError::from);
        sto(written, StorageIOError::write)?;
        self.hint_written.store(committed.map_or(u64::MAX, |id| id.index), Ordering::Relaxed);
        Ok(())
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
        // Entries up to the last purge are gone already: starting after it skips their tombstones.
        let from = match sto(self.last_purged(), StorageIOError::read_logs)? {
            Some(purged) => Bound::Excluded(purged.index),
            None => Bound::Unbounded,
        };
        sto(self.remove_range(from, Bound::Included(log_id.index), Some(&log_id)), StorageIOError::write_logs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::test_support::bucket;
    use crate::meta::test_support::config;
    use crate::meta::test_support::TestNode;

    fn test_entry(term: u64, index: u64) -> Entry<TypeConfig> {
        use openraft::CommittedLeaderId;
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(bucket(&format!("b{term}-{index}"))),
        }
    }

    /// Every read of `log`, for every kind of bound around indices 0..=22, against the same read of the
    /// database alone (a store with no recent entries).
    fn assert_reads_match_the_database(log: &LogStore, what: &str) {
        let cold = LogStore::new(log.store.clone());
        let bounds = |i: u64| [Bound::Included(i), Bound::Excluded(i)];
        let all: Vec<Bound<u64>> = std::iter::once(Bound::Unbounded).chain((0..=22).flat_map(bounds)).collect();
        for start in &all {
            for end in &all {
                let (start, end) = (start.as_ref(), end.as_ref());
                let got = log.entries(start, end).unwrap();
                let stored = cold.entries(start, end).unwrap();
                assert_eq!(format!("{got:?}"), format!("{stored:?}"), "{what}: {start:?}..{end:?}");
            }
        }
    }

    /// Reads answered from the recent entries are the reads of the database, for every kind of bound, across
    /// appends, a truncation and a rewrite, two purges and a gap in what was appended.
    #[test]
    fn recent_entries_answer_reads_as_the_database_does() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = crate::meta::open(dir.path()).unwrap();
        log.write_entries((1..=10).map(|i| test_entry(1, i))).unwrap();
        assert!(log.recent().get(Bound::Included(&3), Bound::Excluded(&8)).is_some(), "held in memory");
        assert_reads_match_the_database(&log, "appended");

        log.remove_range(Bound::Included(7), Bound::Unbounded, None).unwrap();
        assert_reads_match_the_database(&log, "truncated at 7");
        log.write_entries((7..=9).map(|i| test_entry(2, i))).unwrap();
        assert_eq!(log.entries(Bound::Included(&9), Bound::Unbounded).unwrap()[0].log_id.leader_id.term, 2);
        assert_reads_match_the_database(&log, "rewritten in term 2");

        let purged = |index: u64| LogId::new(openraft::CommittedLeaderId::new(1, 1), index);
        log.remove_range(Bound::Unbounded, Bound::Included(3), Some(&purged(3))).unwrap();
        assert_reads_match_the_database(&log, "purged to 3");
        log.remove_range(Bound::Excluded(3), Bound::Included(5), Some(&purged(5))).unwrap();
        assert_reads_match_the_database(&log, "purged to 5, scanning from 4");
        assert!(log.recent().get(Bound::Included(&6), Bound::Unbounded).is_some(), "6..=9 still in memory");

        log.write_entries([test_entry(2, 20)]).unwrap();
        assert!(log.recent().get(Bound::Included(&9), Bound::Unbounded).is_none(), "a gap: only 20 is kept");
        assert_reads_match_the_database(&log, "after a gap");
    }

    /// The recent entries are bounded: the oldest go first, and reads of them go to the database.
    #[test]
    fn recent_entries_keep_only_the_last_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = crate::meta::open(dir.path()).unwrap();
        let n = RECENT_ENTRIES as u64 + 500;
        for i in 1..=n {
            log.write_entries([test_entry(1, i)]).unwrap();
        }
        let recent = log.recent();
        assert_eq!(recent.entries.len(), RECENT_ENTRIES);
        assert_eq!(recent.entries.front().unwrap().0.log_id.index, n - RECENT_ENTRIES as u64 + 1);
        assert!(recent.bytes <= RECENT_BYTES);
        drop(recent);
        let old = log.entries(Bound::Included(&1), Bound::Excluded(&501)).unwrap();
        assert_eq!(old.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), (1..=500).collect::<Vec<_>>());
    }

    /// The committed index is written the first time after an open and then only once it has moved
    /// [`COMMITTED_HINT_EVERY`] entries on; what is read back after a reopen is the one written last.
    #[tokio::test]
    async fn the_committed_hint_is_written_every_so_many_entries() {
        use openraft::CommittedLeaderId;
        let id = |index: u64| Some(LogId::new(CommittedLeaderId::new(1, 1), index));
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _, _) = crate::meta::open(dir.path()).unwrap();
            log.save_committed(id(5)).await.unwrap();
            assert_eq!(log.read_committed().await.unwrap(), id(5), "the first after an open is written");
            log.save_committed(id(5 + COMMITTED_HINT_EVERY - 1)).await.unwrap();
            assert_eq!(log.read_committed().await.unwrap(), id(5), "too close to the last one written");
            log.save_committed(id(5 + COMMITTED_HINT_EVERY)).await.unwrap();
            assert_eq!(log.read_committed().await.unwrap(), id(5 + COMMITTED_HINT_EVERY));
            log.save_committed(id(5 + COMMITTED_HINT_EVERY + 1)).await.unwrap();
        }
        let (mut log, _, _) = crate::meta::open(dir.path()).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), id(5 + COMMITTED_HINT_EVERY), "the one written last");
        log.save_committed(id(5 + COMMITTED_HINT_EVERY + 2)).await.unwrap();
        assert_eq!(log.read_committed().await.unwrap(), id(5 + COMMITTED_HINT_EVERY + 2), "reopened: written again");
    }

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
