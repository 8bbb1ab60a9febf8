//! Which directory is which disk: identity markers in the data directory and on every disk.
//!
//! ```text
//! <data dir>/hoard-node.json   {"format":1,"disk_set":"<32 hex>","disks":N}
//! <disk>/hoard-disk.json       {"format":1,"disk_set":"<32 hex>","index":I,"disks":N}
//! ```
//!
//! The disk set is drawn once, at the first start; every disk of the node carries it with its own index, the
//! slot its shard files are addressed by.
//!
//! Invariants:
//! - Disks are matched by marker, not by the order they are given in: reordering `--disk` changes nothing.
//! - A directory is used as disk I only if its marker says I, or it has no marker and holds no files (a new,
//!   replacement disk) and slot I is free. Repair refills a new disk from the others.
//! - A disk of another set, two directories that claim one slot, a changed number of disks, a directory that
//!   holds files but no marker, disks marked but a data directory not: the start is refused, naming the
//!   directory, and no marker is written (missing disk directories are created empty, as always).
//! - Markers are written only after every check passed, each durably (temp file, fsync, rename, fsync of the
//!   directory); the node's first, so a crash half-way leaves a state the next start accepts.
//! - A data directory from before markers existed (none anywhere) is marked in the order given.

use std::path::Path;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;

use crate::disk::Disk;
use crate::disk::FileDisk;
use crate::env::Env;

/// The marker of a disk directory.
pub const DISK_MARKER: &str = "hoard-disk.json";
/// The marker of a node's data directory.
pub const NODE_MARKER: &str = "hoard-node.json";
/// The marker format this code writes and reads.
pub const MARKER_FORMAT: u32 = 1;
/// What a fresh file system may hold before anything is stored on it.
const IGNORED_TOP_LEVEL: &[&str] = &["lost+found"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NodeMarker {
    format: u32,
    disk_set: String,
    disks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DiskMarker {
    format: u32,
    disk_set: String,
    index: u32,
    disks: u32,
}

/// Why a node's disks cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: String },
    #[error("{path}: not a hoard marker ({reason}); move it away only if this directory is not in use")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: disk of another node (disk set {found}; this node's is {expected})")]
    ForeignDisk { path: PathBuf, found: String, expected: String },
    #[error("{first} and {second} both claim to be disk {index}: one of them is a copy")]
    Duplicate { index: u32, first: PathBuf, second: PathBuf },
    #[error("{path}: marked as one of {was} disks, but {now} are given; hoard cannot change a node's number of disks")]
    CountChanged { path: PathBuf, was: u32, now: u32 },
    #[error("{path}: holds files but no {DISK_MARKER}; it is not a disk of this node (give it an empty directory)")]
    UnmarkedWithData { path: PathBuf },
    #[error(
        "{data_dir}: no {NODE_MARKER}, but disk {disk} belongs to disk set {disk_set}: this data directory is not \
         the one those disks were written with"
    )]
    NodeMarkerMissing { data_dir: PathBuf, disk: PathBuf, disk_set: String },
}

/// The node's disks in slot order.
#[derive(Debug)]
pub struct Assigned {
    /// `disks[i]` is disk `i`, opened, and writing its marker again if its directory is deleted and made anew.
    pub disks: Vec<FileDisk>,
    /// Slots that got a new, empty directory this start (a replaced disk): repair must refill them.
    pub replaced: Vec<u32>,
    /// The node's disk set.
    pub disk_set: String,
}

/// Matches `paths` to the node's disk slots by their markers, marks what is new, and returns them in slot
/// order; refuses (writing nothing) when a directory is not what it should be.
pub fn assign(data_dir: &Path, paths: &[PathBuf], env: &dyn Env) -> Result<Assigned, IdentityError> {
    let count = u32::try_from(paths.len()).unwrap_or(u32::MAX);
    let node_path = data_dir.join(NODE_MARKER);
    let node: Option<NodeMarker> = read_marker(&node_path)?;
    let mut disks = Vec::with_capacity(paths.len());
    for path in paths {
        let disk = FileDisk::open(path).map_err(|e| io(path, e))?;
        let marker: Option<DiskMarker> = read_marker(&path.join(DISK_MARKER))?;
        disks.push((path, disk, marker));
    }

    let disk_set = match &node {
        Some(node) => {
            if node.disks != count {
                return Err(IdentityError::CountChanged { path: node_path, was: node.disks, now: count });
            }
            node.disk_set.clone()
        }
        None => match disks.iter().find_map(|(p, _, m)| m.as_ref().map(|m| (p, m))) {
            Some((disk, m)) => {
                return Err(IdentityError::NodeMarkerMissing {
                    data_dir: data_dir.to_path_buf(),
                    disk: disk.to_path_buf(),
                    disk_set: m.disk_set.clone(),
                })
            }
            None => format!("{:032x}", env.random_u128()),
        },
    };

    // Slot → position in `disks`.
    let mut slots: Vec<Option<usize>> = vec![None; paths.len()];
    for (at, (path, _, marker)) in disks.iter().enumerate() {
        let Some(m) = marker else { continue };
        if m.disk_set != disk_set {
            return Err(IdentityError::ForeignDisk {
                path: path.to_path_buf(),
                found: m.disk_set.clone(),
                expected: disk_set,
            });
        }
        if m.disks != count {
            return Err(IdentityError::CountChanged { path: path.to_path_buf(), was: m.disks, now: count });
        }
        let slot = slots.get_mut(m.index as usize).ok_or_else(|| IdentityError::Unreadable {
            path: path.join(DISK_MARKER),
            reason: format!("index {} of {} disks", m.index, m.disks),
        })?;
        if let Some(first) = slot {
            return Err(IdentityError::Duplicate {
                index: m.index,
                first: disks[*first].0.to_path_buf(),
                second: path.to_path_buf(),
            });
        }
        *slot = Some(at);
    }

    // Unmarked directories take the free slots in the order given. While no disk is marked yet (a first
    // start, a data directory from before markers, or a crash before the first disk marker), what they hold
    // is the node's own; once any is marked, an unmarked one must be empty.
    let any_marked = disks.iter().any(|(_, _, m)| m.is_some());
    let mut new = Vec::new();
    for (at, (path, disk, marker)) in disks.iter().enumerate() {
        if marker.is_some() {
            continue;
        }
        if any_marked && holds_files(disk).map_err(|e| io(path, e))? {
            return Err(IdentityError::UnmarkedWithData { path: path.to_path_buf() });
        }
        let index = slots.iter().position(Option::is_none).unwrap_or(slots.len());
        if let Some(slot) = slots.get_mut(index) {
            *slot = Some(at);
            new.push((index as u32, at));
        }
    }
    let marker_of = |index: u32| DiskMarker { format: MARKER_FORMAT, disk_set: disk_set.clone(), index, disks: count };

    if node.is_none() {
        write_marker(
            &FileDisk::open(data_dir).map_err(|e| io(data_dir, e))?,
            NODE_MARKER,
            &NodeMarker { format: MARKER_FORMAT, disk_set: disk_set.clone(), disks: count },
        )
        .map_err(|e| io(&node_path, e))?;
    }
    for (index, at) in &new {
        let disk = &disks[*at].1;
        write_marker(disk, DISK_MARKER, &marker_of(*index)).map_err(|e| io(disk.root(), e))?;
    }

    let replaced = if any_marked { new.iter().map(|(i, _)| *i).collect() } else { Vec::new() };
    let mut by_position: Vec<Option<FileDisk>> = disks.into_iter().map(|(_, d, _)| Some(d)).collect();
    let mut assigned = Vec::with_capacity(slots.len());
    for (index, at) in slots.into_iter().enumerate() {
        let disk = at.and_then(|at| by_position.get_mut(at)).and_then(Option::take);
        let Some(disk) = disk else { continue };
        let bytes = marker_bytes(&marker_of(index as u32)).map_err(|e| io(disk.root(), e))?;
        assigned.push(disk.with_marker(DISK_MARKER, bytes).map_err(|e| io(data_dir, e))?);
    }
    Ok(Assigned { disks: assigned, replaced, disk_set })
}

fn io(path: &Path, error: impl std::fmt::Display) -> IdentityError {
    IdentityError::Io { path: path.to_path_buf(), error: error.to_string() }
}

/// Whether `disk` holds any file of a store (anything but what a fresh file system starts with).
fn holds_files(disk: &FileDisk) -> std::io::Result<bool> {
    let entries = disk.list().map_err(std::io::Error::other)?;
    Ok(entries.iter().any(|e| {
        let top = e.name.split('/').next().unwrap_or_default();
        !IGNORED_TOP_LEVEL.contains(&top)
    }))
}

/// Reads the marker at `path`: `None` if there is none; an error if it is there and not one.
fn read_marker<T: DeserializeOwned + Versioned>(path: &Path) -> Result<Option<T>, IdentityError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    let marker: T = serde_json::from_slice(&bytes)
        .map_err(|e| IdentityError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
    if marker.format() != MARKER_FORMAT {
        let reason = format!("format {} (this hoard reads {MARKER_FORMAT})", marker.format());
        return Err(IdentityError::Unreadable { path: path.to_path_buf(), reason });
    }
    Ok(Some(marker))
}

fn marker_bytes<T: Serialize>(marker: &T) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(marker).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn write_marker<T: Serialize>(disk: &FileDisk, name: &str, marker: &T) -> std::io::Result<()> {
    let bytes = marker_bytes(marker)?;
    let mut file = disk.create(name).map_err(std::io::Error::other)?;
    file.write_all(&bytes).map_err(std::io::Error::other)?;
    file.commit().map_err(std::io::Error::other)
}

trait Versioned {
    fn format(&self) -> u32;
}

impl Versioned for NodeMarker {
    fn format(&self) -> u32 {
        self.format
    }
}

impl Versioned for DiskMarker {
    fn format(&self) -> u32 {
        self.format
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SimEnv;

    struct Fixture {
        dir: tempfile::TempDir,
        env: SimEnv,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture { dir: tempfile::tempdir().unwrap(), env: SimEnv::new(7, 1_000) }
        }

        fn data(&self) -> PathBuf {
            self.dir.path().join("data")
        }

        fn disks(&self, names: &[&str]) -> Vec<PathBuf> {
            names.iter().map(|n| self.dir.path().join(n)).collect()
        }

        fn assign(&self, names: &[&str]) -> Result<Assigned, IdentityError> {
            assign(&self.data(), &self.disks(names), &self.env)
        }

        fn put(&self, disk: &str, name: &str) {
            let path = self.dir.path().join(disk).join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
    }

    #[test]
    fn a_first_start_marks_every_disk_in_order_and_a_reordered_list_finds_the_same_slots() {
        let f = Fixture::new();
        let first = f.assign(&["a", "b", "c"]).unwrap();
        assert_eq!(roots(&first), f.disks(&["a", "b", "c"]));
        assert!(first.replaced.is_empty());
        assert!(f.data().join(NODE_MARKER).is_file());

        let again = f.assign(&["c", "a", "b"]).unwrap();
        assert_eq!(roots(&again), f.disks(&["a", "b", "c"]), "matched by marker, not by position");
        assert_eq!(again.disk_set, first.disk_set);
    }

    #[test]
    fn data_from_before_markers_is_kept_and_marked_in_order() {
        let f = Fixture::new();
        f.put("a", "shards/00/x.0");
        f.put("b", "shards/00/x.1");
        let got = f.assign(&["a", "b"]).unwrap();
        assert_eq!(roots(&got), f.disks(&["a", "b"]));
        assert!(f.dir.path().join("a").join(DISK_MARKER).is_file());
    }

    #[test]
    fn an_empty_directory_replaces_a_lost_disk_and_one_with_files_is_refused() {
        let f = Fixture::new();
        let first = f.assign(&["a", "b", "c"]).unwrap();
        std::fs::remove_dir_all(f.dir.path().join("b")).unwrap();
        f.put("new/lost+found", "ignored");
        let got = f.assign(&["c", "new", "a"]).unwrap();
        assert_eq!(roots(&got), f.disks(&["a", "new", "c"]), "the new disk takes the free slot 1");
        assert_eq!(got.replaced, vec![1]);
        assert_eq!(got.disk_set, first.disk_set);

        std::fs::remove_dir_all(f.dir.path().join("new")).unwrap();
        f.put("stray", "photos/cat.jpg");
        let err = f.assign(&["a", "stray", "c"]).unwrap_err();
        assert!(matches!(&err, IdentityError::UnmarkedWithData { path } if path.ends_with("stray")), "{err}");
        assert!(!f.dir.path().join("stray").join(DISK_MARKER).exists(), "no marker written on refusal");
    }

    #[test]
    fn disks_of_another_node_copies_and_a_changed_count_are_refused() {
        let f = Fixture::new();
        f.assign(&["a", "b"]).unwrap();
        let other = Fixture::new();
        let other_env = SimEnv::new(8, 1_000);
        assign(&other.data(), &other.disks(&["x", "y"]), &other_env).unwrap();

        let foreign = other.dir.path().join("y");
        let err = assign(&f.data(), &[f.dir.path().join("a"), foreign], &f.env).unwrap_err();
        assert!(matches!(err, IdentityError::ForeignDisk { .. }), "{err}");

        copy_dir(&f.dir.path().join("a"), &f.dir.path().join("a-copy"));
        let err = f.assign(&["a", "a-copy"]).unwrap_err();
        assert!(matches!(err, IdentityError::Duplicate { index: 0, .. }), "{err}");

        let err = f.assign(&["a", "b", "c"]).unwrap_err();
        assert!(matches!(err, IdentityError::CountChanged { was: 2, now: 3, .. }), "{err}");
        assert!(!f.dir.path().join("c").join(DISK_MARKER).exists(), "no marker written on refusal");
    }

    #[test]
    fn marked_disks_with_a_fresh_data_directory_or_a_damaged_marker_are_refused() {
        let f = Fixture::new();
        f.assign(&["a", "b"]).unwrap();
        std::fs::remove_file(f.data().join(NODE_MARKER)).unwrap();
        let err = f.assign(&["a", "b"]).unwrap_err();
        assert!(matches!(err, IdentityError::NodeMarkerMissing { .. }), "{err}");

        let g = Fixture::new();
        g.assign(&["a", "b"]).unwrap();
        std::fs::write(g.dir.path().join("b").join(DISK_MARKER), b"{\"format\":1").unwrap();
        let err = g.assign(&["a", "b"]).unwrap_err();
        assert!(matches!(err, IdentityError::Unreadable { .. }), "{err}");
    }

    fn roots(a: &Assigned) -> Vec<PathBuf> {
        a.disks.iter().map(|d| d.root().to_path_buf()).collect()
    }

    #[test]
    fn a_disk_directory_deleted_in_use_gets_its_marker_back_with_its_first_new_file() {
        let f = Fixture::new();
        let got = f.assign(&["a", "b"]).unwrap();
        let b = &got.disks[1];
        let marker = std::fs::read(b.root().join(DISK_MARKER)).unwrap();
        std::fs::remove_dir_all(b.root()).unwrap();
        let mut file = b.create("shards/00/x.1").unwrap();
        file.write_all(b"piece").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(b.root().join(DISK_MARKER)).unwrap(), marker);
        drop(got);
        assert_eq!(roots(&f.assign(&["b", "a"]).unwrap()), f.disks(&["a", "b"]), "and is known by it");
    }

    /// The markers' stored form, pinned: a change is a new `format`, and this build must still read 1.
    #[test]
    fn the_v1_marker_layout_is_pinned() {
        let disk = DiskMarker { format: 1, disk_set: "00112233445566778899aabbccddeeff".into(), index: 2, disks: 6 };
        let node = NodeMarker { format: 1, disk_set: "00112233445566778899aabbccddeeff".into(), disks: 6 };
        assert_eq!(
            marker_bytes(&disk).unwrap(),
            b"{\"format\":1,\"disk_set\":\"00112233445566778899aabbccddeeff\",\"index\":2,\"disks\":6}\n"
        );
        assert_eq!(
            marker_bytes(&node).unwrap(),
            b"{\"format\":1,\"disk_set\":\"00112233445566778899aabbccddeeff\",\"disks\":6}\n"
        );
    }

    #[test]
    fn a_disk_emptied_in_use_gets_its_marker_before_any_new_file() {
        let f = Fixture::new();
        let got = f.assign(&["a", "b"]).unwrap();
        let b = &got.disks[1];
        let mut file = b.create("shards/00/x.1").unwrap();
        file.write_all(b"piece").unwrap();
        file.commit().unwrap();
        let marker = std::fs::read(b.root().join(DISK_MARKER)).unwrap();
        // A drive swapped at the same mount point: the directory stays, what was in it is gone.
        for entry in std::fs::read_dir(b.root()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
        let mut file = b.create("shards/01/y.1").unwrap();
        assert_eq!(std::fs::read(b.root().join(DISK_MARKER)).unwrap(), marker, "marked before the file lands");
        file.write_all(b"piece").unwrap();
        file.commit().unwrap();
        drop(got);
        assert_eq!(roots(&f.assign(&["b", "a"]).unwrap()), f.disks(&["a", "b"]), "and is known by it");
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
