//! The writers of [`FileDisk`](super::FileDisk): direct (O_DIRECT) or through the page cache with
//! write-behind, durable at commit.

use std::fs::File;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::io::ErrorKind;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::sync_dir;
use super::DiskFile;
use crate::error::Result;
use crate::error::StorageError;
use crate::pages::Page;
use crate::pages::PAGE;

/// Write buffer of [`FileDisk`] writers: large enough that a shard piece (up to a few hundred KiB) goes to
/// the kernel in one or two system calls.
pub(super) const WRITE_BUFFER: usize = 256 * 1024;
/// Bytes a file takes in before their write-out to the disk is started (without waiting for it).
const WRITE_BEHIND: u64 = 1024 * 1024;
/// Bytes a file takes in between syncs of its data while it is still being written: the disk's cache is
/// flushed along the way, with other streams still coding, instead of all at once while every stream waits
/// for its final fsync.
pub(super) const SYNC_EVERY: u64 = 8 * 1024 * 1024;

/// Alignment of direct writes: of the buffer's address, of each write's length and of its file offset.
/// 4096 suits every common device and file system.
pub(super) const DIRECT_ALIGN: usize = PAGE;
/// Bytes gathered before each direct write: two pieces of 1 MiB blocks coded 4+2, which a PUT hands over
/// in one job, go to the disk in about one write.
pub(super) const DIRECT_CHUNK: usize = 512 * 1024;

/// A buffer whose start is aligned for direct writes, filled from the front. Its pages are reserved at once but
/// zeroed only as they are first filled, so a small file costs only the pages it uses.
pub(super) struct AlignedBuf {
    pages: Vec<Page>,
    capacity: usize,
    len: usize,
}

impl AlignedBuf {
    /// `capacity` rounded up to whole pages.
    pub(super) fn new(capacity: usize) -> AlignedBuf {
        let count = capacity.div_ceil(DIRECT_ALIGN);
        AlignedBuf { pages: Vec::with_capacity(count), capacity: count * DIRECT_ALIGN, len: 0 }
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    /// Copies as much of `data` as fits; returns how much that was.
    fn push(&mut self, data: &[u8]) -> usize {
        let len = self.len;
        let n = data.len().min(self.capacity - len);
        let pages = (len + n).div_ceil(DIRECT_ALIGN);
        if self.pages.len() < pages {
            // Within the reserved capacity: no reallocation, so the start stays where it was.
            self.pages.resize(pages, Page::ZERO);
        }
        bytemuck::cast_slice_mut::<Page, u8>(&mut self.pages)[len..len + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    fn filled(&self) -> &[u8] {
        &bytemuck::cast_slice::<Page, u8>(&self.pages)[..self.len]
    }
}

/// Where a file's bytes go until commit.
pub(super) enum Sink {
    /// Around the page cache (O_DIRECT), in aligned chunks: no copy into the cache, no dirty pages for the
    /// kernel to write back later, and the final fsync has only the device's cache to flush.
    Direct {
        file: File,
        buf: AlignedBuf,
        /// Bytes written directly so far.
        written: u64,
    },
    /// Through the page cache, where the file system cannot write directly (tmpfs, other systems).
    Buffered {
        writer: BufWriter<File>,
        /// Bytes handed to the writer (some may still be in its buffer).
        written: u64,
        /// Bytes whose write-out has been started.
        started: u64,
        /// Bytes synced.
        synced: u64,
    },
}

pub(super) struct FileDiskFile {
    /// `None` once commit has begun.
    pub(super) sink: Option<Sink>,
    /// The temp file has been renamed to its final name.
    pub(super) renamed: bool,
    pub(super) tmp_path: PathBuf,
    pub(super) final_path: PathBuf,
    pub(super) dir: PathBuf,
    /// The disk's choice of direct writes, turned off here if its file system refuses them.
    pub(super) direct: Arc<AtomicBool>,
}

/// Whether a direct write's error says that the file system or device will not take direct writes of this
/// alignment at all (rather than that this write failed).
pub(super) fn refuses_direct(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::InvalidInput || e.kind() == ErrorKind::Unsupported || direct::unsupported(e)
}

impl FileDiskFile {
    fn no_more_direct(&self, e: &std::io::Error) {
        if self.direct.swap(false, Ordering::Relaxed) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "direct writes refused; writing through the page cache");
        }
    }

    /// The file system refused the first direct write of this file (nothing was written yet): this file
    /// goes on through the page cache with what was gathered, and the disk writes no more files directly.
    pub(super) fn refused_direct(&mut self, e: &std::io::Error) -> Result<()> {
        self.no_more_direct(e);
        let Some(Sink::Direct { buf, .. }) = self.sink.take() else {
            return Err(StorageError::Io(std::io::Error::other("not writing directly")));
        };
        let file = OpenOptions::new().append(true).open(&self.tmp_path)?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, file);
        writer.write_all(buf.filled())?;
        self.sink = Some(Sink::Buffered { writer, written: buf.len as u64, started: 0, synced: 0 });
        Ok(())
    }
}

impl DiskFile for FileDiskFile {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let mut rest = data;
        loop {
            match self.sink.as_mut() {
                None => return Err(StorageError::Io(std::io::Error::other("write after commit"))),
                Some(Sink::Direct { file, buf, written }) => {
                    if rest.is_empty() {
                        return Ok(());
                    }
                    let n = buf.push(rest);
                    rest = &rest[n..];
                    if buf.len < buf.capacity() {
                        continue;
                    }
                    // A whole chunk: aligned in memory, in length, and at an aligned offset, since every
                    // write before it was a whole chunk too.
                    match file.write_all(buf.filled()) {
                        Ok(()) => {
                            *written += buf.len as u64;
                            buf.len = 0;
                        }
                        Err(e) if *written == 0 && refuses_direct(&e) => self.refused_direct(&e)?,
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(Sink::Buffered { writer, written, started, synced }) => {
                    writer.write_all(rest)?;
                    *written += rest.len() as u64;
                    // Writing out as we go keeps the disk busy while the next blocks are coded, and syncing
                    // now and then leaves the final fsync little to do; both bound the dirty pages one file
                    // holds.
                    if *written - *started >= WRITE_BEHIND {
                        writer.flush()?;
                        write_behind::start(writer.get_ref(), *started, *written - *started);
                        *started = *written;
                        if *started - *synced >= SYNC_EVERY {
                            writer.get_ref().sync_data()?;
                            *synced = *started;
                        }
                    }
                    return Ok(());
                }
            }
        }
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        // On any error below, Drop removes the temp file.
        match self.sink.take() {
            None => return Err(StorageError::Io(std::io::Error::other("commit twice"))),
            Some(Sink::Direct { mut file, buf, written }) => {
                let filled = buf.filled();
                let mut whole = filled.len() / DIRECT_ALIGN * DIRECT_ALIGN;
                match file.write_all(&filled[..whole]) {
                    Ok(()) => {}
                    Err(e) if written == 0 && refuses_direct(&e) => {
                        self.no_more_direct(&e);
                        whole = 0;
                    }
                    Err(e) => return Err(e.into()),
                }
                if whole < filled.len() {
                    // The tail is not a whole block, which a direct write cannot take: it goes through the
                    // page cache, by a descriptor of its own, at the end of what was written directly.
                    drop(file);
                    file = OpenOptions::new().append(true).open(&self.tmp_path)?;
                    file.write_all(&filled[whole..])?;
                }
                // Flushes the tail's pages, the file's size and the device's cache, which holds the direct
                // writes until then.
                file.sync_all()?;
            }
            Some(Sink::Buffered { writer, .. }) => {
                let file = writer.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
            }
        }
        std::fs::rename(&self.tmp_path, &self.final_path)?;
        self.renamed = true;
        // The rename is durable only once the directory entry is.
        sync_dir(&self.dir)?;
        Ok(())
    }
}

impl Drop for FileDiskFile {
    fn drop(&mut self) {
        if let Some(Sink::Buffered { writer, .. }) = self.sink.take() {
            // Abandoned: throw the buffered bytes away instead of writing them to a file about to go.
            let (file, _unwritten) = writer.into_parts();
            drop(file);
        }
        if self.renamed {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.tmp_path) {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!(path = %self.tmp_path.display(), error = %e, "could not remove abandoned temp file");
            }
        }
    }
}

/// Direct writes: a second descriptor of a just-created temp file, opened with O_DIRECT. An error that
/// [`refuses_direct`] means the file system does not take direct writes (tmpfs, for one, may not).
#[cfg(target_os = "linux")]
pub(super) mod direct {
    use std::fs::File;
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    pub fn open(path: &Path) -> std::io::Result<File> {
        OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path)
    }

    /// The file at `path`, opened for direct reads.
    pub fn open_read(path: &Path) -> std::io::Result<File> {
        OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)
    }

    /// One read of `buf.len()` bytes at `offset` (both aligned, as is `buf`).
    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }

    /// EOPNOTSUPP, which the standard library does not map to `Unsupported` everywhere.
    pub fn unsupported(e: &std::io::Error) -> bool {
        e.raw_os_error() == Some(libc::EOPNOTSUPP)
    }
}

/// Elsewhere, files are written through the page cache.
#[cfg(not(target_os = "linux"))]
pub(super) mod direct {
    use std::fs::File;
    use std::path::Path;

    pub fn open(_path: &Path) -> std::io::Result<File> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    pub fn open_read(_path: &Path) -> std::io::Result<File> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    pub fn read_at(_file: &File, _buf: &mut [u8], _offset: u64) -> std::io::Result<usize> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    pub fn unsupported(_e: &std::io::Error) -> bool {
        false
    }
}

/// Write-behind: starting a range's write-out to the disk early, without waiting for it. It is a hint: it
/// makes nothing durable, and where it fails (a file system without it) nothing is lost but the overlap;
/// an I/O error it meets is reported again by the next sync.
#[cfg(target_os = "linux")]
mod write_behind {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// Starts writing out `len` bytes at `offset`; returns without waiting for the disk.
    pub fn start(file: &File, offset: u64, len: u64) {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
        // SAFETY: sync_file_range reads and writes no memory of ours; it takes a descriptor and three
        // integers. The descriptor stays open for the whole call because `file` is borrowed, and an invalid
        // one would only make the call fail with EBADF.
        let r = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
        if r != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "sync_file_range failed; the syncs write everything");
        }
    }
}

/// Elsewhere, nothing is started early: the periodic and final syncs write everything.
#[cfg(not(target_os = "linux"))]
mod write_behind {
    use std::fs::File;

    pub fn start(_file: &File, _offset: u64, _len: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_buffer_zeroes_only_the_pages_it_fills_and_stays_aligned() {
        let mut buf = AlignedBuf::new(DIRECT_CHUNK);
        assert!(buf.pages.is_empty(), "nothing is touched before the first bytes come");
        assert_eq!(buf.push(&[7; 100]), 100);
        assert_eq!(buf.pages.len(), 1, "a small file fills one page, not the whole chunk");
        let start = buf.filled().as_ptr() as usize;
        assert_eq!(start % DIRECT_ALIGN, 0);
        let rest = vec![9; DIRECT_CHUNK];
        assert_eq!(buf.push(&rest), DIRECT_CHUNK - 100, "the chunk takes what fits");
        assert_eq!(buf.pages.len(), DIRECT_CHUNK / DIRECT_ALIGN);
        assert_eq!(buf.filled().as_ptr() as usize, start, "growing within its capacity never moves it");
        assert_eq!(buf.filled().len(), DIRECT_CHUNK);
        assert!(buf.filled()[..100].iter().all(|b| *b == 7));
        assert!(buf.filled()[100..].iter().all(|b| *b == 9));
        assert_eq!(buf.push(&rest), 0, "a full chunk takes nothing more");
    }
}
