//! hoard's deterministic simulation: a seeded workload of S3 operations against the system under a seeded
//! schedule of faults, checked by one oracle (`sim/oracle.rs`). This file holds the runs; `sim/` the parts.
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
