//! The rebalance planner: which shards of one segment move where, given where shards may go and how much
//! each disk holds. Pure: no I/O, so it is tested on whole made-up stores.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use hoard_protocol::DiskRef;
use hoard_protocol::NodeId;
use hoard_protocol::Segment;
use hoard_protocol::SegmentId;

/// Disks within this fraction of the mean load (in 1/100) count as even.
pub const EVEN_WITHIN_PERCENT: u64 = 5;

/// Bytes of one shard file of `segment` (near enough: the planner compares them).
pub(super) fn shard_bytes(segment: &Segment) -> u64 {
    segment.size.div_ceil(u64::from(segment.layout.data.max(1)))
}

/// Where shards may go: the usable disks of each node (up, member, not degraded, not leaving), and the nodes
/// whose shards must leave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub targets: BTreeMap<NodeId, Vec<DiskRef>>,
    /// Draining and removed nodes.
    pub leaving: BTreeSet<NodeId>,
    /// Of those, the draining ones (not removed yet).
    pub draining: BTreeSet<NodeId>,
}

impl Topology {
    /// How many of `disks` are on leaving nodes.
    pub fn leaving_shards<'a>(&self, disks: impl IntoIterator<Item = &'a DiskRef>) -> usize {
        disks.into_iter().filter(|d| self.leaving.contains(&d.node)).count()
    }
}

/// Bytes held by each usable disk, as the pass goes.
#[derive(Debug, Clone, Default)]
pub struct Loads {
    pub bytes: BTreeMap<DiskRef, u64>,
}

impl Loads {
    /// Every usable disk of `topology`, holding nothing yet.
    pub fn empty(topology: &Topology) -> Loads {
        Loads { bytes: topology.targets.values().flatten().map(|d| (*d, 0)).collect() }
    }

    /// Counts `segment`'s shards on the usable disks.
    pub fn add(&mut self, segment: &Segment) {
        let bytes = shard_bytes(segment);
        for d in &segment.layout.disks {
            if let Some(load) = self.bytes.get_mut(d) {
                *load += bytes;
            }
        }
    }

    fn mean(&self) -> u64 {
        self.bytes.values().sum::<u64>() / (self.bytes.len().max(1) as u64)
    }

    fn shift(&mut self, from: DiskRef, to: DiskRef, bytes: u64) {
        if let Some(l) = self.bytes.get_mut(&from) {
            *l = l.saturating_sub(bytes);
        }
        *self.bytes.entry(to).or_default() += bytes;
    }
}

/// One shard to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedMove {
    pub shard: u8,
    pub from: DiskRef,
    pub to: DiskRef,
}

/// The moves that make one segment's placement better, recorded in `loads` as planned:
/// - every shard on a leaving node goes to a usable disk the segment does not use yet, on the node with the
///   fewest of its shards (then the emptiest disk);
/// - while a usable node holds two more of its shards than another usable node, one goes from the first to
///   the emptiest free disk of the second (the spread a new write gets: as many nodes as there are);
/// - then, with `balance` (a pass plans either the moves above, or, when there are none anywhere, these),
///   while a shard on a usable disk can go to a usable disk that holds less by more than two shards'
///   bytes and than [`EVEN_WITHIN_PERCENT`] of the mean, without leaving the segment on fewer nodes (the
///   target node holds fewer of its shards than the source node, or it is the same node), the move with the
///   largest difference is made.
///
/// A shard never moves onto a disk the segment already uses, nor where a stale copy of it is still recorded.
pub fn plan_segment(
    segment: &Segment,
    topology: &Topology,
    loads: &mut Loads,
    stale: &dyn Fn(SegmentId, u8, DiskRef) -> bool,
    balance: bool,
) -> Vec<PlannedMove> {
    let mut disks = segment.layout.disks.clone();
    let bytes = shard_bytes(segment);
    let on_node = |disks: &[DiskRef], node: NodeId| disks.iter().filter(|d| d.node == node).count();
    let free = |disks: &[DiskRef], shard: u8, d: &DiskRef| !disks.contains(d) && !stale(segment.id, shard, *d);
    let mut moves = Vec::new();
    for shard in 0..disks.len() {
        let from = disks[shard];
        if !topology.leaving.contains(&from.node) {
            continue;
        }
        let to = topology
            .targets
            .values()
            .flatten()
            .filter(|d| free(&disks, shard as u8, d))
            .min_by_key(|d| (on_node(&disks, d.node), loads.bytes.get(d).copied().unwrap_or(0), **d))
            .copied();
        if let Some(to) = to {
            loads.shift(from, to, bytes);
            disks[shard] = to;
            moves.push(PlannedMove { shard: shard as u8, from, to });
        }
    }
    // Spread as a new write is: no usable node holds two more of the segment's shards than another.
    let nodes: Vec<NodeId> = topology.targets.keys().copied().collect();
    for _ in 0..disks.len() {
        let most = nodes.iter().copied().max_by_key(|n| (on_node(&disks, *n), std::cmp::Reverse(*n)));
        let fewest = nodes.iter().copied().min_by_key(|n| (on_node(&disks, *n), *n));
        let (Some(most), Some(fewest)) = (most, fewest) else { break };
        if on_node(&disks, most) < on_node(&disks, fewest) + 2 {
            break;
        }
        let load = |d: &DiskRef| loads.bytes.get(d).copied().unwrap_or(0);
        let from = (0..disks.len()).filter(|i| disks[*i].node == most).max_by_key(|i| (load(&disks[*i]), *i));
        let Some(shard) = from else { break };
        let to = topology.targets.get(&fewest).into_iter().flatten().filter(|d| free(&disks, shard as u8, d));
        let Some(to) = to.min_by_key(|d| (load(d), **d)).copied() else { break };
        let from = disks[shard];
        loads.shift(from, to, bytes);
        disks[shard] = to;
        moves.push(PlannedMove { shard: shard as u8, from, to });
    }
    if !balance {
        return moves;
    }
    let margin = (2 * bytes).max(loads.mean() * EVEN_WITHIN_PERCENT / 100);
    for _ in 0..disks.len() {
        let mut best: Option<(u64, usize, DiskRef)> = None;
        for shard in 0..disks.len() {
            let from = disks[shard];
            let Some(&held) = loads.bytes.get(&from) else { continue };
            for to in topology.targets.values().flatten().filter(|d| free(&disks, shard as u8, d)) {
                let spread = to.node == from.node || on_node(&disks, to.node) < on_node(&disks, from.node);
                let gap = held.saturating_sub(loads.bytes.get(to).copied().unwrap_or(0));
                if spread && gap > margin && best.is_none_or(|(g, _, _)| gap > g) {
                    best = Some((gap, shard, *to));
                }
            }
        }
        let Some((_, shard, to)) = best else { break };
        let from = disks[shard];
        loads.shift(from, to, bytes);
        disks[shard] = to;
        moves.push(PlannedMove { shard: shard as u8, from, to });
    }
    moves
}

#[cfg(test)]
mod tests {
    use hoard_protocol::ShardLayout;

    use super::*;

    fn d(node: NodeId, disk: u32) -> DiskRef {
        DiskRef { node, disk }
    }

    fn segment(id: u128, disks: Vec<DiskRef>) -> Segment {
        Segment {
            id: SegmentId(id),
            part_number: 0,
            size: 4 << 20,
            layout: ShardLayout { data: 4, parity: 2, block_size: 1 << 20, disks },
            seal: None,
        }
    }

    fn topology(nodes: &[NodeId], leaving: &[NodeId]) -> Topology {
        Topology {
            targets: nodes.iter().map(|n| (*n, vec![d(*n, 0), d(*n, 1)])).collect(),
            leaving: leaving.iter().copied().collect(),
            draining: leaving.iter().copied().collect(),
        }
    }

    /// One pass, as the actor makes it: plans every segment in turn and applies the moves; answers the moves
    /// made. It balances loads only when no segment needs a move to spread out or leave a node.
    fn pass(segments: &mut [Segment], topology: &Topology) -> usize {
        let mut scratch = Loads::default();
        let needed: usize =
            segments.iter().map(|s| plan_segment(s, topology, &mut scratch, &|_, _, _| false, false).len()).sum();
        let mut loads = loads_of(segments, topology);
        let mut made = 0;
        for s in segments.iter_mut() {
            for m in plan_segment(s, topology, &mut loads, &|_, _, _| false, needed == 0) {
                assert_eq!(s.layout.disks[m.shard as usize], m.from);
                assert!(!s.layout.disks.contains(&m.to), "a shard never joins another of its segment");
                s.layout.disks[m.shard as usize] = m.to;
                made += 1;
            }
        }
        made
    }

    /// Passes until one moves nothing; answers how many moved something.
    fn run(segments: &mut [Segment], topology: &Topology) -> usize {
        let mut passes = 0;
        while pass(segments, topology) > 0 {
            passes += 1;
            assert!(passes <= 3, "rebalancing does not settle");
        }
        passes
    }

    fn loads_of(segments: &[Segment], topology: &Topology) -> Loads {
        let mut loads = Loads::empty(topology);
        for s in segments {
            loads.add(s);
        }
        loads
    }

    /// 300 segments of 4+2 on three nodes with two disks each: each node holds two shards of each.
    fn three_node_store() -> Vec<Segment> {
        let disks: Vec<DiskRef> = (1..=3).flat_map(|n| [d(n, 0), d(n, 1)]).collect();
        (0..300).map(|i| segment(i, disks.clone())).collect()
    }

    #[test]
    fn a_joined_node_gets_its_share_and_a_second_pass_moves_nothing() {
        let mut segments = three_node_store();
        let four = topology(&[1, 2, 3, 4], &[]);
        assert_eq!(run(&mut segments, &four), 2, "one pass spreads the stripes, one evens the disks out");
        let loads = loads_of(&segments, &four);
        let (min, max) = (loads.bytes.values().min().copied(), loads.bytes.values().max().copied());
        let (min, max) = (min.unwrap_or(0), max.unwrap_or(0));
        let mean = loads.mean();
        assert!(max - min <= mean / 10 + 2 * shard_bytes(&segments[0]), "uneven: {loads:?}");
        for s in &segments {
            let nodes: BTreeSet<NodeId> = s.layout.disks.iter().map(|d| d.node).collect();
            assert!(nodes.len() >= 3, "a segment stays spread over at least as many nodes: {:?}", s.layout.disks);
        }
        assert_eq!(pass(&mut segments, &four), 0, "an even store stays as it is");
    }

    #[test]
    fn a_draining_node_is_emptied_onto_the_others() {
        let mut segments = three_node_store();
        // Node 4 joined and was filled; now node 2 leaves.
        let four = topology(&[1, 2, 3, 4], &[]);
        run(&mut segments, &four);
        let without_two = topology(&[1, 3, 4], &[2]);
        run(&mut segments, &without_two);
        for s in &segments {
            assert!(s.layout.disks.iter().all(|d| d.node != 2), "{:?}", s.layout.disks);
            let distinct: BTreeSet<&DiskRef> = s.layout.disks.iter().collect();
            assert_eq!(distinct.len(), 6);
        }
    }

    #[test]
    fn a_stripe_written_on_one_node_is_spread_over_the_nodes_that_join() {
        let mut segments = vec![segment(1, (0..6).map(|i| d(1, i)).collect())];
        let mut topo = topology(&[2, 3], &[]);
        topo.targets.insert(1, (0..6).map(|i| d(1, i)).collect());
        run(&mut segments, &topo);
        let per_node: BTreeMap<NodeId, usize> = segments[0].layout.disks.iter().fold(BTreeMap::new(), |mut m, d| {
            *m.entry(d.node).or_default() += 1;
            m
        });
        assert_eq!(per_node, [(1, 2), (2, 2), (3, 2)].into(), "{:?}", segments[0].layout.disks);
    }

    #[test]
    fn a_shard_never_moves_onto_its_own_stale_copy_and_waits_when_no_disk_is_free() {
        let s = segment(1, vec![d(1, 0), d(1, 1), d(2, 0), d(2, 1), d(3, 0), d(3, 1)]);
        // Node 3 leaves, and only node 4's disk 0 is usable; shard 4's stale copy is there.
        let topo = Topology { targets: [(4, vec![d(4, 0)])].into(), leaving: [3].into(), draining: [3].into() };
        let stale = |segment, shard, disk| (segment, shard, disk) == (SegmentId(1), 4, d(4, 0));
        let moves = plan_segment(&s, &topo, &mut Loads::default(), &stale, true);
        assert_eq!(moves, vec![PlannedMove { shard: 5, from: d(3, 1), to: d(4, 0) }]);
    }
}
