//! The bytes the simulated workload writes: every version of every object is made of 64-byte blocks that name
//! the version (its tag) and their own place, so a read can be told apart from every other version's bytes,
//! a mix of two versions, a shifted range or a torn object, and a version's plaintext can be searched for on
//! the simulated disks.

/// One block: [`MAGIC`] (8 bytes), the version's tag (8), the block's index (8), then filler drawn from both.
pub const BLOCK: usize = 64;
/// What every block starts with.
pub const MAGIC: [u8; 8] = *b"HSIMBLK\x01";

/// The bytes of version `tag`, `len` long (the last block may be cut short).
pub fn body(tag: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut index = 0u64;
    while out.len() < len {
        let mut block = [0u8; BLOCK];
        block[..8].copy_from_slice(&MAGIC);
        block[8..16].copy_from_slice(&tag.to_le_bytes());
        block[16..24].copy_from_slice(&index.to_le_bytes());
        let mut x = tag ^ index.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
        for b in block[24..].iter_mut() {
            // xorshift: filler that differs from version to version and block to block.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let take = (len - out.len()).min(BLOCK);
        out.extend_from_slice(&block[..take]);
        index += 1;
    }
    out
}

/// The tags whose plaintext appears in `bytes` (a block's marker at any offset).
pub fn tags_in(bytes: &[u8]) -> Vec<u64> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(pos) = find(&bytes[at..], &MAGIC) {
        let start = at + pos;
        if let Some(tag) = bytes.get(start + 8..start + 16) {
            let mut t = [0u8; 8];
            t.copy_from_slice(tag);
            found.push(u64::from_le_bytes(t));
        }
        at = start + 1;
    }
    found.sort_unstable();
    found.dedup();
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_its_length_and_differs_from_every_other_version() {
        for len in [0, 1, 63, 64, 65, 1000] {
            assert_eq!(body(7, len).len(), len);
        }
        assert_ne!(body(7, 1000), body(8, 1000));
        assert_eq!(body(7, 1000)[..500], body(7, 500)[..], "a shorter body is a prefix");
        let mut shifted = body(7, 1000);
        shifted.rotate_left(64);
        assert_ne!(shifted, body(7, 1000), "blocks name their place");
    }

    #[test]
    fn a_scan_finds_the_tags_whose_plaintext_is_there() {
        let mut disk = vec![0u8; 10];
        disk.extend(body(42, 192));
        disk.extend([1u8; 7]);
        disk.extend(body(9, 70));
        assert_eq!(tags_in(&disk), vec![9, 42]);
        assert!(tags_in(&[0u8; 100]).is_empty());
        assert!(tags_in(&body(5, 12)).is_empty(), "a marker cut short is not a marker");
    }
}
