//! The behaviours every [`Disk`] shares, run against each, and each disk's own.

use std::io::ErrorKind;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::writer::Sink;
use super::writer::DIRECT_ALIGN;
use super::writer::DIRECT_CHUNK;
use super::writer::SYNC_EVERY;
use super::*;
use crate::env::SimEnv;

fn mem() -> MemDisk {
    MemDisk::new(Arc::new(SimEnv::new(1, 1_000)))
}

fn write(disk: &dyn Disk, name: &str, bytes: &[u8]) {
    let mut f = disk.create(name).unwrap();
    f.write_all(bytes).unwrap();
    f.commit().unwrap();
}

/// The behaviours every Disk must share, run against both implementations.
fn committed_file_reads_back(disk: &dyn Disk) {
    write(disk, "shards/ab/file.0", b"hello world");
    assert_eq!(&disk.read_at("shards/ab/file.0", 0, 5).unwrap()[..], b"hello");
    assert_eq!(&disk.read_at("shards/ab/file.0", 6, 100).unwrap()[..], b"world");
    assert_eq!(&disk.read_at("shards/ab/file.0", 11, 10).unwrap()[..], b"");
    assert_eq!(&disk.read_at("shards/ab/file.0", 50, 10).unwrap()[..], b"");
    assert_eq!(disk.len("shards/ab/file.0").unwrap(), 11);
    // Committing again replaces the file.
    write(disk, "shards/ab/file.0", b"bye");
    assert_eq!(&disk.read_at("shards/ab/file.0", 0, 100).unwrap()[..], b"bye");
}

fn uncommitted_file_is_invisible_but_listed_as_temp(disk: &dyn Disk) {
    let mut f = disk.create("a/b.1").unwrap();
    f.write_all(b"partial").unwrap();
    assert!(matches!(disk.read_at("a/b.1", 0, 10), Err(StorageError::NotFound(_))));
    assert!(matches!(disk.len("a/b.1"), Err(StorageError::NotFound(_))));
    let listed = disk.list().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].name.starts_with("a/b.1.") && listed[0].name.ends_with(TEMP_SUFFIX), "{listed:?}");
    f.commit().unwrap();
    let listed = disk.list().unwrap();
    assert_eq!(listed.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a/b.1"]);
    assert_eq!(listed[0].len, 7);
}

fn dropped_writer_removes_its_temp_file(disk: &dyn Disk) {
    let mut f = disk.create("x/y").unwrap();
    f.write_all(&[7u8; 300 * 1024]).unwrap();
    drop(f);
    assert_eq!(disk.list().unwrap(), vec![]);
    assert!(matches!(disk.read_at("x/y", 0, 1), Err(StorageError::NotFound(_))));
}

fn list_is_recursive_and_sorted(disk: &dyn Disk) {
    write(disk, "z", b"1");
    write(disk, "shards/01/a.0", b"22");
    write(disk, "shards/ff/b.2", b"333");
    write(disk, "shards/01/deeper/c", b"");
    let listed = disk.list().unwrap();
    let names: Vec<(&str, u64)> = listed.iter().map(|e| (e.name.as_str(), e.len)).collect();
    assert_eq!(names, [("shards/01/a.0", 2), ("shards/01/deeper/c", 0), ("shards/ff/b.2", 3), ("z", 1)]);
}

fn remove_is_idempotent(disk: &dyn Disk) {
    write(disk, "gone", b"x");
    disk.remove("gone").unwrap();
    disk.remove("gone").unwrap();
    disk.remove("never/was").unwrap();
    assert!(matches!(disk.read_at("gone", 0, 1), Err(StorageError::NotFound(_))));
}

fn bad_names_are_refused(disk: &dyn Disk) {
    for name in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "./a", "a\\b", "a.tmp"] {
        assert!(matches!(disk.create(name), Err(StorageError::InvalidName(_))), "create {name:?}");
    }
    for name in ["", "/etc/passwd", "../x", "a/./b"] {
        assert!(matches!(disk.read_at(name, 0, 1), Err(StorageError::InvalidName(_))), "read {name:?}");
        assert!(matches!(disk.remove(name), Err(StorageError::InvalidName(_))), "remove {name:?}");
    }
}

/// A file many times the direct-write chunk and the write-behind and sync thresholds, written in pieces that
/// straddle them (as shard files are: a piece and its 4-byte CRC) and ending in a partial block, reads back
/// whole, and only once committed.
fn large_file_written_in_pieces_reads_back(disk: &dyn Disk) {
    let piece_len = 256 * 1024 + 4;
    let pieces: Vec<Vec<u8>> =
        (0..90u32).map(|i| (0..piece_len).map(|j| (i as usize * 31 + j * 7) as u8).collect()).collect();
    let mut f = disk.create("shards/aa/large").unwrap();
    for p in &pieces {
        f.write_all(p).unwrap();
    }
    assert!(matches!(disk.read_at("shards/aa/large", 0, 1), Err(StorageError::NotFound(_))));
    f.commit().unwrap();
    let total = piece_len as u64 * pieces.len() as u64;
    assert!(total > 2 * SYNC_EVERY);
    assert_ne!(total % DIRECT_ALIGN as u64, 0, "ends in a partial block");
    assert_eq!(disk.len("shards/aa/large").unwrap(), total);
    for i in [0, 31, 32, 89] {
        let at = (i * piece_len) as u64;
        assert_eq!(disk.read_at("shards/aa/large", at, piece_len).unwrap(), pieces[i], "piece {i}");
    }
}

/// Files of whole direct-write chunks, and an empty one, leave nothing for the partial-block tail.
fn files_of_whole_chunks_and_empty_files_read_back(disk: &dyn Disk) {
    let bytes: Vec<u8> = (0..2 * DIRECT_CHUNK).map(|i| (i * 13 + i / 4096) as u8).collect();
    write(disk, "whole", &bytes);
    assert_eq!(disk.len("whole").unwrap(), bytes.len() as u64);
    assert_eq!(disk.read_at("whole", 0, bytes.len()).unwrap(), bytes);
    write(disk, "empty", b"");
    assert_eq!(disk.len("empty").unwrap(), 0);
    assert_eq!(&disk.read_at("empty", 0, 10).unwrap()[..], b"");
}

/// Ranges that start and end anywhere, inside a page, across pages, at and past the end, read back exactly
/// (a direct read rounds each to whole pages around it and cuts the wanted bytes out).
fn any_range_reads_back(disk: &dyn Disk) {
    let len = 3 * DIRECT_ALIGN + 100;
    let bytes: Vec<u8> = (0..len).map(|i| (i * 29 + i / 4096) as u8).collect();
    write(disk, "ranges", &bytes);
    let page = DIRECT_ALIGN;
    for (at, n) in [
        (0, 1),
        (1, page - 1),
        (page - 1, 2),
        (page, page),
        (100, 3 * page),
        (len - 5, 100),
        (len - 1, 1),
        (len, 10),
        (len + 100, 10),
        (0, usize::MAX / 2),
    ] {
        let want = &bytes[at.min(len)..at.saturating_add(n).min(len)];
        assert_eq!(disk.read_at("ranges", at as u64, n).unwrap(), want, "{n} bytes at {at}");
    }
}

/// A read hands out a view of memory that later reads may reuse once every view of it is gone: a view kept
/// stays whole while other files are read, and a shorter file read after a long one gives only its own
/// bytes, nothing of what the reused memory held before (its last page is read short, at the end of file).
fn views_stay_whole_and_reused_memory_shows_nothing_old(disk: &dyn Disk) {
    let long: Vec<u8> = vec![0xaa; 40 * DIRECT_ALIGN];
    let shorter: Vec<u8> = vec![0x55; 20 * DIRECT_ALIGN + 100];
    write(disk, "long", &long);
    write(disk, "shorter", &shorter);
    let kept = disk.read_at("long", 10, 30 * DIRECT_ALIGN).unwrap();
    for _ in 0..50 {
        drop(disk.read_at("long", 0, long.len()).unwrap());
        assert_eq!(&disk.read_at("shorter", 0, long.len()).unwrap()[..], &shorter[..]);
        drop(disk.read_at("long", 0, long.len()).unwrap());
        let tail = disk.read_at("shorter", 3 * DIRECT_ALIGN as u64 + 60, long.len()).unwrap();
        assert_eq!(&tail[..], &shorter[3 * DIRECT_ALIGN + 60..]);
    }
    assert_eq!(&kept[..], &long[10..10 + 30 * DIRECT_ALIGN]);
}

macro_rules! for_both_disks {
    ($($behaviour:ident),* $(,)?) => {
        mod file_disk {
            $(
                #[test]
                fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    let disk = super::FileDisk::open(dir.path().join("disk")).unwrap();
                    super::$behaviour(&disk);
                }
            )*
        }
        mod mem_disk {
            $(
                #[test]
                fn $behaviour() {
                    super::$behaviour(&super::mem());
                }
            )*
        }
        mod sim_disk {
            $(
                #[test]
                fn $behaviour() {
                    super::$behaviour(&super::sim::SimDisk::new("sim", 1, Default::default()));
                }
            )*
        }
        mod buffered_file_disk {
            $(
                #[test]
                fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    let disk = super::FileDisk::open(dir.path().join("disk")).unwrap().buffered();
                    super::$behaviour(&disk);
                }
            )*
        }
    };
}

for_both_disks!(
    committed_file_reads_back,
    uncommitted_file_is_invisible_but_listed_as_temp,
    dropped_writer_removes_its_temp_file,
    list_is_recursive_and_sorted,
    remove_is_idempotent,
    bad_names_are_refused,
    large_file_written_in_pieces_reads_back,
    files_of_whole_chunks_and_empty_files_read_back,
    any_range_reads_back,
    views_stay_whole_and_reused_memory_shows_nothing_old,
);

/// A file whose first direct write is refused goes on through the page cache with everything gathered
/// so far, reads back whole, and the disk writes the next files through the page cache.
#[test]
fn a_refused_direct_write_falls_back_to_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FileDisk::open(dir.path().join("disk")).unwrap();
    let bytes: Vec<u8> = (0..3 * DIRECT_CHUNK + 123).map(|i| (i * 7 + i / 1000) as u8).collect();
    let mut w = disk.create_file("fallback").unwrap();
    w.write_all(&bytes[..1000]).unwrap();
    if matches!(w.sink, Some(Sink::Direct { .. })) {
        // What a write's EINVAL leads to, on a file system that takes O_DIRECT here.
        w.refused_direct(&std::io::Error::from(ErrorKind::InvalidInput)).unwrap();
    }
    assert!(matches!(w.sink, Some(Sink::Buffered { .. })));
    w.write_all(&bytes[1000..]).unwrap();
    Box::new(w).commit().unwrap();
    assert_eq!(disk.read_at("fallback", 0, bytes.len()).unwrap(), bytes);
    assert!(!disk.direct.load(Ordering::Relaxed));
    let next = disk.create_file("next").unwrap();
    assert!(matches!(next.sink, Some(Sink::Buffered { .. })));
}

#[test]
fn file_disk_heals_after_its_root_directory_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("disk");
    let disk = FileDisk::open(&root).unwrap();
    write(&disk, "shards/aa/one", b"1");
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(disk.list().unwrap(), vec![]);
    assert!(matches!(disk.read_at("shards/aa/one", 0, 1), Err(StorageError::NotFound(_))));
    write(&disk, "shards/aa/two", b"22");
    assert_eq!(&disk.read_at("shards/aa/two", 0, 10).unwrap()[..], b"22");
    assert_eq!(disk.list().unwrap().len(), 1);
}

#[test]
fn file_disk_reports_mtime_in_unix_ms() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FileDisk::open(dir.path()).unwrap();
    write(&disk, "f", b"1");
    let listed = disk.list().unwrap();
    // After 2020-01-01.
    assert!(listed[0].modified_ms > 1_577_836_800_000, "{listed:?}");
}

#[test]
fn file_disk_commit_fails_cleanly_if_directory_vanished_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("disk");
    let disk = FileDisk::open(&root).unwrap();
    let mut f = disk.create("a/b").unwrap();
    f.write_all(b"data").unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    assert!(f.commit().is_err());
    write(&disk, "a/b", b"again");
    assert_eq!(&disk.read_at("a/b", 0, 10).unwrap()[..], b"again");
}

#[test]
fn mem_disk_uses_env_time_for_modified_ms() {
    let env = Arc::new(SimEnv::new(1, 5_000));
    let disk = MemDisk::new(env.clone());
    write(&disk, "f", b"1");
    env.advance(10);
    let mut g = disk.create("g").unwrap();
    g.write_all(b"2").unwrap();
    let times: Vec<i64> = disk.list().unwrap().iter().map(|e| e.modified_ms).collect();
    assert_eq!(times, [5_000, 5_010]);
}

#[test]
fn mem_disk_corrupt_flips_one_byte_and_wipe_loses_everything() {
    let disk = mem();
    write(&disk, "f", b"abc");
    disk.corrupt("f", 1).unwrap();
    assert_eq!(&disk.read_at("f", 0, 3).unwrap()[..], [b'a', !b'b', b'c']);
    assert!(matches!(disk.corrupt("f", 3), Err(StorageError::NotFound(_))));
    assert!(matches!(disk.corrupt("nope", 0), Err(StorageError::NotFound(_))));
    let mut pending = disk.create("pending").unwrap();
    disk.wipe();
    assert_eq!(disk.list().unwrap(), vec![]);
    assert!(pending.write_all(b"x").is_err());
    assert!(pending.commit().is_err());
}

#[test]
fn a_directory_is_told_from_a_mount_point() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(super::file::is_mount_point(dir.path()), Some(false));
    if std::path::Path::new("/proc/self").exists() {
        assert_eq!(super::file::is_mount_point(std::path::Path::new("/proc")), Some(true));
    }
}
