//! The faults of a simulated run, drawn from its seed: when each strikes (simulated milliseconds from the
//! start) and what it does. The driver applies them between turmoil's steps; a fault that would take a second
//! node out while one is already out is skipped (and the trace says so), so a majority of the metadata group and
//! enough shards of every stripe stay reachable and the workload can make progress.
//!
//! Faults during the workload lose nothing durable: a write may commit with only its write quorum of shards
//! (`data` of `data + parity`) while a disk or node is out, and until repair makes it whole again one more lost
//! shard would lose it, as in any erasure-coded store. Permanent damage ([`Damage`]: a crash that loses the disks'
//! caches, bit rot) strikes one node once the cluster is whole again, where parity covers it.

use rand::rngs::StdRng;
use rand::Rng as _;
use rand::SeedableRng as _;

/// The named fault points of a node (`hoard::faults::FAULT_POINTS`), each made to panic once.
pub use hoard::faults::FAULT_POINTS;

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The node is cut off from the other nodes (both ways) for `ms`; the client still reaches it.
    Partition { node: u64, ms: u64 },
    /// The node's host crashes (kill -9: its runtime and memory go, its disks lose what was never durable) and
    /// starts again after `ms`.
    Crash { node: u64, ms: u64 },
    /// The actor that next reaches `point` on the node panics (once).
    Panic { node: u64, point: &'static str },
    /// The next `n` calls of one kind on one disk fail with an I/O error.
    DiskErrors { node: u64, disk: usize, op: usize, n: u32 },
    /// One disk drops off the bus for `ms`, then comes back with its files.
    DiskVanish { node: u64, disk: usize, ms: u64 },
    /// Every message between two nodes takes up to `ms` more (delays reorder messages of different links).
    Latency { ms: u64 },
    /// Messages between two nodes are held for `ms`, then delivered at once.
    Hold { node: u64, other: u64, ms: u64 },
    /// The link between two nodes drops messages for `ms`: each message may break it, and it mends at random.
    Flaky { node: u64, other: u64, ms: u64 },
}

/// The fault point a seed is sure to arm: consecutive seeds take every point in turn, so any
/// `FAULT_POINTS.len()` consecutive seeds arm them all.
pub fn point_of(seed: u64) -> &'static str {
    FAULT_POINTS[(seed % FAULT_POINTS.len() as u64) as usize]
}

/// `count` faults for a run of `nodes` nodes of `disks` disks each, spread over `span_ms` of simulated time;
/// among them a panic at [`point_of`] the seed.
pub fn draw(seed: u64, nodes: u64, disks: usize, count: usize, span_ms: u64) -> Vec<(u64, Fault)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17_5eed);
    let sure =
        (rng.gen_range(500..span_ms.max(501)), Fault::Panic { node: rng.gen_range(1..=nodes), point: point_of(seed) });
    let mut out: Vec<(u64, Fault)> = (0..count)
        .map(|_| {
            let at = rng.gen_range(500..span_ms.max(501));
            let node = rng.gen_range(1..=nodes);
            // Another node than `node`.
            let other = (node - 1 + rng.gen_range(1..nodes)) % nodes + 1;
            let disk = rng.gen_range(0..disks);
            let fault = match rng.gen_range(0..100u32) {
                0..=16 => Fault::Partition { node, ms: rng.gen_range(200..3_000) },
                17..=29 => Fault::Crash { node, ms: rng.gen_range(200..3_000) },
                30..=51 => Fault::Panic { node, point: FAULT_POINTS[rng.gen_range(0..FAULT_POINTS.len())] },
                52..=64 => Fault::DiskErrors { node, disk, op: rng.gen_range(0..7), n: rng.gen_range(1..4) },
                65..=74 => Fault::DiskVanish { node, disk, ms: rng.gen_range(200..3_000) },
                75..=84 => Fault::Latency { ms: rng.gen_range(0..50) },
                85..=92 => Fault::Hold { node, other, ms: rng.gen_range(50..2_000) },
                _ => Fault::Flaky { node, other, ms: rng.gen_range(200..3_000) },
            };
            (at, fault)
        })
        .collect();
    out.push(sure);
    out.sort_by_key(|(at, _)| *at);
    out
}

/// The permanent damage of a run, on one node once the cluster is whole again: a crash that loses what its
/// disks' caches held since their last flush (and tears unfinished files), bit rot in its files, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    pub node: u64,
    pub crash: bool,
    pub rot: bool,
}

/// The seed's damage (bit rot always where the seed's sure point is repair's rebuild, so it has work).
pub fn damage(seed: u64, nodes: u64) -> Damage {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xda3a_9e00);
    let node = rng.gen_range(1..=nodes);
    let (crash, rot) = match rng.gen_range(0..3u32) {
        0 => (true, false),
        1 => (false, true),
        _ => (true, true),
    };
    Damage { node, crash, rot: rot || point_of(seed) == "repair.rebuild" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_faults_in_time_order() {
        let a = draw(7, 3, 2, 40, 20_000);
        assert_eq!(a, draw(7, 3, 2, 40, 20_000));
        assert_ne!(a, draw(8, 3, 2, 40, 20_000));
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(a.iter().all(|(at, _)| (500..20_000).contains(at)));
        let pairs = a.iter().filter_map(|(_, f)| match f {
            Fault::Hold { node, other, .. } | Fault::Flaky { node, other, .. } => Some((*node, *other)),
            _ => None,
        });
        assert!(
            pairs.clone().count() > 0 && pairs.clone().all(|(n, o)| n != o && (1..=3).contains(&o)),
            "links join two nodes"
        );
        let armed = |seed| {
            draw(seed, 3, 2, 0, 20_000).into_iter().filter_map(|(_, f)| match f {
                Fault::Panic { point, .. } => Some(point),
                _ => None,
            })
        };
        let every: std::collections::BTreeSet<_> = (0..FAULT_POINTS.len() as u64).flat_map(armed).collect();
        assert_eq!(every.len(), FAULT_POINTS.len(), "consecutive seeds arm every point");
    }
}
