//! [`SimDisk`]'s own behaviours; the contract every [`Disk`] shares runs against it in `disk::tests`.

use std::sync::Arc;

use super::*;
use crate::env::SimEnv;

fn write(disk: &dyn Disk, name: &str, bytes: &[u8]) {
    let mut f = disk.create(name).unwrap();
    f.write_all(bytes).unwrap();
    f.commit().unwrap();
}

fn read(disk: &dyn Disk, name: &str) -> Result<Vec<u8>> {
    disk.read_at(name, 0, usize::MAX).map(Vec::from)
}

fn names(disk: &dyn Disk) -> Vec<String> {
    disk.list().unwrap().into_iter().map(|e| e.name).collect()
}

fn is_simulated_eio(r: &Result<impl fmt::Debug>) -> bool {
    let simulated =
        |e: &std::io::Error| e.kind() == std::io::ErrorKind::Other && e.to_string().starts_with("simulated");
    matches!(r, Err(StorageError::Io(e)) if simulated(e))
}

/// What each call of a run answered, the committed files it left and the faults it met.
type Run = (Vec<String>, Vec<(String, Vec<u8>)>, SimDiskStats);

/// A workload touching every kind of call and every fault.
fn run_script(seed: u64) -> Run {
    let config = SimDiskConfig {
        commit_fails_after_rename: 0.5,
        torn_temp_on_crash: 0.5,
        rot_on_read: 0.2,
        lose_unsynced_commits: true,
        ..SimDiskConfig::uniform_eio(0.25)
    };
    let disk = SimDisk::new("d", seed, config);
    let mut outcomes = Vec::new();
    let mut unfinished = Vec::new();
    for round in 0..40u32 {
        let name = format!("dir/f{}", round % 7);
        let body: Vec<u8> = (0..round * 3 + 1).map(|i| (i * 7 + round) as u8).collect();
        let written = disk.create(&name).and_then(|mut f| {
            f.write_all(&body)?;
            if round % 5 == 3 {
                // Left unfinished until the next crash.
                unfinished.push(f);
                return Ok(());
            }
            f.commit()
        });
        outcomes.push(format!("write {name}: {written:?}"));
        outcomes.push(format!("read: {:?}", disk.read_at(&name, 1, 5)));
        outcomes.push(format!("len: {:?}", disk.len(&name)));
        outcomes.push(format!("list: {:?}", disk.list()));
        if round % 4 == 0 {
            outcomes.push(format!("remove: {:?}", disk.remove(&format!("dir/f{}", round % 3))));
        }
        if round % 6 == 5 {
            disk.crash();
            unfinished.clear();
        }
        if round % 9 == 0 {
            disk.sync_point();
        }
    }
    (outcomes, disk.committed_files(), disk.stats())
}

#[test]
fn same_seed_and_calls_give_the_same_faults_and_files() {
    let first = run_script(42);
    let second = run_script(42);
    assert_eq!(first, second);
    let stats = &first.2;
    assert!(stats.eio_total() > 0 && stats.temps_torn + stats.temps_dropped > 0 && stats.rotten_reads > 0, "{stats:?}");
    assert_ne!(first.0, run_script(43).0, "another seed draws other faults");
}

#[test]
fn label_is_the_one_given_and_a_fault_free_disk_never_fails() {
    let disk = SimDisk::new("node1/disk0", 7, SimDiskConfig::default());
    assert_eq!(disk.label(), "node1/disk0");
    for i in 0..50 {
        write(&disk, &format!("f{i}"), b"x");
        assert_eq!(read(&disk, &format!("f{i}")).unwrap(), b"x");
    }
    assert_eq!(disk.stats(), SimDiskStats::default());
}

#[test]
fn crash_drops_unfinished_temps_and_keeps_committed_files() {
    let disk = SimDisk::new("d", 1, SimDiskConfig::default());
    write(&disk, "kept", b"durable");
    let mut pending = disk.create("pending").unwrap();
    pending.write_all(b"volatile").unwrap();
    disk.crash();
    assert_eq!(names(&disk), ["kept"]);
    assert_eq!(read(&disk, "kept").unwrap(), b"durable");
    assert_eq!(disk.stats().temps_dropped, 1);
    assert_eq!(disk.stats().crashes, 1);
    // The writer died with its process.
    assert!(is_simulated_eio(&pending.write_all(b"more")));
    assert!(is_simulated_eio(&pending.commit()));
    assert_eq!(names(&disk), ["kept"]);
}

#[test]
fn a_crash_can_leave_torn_temps_that_list_shows_with_the_temp_suffix() {
    let config = SimDiskConfig { torn_temp_on_crash: 1.0, ..SimDiskConfig::default() };
    let disk = SimDisk::new("d", 3, config);
    let mut pending = disk.create("shards/a").unwrap();
    pending.write_all(&[9u8; 1000]).unwrap();
    disk.crash();
    drop(pending);
    let listed = disk.list().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].name.starts_with("shards/a.") && listed[0].name.ends_with(TEMP_SUFFIX), "{listed:?}");
    assert!(listed[0].len <= 1000);
    assert_eq!(disk.stats().temps_torn, 1);
    assert_eq!(disk.committed_files(), vec![]);
    // A torn temp is on the media now: a second crash keeps it, and scrub can remove it.
    disk.crash();
    assert_eq!(disk.list().unwrap(), listed);
    disk.remove(&listed[0].name).unwrap();
    assert_eq!(disk.list().unwrap(), vec![]);
}

#[test]
fn lose_unsynced_commits_reverts_exactly_the_commits_and_removals_since_the_sync_point() {
    let config = SimDiskConfig { lose_unsynced_commits: true, ..SimDiskConfig::default() };
    let disk = SimDisk::new("d", 1, config);
    write(&disk, "old", b"v1");
    write(&disk, "removed-before", b"r");
    write(&disk, "removed-after", b"r");
    disk.remove("removed-before").unwrap();
    disk.sync_point();
    write(&disk, "old", b"v2");
    write(&disk, "old", b"v3");
    write(&disk, "new", b"n");
    disk.remove("removed-after").unwrap();
    write(&disk, "gone-again", b"g");
    disk.remove("gone-again").unwrap();
    disk.crash();
    let expected = vec![("old".to_string(), b"v1".to_vec()), ("removed-after".to_string(), b"r".to_vec())];
    assert_eq!(disk.committed_files(), expected);
    assert_eq!(disk.stats().commits_reverted, 6);
    // Reverting emptied the record: a second crash changes nothing.
    disk.crash();
    assert_eq!(disk.committed_files(), expected);
}

#[test]
fn without_lose_unsynced_commits_a_crash_keeps_every_commit_and_removal() {
    let disk = SimDisk::new("d", 1, SimDiskConfig::default());
    write(&disk, "a", b"1");
    write(&disk, "b", b"2");
    write(&disk, "a", b"3");
    disk.remove("b").unwrap();
    disk.crash();
    assert_eq!(disk.committed_files(), vec![("a".to_string(), b"3".to_vec())]);
    assert_eq!(disk.stats().commits_reverted, 0);
}

#[test]
fn eio_odds_of_zero_never_fail_and_of_one_always_fail() {
    let never = SimDisk::new("d", 5, SimDiskConfig::uniform_eio(0.0));
    for i in 0..200 {
        write(&never, &format!("f{i}"), b"abc");
        assert_eq!(never.len(&format!("f{i}")).unwrap(), 3);
    }
    assert_eq!(never.stats().eio_total(), 0);

    let always = SimDisk::new("d", 5, SimDiskConfig::default());
    write(&always, "f", b"abc");
    let mut open = always.create("g").unwrap();
    always.set_config(SimDiskConfig::uniform_eio(1.0));
    for _ in 0..20 {
        assert!(is_simulated_eio(&always.create("h").map(|_| ())));
        assert!(is_simulated_eio(&open.write_all(b"x")));
        assert!(is_simulated_eio(&always.read_at("f", 0, 3)));
        assert!(is_simulated_eio(&always.len("f")));
        assert!(is_simulated_eio(&always.remove("f")));
        assert!(is_simulated_eio(&always.list()));
    }
    assert!(is_simulated_eio(&open.commit()));
    let stats = always.stats();
    for op in SimOp::ALL {
        assert_eq!(stats.eio(op), if op == SimOp::Commit { 1 } else { 20 }, "{op}");
    }
    // A failed commit (before the rename) leaves nothing behind.
    always.set_config(SimDiskConfig::default());
    assert_eq!(names(&always), ["f"]);
}

#[test]
fn eio_odds_are_per_kind_of_call() {
    let disk = SimDisk::new("d", 5, SimDiskConfig::default().with_eio(SimOp::Read, 1.0));
    write(&disk, "f", b"abc");
    assert!(is_simulated_eio(&disk.read_at("f", 0, 1)));
    assert_eq!(disk.len("f").unwrap(), 3);
    let message = disk.read_at("f", 0, 1).unwrap_err().to_string();
    assert!(message.contains("read") && message.contains("\"f\""), "{message}");
}

#[test]
fn odd_odds_are_clamped_rather_than_panicking() {
    for p in [f64::NAN, -1.0, 2.0, f64::INFINITY] {
        let config = SimDiskConfig {
            commit_fails_after_rename: p,
            torn_temp_on_crash: p,
            rot_on_read: p,
            ..SimDiskConfig::uniform_eio(p)
        };
        let disk = SimDisk::new("d", 1, config);
        let _ = disk.create("f").and_then(|mut f| f.write_all(b"x").and_then(|()| f.commit()));
        let _ = disk.read_at("f", 0, 1);
        disk.crash();
    }
}

#[test]
fn fail_next_fails_exactly_the_next_n_calls_of_that_kind() {
    let disk = SimDisk::new("d", 1, SimDiskConfig::default());
    write(&disk, "f", b"abc");
    disk.fail_next(SimOp::Read, 2);
    assert_eq!(disk.len("f").unwrap(), 3, "other kinds are untouched");
    assert!(is_simulated_eio(&disk.read_at("f", 0, 3)));
    assert!(is_simulated_eio(&disk.read_at("f", 0, 3)));
    assert_eq!(&disk.read_at("f", 0, 3).unwrap()[..], b"abc");
    disk.fail_next(SimOp::Write, 1);
    let mut w = disk.create("g").unwrap();
    assert!(is_simulated_eio(&w.write_all(b"lost")));
    w.write_all(b"kept").unwrap();
    w.commit().unwrap();
    assert_eq!(read(&disk, "g").unwrap(), b"kept");
    assert_eq!(disk.stats().eio(SimOp::Read), 2);
    assert_eq!(disk.stats().eio(SimOp::Write), 1);
}

#[test]
fn a_commit_failing_after_the_rename_leaves_the_file_visible_but_unsynced() {
    let config =
        SimDiskConfig { commit_fails_after_rename: 1.0, lose_unsynced_commits: true, ..SimDiskConfig::default() };
    let disk = SimDisk::new("d", 1, config);
    disk.fail_next(SimOp::Commit, 1);
    let mut w = disk.create("f").unwrap();
    w.write_all(b"abc").unwrap();
    assert!(is_simulated_eio(&w.commit()));
    assert_eq!(names(&disk), ["f"]);
    assert_eq!(disk.stats().commits_failed_after_rename, 1);
    disk.crash();
    assert_eq!(names(&disk), Vec::<String>::new());
}

#[test]
fn a_vanished_disk_fails_every_call_until_it_reappears_with_its_files() {
    let disk = SimDisk::new("d", 1, SimDiskConfig::default());
    write(&disk, "f", b"abc");
    let mut open = disk.create("g").unwrap();
    disk.vanish();
    assert!(disk.is_vanished());
    assert!(is_simulated_eio(&disk.create("h").map(|_| ())));
    assert!(is_simulated_eio(&disk.read_at("f", 0, 3)));
    assert!(is_simulated_eio(&disk.len("f")));
    assert!(is_simulated_eio(&disk.remove("f")));
    assert!(is_simulated_eio(&disk.list()));
    // Dead since the power went (not a refusal of the vanished disk).
    assert!(is_simulated_eio(&open.write_all(b"x")));
    assert!(matches!(disk.read_at("../x", 0, 1), Err(StorageError::InvalidName(_))), "names are checked first");
    // The oracle still sees the media.
    assert_eq!(disk.committed_files(), vec![("f".to_string(), b"abc".to_vec())]);
    disk.reappear(false);
    assert!(!disk.is_vanished());
    assert_eq!(names(&disk), ["f"], "the unfinished write was lost with the power");
    assert!(is_simulated_eio(&open.commit()));
    assert_eq!(read(&disk, "f").unwrap(), b"abc");
    let stats = disk.stats();
    assert_eq!((stats.vanishes, stats.vanished_refusals, stats.temps_dropped), (1, 5, 1));
}

#[test]
fn a_disk_reappearing_empty_is_a_blank_replacement() {
    let disk = SimDisk::new("d", 1, SimDiskConfig::default());
    write(&disk, "f", b"abc");
    disk.vanish();
    disk.reappear(true);
    assert_eq!(disk.list().unwrap(), vec![]);
    assert!(matches!(disk.read_at("f", 0, 1), Err(StorageError::NotFound(_))));
    write(&disk, "f", b"new");
    assert_eq!(read(&disk, "f").unwrap(), b"new");
}

#[test]
fn corrupt_flips_exactly_one_byte_of_the_stored_file() {
    let disk = SimDisk::new("d", 1, SimDiskConfig::default());
    let body: Vec<u8> = (0..64).collect();
    write(&disk, "f", &body);
    disk.corrupt("f", 10).unwrap();
    let read_back = read(&disk, "f").unwrap();
    let differing: Vec<usize> = (0..body.len()).filter(|&i| read_back[i] != body[i]).collect();
    assert_eq!(differing, [10]);
    assert_eq!(read_back[10], !body[10]);
    assert!(matches!(disk.corrupt("f", 64), Err(StorageError::NotFound(_))));
    assert!(matches!(disk.corrupt("nope", 0), Err(StorageError::NotFound(_))));
    assert_eq!(disk.stats().corruptions, 1);
}

#[test]
fn rot_on_read_flips_one_byte_of_what_is_read_not_of_the_file() {
    let disk = SimDisk::new("d", 9, SimDiskConfig { rot_on_read: 1.0, ..SimDiskConfig::default() });
    let body = vec![0u8; 100];
    write(&disk, "f", &body);
    for _ in 0..10 {
        let got = read(&disk, "f").unwrap();
        assert_eq!(got.iter().filter(|&&b| b != 0).count(), 1);
    }
    assert_eq!(disk.committed_files(), vec![("f".to_string(), body)]);
    assert_eq!(read(&disk, "f").map(|b| b.len()).unwrap(), 100);
    assert_eq!(disk.stats().rotten_reads, 11);
}

#[test]
fn modification_times_come_from_the_clock_or_are_zero() {
    let env = Arc::new(SimEnv::new(1, 5_000));
    let disk = SimDisk::new("d", 1, SimDiskConfig::default()).with_clock(env.clone());
    write(&disk, "f", b"1");
    env.advance(10);
    let _pending = disk.create("g").unwrap();
    let times: Vec<i64> = disk.list().unwrap().iter().map(|e| e.modified_ms).collect();
    assert_eq!(times, [5_000, 5_010]);
    let unclocked = SimDisk::new("d", 1, SimDiskConfig::default());
    write(&unclocked, "f", b"1");
    assert_eq!(unclocked.list().unwrap()[0].modified_ms, 0);
}

#[test]
fn one_disk_is_shared_by_its_clones_across_threads() {
    let disk = SimDisk::new("d", 1, SimDiskConfig::default());
    let as_dyn: Arc<dyn Disk> = Arc::new(disk.clone());
    std::thread::scope(|s| {
        for t in 0..4 {
            let as_dyn = as_dyn.clone();
            s.spawn(move || write(as_dyn.as_ref(), &format!("t{t}"), b"x"));
        }
    });
    assert_eq!(disk.committed_files().len(), 4);
    assert_eq!(format!("{disk:?}"), "SimDisk { label: \"d\", .. }");
}
