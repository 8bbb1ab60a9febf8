//! Direct reads of [`FileDisk`](super::FileDisk): byte ranges read around the page cache.
//!
//! A GET reads each piece of a large object once. Through the page cache, the kernel first allocates and fills
//! a cache page for every 4 KiB and then copies it out; on a small machine that path, not the drive, bounds a
//! cold read (a buffered sequential read of a cold file on the 2-core development VM: ~0.6 GB/s; the same
//! read with O_DIRECT: 1.9-2.4 GB/s). O_DIRECT needs the file offset, the length and the buffer's address
//! aligned, so the aligned span around the wanted bytes is read into page-aligned memory, and the wanted
//! bytes are handed out as a view of it, not copied. The buffer is a [`PageBuf`], kept for the next read
//! once the last view of it is dropped.
//!
//! A file system that refuses O_DIRECT (at open or at the first read) is told apart from an I/O error, so
//! the caller reads through the page cache instead.

use bytes::Bytes;
use std::fs::File;
use std::path::Path;

use super::writer::direct;
use super::writer::refuses_direct;
use super::writer::DIRECT_ALIGN;
use crate::pages::PageBuf;

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
    let mut pages = PageBuf::take(span);
    let buf = pages.pages_mut();
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
    Ok(Direct::Read(pages.into_bytes().slice(from..to)))
}
