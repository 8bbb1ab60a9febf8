//! What must hold of every simulated run, checked as the run goes and at its end. One place for all of it:
//! - a read returns a version that was written (exactly its bytes, or exactly the range asked for), or an
//!   error; never a mix of versions, a torn object, or bytes nobody wrote;
//! - a read never returns a version that a later acknowledged write had replaced before the read began
//!   (nor "not found" once an acknowledged write had made the key exist), so an acknowledged write is never
//!   lost, and after the system heals every key reads as its last acknowledged write (or a write whose outcome
//!   was never told, which may have committed);
//! - once every fault is healed, a read answers (a version, or not found for a key with none), never fails;
//! - every node applies the same entry at each index of the Raft log: the safety that "one leader per term" is
//!   for. hoard's Raft (openraft) elects a leader for a leader id, the term and the candidate's node id, ordered
//!   term first: a later candidate of the same term outranks an earlier one exactly as a later term would, and
//!   no node votes for an id below one it voted for. So two nodes may each lead in one term, one after the
//!   other, as two terms would follow each other elsewhere; one leader per leader id holds by construction, and
//!   what is checked is what it protects;
//! - no plaintext of an encrypted version on any disk.
//!
//! Times are the simulation's logical clock (any increasing count). A write whose request failed may still
//! have committed (its Raft entry can apply after the client gave up), so it counts as possibly applied from its
//! start until forever; an acknowledged one from its start until its acknowledgement.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::body;

/// One write of a key: a version (`Some(tag)`) or a delete (`None`).
#[derive(Debug, Clone)]
struct Write {
    tag: Option<u64>,
    len: usize,
    started: u64,
    /// When it was acknowledged; `None` while in flight or when it failed (outcome unknown).
    acked: Option<u64>,
    /// The request finished with an error (it may still have applied).
    failed: bool,
}

/// What a read got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// The whole object.
    Object(Vec<u8>),
    /// The bytes of the range `start..start + bytes.len()`.
    Range {
        start: usize,
        bytes: Vec<u8>,
    },
    NotFound,
    /// Any error: allowed, it asserts nothing.
    Error(String),
}

/// A handle on a write in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteId {
    key: usize,
    index: usize,
}

#[derive(Default)]
pub struct Oracle {
    keys: BTreeMap<String, Vec<Write>>,
    key_names: Vec<String>,
    /// Each log index seen applied, with the leader id (term, node) of the entry there and the node seen.
    applied: BTreeMap<u64, ((u64, u64), u64)>,
    encrypted: BTreeSet<u64>,
    violations: Vec<String>,
    /// Every fault is healed: a read must answer now (a version, or not found), not fail.
    healed: bool,
}

impl Oracle {
    pub fn new() -> Oracle {
        Oracle::default()
    }

    fn history(&mut self, key: &str) -> (usize, &mut Vec<Write>) {
        let index = match self.key_names.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                self.key_names.push(key.to_string());
                self.key_names.len() - 1
            }
        };
        (index, self.keys.entry(key.to_string()).or_default())
    }

    /// A write of version `tag` (`None`: a delete) of `len` bytes begins.
    pub fn begin_write(&mut self, key: &str, tag: Option<u64>, len: usize, encrypted: bool, now: u64) -> WriteId {
        if encrypted {
            if let Some(t) = tag {
                self.encrypted.insert(t);
            }
        }
        let (key, writes) = self.history(key);
        writes.push(Write { tag, len, started: now, acked: None, failed: false });
        WriteId { key, index: writes.len() - 1 }
    }

    /// The write's request ended: acknowledged (`ok`) or failed (outcome unknown).
    pub fn end_write(&mut self, id: WriteId, ok: bool, now: u64) {
        let Some(name) = self.key_names.get(id.key).cloned() else { return };
        if let Some(w) = self.keys.get_mut(&name).and_then(|ws| ws.get_mut(id.index)) {
            if ok {
                w.acked = Some(now);
            } else {
                w.failed = true;
            }
        }
    }

    /// A read of `key` that began at `started` and ended at `finished` with `result`.
    pub fn observe_read(&mut self, key: &str, started: u64, finished: u64, result: &ReadResult) {
        if let (true, ReadResult::Error(e)) = (self.healed, result) {
            self.violations.push(format!("read of {key} [{started}, {finished}] failed after the heal: {e}"));
        }
        let writes = self.keys.get(key).cloned().unwrap_or_default();
        if let Err(why) = check_read(&writes, started, finished, result) {
            self.violations.push(format!("read of {key} [{started}, {finished}]: {why}"));
        }
    }

    /// Every fault is healed from now on: reads that fail are violations.
    pub fn healed(&mut self) {
        self.healed = true;
    }

    /// Node `node` has applied the log up to `index`, the entry there written by leader id `leader` (term, node).
    pub fn observe_applied(&mut self, node: u64, index: u64, leader: (u64, u64)) {
        match self.applied.get(&index) {
            Some((other, seen)) if *other != leader => {
                let v = format!(
                    "log index {index} applied from leader {other:?} on node {seen}, from {leader:?} on node {node}"
                );
                self.violations.push(v);
            }
            Some(_) => {}
            None => {
                self.applied.insert(index, (leader, node));
            }
        }
    }

    /// The bytes of one file of a simulated disk (or of the metadata store): none may hold an encrypted
    /// version's plaintext.
    pub fn check_disk_file(&mut self, name: &str, bytes: &[u8]) {
        for tag in body::tags_in(bytes) {
            if self.encrypted.contains(&tag) {
                self.violations.push(format!("plaintext of encrypted version {tag} in {name}"));
            }
        }
    }

    /// A violation found outside the oracle's own checks (by the driver's scans and maintenance).
    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    pub fn violations(&self) -> &[String] {
        &self.violations
    }
}

/// Whether a read's result is one the history allows (see the module's rules).
fn check_read(writes: &[Write], started: u64, finished: u64, result: &ReadResult) -> Result<(), String> {
    let (start, bytes, whole_read) = match result {
        ReadResult::Error(_) => return Ok(()),
        ReadResult::NotFound => (0, None, false),
        ReadResult::Object(bytes) => (0, Some(bytes), true),
        ReadResult::Range { start, bytes } => (*start, Some(bytes), false),
    };
    // The last write acknowledged before the read began: nothing it replaced may be read.
    let floor = writes.iter().filter(|w| w.acked.is_some_and(|a| a < started)).map(|w| w.started).max();
    let visible = |w: &Write| {
        // A write could have applied during the read if it began before the read ended, and is not wholly
        // before the floor write (acknowledged before that one began).
        let ends = if w.failed { u64::MAX } else { w.acked.unwrap_or(u64::MAX) };
        w.started < finished && floor.is_none_or(|f| ends >= f)
    };
    let matches = |w: &Write| match (w.tag, bytes) {
        (None, None) => true,
        (Some(tag), Some(got)) if whole_read => got.len() == w.len && *got == body::body(tag, w.len),
        (Some(tag), Some(got)) => {
            let whole = body::body(tag, w.len);
            whole.get(start..start + got.len()).is_some_and(|want| want == got.as_slice())
        }
        _ => false,
    };
    // "Not found" is also what a key never written (or whose first write had not applied) reads as.
    let absent_allowed = bytes.is_none() && floor.is_none();
    if absent_allowed || writes.iter().any(|w| visible(w) && matches(w)) {
        return Ok(());
    }
    let what = match bytes {
        None => "not found".to_string(),
        Some(b) => format!("{} bytes at {start} (tags {:?})", b.len(), body::tags_in(b)),
    };
    Err(format!("{what} is no version the history allows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(tag: u64, len: usize) -> ReadResult {
        ReadResult::Object(body::body(tag, len))
    }

    #[test]
    fn reads_of_acknowledged_writes_pass_and_stale_or_foreign_bytes_do_not() {
        let mut o = Oracle::new();
        let w1 = o.begin_write("k", Some(1), 300, false, 1);
        o.end_write(w1, true, 2);
        o.observe_read("k", 3, 4, &whole(1, 300));
        assert!(o.violations().is_empty(), "{:?}", o.violations());
        let w2 = o.begin_write("k", Some(2), 100, false, 5);
        // During the write, either version may be read.
        o.observe_read("k", 5, 6, &whole(1, 300));
        o.observe_read("k", 5, 6, &whole(2, 100));
        o.end_write(w2, true, 7);
        assert!(o.violations().is_empty(), "{:?}", o.violations());
        // After it was acknowledged, the old version is stale: a lost write.
        o.observe_read("k", 8, 9, &whole(1, 300));
        assert_eq!(o.violations().len(), 1, "{:?}", o.violations());
        // Bytes nobody wrote, a mix, a torn object: never allowed.
        let mut mixed = body::body(2, 100);
        mixed[64..].copy_from_slice(&body::body(1, 300)[64..100]);
        let torn = ReadResult::Object(body::body(2, 100)[..99].to_vec());
        for bad in [whole(3, 100), ReadResult::Object(mixed), torn] {
            o.observe_read("k", 8, 9, &bad);
        }
        assert_eq!(o.violations().len(), 4, "{:?}", o.violations());
    }

    #[test]
    fn ranges_must_be_exactly_the_range_asked_for() {
        let mut o = Oracle::new();
        let w = o.begin_write("k", Some(5), 1000, false, 1);
        o.end_write(w, true, 2);
        let range = ReadResult::Range { start: 100, bytes: body::body(5, 1000)[100..400].to_vec() };
        o.observe_read("k", 3, 4, &range);
        assert!(o.violations().is_empty());
        let shifted = ReadResult::Range { start: 100, bytes: body::body(5, 1000)[101..401].to_vec() };
        o.observe_read("k", 3, 4, &shifted);
        assert_eq!(o.violations().len(), 1);
    }

    #[test]
    fn deletes_and_failed_writes_widen_what_may_be_read_and_nothing_else() {
        let mut o = Oracle::new();
        o.observe_read("k", 1, 2, &ReadResult::NotFound);
        let w = o.begin_write("k", Some(1), 10, false, 3);
        o.end_write(w, true, 4);
        o.observe_read("k", 5, 6, &ReadResult::NotFound);
        assert_eq!(o.violations().len(), 1, "an acknowledged write is lost");
        let d = o.begin_write("k", None, 0, false, 7);
        o.end_write(d, false, 8);
        // The failed delete may or may not have applied, even much later.
        o.observe_read("k", 100, 101, &ReadResult::NotFound);
        o.observe_read("k", 102, 103, &whole(1, 10));
        o.observe_read("k", 104, 105, &ReadResult::Error("timeout".into()));
        assert_eq!(o.violations().len(), 1, "{:?}", o.violations());
    }

    #[test]
    fn a_failed_read_is_allowed_until_the_heal_and_a_violation_after() {
        let mut o = Oracle::new();
        o.observe_read("k", 1, 2, &ReadResult::Error("503".into()));
        assert!(o.violations().is_empty());
        o.healed();
        o.observe_read("k", 3, 4, &ReadResult::NotFound);
        assert!(o.violations().is_empty(), "not found is an answer");
        o.observe_read("k", 5, 6, &ReadResult::Error("503".into()));
        assert_eq!(o.violations().len(), 1, "{:?}", o.violations());
    }

    #[test]
    fn two_entries_at_one_index_and_plaintext_of_encrypted_versions_are_violations() {
        let mut o = Oracle::new();
        o.observe_applied(1, 7, (2, 2));
        o.observe_applied(2, 7, (2, 2));
        // Two leaders of one term, the later (node 3) outranking the earlier: openraft's leader ids.
        o.observe_applied(2, 8, (2, 3));
        assert!(o.violations().is_empty(), "{:?}", o.violations());
        o.observe_applied(3, 8, (2, 2));
        assert_eq!(o.violations().len(), 1, "two entries at one index");
        o.begin_write("plain", Some(10), 200, false, 1);
        o.begin_write("secret", Some(11), 200, true, 1);
        o.check_disk_file("d0/a", &body::body(10, 200));
        assert_eq!(o.violations().len(), 1, "plaintext of a plain object is fine");
        o.check_disk_file("d1/b", &body::body(11, 200));
        assert_eq!(o.violations().len(), 2);
    }
}
