//! Direct reads of [`FileDisk`](super::FileDisk): byte ranges read around the page cache.
//!
//! A GET reads each piece of a large object once. Through the page cache, the kernel first allocates and fills
//! a cache page for every 4 KiB and then copies it out; on a small machine that path, not the drive, bounds a
//! cold read (a buffered sequential read of a cold file on the 2-core development VM: ~0.6 GB/s; the same
//! read with O_DIRECT: 1.9-2.4 GB/s). O_DIRECT needs the file offset, the length and the buffer's address
//! aligned, so the aligned span around the wanted bytes is read into page-aligned memory, and the wanted
//! bytes are handed out as a view of it, not copied. A finished read's pages are kept for the next read
//! (up to [`SPARE_BUFFERS`]): fresh memory of a few hundred KiB comes from the kernel as untouched pages, a
//! fault and a zeroing for each, which cost more CPU than the read.
//!
//! A file system that refuses O_DIRECT (at open or at the first read) is told apart from an I/O error, so
//! the caller reads through the page cache instead.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;

use super::writer::direct;
use super::writer::refuses_direct;
use super::writer::Page;
use super::writer::DIRECT_ALIGN;

/// What a direct read came to.
pub(super) enum Direct {
    /// The bytes wanted, fewer where the file ends first.
    Read(Bytes),
    /// The file system does not take direct reads: the error that said so.
    Refused(std::io::Error),
}

/// How many of the `len` bytes at `offset` the file holds. Never trust `len` for an allocation alone: a
/// caller's bad length must not allocate gigabytes.
pub(super) fn readable(file: &File, offset: u64, len: usize) -> std::io::Result<usize> {
    let available = file.metadata()?.len().saturating_sub(offset);
    Ok(usize::try_from(available).map_or(len, |a| a.min(len)))
}

/// Reads up to `len` bytes at `offset` of the file at `path` with O_DIRECT.
pub(super) fn read(path: &Path, offset: u64, len: usize) -> std::io::Result<Direct> {
    let file = match direct::open_read(path) {
        Ok(file) => file,
        Err(e) if refuses_direct(&e) => return Ok(Direct::Refused(e)),
        Err(e) => return Err(e),
    };
    let want = readable(&file, offset, len)?;
    if want == 0 {
        return Ok(Direct::Read(Bytes::new()));
    }
    let align = DIRECT_ALIGN as u64;
    let start = offset / align * align;
    // `offset + want` is at most the file's length: no overflow.
    let end = (offset + want as u64).div_ceil(align) * align;
    let span = usize::try_from(end - start).map_err(std::io::Error::other)?;
    let mut pages = Pages::take(span / DIRECT_ALIGN);
    let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut pages.0);
    let mut got = 0;
    while got < span {
        match direct::read_at(&file, &mut buf[got..], start + got as u64) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                // A read that stops short of a page boundary met the end of the file; the next one would
                // start unaligned.
                if !got.is_multiple_of(DIRECT_ALIGN) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if got == 0 && refuses_direct(&e) => return Ok(Direct::Refused(e)),
            Err(e) => return Err(e),
        }
    }
    let from = usize::try_from(offset - start).map_err(std::io::Error::other)?;
    let to = (from + want).min(got).max(from);
    // Only bytes this read filled are handed out: a kept buffer still holds an earlier read's bytes past `got`.
    Ok(Direct::Read(Bytes::from_owner(pages).slice(from..to)))
}

/// Page buffers kept for the next direct read.
const SPARE_BUFFERS: usize = 32;
/// Buffers of more pages than this (a piece of a block of over 1 MiB) are not kept.
const SPARE_PAGES: usize = (1 << 20) / DIRECT_ALIGN + 2;
/// Nor buffers of fewer (a header, a small piece): the allocator serves those from memory it already holds,
/// and kept, they would fill the spare list and leave no room for the large ones.
const SPARE_MIN_PAGES: usize = 16;

static SPARE: Mutex<Vec<Vec<Page>>> = Mutex::new(Vec::new());

fn spare() -> std::sync::MutexGuard<'static, Vec<Vec<Page>>> {
    // Every update is one push or one removal: a panic elsewhere while it was held left it whole.
    SPARE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pages of one direct read; back to the spare buffers when the last view of them is dropped.
struct Pages(Vec<Page>);

impl Pages {
    /// `count` pages, from a kept buffer when one is large enough (holding an earlier read's bytes), else
    /// fresh and zeroed.
    fn take(count: usize) -> Pages {
        let kept = if count >= SPARE_MIN_PAGES {
            let mut spare = spare();
            spare.iter().position(|b| b.capacity() >= count).map(|i| spare.swap_remove(i))
        } else {
            None
        };
        let mut pages = kept.unwrap_or_default();
        pages.resize(count, Page::ZERO);
        Pages(pages)
    }
}

impl AsRef<[u8]> for Pages {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        if (SPARE_MIN_PAGES..=SPARE_PAGES).contains(&self.0.capacity()) {
            let mut spare = spare();
            if spare.len() < SPARE_BUFFERS {
                spare.push(std::mem::take(&mut self.0));
            }
        }
    }
}
