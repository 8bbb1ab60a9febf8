//! Page-aligned buffers, kept for reuse once their last view is dropped.
//!
//! A GET of a large object goes through a buffer of up to 1 MiB per piece read and per block opened, a PUT
//! through one per parity piece it codes. Fresh memory of that size comes from the kernel as untouched pages,
//! a fault and a zeroing for each 4 KiB, which on a small machine cost more CPU than reading, coding or
//! decrypting the bytes. So a finished buffer goes to a short list of spare ones (up to [`SPARE_BUFFERS`])
//! and the next user of about its size writes over it.
//!
//! A kept buffer still holds an earlier user's bytes. [`PageBuf::take`] is therefore private to this crate,
//! and every function here that hands out memory it took writes each byte up to the length it hands out
//! first: [`PageBuf::gather`], the direct reads of `disk::reader`, `Sealer::open_parts` and `Sealer::seal_to`
//! (AES-GCM writes every plaintext or ciphertext byte, and a block that fails authentication is dropped) and
//! `Codec::encode_bytes` (gathered pieces zero-padded, parity written whole by the coder).

use std::sync::Mutex;

use bytes::Bytes;

/// Bytes in one page: the alignment of every buffer here, which is what direct I/O needs of an address.
pub const PAGE: usize = 4096;

/// One page of a buffer.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(4096))]
pub(crate) struct Page([u8; PAGE]);

impl Page {
    pub(crate) const ZERO: Page = Page([0; PAGE]);
}

/// Buffers kept for the next user.
const SPARE_BUFFERS: usize = 32;
/// Buffers of more pages than this (more than a 1 MiB block and its tag, aligned at both ends) are not kept.
const SPARE_PAGES: usize = (1 << 20) / PAGE + 2;
/// Nor buffers of fewer (a header, a small piece): the allocator serves those from memory it already holds,
/// and kept, they would fill the spare list and leave no room for the large ones.
const SPARE_MIN_PAGES: usize = 16;

static SPARE: Mutex<Vec<Vec<Page>>> = Mutex::new(Vec::new());

fn spare() -> std::sync::MutexGuard<'static, Vec<Vec<Page>>> {
    // Every update is one push or one removal: a panic elsewhere while it was held left it whole.
    SPARE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A page-aligned buffer of `len()` bytes; its pages go back to the spare list when it, or the last
/// [`Bytes`] view made of it by [`PageBuf::into_bytes`], is dropped.
pub struct PageBuf {
    pages: Vec<Page>,
    len: usize,
}

impl PageBuf {
    /// A buffer of `len` bytes, from the smallest kept buffer that holds it (and not over twice its size:
    /// a small piece must not hold a 1 MiB buffer while it waits), else fresh and zeroed. Its bytes are
    /// whatever the buffer last held: the caller writes the ones it hands out.
    pub(crate) fn take(len: usize) -> PageBuf {
        let count = len.div_ceil(PAGE);
        let kept = if count >= SPARE_MIN_PAGES {
            let mut spare = spare();
            let fits = spare
                .iter()
                .enumerate()
                .filter(|(_, b)| (count..=2 * count).contains(&b.capacity()))
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            fits.map(|i| spare.swap_remove(i))
        } else {
            None
        };
        let mut pages = kept.unwrap_or_default();
        pages.resize(count, Page::ZERO);
        PageBuf { pages, len }
    }

    /// The parts one after another in one buffer.
    pub fn gather<P: AsRef<[u8]>>(parts: &[P]) -> PageBuf {
        PageBuf::gather_padded(parts, 0)
    }

    /// The parts one after another in one buffer of at least `len` bytes, zeros after them.
    pub fn gather_padded<P: AsRef<[u8]>>(parts: &[P], len: usize) -> PageBuf {
        let filled: usize = parts.iter().map(|p| p.as_ref().len()).sum();
        let mut buf = PageBuf::take(filled.max(len));
        let out = buf.as_mut();
        let mut at = 0;
        for p in parts {
            let p = p.as_ref();
            out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        out[filled..].fill(0);
        buf
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the first `len` bytes (all of them if there are fewer).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The whole buffer, past `len()` to the end of its last page, for a read that fills whole pages.
    pub(crate) fn pages_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.pages)
    }

    /// The bytes as [`Bytes`], without a copy.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

/// Bytes `[from, to)` of the block made of `parts` one after the other (`to` past its end means its end), as
/// views of the parts; parts left empty are dropped.
pub fn slice_parts(parts: &[Bytes], from: usize, to: usize) -> Vec<Bytes> {
    let mut at = 0;
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let (start, end) = (at, at + part.len());
        at = end;
        let (a, b) = (from.max(start), to.min(end));
        if a < b {
            out.push(part.slice(a - start..b - start));
        }
    }
    out
}

impl AsRef<[u8]> for PageBuf {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.pages)[..self.len]
    }
}

impl AsMut<[u8]> for PageBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.pages_mut()[..len]
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        if (SPARE_MIN_PAGES..=SPARE_PAGES).contains(&self.pages.capacity()) {
            let mut spare = spare();
            if spare.len() < SPARE_BUFFERS {
                spare.push(std::mem::take(&mut self.pages));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gathered buffer holds exactly its parts, whatever the reused memory under it held before, and
    /// its view shows nothing past its length.
    #[test]
    fn gathered_buffers_hold_their_parts_and_nothing_older() {
        for round in 0..4u8 {
            let first: Vec<u8> = vec![0xee; 300_000];
            drop(PageBuf::gather(&[&first[..]]).into_bytes());
            let parts: Vec<Vec<u8>> = (0..5).map(|i| vec![round * 16 + i; 40_000 + usize::from(i) * 7]).collect();
            let buf = PageBuf::gather(&parts);
            let want: Vec<u8> = parts.concat();
            assert_eq!(buf.len(), want.len());
            let view = buf.into_bytes();
            assert_eq!(&view[..], &want[..]);
            assert_eq!(view.as_ptr() as usize % PAGE, 0, "page-aligned");
        }
    }

    /// Padding fills with zeros past the parts, whatever the reused memory held, and never cuts them short.
    #[test]
    fn padded_buffers_hold_their_parts_then_zeros() {
        drop(PageBuf::gather(&[vec![0xee; 300_000]]));
        let parts = [vec![7u8; 70_000], vec![9u8; 10]];
        let padded = PageBuf::gather_padded(&parts, 200_000);
        assert_eq!(padded.len(), 200_000);
        assert_eq!(&padded.as_ref()[..70_010], &parts.concat()[..]);
        assert!(padded.as_ref()[70_010..].iter().all(|&b| b == 0));
        assert_eq!(PageBuf::gather_padded(&parts, 5).len(), 70_010);
    }

    /// Every range of a block made of parts, including empty parts and ranges past its end, comes out as
    /// the same bytes as that range of the joined block, with no empty part among them.
    #[test]
    fn slices_of_parts_equal_slices_of_the_joined_block() {
        let whole: Vec<u8> = (0..40u8).collect();
        let cuts = [0, 3, 3, 11, 25, 40];
        let parts: Vec<Bytes> = cuts.windows(2).map(|w| Bytes::copy_from_slice(&whole[w[0]..w[1]])).collect();
        assert_eq!(parts.concat(), whole);
        for from in 0..=42 {
            for to in from..=45 {
                let got = slice_parts(&parts, from, to);
                assert!(got.iter().all(|p| !p.is_empty()), "{from}..{to}");
                let want = &whole[from.min(40)..to.min(40)];
                assert_eq!(got.concat(), want, "{from}..{to}");
            }
        }
    }

    /// Truncation only shortens, and the view follows it.
    #[test]
    fn truncate_only_shortens() {
        let mut buf = PageBuf::gather(&[[1u8; 100_000]]);
        buf.truncate(200_000);
        assert_eq!(buf.len(), 100_000);
        buf.truncate(70_000);
        assert_eq!(buf.into_bytes().len(), 70_000);
    }
}
