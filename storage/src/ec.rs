//! Reed-Solomon erasure coding of one block into `data + parity` pieces (GF(2^8), `reed-solomon-erasure`).
//!
//! Invariants:
//! - A block of `n` bytes becomes `data + parity` pieces of [`piece_len`]`(n, data)` bytes each: the block
//!   split in order into `data` pieces, the last ones zero-padded, then `parity` parity pieces. The length is
//!   at least 1 (the coder cannot handle empty pieces), so an empty block still has one-byte pieces.
//! - Any `data` of the `data + parity` pieces give back the block, bit for bit; fewer give an error, never
//!   wrong bytes. `parity == 0` stores the split alone and needs every piece.
//! - The coding matrix is the library's (Vandermonde made systematic) and is part of the on-disk format:
//!   parity pieces written today must decode tomorrow. The shard-file golden vector freezes it.
//! - This module only computes; it does no I/O and keeps no state between calls, so one `Codec` can be
//!   shared by a pool of workers.

use std::fmt;

use bytes::Bytes;
use reed_solomon_erasure::galois_8;
use reed_solomon_erasure::ReedSolomon;

use crate::error::Result;
use crate::error::StorageError;
use crate::pages::slice_parts;
use crate::pages::PageBuf;

/// The most pieces a stripe can have: a shard index is one byte.
pub const MAX_WIDTH: usize = 255;

/// Length of each piece of a block of `block_len` bytes cut into `data` pieces: `ceil(block_len / data)`,
/// at least 1. `data == 0` is treated as 1 (layouts with no data shards are refused before they get here).
pub fn piece_len(block_len: usize, data: usize) -> usize {
    block_len.div_ceil(data.max(1)).max(1)
}

fn ec_err(e: reed_solomon_erasure::Error) -> StorageError {
    StorageError::Ec(e.to_string())
}

/// A Reed-Solomon coder for one `(data, parity)` shape.
#[derive(Clone)]
pub struct Codec {
    data: usize,
    parity: usize,
    /// `None` when `parity == 0`: pieces are just the split.
    rs: Option<ReedSolomon<galois_8::Field>>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec").field("data", &self.data).field("parity", &self.parity).finish()
    }
}

impl Codec {
    /// A coder for `data >= 1` data pieces and `parity` parity pieces, `data + parity <= 255`.
    pub fn new(data: usize, parity: usize) -> Result<Codec> {
        if data == 0 {
            return Err(StorageError::Ec("at least one data shard is needed".into()));
        }
        if data + parity > MAX_WIDTH {
            return Err(StorageError::Ec(format!("{data}+{parity} shards: at most {MAX_WIDTH} in all")));
        }
        let rs = if parity == 0 { None } else { Some(ReedSolomon::new(data, parity).map_err(ec_err)?) };
        Ok(Codec { data, parity, rs })
    }

    pub fn data(&self) -> usize {
        self.data
    }

    pub fn parity(&self) -> usize {
        self.parity
    }

    /// `data + parity`.
    pub fn width(&self) -> usize {
        self.data + self.parity
    }

    /// `ceil(block_len / data)`, at least 1.
    pub fn piece_len(&self, block_len: usize) -> usize {
        piece_len(block_len, self.data)
    }

    /// The pieces of a block given as consecutive parts (a sealed block's ciphertext, then its tag): `data`
    /// pieces of the parts joined and zero-padded, then `parity` more, all `piece_len` of the block long. Nothing
    /// is copied that need not be: a data piece that lies whole within one part is a view of it; one across two
    /// parts or past the block's end is gathered, and the parity pieces are computed, into reused page buffers.
    pub fn encode_bytes(&self, parts: &[Bytes]) -> Result<Vec<Bytes>> {
        let len = self.piece_len(parts.iter().map(Bytes::len).sum());
        let mut pieces: Vec<Bytes> = Vec::with_capacity(self.width());
        for i in 0..self.data {
            let mut views = slice_parts(parts, i * len, (i + 1) * len);
            pieces.push(match views.pop() {
                Some(whole) if views.is_empty() && whole.len() == len => whole,
                last => {
                    views.extend(last);
                    PageBuf::gather_padded(&views, len).into_bytes()
                }
            });
        }
        // Every byte of a parity piece is written by the coder.
        let mut parity: Vec<PageBuf> = (0..self.parity).map(|_| PageBuf::take(len)).collect();
        if let Some(rs) = &self.rs {
            let mut out: Vec<&mut [u8]> = parity.iter_mut().map(|p| p.as_mut()).collect();
            rs.encode_sep(&pieces, &mut out).map_err(ec_err)?;
        }
        pieces.extend(parity.into_iter().map(PageBuf::into_bytes));
        Ok(pieces)
    }

    /// [`Codec::encode_bytes`] of one block, as owned pieces: for the tests.
    #[cfg(test)]
    pub(crate) fn encode(&self, block: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(self.encode_bytes(&[Bytes::copy_from_slice(block)])?.into_iter().map(Vec::from).collect())
    }

    fn check_slots(&self, pieces: &[Option<Vec<u8>>]) -> Result<usize> {
        if pieces.len() != self.width() {
            return Err(StorageError::Ec(format!(
                "{} piece slots given, codec is {}+{}",
                pieces.len(),
                self.data,
                self.parity
            )));
        }
        let present = pieces.iter().filter(|p| p.is_some()).count();
        if present < self.data {
            return Err(StorageError::Ec(format!(
                "only {present} of {} pieces present, {} needed",
                self.width(),
                self.data
            )));
        }
        Ok(present)
    }

    /// Given `data + parity` slots (`None` = missing or corrupt), returns the original block of `block_len`
    /// bytes. Needs any `data` pieces present, each `piece_len(block_len)` long.
    pub fn decode(&self, mut pieces: Vec<Option<Vec<u8>>>, block_len: usize) -> Result<Vec<u8>> {
        self.check_slots(&pieces)?;
        let len = self.piece_len(block_len);
        for (i, piece) in pieces.iter().enumerate() {
            if let Some(p) = piece {
                if p.len() != len {
                    return Err(StorageError::Ec(format!(
                        "piece {i} is {} bytes, a block of {block_len} bytes has pieces of {len}",
                        p.len()
                    )));
                }
            }
        }
        if pieces[..self.data].iter().any(Option::is_none) {
            match &self.rs {
                Some(rs) => rs.reconstruct_data(&mut pieces).map_err(ec_err)?,
                None => return Err(StorageError::Ec("a data piece is missing and there is no parity".into())),
            }
        }
        let mut out = Vec::with_capacity(block_len);
        for piece in pieces[..self.data].iter().flatten() {
            let want = (block_len - out.len()).min(piece.len());
            out.extend_from_slice(&piece[..want]);
        }
        if out.len() != block_len {
            return Err(StorageError::Ec(format!("decoded {} bytes, expected {block_len}", out.len())));
        }
        Ok(out)
    }

    /// Fills every `None` slot (data and parity): what repair uses to rebuild lost shards. All present pieces
    /// must have the same length. On error nothing is changed.
    pub fn reconstruct_all(&self, pieces: &mut [Option<Vec<u8>>]) -> Result<()> {
        let present = self.check_slots(pieces)?;
        if present == self.width() {
            return Ok(());
        }
        match &self.rs {
            Some(rs) => rs.reconstruct(pieces).map_err(ec_err),
            // Unreachable: with no parity, check_slots already demanded every piece.
            None => Err(StorageError::Ec("a piece is missing and there is no parity".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::Rng;
    use rand::SeedableRng;

    use super::*;

    fn block(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.gen()).collect()
    }

    const SHAPES: [(usize, usize); 9] = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2), (4, 2), (6, 3), (10, 4), (16, 16)];

    /// Pieces coded from `Bytes` parts are the pieces of the joined block, whatever the cuts (none, inside a
    /// piece, empty parts, a short last piece), and a data piece that lies whole within one part is a view of
    /// that part's memory, not a copy.
    #[test]
    fn pieces_of_byte_parts_equal_those_of_the_joined_block_and_whole_ones_are_views() {
        for (data, parity) in SHAPES {
            let codec = Codec::new(data, parity).unwrap();
            for len in [1, 7, data * 4096, 100_000, (1 << 20) + 16] {
                let whole = block(len, (data * 31 + len) as u64);
                let want = codec.encode(&whole).unwrap();
                for cuts in [vec![], vec![len / 2], vec![len.saturating_sub(16)], vec![0, len / 3, len / 3, len]] {
                    let bounds: Vec<usize> = [0].into_iter().chain(cuts.iter().copied()).chain([len]).collect();
                    let parts: Vec<Bytes> =
                        bounds.windows(2).map(|w| Bytes::copy_from_slice(&whole[w[0]..w[1]])).collect();
                    let got = codec.encode_bytes(&parts).unwrap();
                    assert_eq!(got.len(), data + parity);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(&g[..], &w[..], "{data}+{parity}, len {len}, cuts {cuts:?}, piece {i}");
                    }
                    let piece = codec.piece_len(len);
                    for (i, g) in got.iter().take(data).enumerate() {
                        let (from, to) = (i * piece, (i + 1) * piece);
                        let inside = bounds.windows(2).position(|w| w[0] <= from && to <= w[1] && w[0] < w[1]);
                        if let Some(p) = inside {
                            let part = parts[p].as_ptr() as usize;
                            let at = g.as_ptr() as usize;
                            assert!(part <= at && at < part + parts[p].len(), "piece {i} is a view of part {p}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_block_in_parts_encodes_as_the_parts_joined() {
        for (data, parity) in SHAPES {
            let codec = Codec::new(data, parity).unwrap();
            for len in [0, 1, data + 1, 1000, 4096 + 7] {
                let b = block(len, len as u64);
                for cut in [0, 1, len / 3, len.saturating_sub(16), len] {
                    let cut = cut.min(len);
                    let (head, tail) = b.split_at(cut);
                    let parts = [Bytes::copy_from_slice(head), Bytes::new(), Bytes::copy_from_slice(tail)];
                    let pieces: Vec<Vec<u8>> = codec.encode_bytes(&parts).unwrap().into_iter().map(Vec::from).collect();
                    assert_eq!(pieces, codec.encode(&b).unwrap(), "{data}+{parity} len {len} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn encode_then_decode_round_trips_for_many_shapes_and_lengths() {
        for (data, parity) in SHAPES {
            let codec = Codec::new(data, parity).unwrap();
            for len in [0, 1, 2, data - 1, data, data + 1, 3 * data + 1, 1000, 4096 + 7] {
                let b = block(len, len as u64);
                let pieces = codec.encode(&b).unwrap();
                assert_eq!(pieces.len(), data + parity);
                assert!(pieces.iter().all(|p| p.len() == codec.piece_len(len)), "{data}+{parity} len {len}");
                // The data pieces are the block itself, zero-padded.
                let joined: Vec<u8> = pieces[..data].concat();
                assert_eq!(&joined[..len], &b[..]);
                assert!(joined[len..].iter().all(|&x| x == 0));
                let slots = pieces.into_iter().map(Some).collect();
                assert_eq!(codec.decode(slots, len).unwrap(), b, "{data}+{parity} len {len}");
            }
        }
    }

    #[test]
    fn piece_len_is_ceiling_and_never_zero() {
        assert_eq!(piece_len(0, 4), 1);
        assert_eq!(piece_len(1, 4), 1);
        assert_eq!(piece_len(8, 4), 2);
        assert_eq!(piece_len(9, 4), 3);
        assert_eq!(piece_len(1 << 20, 3), 349_526);
        assert_eq!(Codec::new(4, 2).unwrap().piece_len(9), 3);
    }

    #[test]
    fn decode_succeeds_with_any_parity_pieces_missing() {
        for (data, parity) in [(2, 1), (3, 2), (4, 2), (6, 3)] {
            let codec = Codec::new(data, parity).unwrap();
            let len = 1000 + data;
            let b = block(len, 9);
            let pieces = codec.encode(&b).unwrap();
            // Every subset of exactly `parity` missing slots.
            let width = data + parity;
            for mask in 0u32..(1 << width) {
                if mask.count_ones() as usize != parity {
                    continue;
                }
                let slots: Vec<Option<Vec<u8>>> = pieces
                    .iter()
                    .enumerate()
                    .map(|(i, p)| if mask & (1 << i) != 0 { None } else { Some(p.clone()) })
                    .collect();
                assert_eq!(codec.decode(slots, len).unwrap(), b, "{data}+{parity} mask {mask:b}");
            }
        }
    }

    #[test]
    fn decode_fails_with_more_than_parity_pieces_missing() {
        for (data, parity) in [(1, 0), (2, 0), (2, 1), (4, 2), (6, 3)] {
            let codec = Codec::new(data, parity).unwrap();
            let b = block(100, 3);
            let pieces = codec.encode(&b).unwrap();
            let mut slots: Vec<Option<Vec<u8>>> = pieces.into_iter().map(Some).collect();
            for slot in slots.iter_mut().skip(data - 1).take(parity + 1) {
                *slot = None;
            }
            assert!(matches!(codec.decode(slots.clone(), 100), Err(StorageError::Ec(_))), "{data}+{parity}");
            let before = slots.clone();
            assert!(matches!(codec.reconstruct_all(&mut slots), Err(StorageError::Ec(_))));
            assert_eq!(slots, before, "a failed reconstruction changes nothing");
        }
    }

    #[test]
    fn reconstruct_all_restores_identical_data_and_parity_pieces() {
        for (data, parity) in [(2, 1), (3, 2), (4, 2), (10, 4)] {
            let codec = Codec::new(data, parity).unwrap();
            let pieces = codec.encode(&block(5000, 11)).unwrap();
            // Lose `parity` pieces: the first data piece, the last parity piece, then more data pieces.
            let width = data + parity;
            let lost: Vec<usize> = [0, width - 1].into_iter().chain(1..data).take(parity).collect();
            let mut slots: Vec<Option<Vec<u8>>> = pieces.iter().cloned().map(Some).collect();
            for &i in &lost {
                slots[i] = None;
            }
            codec.reconstruct_all(&mut slots).unwrap();
            let restored: Vec<Vec<u8>> = slots.into_iter().map(|p| p.unwrap()).collect();
            assert_eq!(restored, pieces, "{data}+{parity}");
        }
    }

    #[test]
    fn decode_refuses_wrong_slot_count_and_wrong_piece_length() {
        let codec = Codec::new(2, 1).unwrap();
        let pieces = codec.encode(b"hello").unwrap();
        let two: Vec<Option<Vec<u8>>> = pieces.iter().take(2).cloned().map(Some).collect();
        assert!(matches!(codec.decode(two, 5), Err(StorageError::Ec(_))));
        let mut slots: Vec<Option<Vec<u8>>> = pieces.into_iter().map(Some).collect();
        slots[1].as_mut().unwrap().push(0);
        assert!(matches!(codec.decode(slots, 5), Err(StorageError::Ec(_))));
    }

    #[test]
    fn codec_refuses_impossible_shapes() {
        assert!(matches!(Codec::new(0, 2), Err(StorageError::Ec(_))));
        assert!(matches!(Codec::new(200, 56), Err(StorageError::Ec(_))));
        assert!(Codec::new(200, 55).is_ok());
        assert!(Codec::new(255, 0).is_ok());
    }

    #[test]
    // Measures the machine's real time, which no simulated clock stands in for.
    #[allow(clippy::disallowed_methods)]
    fn encode_is_fast_enough_for_one_mib_blocks() {
        // A smoke check, not a benchmark: in debug builds this is much slower than release, so only guard
        // against something pathological (a quadratic copy, byte-at-a-time coding).
        let codec = Codec::new(4, 2).unwrap();
        let b = Bytes::from(block(1 << 20, 5));
        let start = std::time::Instant::now();
        for _ in 0..8 {
            codec.encode_bytes(std::slice::from_ref(&b)).unwrap();
        }
        let elapsed = start.elapsed();
        assert!(elapsed.as_secs() < 20, "8 MiB took {elapsed:?}");
    }
}
