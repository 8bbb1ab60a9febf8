//! hoard's deterministic simulation: a seeded workload of S3 operations against a whole cluster in one process
//! (turmoil's network, in-memory disks, one thread) under a seeded schedule of faults, checked by one oracle
//! (`sim/oracle.rs`); and the same workload against one real node (real TCP, disks and time). This file holds
//! the runs; `sim/` the parts.
//!
//! `HOARD_SIM_SEED=n` replays one seed; `HOARD_SIM_SEEDS=n` (from `HOARD_SIM_SEED_START`) runs a campaign.

mod sim;

#[test]
fn seeds_come_from_the_environment_or_the_fixed_set() {
    // The variables are read, not set here: a run with them set checks them instead.
    match (std::env::var("HOARD_SIM_SEED"), std::env::var("HOARD_SIM_SEEDS")) {
        (Err(_), Err(_)) => assert_eq!(sim::seeds(&[3, 1, 2]), vec![3, 1, 2]),
        (Ok(one), _) => assert_eq!(sim::seeds(&[3]), vec![one.trim().parse::<u64>().expect("a number")]),
        (Err(_), Ok(n)) => assert_eq!(sim::seeds(&[3]).len() as u64, n.trim().parse::<u64>().expect("a number")),
    }
    let line = sim::replay_line(8812345, "abc");
    assert!(line.contains("HOARD_SIM_SEED=8812345") && line.contains("abc"), "{line}");
}

/// One seed's workload against one node (real disks, real time), every request checked by the oracle, every
/// byte on the node's disks and in its metadata scanned for an encrypted version's plaintext.
async fn one_node_run(seed: u64) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, [0x5au8; 32]).expect("key file");
    let node = hoard_it::TestNode::builder()
        .data_dir(dir.path().join("node"))
        .master_key_file(&key_file)
        // SSE-C over the test's plain HTTP, as behind a TLS proxy.
        .trust_proxy_tls(true)
        .start()
        .await
        .expect("node");
    let client = sim::client::Client {
        dial: sim::client::tcp(node.addr()),
        env: std::sync::Arc::new(hoard_storage::env::SystemEnv),
        host: node.addr().to_string(),
        access_key: node.access_key().into(),
        secret_key: node.secret_key().into(),
    };
    let created = client.send("PUT", "/sim", &[], Vec::new()).await.expect("create bucket");
    assert_eq!(created.status, 200, "{}", String::from_utf8_lossy(&created.body));
    let mut run = sim::run::Run::new(&client, "sim");
    for op in sim::workload::draw(seed, 60, 5, seed << 20) {
        run.op(&op).await;
    }
    // Once everything is acknowledged, every key reads as its last acknowledged version.
    for k in 0..5 {
        run.read(&format!("k{k}"), None).await;
    }
    node.stop().await;
    let mut seen = std::collections::BTreeSet::new();
    for (name, bytes) in sim::cluster::files_under(dir.path()) {
        run.oracle.check_disk_file(&name, &bytes);
        seen.extend(sim::body::tags_in(&bytes));
    }
    // The scan finds what is there: the plaintext of every plain version the keys still hold, on some disk.
    let plain: Vec<u64> = run
        .current()
        .into_iter()
        .filter(|(_, len, sse)| *len >= 16 && *sse == sim::workload::Sse::Plain)
        .map(|(tag, _, _)| tag)
        .collect();
    let mut violations = run.oracle.violations().to_vec();
    if let Some(missing) = plain.iter().find(|t| !seen.contains(t)) {
        violations.push(format!("the disk scan did not find plain version {missing}"));
    }
    (violations, run.trace.hash())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_workload_against_one_node_meets_the_oracle() {
    // At most three seeds (a campaign's first three): a campaign's length is meant for the simulated cluster.
    for seed in sim::seeds(&[1, 2, 3]).into_iter().take(3) {
        let (violations, hash) = one_node_run(seed).await;
        assert!(violations.is_empty(), "{}\n{}", sim::replay_line(seed, &hash), violations.join("\n"));
        eprintln!("seed {seed}: trace {hash}");
    }
}

/// The whole cluster simulated (three nodes of two in-memory disks each on turmoil's network, one seeded
/// schedule of crashes, partitions, actor panics, disk errors, vanishing disks, bit rot and delays) under the
/// seeded workload: the oracle holds throughout and once everything is healed. Every seed runs; each failing
/// one prints the line that replays it. The fixed seeds (one per fault point: `schedule::point_of`) make every
/// named fault point fire.
#[test]
fn a_simulated_cluster_meets_the_oracle_under_faults() {
    let mut fixed: Vec<u64> = (0..sim::schedule::FAULT_POINTS.len() as u64).collect();
    fixed.extend(REGRESSIONS.iter().map(|(seed, _)| *seed).filter(|s| !fixed.contains(s)).collect::<Vec<_>>());
    let seeds = sim::seeds(&fixed);
    let began = wall_clock();
    let mut failures = Vec::new();
    let mut fired = std::collections::BTreeSet::new();
    for &seed in &seeds {
        let one = wall_clock();
        match sim::driver::run(seed, sim::driver::Plan::for_seed(seed)) {
            Ok(out) if out.violations.is_empty() => {
                eprintln!(
                    "seed {seed}: trace {}, {} ms simulated in {:.1} s; fired {:?}",
                    out.trace_hash,
                    out.sim_ms,
                    one.elapsed().as_secs_f64(),
                    out.points_fired
                );
                fired.extend(out.points_fired);
            }
            // Printed as found too: a long campaign tells its failures as it goes.
            Ok(out) => {
                let failure = format!("{}\n  {}", sim::replay_line(seed, &out.trace_hash), out.violations.join("\n  "));
                eprintln!("FAILED {failure}");
                failures.push(failure);
            }
            Err(e) => {
                let failure = format!("{}\n  {e:#}", sim::replay_line(seed, "none: the run did not finish"));
                eprintln!("FAILED {failure}");
                failures.push(failure);
            }
        }
    }
    let minutes = began.elapsed().as_secs_f64() / 60.0;
    eprintln!("{} seeds, {} failed, {:.1} seeds per minute", seeds.len(), failures.len(), seeds.len() as f64 / minutes);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if seeds == fixed {
        let missed: Vec<_> = sim::schedule::FAULT_POINTS.iter().filter(|p| !fired.contains(**p)).collect();
        assert!(missed.is_empty(), "fault points the fixed seeds never fired: {missed:?}");
    }
}

/// Seeds that found a bug, kept in the fixed set: the seed, and what it found (fixed since).
const REGRESSIONS: &[(u64, &str)] = &[
    (8, "repair's flush failed at once while the repair actor was being restarted after a panic, leaving damage"),
    (7, "the peer watch read pending join tokens on the blocking pool: the same seed gave other timings (replay)"),
    (0, "a node that had not loaded a rotation's key (rotated through another node) failed reads with 500"),
    (5048, "a node that knew fewer disks than a stripe is wide (just restarted) put two shards on one disk"),
    (5058, "repair skipped every reported shard as a source: more reports than parity made a segment unrepairable"),
    (5043, "campaign seed: degraded writes (quorum) then permanent damage; damage now waits for a whole cluster"),
    (5138, "campaign seed: a restarted node repaired before it could reach its peers"),
    (41169, "a report queued while its repair failed kept the layout it had before rebalance moved three shards"),
    (50501, "two leaders in term 4, one after the other, as openraft's leader ids allow: the oracle compares entries"),
];

/// One seed replayed gives the same trace: the same requests answered the same way, the same faults at the same
/// simulated instants, the same bytes on every disk. A replay is what `HOARD_SIM_SEED=n` does: the seed alone in
/// a fresh process (this test binary again, running only the cluster test). Two runs in one process are not
/// compared: state shared by the process (counters behind actor names and ids) differs between them.
#[test]
fn the_same_seed_replays_the_same_cluster_run() {
    let seed = sim::seeds(&[7])[0];
    let first = replay(seed);
    let second = replay(seed);
    if let Some(at) = first.iter().zip(&second).position(|(a, b)| a != b) {
        panic!("the replays part at line {at}:\n  first:  {}\n  second: {}", first[at], second[at]);
    }
    assert_eq!(first.len(), second.len(), "one replay told more than the other");
    let closing = format!("seed {seed}: trace ");
    assert!(first.iter().any(|l| l.starts_with(&closing)), "no trace line in the replay: {first:?}");
}

/// The events (and the closing trace line) of seed `seed` run alone in a child process of this test binary.
fn replay(seed: u64) -> Vec<String> {
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .args(["a_simulated_cluster_meets_the_oracle_under_faults", "--exact", "--nocapture"])
        .env("HOARD_SIM_SEED", seed.to_string())
        .env("HOARD_SIM_VERBOSE", "1")
        .env_remove("HOARD_SIM_SEEDS")
        .env_remove("HOARD_SIM_LOG")
        .output()
        .expect("the replay runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the replay of seed {seed} failed:\n{text}");
    // The trace's events, the faults' log and the closing line; not the panics the faults cause, which name
    // threads, nor the closing line's wall-clock time.
    text.lines()
        .filter(|l| l.starts_with('[') || l.contains(" ms: ") || l.starts_with("seed "))
        .map(|l| l.split(" simulated in ").next().unwrap_or(l).to_string())
        .collect()
}

/// The wall clock, to report how long a seed takes (seeds per minute); it decides nothing.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> std::time::Instant {
    std::time::Instant::now()
}
