//! The S3 operations a simulated run sends, drawn from its seed: a few keys so that writes, deletes and
//! reads of one key meet; every encryption mode; sizes from empty to several segments; multipart, copies, ranged
//! reads and listings. Every version written gets a fresh tag (see `body`).

use rand::rngs::StdRng;
use rand::Rng as _;
use rand::SeedableRng as _;

/// How a version is stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sse {
    Plain,
    SseS3,
    /// With this customer key.
    SseC([u8; 32]),
}

/// Names the mode, never the customer's key.
impl std::fmt::Debug for Sse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sse::Plain => "Plain",
            Sse::SseS3 => "SseS3",
            Sse::SseC(_) => "SseC",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        tag: u64,
        len: usize,
        sse: Sse,
    },
    /// A multipart upload of `parts` parts of `part_len` bytes (the last may be shorter: `len` in all).
    Multipart {
        key: String,
        tag: u64,
        len: usize,
        part_len: usize,
        sse: Sse,
    },
    /// A copy of `from`'s version onto `to` (the driver names the version it expects, so the oracle knows what
    /// `to` then holds).
    Copy {
        from: String,
        to: String,
    },
    /// A read of the whole object, or of `len` bytes at `start`.
    Get {
        key: String,
        range: Option<(usize, usize)>,
    },
    Delete {
        key: String,
    },
    List {
        prefix: String,
    },
}

/// The smallest part but the last, as S3 requires.
pub const PART: usize = 5 << 20;

/// Draws `n` operations over `keys` keys from `seed`; tags start at `first_tag`.
pub fn draw(seed: u64, n: usize, keys: usize, first_tag: u64) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut customer = [0u8; 32];
    rng.fill(&mut customer);
    let mut tag = first_tag;
    let mut next_tag = || {
        tag += 1;
        tag
    };
    let sizes = [0usize, 1, 63, 4096, 65_543, 300_001, 1_100_003];
    (0..n)
        .map(|_| {
            let key = format!("k{}", rng.gen_range(0..keys.max(1)));
            let sse = match rng.gen_range(0..3) {
                0 => Sse::Plain,
                1 => Sse::SseS3,
                _ => Sse::SseC(customer),
            };
            match rng.gen_range(0..100) {
                0..=29 => Op::Put { key, tag: next_tag(), len: sizes[rng.gen_range(0..sizes.len())], sse },
                30..=31 => {
                    let len = PART + rng.gen_range(1..PART / 2);
                    Op::Multipart { key, tag: next_tag(), len, part_len: PART, sse }
                }
                32..=39 => Op::Copy { from: key, to: format!("k{}", rng.gen_range(0..keys.max(1))) },
                40..=74 => {
                    let range = rng.gen_bool(0.4).then(|| (rng.gen_range(0..70_000), rng.gen_range(1..200_000)));
                    Op::Get { key, range }
                }
                75..=89 => Op::Delete { key },
                _ => Op::List { prefix: "k".into() },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_operations_and_every_write_a_fresh_tag() {
        let a = draw(8812345, 500, 6, 0);
        assert_eq!(a, draw(8812345, 500, 6, 0));
        assert_ne!(a, draw(8812346, 500, 6, 0));
        let tags: Vec<u64> = a
            .iter()
            .filter_map(|op| match op {
                Op::Put { tag, .. } | Op::Multipart { tag, .. } => Some(*tag),
                _ => None,
            })
            .collect();
        let mut unique = tags.clone();
        unique.dedup();
        assert_eq!(tags, unique, "tags only grow");
        let kinds = |f: fn(&Op) -> bool| a.iter().filter(|op| f(op)).count();
        assert!(kinds(|op| matches!(op, Op::Put { sse: Sse::SseC(_), .. })) > 0);
        assert!(kinds(|op| matches!(op, Op::Put { sse: Sse::SseS3, .. })) > 0);
        assert!(kinds(|op| matches!(op, Op::Multipart { .. })) > 0);
        assert!(kinds(|op| matches!(op, Op::Get { range: Some(_), .. })) > 0);
        assert!(kinds(|op| matches!(op, Op::Copy { .. })) > 0);
        assert!(kinds(|op| matches!(op, Op::Delete { .. })) > 0);
    }
}
