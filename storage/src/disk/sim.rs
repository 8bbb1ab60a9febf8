//! [`SimDisk`]: an in-memory [`Disk`] whose faults are drawn from a seeded generator, for the deterministic
//! simulation of a whole cluster in one process.
//!
//! Invariants:
//! - Deterministic: every fault (an injected I/O error, where a commit fails, a torn temp file's length, a
//!   rotten byte) is drawn from one `StdRng` seeded by the caller, under the disk's lock; nothing here reads
//!   the OS's randomness or clock. The same seed, configuration and sequence of calls (in the order they take
//!   the lock) give the same results, the same files and the same [`SimDiskStats`]. Odds of 0 or 1 draw
//!   nothing, so a fault-free disk never moves its generator.
//! - Durable as [`FileDisk`](super::FileDisk) is: a file is durable once `commit` returned `Ok`; an
//!   unfinished temp file is volatile. [`SimDisk::crash`] (a power cut, a kill -9 of the node) drops each
//!   unfinished temp file or, drawn with [`SimDiskConfig::torn_temp_on_crash`], leaves it truncated at a
//!   random length under its temp name, where `list` shows it for scrub. Committed files survive whole.
//! - A writer opened before a crash (or before the disk vanished or was replaced) belongs to a dead process:
//!   its calls fail and dropping it removes nothing, since a killed process cleans nothing up.
//! - With [`SimDiskConfig::lose_unsynced_commits`], a crash also undoes every commit and every removal of a
//!   committed file since the last [`SimDisk::sync_point`], newest first, so each name holds again what it
//!   held at that point. This stands for a device whose volatile write cache acknowledges flushes it has not
//!   made (no power-loss protection, a write-back RAID cache, a virtual disk with unsafe caching): what was
//!   acknowledged since the last real flush is lost. A removal is a directory change like the rename of a
//!   commit, and `FileDisk::remove` does not fsync the directory, so even an honest disk can bring a removed
//!   file back after a crash. A sync point says nothing of unfinished temp files: they stay volatile.
//! - A vanished disk is a device that dropped off the bus: every call fails with an I/O error (`list`
//!   included, as `read_dir` on a dead file system does; the trait's "a missing root lists as empty" is for
//!   a directory an operator deleted, which this does not model). Vanishing is a power loss for the device,
//!   as [`SimDisk::crash`]. [`SimDisk::reappear`] brings it back with its files, or blank as a replacement.
//! - An injected error is `StorageError::Io` of kind `Other`, whose message starts with "simulated".
//!   For each call: the name is checked first (`InvalidName` draws nothing), then whether the disk vanished,
//!   then [`SimDisk::fail_next`], then the odds of its [`SimOp`].
//! - Nothing panics, whatever the input: odds at or below 0 (or NaN) never strike, odds at or above 1 always
//!   do, and a poisoned lock is taken over.
//! - No latency: every call is synchronous; the simulation's scheduler delays calls if it wants to.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;

use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;

use super::validate_name;
use super::validate_new_name;
use super::Disk;
use super::DiskEntry;
use super::DiskFile;
use super::TEMP_SUFFIX;
use crate::env::Env;
use crate::error::Result;
use crate::error::StorageError;

/// The kinds of call a fault can strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimOp {
    Create,
    Write,
    Commit,
    Read,
    Len,
    Remove,
    List,
}

const OPS: usize = 7;

impl SimOp {
    pub const ALL: [SimOp; OPS] =
        [SimOp::Create, SimOp::Write, SimOp::Commit, SimOp::Read, SimOp::Len, SimOp::Remove, SimOp::List];

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SimOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            SimOp::Create => "create",
            SimOp::Write => "write",
            SimOp::Commit => "commit",
            SimOp::Read => "read",
            SimOp::Len => "len",
            SimOp::Remove => "remove",
            SimOp::List => "list",
        };
        f.write_str(name)
    }
}

/// The odds of each fault. The default is a disk without faults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimDiskConfig {
    /// Odds (0 to 1) that a call of each kind fails with an I/O error, indexed as [`SimOp::ALL`]; see
    /// [`SimDiskConfig::eio`] and [`SimDiskConfig::with_eio`].
    pub eio: [f64; OPS],
    /// Odds that an injected commit failure strikes after the rename (the directory fsync failed, as
    /// `FileDisk` can): the file is visible under its name although commit returned an error, and it is not
    /// yet durable. Otherwise the failure strikes before the rename and the temp file is removed.
    pub commit_fails_after_rename: f64,
    /// Odds that a crash leaves each unfinished temp file torn rather than drops it.
    pub torn_temp_on_crash: f64,
    /// Odds that a read returns its bytes with one byte flipped while the stored file stays intact (a bad
    /// transfer, not bad media; [`SimDisk::corrupt`] is bad media).
    pub rot_on_read: f64,
    /// A crash undoes the commits and removals made since the last [`SimDisk::sync_point`] (see the module
    /// invariants for the real behaviour this stands for).
    pub lose_unsynced_commits: bool,
}

impl SimDiskConfig {
    /// The same odds of an I/O error on every kind of call, and no other fault.
    pub fn uniform_eio(p: f64) -> SimDiskConfig {
        SimDiskConfig { eio: [p; OPS], ..SimDiskConfig::default() }
    }

    /// This configuration, with odds `p` of an I/O error on calls of kind `op`.
    pub fn with_eio(mut self, op: SimOp, p: f64) -> SimDiskConfig {
        self.eio[op.index()] = p;
        self
    }

    pub fn eio(&self, op: SimOp) -> f64 {
        self.eio[op.index()]
    }
}

/// Faults injected so far, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimDiskStats {
    /// I/O errors injected, by [`SimOp::ALL`] index, by odds or by [`SimDisk::fail_next`].
    pub eio: [u64; OPS],
    /// Calls refused because the disk had vanished.
    pub vanished_refusals: u64,
    /// Injected commit failures that struck after the rename (counted in `eio` too).
    pub commits_failed_after_rename: u64,
    pub rotten_reads: u64,
    /// Bytes flipped by [`SimDisk::corrupt`].
    pub corruptions: u64,
    pub crashes: u64,
    pub vanishes: u64,
    /// Unfinished temp files a crash or a vanishing dropped, or left torn.
    pub temps_dropped: u64,
    pub temps_torn: u64,
    /// Commits and removals undone by a crash (with `lose_unsynced_commits`).
    pub commits_reverted: u64,
}

impl SimDiskStats {
    pub fn eio(&self, op: SimOp) -> u64 {
        self.eio[op.index()]
    }

    pub fn eio_total(&self) -> u64 {
        self.eio.iter().sum()
    }
}

/// A disk in memory whose faults come from a seeded generator. Clones share the same disk.
#[derive(Clone)]
pub struct SimDisk {
    shared: Arc<Shared>,
}

struct Shared {
    label: String,
    state: Mutex<State>,
}

impl Shared {
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // Every update leaves the state consistent before it can fail, and nothing here panics while holding
        // the lock; a poisoned lock (a panic elsewhere on the thread) is simply taken over.
        let mut guard = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

struct Stored {
    bytes: Vec<u8>,
    modified_ms: i64,
    /// A temp file a live writer is filling: a crash drops it or tears it.
    volatile: bool,
}

struct State {
    rng: StdRng,
    config: SimDiskConfig,
    clock: Option<Arc<dyn Env>>,
    /// Committed files and temp files alike; temp names end in [`TEMP_SUFFIX`], committed names never do.
    files: BTreeMap<String, Stored>,
    /// With `lose_unsynced_commits`: each commit and each removal of a committed file since the last sync
    /// point, with what its name held before, oldest first.
    unsynced: Vec<(String, Option<Stored>)>,
    fail_next: [u32; OPS],
    stats: SimDiskStats,
    vanished: bool,
    /// Moved on by every crash, vanishing and replacement: writers of an earlier generation are dead.
    generation: u64,
    next_temp: u64,
}

fn simulated_eio(message: String) -> StorageError {
    StorageError::Io(std::io::Error::other(message))
}

/// Whether an event of odds `p` happens; draws only for odds strictly between 0 and 1.
fn draw(rng: &mut StdRng, p: f64) -> bool {
    if p.is_nan() || p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.gen_bool(p)
    }
}

impl State {
    /// Whether the call fails: the disk vanished, a [`SimDisk::fail_next`] armed for `op`, or the odds.
    fn check(&mut self, label: &str, op: SimOp, name: Option<&str>) -> Result<()> {
        let target = name.map(|n| format!(" of {n:?}")).unwrap_or_default();
        if self.vanished {
            self.stats.vanished_refusals += 1;
            return Err(simulated_eio(format!("simulated EIO: disk {label} has vanished ({op}{target})")));
        }
        let armed = &mut self.fail_next[op.index()];
        let fails = if *armed > 0 {
            *armed -= 1;
            true
        } else {
            draw(&mut self.rng, self.config.eio(op))
        };
        if fails {
            self.stats.eio[op.index()] += 1;
            return Err(simulated_eio(format!("simulated EIO on {op}{target} (disk {label})")));
        }
        Ok(())
    }

    fn alive(&self, generation: u64, label: &str, tmp_name: &str) -> Result<()> {
        if generation == self.generation {
            return Ok(());
        }
        Err(simulated_eio(format!(
            "simulated dead writer: {tmp_name:?} on disk {label} was opened before a crash, vanishing or replacement"
        )))
    }

    fn now_ms(&self) -> i64 {
        self.clock.as_ref().map_or(0, |clock| clock.now_ms())
    }

    /// Renames `tmp_name` over `name`; false if the temp file is gone.
    fn rename(&mut self, tmp_name: &str, name: &str) -> bool {
        let Some(mut file) = self.files.remove(tmp_name) else {
            return false;
        };
        // A rename keeps the file's modification time.
        file.volatile = false;
        let before = self.files.insert(name.to_string(), file);
        if self.config.lose_unsynced_commits {
            self.unsynced.push((name.to_string(), before));
        }
        true
    }

    /// What a power loss leaves of the disk.
    fn power_loss(&mut self) {
        self.generation += 1;
        let volatile: Vec<String> = self.files.iter().filter(|(_, f)| f.volatile).map(|(n, _)| n.clone()).collect();
        for name in volatile {
            if draw(&mut self.rng, self.config.torn_temp_on_crash) {
                if let Some(file) = self.files.get_mut(&name) {
                    let kept = self.rng.gen_range(0..=file.bytes.len());
                    file.bytes.truncate(kept);
                    file.volatile = false;
                    self.stats.temps_torn += 1;
                }
            } else {
                self.files.remove(&name);
                self.stats.temps_dropped += 1;
            }
        }
        while let Some((name, before)) = self.unsynced.pop() {
            match before {
                Some(file) => self.files.insert(name, file),
                None => self.files.remove(&name),
            };
            self.stats.commits_reverted += 1;
        }
    }
}

impl SimDisk {
    /// A blank disk named `label`, its faults drawn from a generator seeded with `seed`. Modification times
    /// are 0 until [`SimDisk::with_clock`] gives it a clock.
    pub fn new(label: impl Into<String>, seed: u64, config: SimDiskConfig) -> SimDisk {
        let state = State {
            rng: StdRng::seed_from_u64(seed),
            config,
            clock: None,
            files: BTreeMap::new(),
            unsynced: Vec::new(),
            fail_next: [0; OPS],
            stats: SimDiskStats::default(),
            vanished: false,
            generation: 0,
            next_temp: 0,
        };
        SimDisk { shared: Arc::new(Shared { label: label.into(), state: Mutex::new(state) }) }
    }

    /// This disk, taking modification times from `clock` (the simulation's [`Env`]): scrub compares them with
    /// its own clock to judge whether a temp file is stale, and 0 would make every temp file look stale.
    pub fn with_clock(self, clock: Arc<dyn Env>) -> SimDisk {
        self.shared.with_state(|st| st.clock = Some(clock));
        self
    }

    pub fn config(&self) -> SimDiskConfig {
        self.shared.with_state(|st| st.config.clone())
    }

    /// Changes the odds from now on. Turning `lose_unsynced_commits` on counts from now; turning it off
    /// forgets the commits it was keeping.
    pub fn set_config(&self, config: SimDiskConfig) {
        self.shared.with_state(|st| {
            if !config.lose_unsynced_commits {
                st.unsynced.clear();
            }
            st.config = config;
        });
    }

    /// A power cut or a kill -9 of the node: see the module invariants.
    pub fn crash(&self) {
        self.shared.with_state(|st| {
            st.stats.crashes += 1;
            st.power_loss();
        });
    }

    /// The operating system has flushed everything so far: commits and removals made until now survive a
    /// crash even with `lose_unsynced_commits`.
    pub fn sync_point(&self) {
        self.shared.with_state(|st| st.unsynced.clear());
    }

    /// The next `n` calls of kind `op` fail with an I/O error (replacing any count armed before).
    pub fn fail_next(&self, op: SimOp, n: u32) {
        self.shared.with_state(|st| st.fail_next[op.index()] = n);
    }

    /// Bit rot: flips every bit of the byte at `offset` of the stored file `name`. Works on a vanished disk
    /// too (its media are still there).
    pub fn corrupt(&self, name: &str, offset: u64) -> Result<()> {
        validate_name(name)?;
        self.shared.with_state(|st| {
            let Some(file) = st.files.get_mut(name) else {
                return Err(StorageError::NotFound(name.to_string()));
            };
            let len = file.bytes.len();
            let Some(byte) = usize::try_from(offset).ok().and_then(|o| file.bytes.get_mut(o)) else {
                return Err(StorageError::NotFound(format!("{name} has {len} bytes, no byte at offset {offset}")));
            };
            *byte = !*byte;
            st.stats.corruptions += 1;
            Ok(())
        })
    }

    /// The device drops off: it loses power (as [`SimDisk::crash`]) and every call fails until
    /// [`SimDisk::reappear`]. Vanishing again while gone changes nothing.
    pub fn vanish(&self) {
        self.shared.with_state(|st| {
            if !st.vanished {
                st.stats.vanishes += 1;
                st.power_loss();
                st.vanished = true;
            }
        });
    }

    /// The device is back: with the files it had when it vanished, or, if `empty`, blank (a replacement
    /// disk; writers still open on the old one are dead).
    pub fn reappear(&self, empty: bool) {
        self.shared.with_state(|st| {
            if empty {
                st.files.clear();
                st.unsynced.clear();
                st.generation += 1;
            }
            st.vanished = false;
        });
    }

    pub fn is_vanished(&self) -> bool {
        self.shared.with_state(|st| st.vanished)
    }

    /// Every committed file and its bytes, sorted by name, whether or not the disk has vanished; draws nothing
    /// and injects nothing, so an oracle may call it at any time.
    pub fn committed_files(&self) -> Vec<(String, Vec<u8>)> {
        self.shared.with_state(|st| {
            st.files
                .iter()
                .filter(|(name, _)| !name.ends_with(TEMP_SUFFIX))
                .map(|(name, file)| (name.clone(), file.bytes.clone()))
                .collect()
        })
    }

    pub fn stats(&self) -> SimDiskStats {
        self.shared.with_state(|st| st.stats.clone())
    }
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDisk").field("label", &self.shared.label).finish_non_exhaustive()
    }
}

impl Disk for SimDisk {
    fn create(&self, name: &str) -> Result<Box<dyn DiskFile>> {
        validate_new_name(name)?;
        let label = &self.shared.label;
        let (tmp_name, generation) = self.shared.with_state(|st| {
            st.check(label, SimOp::Create, Some(name))?;
            let tmp_name = format!("{name}.{:x}{TEMP_SUFFIX}", st.next_temp);
            st.next_temp += 1;
            let file = Stored { bytes: Vec::new(), modified_ms: st.now_ms(), volatile: true };
            st.files.insert(tmp_name.clone(), file);
            Ok::<_, StorageError>((tmp_name, st.generation))
        })?;
        Ok(Box::new(SimDiskFile {
            shared: self.shared.clone(),
            name: name.to_string(),
            tmp_name,
            generation,
            done: false,
        }))
    }

    fn read_at(&self, name: &str, offset: u64, len: usize) -> Result<Bytes> {
        validate_name(name)?;
        self.shared.with_state(|st| {
            st.check(&self.shared.label, SimOp::Read, Some(name))?;
            let Some(file) = st.files.get(name) else {
                return Err(StorageError::NotFound(name.to_string()));
            };
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(file.bytes.len());
            let end = start.saturating_add(len).min(file.bytes.len());
            let mut bytes = file.bytes[start..end].to_vec();
            if !bytes.is_empty() && draw(&mut st.rng, st.config.rot_on_read) {
                let at = st.rng.gen_range(0..bytes.len());
                bytes[at] = !bytes[at];
                st.stats.rotten_reads += 1;
            }
            Ok(Bytes::from(bytes))
        })
    }

    fn len(&self, name: &str) -> Result<u64> {
        validate_name(name)?;
        self.shared.with_state(|st| {
            st.check(&self.shared.label, SimOp::Len, Some(name))?;
            match st.files.get(name) {
                Some(file) => Ok(file.bytes.len() as u64),
                None => Err(StorageError::NotFound(name.to_string())),
            }
        })
    }

    fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        self.shared.with_state(|st| {
            st.check(&self.shared.label, SimOp::Remove, Some(name))?;
            let before = st.files.remove(name);
            if before.is_some() && !name.ends_with(TEMP_SUFFIX) && st.config.lose_unsynced_commits {
                st.unsynced.push((name.to_string(), before));
            }
            Ok(())
        })
    }

    fn list(&self) -> Result<Vec<DiskEntry>> {
        self.shared.with_state(|st| {
            st.check(&self.shared.label, SimOp::List, None)?;
            Ok(st
                .files
                .iter()
                .map(|(name, file)| DiskEntry {
                    name: name.clone(),
                    len: file.bytes.len() as u64,
                    modified_ms: file.modified_ms,
                })
                .collect())
        })
    }

    fn label(&self) -> String {
        self.shared.label.clone()
    }
}

struct SimDiskFile {
    shared: Arc<Shared>,
    name: String,
    tmp_name: String,
    generation: u64,
    /// Renamed over `name` (even by a commit that then failed): nothing left to remove.
    done: bool,
}

impl DiskFile for SimDiskFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let label = &self.shared.label;
        self.shared.with_state(|st| {
            st.alive(self.generation, label, &self.tmp_name)?;
            st.check(label, SimOp::Write, Some(&self.name))?;
            let now = st.now_ms();
            match st.files.get_mut(&self.tmp_name) {
                Some(file) => {
                    file.bytes.extend_from_slice(buf);
                    file.modified_ms = now;
                    Ok(())
                }
                // Removed or wiped while being written; the rename of a real disk would fail the same way.
                None => Err(StorageError::NotFound(self.tmp_name.clone())),
            }
        })
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let shared = self.shared.clone();
        // The lock is released before `self` drops (its Drop takes the lock again).
        shared.with_state(|st| {
            st.alive(self.generation, &shared.label, &self.tmp_name)?;
            if let Err(e) = st.check(&shared.label, SimOp::Commit, Some(&self.name)) {
                if !st.vanished
                    && draw(&mut st.rng, st.config.commit_fails_after_rename)
                    && st.rename(&self.tmp_name, &self.name)
                {
                    self.done = true;
                    st.stats.commits_failed_after_rename += 1;
                }
                return Err(e);
            }
            if !st.rename(&self.tmp_name, &self.name) {
                return Err(StorageError::NotFound(self.tmp_name.clone()));
            }
            self.done = true;
            Ok(())
        })
    }
}

impl Drop for SimDiskFile {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.shared.with_state(|st| {
            // A writer of a dead generation has no process left to clean up after it.
            if st.generation == self.generation {
                st.files.remove(&self.tmp_name);
            }
        });
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
