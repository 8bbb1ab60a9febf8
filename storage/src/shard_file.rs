//! The shard file format, version 1.
//!
//! One shard file holds, for one segment, the pieces of one shard index for every block, in block order:
//!
//! ```text
//! header, 64 bytes:
//!   0..8    magic b"HOARDSHD"
//!   8       format version (1)
//!   9       shard index
//!   10      data shard count
//!   11      parity shard count
//!   12..16  block size, u32 LE (bytes of the stored stream per block)
//!   16..32  segment id, u128 LE
//!   32..60  zero
//!   60..64  CRC32C of bytes 0..60, u32 LE
//! then for each block b, in order:
//!   piece   piece_len(len of block b, data) bytes
//!   crc     CRC32C of the piece, u32 LE
//! ```
//!
//! Invariants:
//! - Every block but the last is full, so the piece of block `b` starts at [`piece_offset`] without an index,
//!   and a range read touches only its blocks: one `read_at` of piece + 4 bytes per piece.
//! - Every byte of the file is covered by a checksum: the header by its own CRC, each piece by the CRC that
//!   follows it. A flipped bit anywhere is reported as [`StorageError::Corrupt`], never returned as data.
//! - A complete file is exactly [`shard_file_len`] bytes; [`verify`] treats anything longer or shorter as
//!   corrupt.
//! - The format is frozen by the golden vector `storage/tests/golden/shard_v1.hex`. A change of layout is a new
//!   version byte, and readers of version 1 stay.
//! - Shard files are named [`shard_name`]; [`parse_shard_name`] accepts exactly those names (not temp files),
//!   so scrub can tell shard files from everything else on a disk.

use bytes::Bytes;
use hoard_protocol::SegmentId;
use hoard_protocol::ShardLayout;

use crate::disk::Disk;
use crate::disk::DiskFile;
use crate::ec;
use crate::ec::MAX_WIDTH;
use crate::error::Result;
use crate::error::StorageError;

/// Length of the fixed header.
pub const HEADER_LEN: u64 = 64;
/// First bytes of every shard file.
pub const MAGIC: &[u8; 8] = b"HOARDSHD";
/// The format version this code writes.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the CRC32C after each piece.
const CRC_LEN: usize = 4;
/// How much [`verify`] reads at once: a few MiB keeps scrub's memory small and its system calls few.
const VERIFY_BATCH_BYTES: usize = 4 << 20;

/// The fixed header of a shard file: which shard of which segment, and how the segment was coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardHeader {
    pub segment: SegmentId,
    pub shard_index: u8,
    pub data: u8,
    pub parity: u8,
    pub block_size: u32,
}

impl ShardHeader {
    /// The header of shard `shard_index` of a segment coded as `layout`. Layouts wider than 255 shards
    /// cannot be stored; [`ShardWriter::new`] refuses the header this makes for them.
    pub fn for_layout(segment: SegmentId, shard_index: u8, layout: &ShardLayout) -> ShardHeader {
        ShardHeader { segment, shard_index, data: layout.data, parity: layout.parity, block_size: layout.block_size }
    }

    /// Why this header can never describe a valid shard, if it cannot.
    fn shape_error(&self) -> Option<String> {
        let width = self.data as usize + self.parity as usize;
        if self.data == 0 {
            Some("no data shards".into())
        } else if width > MAX_WIDTH {
            Some(format!("{}+{} shards: at most {MAX_WIDTH}", self.data, self.parity))
        } else if self.shard_index as usize >= width {
            Some(format!("shard index {} of a {}+{} layout", self.shard_index, self.data, self.parity))
        } else if self.block_size == 0 {
            Some("block size 0".into())
        } else {
            None
        }
    }

    fn check_layout(&self) -> Result<()> {
        match self.shape_error() {
            Some(why) => Err(StorageError::InvalidLayout(format!("shard header {self:?}: {why}"))),
            None => Ok(()),
        }
    }

    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(MAGIC);
        b[8] = FORMAT_VERSION;
        b[9] = self.shard_index;
        b[10] = self.data;
        b[11] = self.parity;
        b[12..16].copy_from_slice(&self.block_size.to_le_bytes());
        b[16..32].copy_from_slice(&self.segment.0.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the first 64 bytes of `b`; `Corrupt` unless magic, checksum, version and shape are right.
    pub fn decode(b: &[u8]) -> Result<ShardHeader> {
        let Some(b) = b.get(..HEADER_LEN as usize) else {
            return Err(StorageError::Corrupt(format!("shard header is {} bytes, expected {HEADER_LEN}", b.len())));
        };
        if &b[0..8] != MAGIC {
            return Err(StorageError::Corrupt("not a shard file (bad magic)".into()));
        }
        let stored = u32::from_le_bytes([b[60], b[61], b[62], b[63]]);
        let computed = crc32c::crc32c(&b[..60]);
        if stored != computed {
            return Err(StorageError::Corrupt(format!(
                "shard header checksum mismatch (stored {stored:08x}, computed {computed:08x}, version byte {})",
                b[8]
            )));
        }
        if b[8] != FORMAT_VERSION {
            return Err(StorageError::Corrupt(format!("unknown shard format version {}", b[8])));
        }
        let mut segment = [0u8; 16];
        segment.copy_from_slice(&b[16..32]);
        let header = ShardHeader {
            segment: SegmentId(u128::from_le_bytes(segment)),
            shard_index: b[9],
            data: b[10],
            parity: b[11],
            block_size: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        };
        match header.shape_error() {
            Some(why) => Err(StorageError::Corrupt(format!("shard header {header:?}: {why}"))),
            None => Ok(header),
        }
    }
}

/// Name of shard `index` of `segment` on a disk: `shards/<first 2 hex>/<32 hex>.<index>`.
pub fn shard_name(segment: SegmentId, index: u8) -> String {
    let hex = segment.to_string();
    format!("shards/{}/{hex}.{index}", &hex[..2])
}

/// Inverse of [`shard_name`] for committed files: `Some((segment, index))` exactly for names it makes.
pub fn parse_shard_name(name: &str) -> Option<(SegmentId, u8)> {
    let rest = name.strip_prefix("shards/")?;
    let (_dir, file) = rest.split_once('/')?;
    let (hex, index) = file.split_once('.')?;
    let segment = SegmentId::parse(hex)?;
    let index: u8 = index.parse().ok()?;
    // Refuses every non-canonical spelling: upper case, leading zeros, '+', a wrong directory.
    (shard_name(segment, index) == name).then_some((segment, index))
}

/// Piece length of a block of `block_len` bytes for `data` data shards: `ceil(block_len / data)`, at least 1.
pub fn piece_len(block_len: usize, data: u8) -> usize {
    ec::piece_len(block_len, data as usize)
}

/// Byte offset of block `block`'s piece inside a shard file (every earlier block full).
pub fn piece_offset(block: u64, block_size: u32, data: u8) -> u64 {
    let stride = piece_len(block_size as usize, data) as u64 + CRC_LEN as u64;
    HEADER_LEN.saturating_add(block.saturating_mul(stride))
}

/// Number of blocks of a stream of `size` bytes (size 0 → 0 blocks; block size 0 → 0 blocks).
pub fn block_count(size: u64, block_size: u32) -> u64 {
    if block_size == 0 {
        return 0;
    }
    size.div_ceil(block_size as u64)
}

/// Length of block `block` of a stream of `size` bytes: `block_size` but for the last, 0 past the end.
pub fn block_len(size: u64, block_size: u32, block: u64) -> usize {
    let start = block.saturating_mul(block_size as u64);
    if start >= size {
        return 0;
    }
    // At most block_size, a u32.
    (size - start).min(block_size as u64) as usize
}

/// Length of the complete shard file of a stream of `size` bytes.
pub fn shard_file_len(size: u64, block_size: u32, data: u8) -> u64 {
    let count = block_count(size, block_size);
    if count == 0 {
        return HEADER_LEN;
    }
    let last = count - 1;
    piece_offset(last, block_size, data) + (piece_len(block_len(size, block_size, last), data) + CRC_LEN) as u64
}

/// Writes one shard file: the header, then one piece per block in order, then [`ShardWriter::commit`].
/// Nothing is visible under the shard's name until commit.
pub struct ShardWriter {
    file: Box<dyn DiskFile>,
    full_piece: usize,
    pieces: u64,
    /// A piece shorter than full was appended: it was the last block's, nothing may follow.
    ended: bool,
}

impl ShardWriter {
    /// Starts the shard file of `header.segment`, shard `header.shard_index`, and writes its header.
    pub fn new(disk: &dyn Disk, header: &ShardHeader) -> Result<ShardWriter> {
        header.check_layout()?;
        let mut file = disk.create(&shard_name(header.segment, header.shard_index))?;
        file.write_all(&header.encode())?;
        Ok(ShardWriter {
            file,
            full_piece: piece_len(header.block_size as usize, header.data),
            pieces: 0,
            ended: false,
        })
    }

    /// Appends the next block's piece and its CRC. Every piece but the last must be full length.
    pub fn append_piece(&mut self, piece: &[u8]) -> Result<()> {
        if piece.is_empty() || piece.len() > self.full_piece {
            return Err(StorageError::InvalidLayout(format!(
                "piece of {} bytes, pieces of this shard are 1..={} bytes",
                piece.len(),
                self.full_piece
            )));
        }
        if self.ended {
            return Err(StorageError::InvalidLayout(format!(
                "piece {} follows a short piece, which must be the last",
                self.pieces
            )));
        }
        self.file.write_all(piece)?;
        self.file.write_all(&crc32c::crc32c(piece).to_le_bytes())?;
        self.pieces += 1;
        self.ended = piece.len() < self.full_piece;
        Ok(())
    }

    /// Pieces appended so far.
    pub fn pieces(&self) -> u64 {
        self.pieces
    }

    /// Makes the file durable and visible under its name.
    pub fn commit(self) -> Result<()> {
        self.file.commit()
    }
}

/// Checks the CRC that follows a piece in `buf` (`piece_len + 4` bytes) and returns whether it matches.
fn crc_matches(buf: &[u8], piece_len: usize) -> bool {
    let (piece, crc) = buf.split_at(piece_len);
    crc.len() == CRC_LEN && u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) == crc32c::crc32c(piece)
}

/// Reads and verifies block `block`'s piece (`block_len` bytes of stream) of shard `index` of `segment`, coded as
/// `header` says: `NotFound` if the file is missing, `Corrupt` on a CRC mismatch or short read. One `read_at` of
/// piece + 4 bytes; the file's own header is not read.
pub fn read_piece(
    disk: &dyn Disk,
    segment: SegmentId,
    index: u8,
    header: &ShardHeader,
    block: u64,
    block_len: usize,
) -> Result<Bytes> {
    header.check_layout()?;
    if block_len > header.block_size as usize {
        return Err(StorageError::InvalidLayout(format!(
            "block of {block_len} bytes in a segment of {}-byte blocks",
            header.block_size
        )));
    }
    let name = shard_name(segment, index);
    let len = piece_len(block_len, header.data);
    let offset = piece_offset(block, header.block_size, header.data);
    let mut buf = disk.read_at(&name, offset, len + CRC_LEN)?;
    if buf.len() != len + CRC_LEN {
        return Err(StorageError::Corrupt(format!(
            "{}: {name}: block {block}: read {} bytes at {offset}, expected {}",
            disk.label(),
            buf.len(),
            len + CRC_LEN
        )));
    }
    if !crc_matches(&buf, len) {
        return Err(StorageError::Corrupt(format!("{}: {name}: block {block}: piece checksum mismatch", disk.label())));
    }
    buf.truncate(len);
    Ok(buf)
}

/// Reads and checks the header of shard `index` of `segment`; `Corrupt` if it is damaged or names another
/// shard.
pub fn read_header(disk: &dyn Disk, segment: SegmentId, index: u8) -> Result<ShardHeader> {
    let name = shard_name(segment, index);
    let buf = disk.read_at(&name, 0, HEADER_LEN as usize)?;
    let header = ShardHeader::decode(&buf).map_err(|e| match e {
        StorageError::Corrupt(why) => StorageError::Corrupt(format!("{}: {name}: {why}", disk.label())),
        other => other,
    })?;
    if header.segment != segment || header.shard_index != index {
        return Err(StorageError::Corrupt(format!(
            "{}: {name}: header names segment {} shard {}",
            disk.label(),
            header.segment,
            header.shard_index
        )));
    }
    Ok(header)
}

/// Reads every piece and checks every CRC, the header against `expected` and the file length against a stream
/// of `size` bytes (for scrub).
pub fn verify(disk: &dyn Disk, segment: SegmentId, index: u8, expected: &ShardHeader, size: u64) -> Result<()> {
    expected.check_layout()?;
    if expected.segment != segment || expected.shard_index != index {
        return Err(StorageError::InvalidLayout(format!(
            "expected header {expected:?} is not that of segment {segment} shard {index}"
        )));
    }
    let name = shard_name(segment, index);
    let header = read_header(disk, segment, index)?;
    if header != *expected {
        return Err(StorageError::Corrupt(format!(
            "{}: {name}: header {header:?} differs from the expected {expected:?}",
            disk.label()
        )));
    }
    let want_len = shard_file_len(size, header.block_size, header.data);
    let actual_len = disk.len(&name)?;
    if actual_len != want_len {
        return Err(StorageError::Corrupt(format!(
            "{}: {name}: {actual_len} bytes, a stream of {size} bytes needs {want_len}",
            disk.label()
        )));
    }
    let count = block_count(size, header.block_size);
    let stride = piece_len(header.block_size as usize, header.data) + CRC_LEN;
    let per_batch = (VERIFY_BATCH_BYTES / stride).max(1) as u64;
    let mut block = 0;
    while block < count {
        let end = count.min(block + per_batch);
        let offset = piece_offset(block, header.block_size, header.data);
        let lens: Vec<usize> =
            (block..end).map(|b| piece_len(block_len(size, header.block_size, b), header.data)).collect();
        let total: usize = lens.iter().map(|l| l + CRC_LEN).sum();
        let buf = disk.read_at(&name, offset, total)?;
        if buf.len() != total {
            return Err(StorageError::Corrupt(format!(
                "{}: {name}: read {} bytes at {offset}, expected {total}",
                disk.label(),
                buf.len()
            )));
        }
        let mut at = 0;
        for (b, len) in (block..end).zip(lens) {
            if !crc_matches(&buf[at..at + len + CRC_LEN], len) {
                return Err(StorageError::Corrupt(format!(
                    "{}: {name}: block {b}: piece checksum mismatch",
                    disk.label()
                )));
            }
            at += len + CRC_LEN;
        }
        block = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::disk::MemDisk;
    use crate::ec::Codec;
    use crate::env::SimEnv;

    const GOLDEN: &str = include_str!("../tests/golden/shard_v1.hex");
    const GOLDEN_SEGMENT: SegmentId = SegmentId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
    const GOLDEN_STREAM: &[u8; 13] = b"hoard golden!";

    fn mem() -> MemDisk {
        MemDisk::new(Arc::new(SimEnv::new(1, 0)))
    }

    fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn header(segment: SegmentId, shard_index: u8, data: u8, parity: u8, block_size: u32) -> ShardHeader {
        ShardHeader { segment, shard_index, data, parity, block_size }
    }

    /// Encodes `stream` block by block and writes every shard file; returns the headers.
    fn write_segment(disk: &dyn Disk, segment: SegmentId, data: u8, parity: u8, block_size: u32, stream: &[u8]) {
        let codec = Codec::new(data as usize, parity as usize).unwrap();
        let mut writers: Vec<ShardWriter> = (0..data + parity)
            .map(|i| ShardWriter::new(disk, &header(segment, i, data, parity, block_size)).unwrap())
            .collect();
        for block in stream.chunks(block_size as usize) {
            let pieces = codec.encode(block).unwrap();
            for (w, p) in writers.iter_mut().zip(&pieces) {
                w.append_piece(p).unwrap();
            }
        }
        for w in writers {
            w.commit().unwrap();
        }
    }

    /// Reads the stream back block by block, falling back to parity for pieces that fail.
    fn read_segment(disk: &dyn Disk, segment: SegmentId, data: u8, parity: u8, block_size: u32, size: u64) -> Vec<u8> {
        let codec = Codec::new(data as usize, parity as usize).unwrap();
        let mut out = Vec::new();
        for block in 0..block_count(size, block_size) {
            let len = block_len(size, block_size, block);
            let slots = (0..data + parity)
                .map(|i| {
                    read_piece(disk, segment, i, &header(segment, i, data, parity, block_size), block, len)
                        .ok()
                        .map(Vec::from)
                })
                .collect();
            out.extend(codec.decode(slots, len).unwrap());
        }
        out
    }

    #[test]
    fn shard_files_match_the_v1_golden_vector() {
        let disk = mem();
        write_segment(&disk, GOLDEN_SEGMENT, 2, 1, 8, GOLDEN_STREAM);
        let actual: Vec<String> = (0..3u8)
            .map(|i| {
                let name = shard_name(GOLDEN_SEGMENT, i);
                to_hex(&disk.read_at(&name, 0, 1 << 10).unwrap())
            })
            .collect();
        let golden: Vec<String> = GOLDEN
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            golden,
            actual,
            "\n\nTHE SHARD FILE FORMAT CHANGED. Files already on disk would no longer read.\n\
             If this is intended, it is a new FORMAT_VERSION with a reader kept for version 1 — not an edit of \
             storage/tests/golden/shard_v1.hex.\nNew bytes, one shard file per line:\n{}\n",
            actual.join("\n")
        );
        // And the golden bytes decode to the stream.
        assert_eq!(read_segment(&disk, GOLDEN_SEGMENT, 2, 1, 8, 13), GOLDEN_STREAM);
    }

    #[test]
    fn header_encodes_the_documented_layout_and_round_trips() {
        let h = header(GOLDEN_SEGMENT, 4, 4, 2, 1 << 20);
        let b = h.encode();
        assert_eq!(&b[0..8], b"HOARDSHD");
        assert_eq!(b[8..12], [1, 4, 4, 2]);
        assert_eq!(b[12..16], (1u32 << 20).to_le_bytes());
        assert_eq!(b[16..32], GOLDEN_SEGMENT.0.to_le_bytes());
        assert!(b[32..60].iter().all(|&x| x == 0));
        assert_eq!(b[60..64], crc32c::crc32c(&b[..60]).to_le_bytes());
        assert_eq!(ShardHeader::decode(&b).unwrap(), h);
    }

    #[test]
    fn header_decode_refuses_bad_magic_version_checksum_shape_and_short_input() {
        let good = header(GOLDEN_SEGMENT, 0, 2, 1, 8).encode();
        assert!(matches!(ShardHeader::decode(&good[..63]), Err(StorageError::Corrupt(_))));
        for i in 0..64 {
            let mut bad = good;
            bad[i] ^= 0x10;
            assert!(matches!(ShardHeader::decode(&bad), Err(StorageError::Corrupt(_))), "byte {i}");
        }
        // A correctly checksummed header of another version or an impossible shape is refused too.
        let reseal = |mut b: [u8; 64]| {
            let crc = crc32c::crc32c(&b[..60]);
            b[60..64].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let mut v2 = good;
        v2[8] = 2;
        let err = ShardHeader::decode(&reseal(v2)).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
        let mut no_data = good;
        no_data[10] = 0;
        assert!(matches!(ShardHeader::decode(&reseal(no_data)), Err(StorageError::Corrupt(_))));
        let mut index_too_big = good;
        index_too_big[9] = 3;
        assert!(matches!(ShardHeader::decode(&reseal(index_too_big)), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn shard_names_round_trip_and_other_names_do_not_parse() {
        let seg = SegmentId(0xab00_0000_0000_0000_0000_0000_0000_00cd);
        let name = shard_name(seg, 7);
        assert_eq!(name, "shards/ab/ab0000000000000000000000000000cd.7");
        assert_eq!(parse_shard_name(&name), Some((seg, 7)));
        assert_eq!(parse_shard_name(&shard_name(seg, 255)), Some((seg, 255)));
        for bad in [
            "shards/ab/ab0000000000000000000000000000cd.7.1f-3.tmp",
            "shards/ab/ab0000000000000000000000000000cd.07",
            "shards/ab/ab0000000000000000000000000000cd.+7",
            "shards/ab/ab0000000000000000000000000000cd.256",
            "shards/ab/AB0000000000000000000000000000CD.7",
            "shards/cd/ab0000000000000000000000000000cd.7",
            "shards/ab0000000000000000000000000000cd.7",
            "other/ab/ab0000000000000000000000000000cd.7",
            "shards/ab/ab00.7",
            "",
        ] {
            assert_eq!(parse_shard_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn block_arithmetic_matches_the_layout() {
        assert_eq!(block_count(0, 8), 0);
        assert_eq!(block_count(1, 8), 1);
        assert_eq!(block_count(8, 8), 1);
        assert_eq!(block_count(13, 8), 2);
        assert_eq!(block_count(13, 0), 0);
        assert_eq!(block_len(13, 8, 0), 8);
        assert_eq!(block_len(13, 8, 1), 5);
        assert_eq!(block_len(13, 8, 2), 0);
        assert_eq!(block_len(16, 8, 1), 8);
        assert_eq!(piece_len(5, 2), 3);
        assert_eq!(piece_len(0, 2), 1);
        assert_eq!(piece_offset(0, 8, 2), 64);
        assert_eq!(piece_offset(1, 8, 2), 64 + 4 + 4);
        assert_eq!(piece_offset(3, 1 << 20, 4), 64 + 3 * ((1 << 18) + 4));
        assert_eq!(shard_file_len(0, 8, 2), 64);
        assert_eq!(shard_file_len(13, 8, 2), 64 + 8 + 7);
    }

    #[test]
    fn segments_round_trip_for_many_sizes_and_shapes() {
        let disk = mem();
        let mut seed = 1u128;
        for (data, parity, block_size) in [(1, 0, 16), (2, 1, 8), (3, 2, 100), (4, 2, 64)] {
            for size in [0usize, 1, 7, 8, 9, 63, 64, 65, 1000] {
                seed += 1;
                let segment = SegmentId(seed);
                let stream: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
                write_segment(&disk, segment, data, parity, block_size, &stream);
                for i in 0..data + parity {
                    let h = header(segment, i, data, parity, block_size);
                    verify(&disk, segment, i, &h, size as u64).unwrap();
                    assert_eq!(
                        disk.len(&shard_name(segment, i)).unwrap(),
                        shard_file_len(size as u64, block_size, data)
                    );
                }
                let back = read_segment(&disk, segment, data, parity, block_size, size as u64);
                assert_eq!(back, stream, "{data}+{parity} bs {block_size} size {size}");
            }
        }
    }

    #[test]
    fn flipping_any_byte_of_a_piece_or_its_crc_makes_read_piece_corrupt() {
        let disk = mem();
        write_segment(&disk, GOLDEN_SEGMENT, 2, 1, 8, GOLDEN_STREAM);
        let h = header(GOLDEN_SEGMENT, 1, 2, 1, 8);
        let name = shard_name(GOLDEN_SEGMENT, 1);
        let len = disk.len(&name).unwrap();
        for offset in HEADER_LEN..len {
            disk.corrupt(&name, offset).unwrap();
            let block = if offset < piece_offset(1, 8, 2) { 0 } else { 1 };
            let result = read_piece(&disk, GOLDEN_SEGMENT, 1, &h, block, block_len(13, 8, block));
            assert!(matches!(result, Err(StorageError::Corrupt(_))), "offset {offset}: {result:?}");
            assert!(matches!(verify(&disk, GOLDEN_SEGMENT, 1, &h, 13), Err(StorageError::Corrupt(_))));
            disk.corrupt(&name, offset).unwrap();
        }
        // Restored: reads and verifies again, and the stream survives the damage of a whole shard.
        verify(&disk, GOLDEN_SEGMENT, 1, &h, 13).unwrap();
        disk.corrupt(&name, HEADER_LEN).unwrap();
        assert_eq!(read_segment(&disk, GOLDEN_SEGMENT, 2, 1, 8, 13), GOLDEN_STREAM);
    }

    #[test]
    fn flipping_a_header_byte_makes_read_header_corrupt() {
        let disk = mem();
        write_segment(&disk, GOLDEN_SEGMENT, 2, 1, 8, GOLDEN_STREAM);
        let name = shard_name(GOLDEN_SEGMENT, 2);
        assert_eq!(read_header(&disk, GOLDEN_SEGMENT, 2).unwrap(), header(GOLDEN_SEGMENT, 2, 2, 1, 8));
        for offset in 0..HEADER_LEN {
            disk.corrupt(&name, offset).unwrap();
            assert!(matches!(read_header(&disk, GOLDEN_SEGMENT, 2), Err(StorageError::Corrupt(_))), "offset {offset}");
            disk.corrupt(&name, offset).unwrap();
        }
    }

    #[test]
    fn missing_shard_file_is_not_found() {
        let disk = mem();
        let h = header(GOLDEN_SEGMENT, 0, 2, 1, 8);
        assert!(matches!(read_piece(&disk, GOLDEN_SEGMENT, 0, &h, 0, 8), Err(StorageError::NotFound(_))));
        assert!(matches!(read_header(&disk, GOLDEN_SEGMENT, 0), Err(StorageError::NotFound(_))));
        assert!(matches!(verify(&disk, GOLDEN_SEGMENT, 0, &h, 13), Err(StorageError::NotFound(_))));
    }

    #[test]
    fn truncated_or_extended_shard_file_fails_verify_and_short_reads_are_corrupt() {
        let disk = mem();
        write_segment(&disk, GOLDEN_SEGMENT, 2, 1, 8, GOLDEN_STREAM);
        let h = header(GOLDEN_SEGMENT, 0, 2, 1, 8);
        // The file holds 13 bytes of stream; claiming 16 asks for a piece past its end.
        assert!(matches!(verify(&disk, GOLDEN_SEGMENT, 0, &h, 16), Err(StorageError::Corrupt(_))));
        assert!(matches!(verify(&disk, GOLDEN_SEGMENT, 0, &h, 8), Err(StorageError::Corrupt(_))));
        assert!(matches!(read_piece(&disk, GOLDEN_SEGMENT, 0, &h, 1, 8), Err(StorageError::Corrupt(_))));
        assert!(matches!(read_piece(&disk, GOLDEN_SEGMENT, 0, &h, 5, 8), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn verify_refuses_a_header_that_differs_from_the_expected_layout() {
        let disk = mem();
        write_segment(&disk, GOLDEN_SEGMENT, 2, 1, 8, GOLDEN_STREAM);
        let other_block_size = header(GOLDEN_SEGMENT, 0, 2, 1, 16);
        assert!(matches!(verify(&disk, GOLDEN_SEGMENT, 0, &other_block_size, 13), Err(StorageError::Corrupt(_))));
        let other_index = header(GOLDEN_SEGMENT, 1, 2, 1, 8);
        assert!(matches!(verify(&disk, GOLDEN_SEGMENT, 0, &other_index, 13), Err(StorageError::InvalidLayout(_))));
    }

    #[test]
    fn verify_reads_large_files_in_batches() {
        let disk = mem();
        // 5 MiB per shard at 2+0: more than one verify batch.
        let stream: Vec<u8> = (0..(10u32 << 20)).map(|i| (i % 251) as u8).collect();
        write_segment(&disk, SegmentId(9), 2, 0, 64 << 10, &stream);
        let h = header(SegmentId(9), 1, 2, 0, 64 << 10);
        verify(&disk, SegmentId(9), 1, &h, stream.len() as u64).unwrap();
        let name = shard_name(SegmentId(9), 1);
        let last = disk.len(&name).unwrap() - 1;
        disk.corrupt(&name, last).unwrap();
        assert!(matches!(verify(&disk, SegmentId(9), 1, &h, stream.len() as u64), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn writer_refuses_bad_headers_and_pieces_out_of_shape() {
        let disk = mem();
        assert!(matches!(
            ShardWriter::new(&disk, &header(GOLDEN_SEGMENT, 3, 2, 1, 8)),
            Err(StorageError::InvalidLayout(_))
        ));
        assert!(matches!(
            ShardWriter::new(&disk, &header(GOLDEN_SEGMENT, 0, 0, 1, 8)),
            Err(StorageError::InvalidLayout(_))
        ));
        let mut w = ShardWriter::new(&disk, &header(GOLDEN_SEGMENT, 0, 2, 1, 8)).unwrap();
        assert!(matches!(w.append_piece(&[0; 5]), Err(StorageError::InvalidLayout(_))));
        assert!(matches!(w.append_piece(&[]), Err(StorageError::InvalidLayout(_))));
        w.append_piece(&[1; 4]).unwrap();
        w.append_piece(&[2; 3]).unwrap();
        assert!(matches!(w.append_piece(&[3; 4]), Err(StorageError::InvalidLayout(_))));
        assert_eq!(w.pieces(), 2);
        // Uncommitted: nothing under the shard's name.
        assert!(matches!(read_header(&disk, GOLDEN_SEGMENT, 0), Err(StorageError::NotFound(_))));
        w.commit().unwrap();
        assert_eq!(read_header(&disk, GOLDEN_SEGMENT, 0).unwrap(), header(GOLDEN_SEGMENT, 0, 2, 1, 8));
    }
}
