//! The seam for files: [`Disk`] is the only way hoard reaches bytes at rest.
//!
//! Invariants:
//! - A file is visible under its name only after [`DiskFile::commit`] returned `Ok`, and then it is complete
//!   and durable: [`FileDisk`] writes to a temp file in the same directory, fsyncs it, renames it over the final
//!   name and fsyncs the directory. A crash at any point leaves either no file or the whole file under `name`
//!   (and perhaps a stray temp file).
//! - Unfinished writes live under names ending in [`TEMP_SUFFIX`]; [`Disk::list`] shows them (with their
//!   modification time) so scrub can delete the ones a crash left behind. [`Disk::create`] refuses names
//!   ending in [`TEMP_SUFFIX`], so a listed temp name is always an unfinished write, never a committed file.
//! - A writer dropped without commit removes its temp file (best effort).
//! - Names are relative, `/`-separated, with no empty, `.` or `..` components: no name escapes the disk root.
//! - Creating a file recreates any missing directory, the root included, so a disk whose directory an operator
//!   deleted heals on the next write.
//! - [`FileDisk`] writes around the page cache (O_DIRECT, in aligned 256 KiB chunks, the last partial block
//!   through the cache) where the file system allows it, and through the page cache elsewhere; durability is
//!   the same either way, since commit fsyncs.
//! - The API is blocking; async callers run it under `spawn_blocking`.

use std::collections::BTreeMap;
use std::fs::File;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::io::ErrorKind;
use std::io::Read;
use std::io::Seek;
use std::io::SeekFrom;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::UNIX_EPOCH;

use crate::env::Env;
use crate::error::Result;
use crate::error::StorageError;

/// Suffix of the names of unfinished writes.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Write buffer of [`FileDisk`] writers: large enough that a shard piece (up to a few hundred KiB) goes to
/// the kernel in one or two system calls.
const WRITE_BUFFER: usize = 256 * 1024;

/// One file found by [`Disk::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskEntry {
    /// Relative to the disk root, `/`-separated.
    pub name: String,
    pub len: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

/// A place to keep files: a real directory ([`FileDisk`]) or memory ([`MemDisk`]).
pub trait Disk: Send + Sync + 'static {
    /// Starts writing `name`; nothing is visible under `name` until [`DiskFile::commit`]. Committing replaces
    /// any earlier file of that name.
    fn create(&self, name: &str) -> Result<Box<dyn DiskFile>>;
    /// Reads up to `len` bytes at `offset` (short only at end of file). NotFound if missing.
    fn read_at(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Length of a file. NotFound if missing.
    fn len(&self, name: &str) -> Result<u64>;
    /// Removes a file (committed or temp). A missing file is not an error.
    fn remove(&self, name: &str) -> Result<()>;
    /// Every committed file and every unfinished temp file (name ending in [`TEMP_SUFFIX`]), recursively,
    /// sorted by name, names relative to the root with `/` separators. A missing root lists as empty.
    fn list(&self) -> Result<Vec<DiskEntry>>;
    /// A human-readable label (the root path), for logs.
    fn label(&self) -> String;
}

/// A file being written. Dropping it without [`DiskFile::commit`] abandons the write.
pub trait DiskFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> Result<()>;
    /// Makes the file durable and visible under its name: fsync the data, rename temp→final, fsync the
    /// parent directory.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Checks that `name` is a relative path that stays inside the disk root.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(StorageError::InvalidName(format!("{name:?}: {why}")));
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with('/') {
        return bad("absolute");
    }
    if name.contains('\\') || name.contains('\0') {
        return bad("contains a backslash or NUL");
    }
    for component in name.split('/') {
        match component {
            "" => return bad("empty path component"),
            "." | ".." => return bad("`.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Like [`validate_name`], and refuses the names reserved for unfinished writes.
fn validate_new_name(name: &str) -> Result<()> {
    validate_name(name)?;
    if name.ends_with(TEMP_SUFFIX) {
        return Err(StorageError::InvalidName(format!("{name:?}: names ending in {TEMP_SUFFIX} are reserved")));
    }
    Ok(())
}

fn not_found_or_io(name: &str, e: std::io::Error) -> StorageError {
    if e.kind() == ErrorKind::NotFound {
        StorageError::NotFound(name.to_string())
    } else {
        StorageError::Io(e)
    }
}

/// Files in a directory of the local file system.
#[derive(Debug)]
pub struct FileDisk {
    root: PathBuf,
    /// A file (name, bytes) written again whenever the root has to be made anew: a disk directory
    /// deleted while in use gets its identity marker back with the first file written into it.
    marker: Option<(String, Vec<u8>)>,
    /// Write around the page cache: true until the file system refuses it (or in tests of the other way).
    /// Shared with the disk's writers, which turn it off when a direct write is refused.
    direct: Arc<AtomicBool>,
}

/// Makes temp names unique within the process; `create_new` plus a retry makes them unique against other
/// processes and against temp files an earlier run left behind. Temp names need not be unpredictable, so
/// this does not draw from the `Env`.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileDisk {
    /// Opens (creating if needed) the directory `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<FileDisk> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(FileDisk { root, marker: None, direct: Arc::new(AtomicBool::new(true)) })
    }

    /// This disk, writing `bytes` as `name` whenever its root has to be created again.
    pub fn with_marker(mut self, name: &str, bytes: Vec<u8>) -> Result<FileDisk> {
        validate_new_name(name)?;
        self.marker = Some((name.to_string(), bytes));
        Ok(self)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The same disk, written through the page cache only.
    #[cfg(test)]
    fn buffered(self) -> FileDisk {
        self.direct.store(false, Ordering::Relaxed);
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        // `name` is validated: relative, '/'-separated, no '..'; joining component by component keeps the
        // result portable.
        let mut p = self.root.clone();
        p.extend(name.split('/'));
        p
    }
}

impl FileDisk {
    /// [`Disk::create`], with the writer's own type.
    fn create_file(&self, name: &str) -> Result<FileDiskFile> {
        validate_new_name(name)?;
        let final_path = self.path(name);
        let dir = match final_path.parent() {
            Some(dir) => dir.to_path_buf(),
            None => return Err(StorageError::InvalidName(format!("{name:?}: no parent directory"))),
        };
        // Every time, not once at open: an operator may have deleted the directory since.
        if !dir.is_dir() {
            let root_lost = !self.root.is_dir();
            create_dirs_durably(&self.root, &dir)?;
            if let (true, Some((marker, bytes))) = (root_lost, &self.marker) {
                if marker != name {
                    let mut f = self.create(marker)?;
                    f.write_all(bytes)?;
                    f.commit()?;
                }
            }
        }
        let file_name = match final_path.file_name().and_then(|f| f.to_str()) {
            Some(f) => f.to_string(),
            None => return Err(StorageError::InvalidName(format!("{name:?}: no file name"))),
        };
        let pid = std::process::id();
        let (file, tmp_path) = loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp_path = dir.join(format!("{file_name}.{pid:x}-{n:x}{TEMP_SUFFIX}"));
            match OpenOptions::new().write(true).create_new(true).open(&tmp_path) {
                Ok(file) => break (file, tmp_path),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StorageError::Io(e)),
            }
        };
        let direct = match self.direct.load(Ordering::Relaxed).then(|| direct::open(&tmp_path)) {
            None => None,
            Some(Ok(file)) => Some(file),
            // Once refused, the same file system will refuse again: no second open per file from now on.
            Some(Err(e)) if refuses_direct(&e) => {
                if self.direct.swap(false, Ordering::Relaxed) {
                    tracing::info!(disk = %self.label(), error = %e, "no direct writes on this file system; writing through the page cache");
                }
                None
            }
            // Out of descriptors, say: this file goes through the page cache, the next ones try again.
            Some(Err(e)) => {
                tracing::debug!(disk = %self.label(), error = %e, "no direct descriptor for this file");
                None
            }
        };
        let sink = match direct {
            Some(direct) => Sink::Direct { file: direct, buf: AlignedBuf::new(DIRECT_CHUNK), written: 0 },
            None => Sink::Buffered {
                writer: BufWriter::with_capacity(WRITE_BUFFER, file),
                written: 0,
                started: 0,
                synced: 0,
            },
        };
        Ok(FileDiskFile { sink: Some(sink), renamed: false, tmp_path, final_path, dir, direct: self.direct.clone() })
    }
}

impl Disk for FileDisk {
    fn create(&self, name: &str) -> Result<Box<dyn DiskFile>> {
        Ok(Box::new(self.create_file(name)?))
    }

    fn read_at(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        validate_name(name)?;
        let mut file = File::open(self.path(name)).map_err(|e| not_found_or_io(name, e))?;
        let file_len = file.metadata()?.len();
        let available = file_len.saturating_sub(offset);
        // Never trust `len` for the allocation alone: a caller's bad length must not allocate gigabytes.
        let want = usize::try_from(available).map_or(len, |a| a.min(len));
        let mut buf = Vec::with_capacity(want);
        if want > 0 {
            file.seek(SeekFrom::Start(offset))?;
            file.take(want as u64).read_to_end(&mut buf)?;
        }
        Ok(buf)
    }

    fn len(&self, name: &str) -> Result<u64> {
        validate_name(name)?;
        let meta = std::fs::metadata(self.path(name)).map_err(|e| not_found_or_io(name, e))?;
        if !meta.is_file() {
            return Err(StorageError::NotFound(format!("{name} is not a file")));
        }
        Ok(meta.len())
    }

    fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Io(e)),
        }
    }

    fn list(&self) -> Result<Vec<DiskEntry>> {
        let mut out = Vec::new();
        // (directory, its name relative to the root with a trailing '/' unless it is the root)
        let mut stack: Vec<(PathBuf, String)> = vec![(self.root.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                // The root or a subdirectory removed under our feet: nothing there.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::Io(e)),
            };
            for entry in entries {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::Io(e)),
                };
                let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
                    tracing::warn!(disk = %self.label(), path = ?entry.path(), "skipping a non-UTF-8 file name");
                    continue;
                };
                let name = format!("{prefix}{file_name}");
                // file_type() does not follow symlinks: a link to a directory is not walked into.
                let file_type = match entry.file_type() {
                    Ok(t) => t,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::Io(e)),
                };
                if file_type.is_dir() {
                    stack.push((entry.path(), format!("{name}/")));
                } else if file_type.is_file() {
                    let meta = match entry.metadata() {
                        Ok(m) => m,
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(StorageError::Io(e)),
                    };
                    out.push(DiskEntry { name, len: meta.len(), modified_ms: modified_ms(&meta) });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn label(&self) -> String {
        self.root.display().to_string()
    }
}

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    match meta.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        },
        // A platform without mtimes: "very old" lets scrub collect stray temp files rather than keep them.
        Err(_) => 0,
    }
}

/// Bytes a file takes in before their write-out to the disk is started (without waiting for it).
const WRITE_BEHIND: u64 = 1024 * 1024;
/// Bytes a file takes in between syncs of its data while it is still being written: the disk's cache is
/// flushed along the way, with other streams still coding, instead of all at once while every stream waits
/// for its final fsync.
const SYNC_EVERY: u64 = 8 * 1024 * 1024;

/// Alignment of direct writes: of the buffer's address, of each write's length and of its file offset.
/// 4096 suits every common device and file system.
const DIRECT_ALIGN: usize = 4096;
/// Bytes gathered before each direct write.
const DIRECT_CHUNK: usize = 256 * 1024;

/// One page of an [`AlignedBuf`]; its alignment is what direct writes need of the buffer's address.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(4096))]
struct Page([u8; DIRECT_ALIGN]);

/// A buffer whose start is aligned for direct writes, filled from the front.
struct AlignedBuf {
    pages: Vec<Page>,
    len: usize,
}

impl AlignedBuf {
    /// `capacity` rounded up to whole pages.
    fn new(capacity: usize) -> AlignedBuf {
        AlignedBuf { pages: vec![Page([0; DIRECT_ALIGN]); capacity.div_ceil(DIRECT_ALIGN)], len: 0 }
    }

    fn capacity(&self) -> usize {
        self.pages.len() * DIRECT_ALIGN
    }

    /// Copies as much of `data` as fits; returns how much that was.
    fn push(&mut self, data: &[u8]) -> usize {
        let len = self.len;
        let n = data.len().min(self.capacity() - len);
        bytemuck::cast_slice_mut::<Page, u8>(&mut self.pages)[len..len + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    fn filled(&self) -> &[u8] {
        &bytemuck::cast_slice::<Page, u8>(&self.pages)[..self.len]
    }
}

/// Where a file's bytes go until commit.
enum Sink {
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

struct FileDiskFile {
    /// `None` once commit has begun.
    sink: Option<Sink>,
    /// The temp file has been renamed to its final name.
    renamed: bool,
    tmp_path: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    /// The disk's choice of direct writes, turned off here if its file system refuses them.
    direct: Arc<AtomicBool>,
}

/// Whether a direct write's error says that the file system or device will not take direct writes of this
/// alignment at all (rather than that this write failed).
fn refuses_direct(e: &std::io::Error) -> bool {
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
    fn refused_direct(&mut self, e: &std::io::Error) -> Result<()> {
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

/// Files in memory, for tests and the simulation. Modification times come from the [`Env`].
pub struct MemDisk {
    inner: Arc<MemInner>,
}

struct MemInner {
    env: Arc<dyn Env>,
    /// name → (bytes, modified_ms); committed files and temp files alike.
    files: Mutex<BTreeMap<String, (Vec<u8>, i64)>>,
    next_temp: AtomicU64,
}

impl MemInner {
    fn files(&self) -> MutexGuard<'_, BTreeMap<String, (Vec<u8>, i64)>> {
        // A test that panicked while holding the lock left the map consistent (every update is one insert or
        // one remove), so take it over.
        self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MemDisk {
    pub fn new(env: Arc<dyn Env>) -> MemDisk {
        MemDisk { inner: Arc::new(MemInner { env, files: Mutex::new(BTreeMap::new()), next_temp: AtomicU64::new(0) }) }
    }

    /// Test hook: flips every bit of the byte at `offset` of `name`, as bit rot would.
    pub fn corrupt(&self, name: &str, offset: u64) -> Result<()> {
        let mut files = self.inner.files();
        let Some((bytes, _)) = files.get_mut(name) else {
            return Err(StorageError::NotFound(name.to_string()));
        };
        let len = bytes.len();
        match usize::try_from(offset).ok().and_then(|o| bytes.get_mut(o)) {
            Some(b) => {
                *b = !*b;
                Ok(())
            }
            None => Err(StorageError::NotFound(format!("{name} has {len} bytes, no byte at offset {offset}"))),
        }
    }

    /// Test hook: loses every file, committed or not, as a replaced disk would.
    pub fn wipe(&self) {
        self.inner.files().clear();
    }
}

impl Disk for MemDisk {
    fn create(&self, name: &str) -> Result<Box<dyn DiskFile>> {
        validate_new_name(name)?;
        let n = self.inner.next_temp.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!("{name}.{n:x}{TEMP_SUFFIX}");
        let now = self.inner.env.now_ms();
        self.inner.files().insert(tmp_name.clone(), (Vec::new(), now));
        Ok(Box::new(MemDiskFile { inner: self.inner.clone(), name: name.to_string(), tmp_name, committed: false }))
    }

    fn read_at(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        validate_name(name)?;
        let files = self.inner.files();
        let Some((bytes, _)) = files.get(name) else {
            return Err(StorageError::NotFound(name.to_string()));
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(len).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }

    fn len(&self, name: &str) -> Result<u64> {
        validate_name(name)?;
        match self.inner.files().get(name) {
            Some((bytes, _)) => Ok(bytes.len() as u64),
            None => Err(StorageError::NotFound(name.to_string())),
        }
    }

    fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        self.inner.files().remove(name);
        Ok(())
    }

    fn list(&self) -> Result<Vec<DiskEntry>> {
        Ok(self
            .inner
            .files()
            .iter()
            .map(|(name, (bytes, modified_ms))| DiskEntry {
                name: name.clone(),
                len: bytes.len() as u64,
                modified_ms: *modified_ms,
            })
            .collect())
    }

    fn label(&self) -> String {
        "mem".to_string()
    }
}

struct MemDiskFile {
    inner: Arc<MemInner>,
    name: String,
    tmp_name: String,
    committed: bool,
}

impl DiskFile for MemDiskFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let now = self.inner.env.now_ms();
        match self.inner.files().get_mut(&self.tmp_name) {
            Some((bytes, modified_ms)) => {
                bytes.extend_from_slice(buf);
                *modified_ms = now;
                Ok(())
            }
            // Wiped while writing; a real disk would fail the same way at rename.
            None => Err(StorageError::NotFound(self.tmp_name.clone())),
        }
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let now = self.inner.env.now_ms();
        let mut files = self.inner.files();
        let Some((bytes, _)) = files.remove(&self.tmp_name) else {
            return Err(StorageError::NotFound(self.tmp_name.clone()));
        };
        files.insert(self.name.clone(), (bytes, now));
        self.committed = true;
        Ok(())
    }
}

impl Drop for MemDiskFile {
    fn drop(&mut self) {
        if !self.committed {
            self.inner.files().remove(&self.tmp_name);
        }
    }
}

/// Creates `dir` and its missing ancestors below (and including) `root`, then fsyncs each new directory's
/// parent, so that a file committed into a new directory survives a crash with its whole path.
pub(crate) fn create_dirs_durably(root: &Path, dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        if d == root {
            break;
        }
        cur = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Makes the entries of `dir` (a rename into it, a file created or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Direct writes: a second descriptor of a just-created temp file, opened with O_DIRECT. An error that
/// [`refuses_direct`] means the file system does not take direct writes (tmpfs, for one, may not).
#[cfg(target_os = "linux")]
mod direct {
    use std::fs::File;
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    pub fn open(path: &Path) -> std::io::Result<File> {
        OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path)
    }

    /// EOPNOTSUPP, which the standard library does not map to `Unsupported` everywhere.
    pub fn unsupported(e: &std::io::Error) -> bool {
        e.raw_os_error() == Some(libc::EOPNOTSUPP)
    }
}

/// Elsewhere, files are written through the page cache.
#[cfg(not(target_os = "linux"))]
mod direct {
    use std::fs::File;
    use std::path::Path;

    pub fn open(_path: &Path) -> std::io::Result<File> {
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
    use crate::env::SimEnv;

    fn mem() -> MemDisk {
        MemDisk::new(Arc::new(SimEnv::new(1, 1_000)))
    }

    fn write(disk: &dyn Disk, name: &str, bytes: &[u8]) {
        let mut f = disk.create(name).unwrap();
        f.write_all(bytes).unwrap();
        f.commit().unwrap();
    }

    /// The behaviours every Disk must share, run against both implementations.
    fn committed_file_reads_back(disk: &dyn Disk) {
        write(disk, "shards/ab/file.0", b"hello world");
        assert_eq!(disk.read_at("shards/ab/file.0", 0, 5).unwrap(), b"hello");
        assert_eq!(disk.read_at("shards/ab/file.0", 6, 100).unwrap(), b"world");
        assert_eq!(disk.read_at("shards/ab/file.0", 11, 10).unwrap(), b"");
        assert_eq!(disk.read_at("shards/ab/file.0", 50, 10).unwrap(), b"");
        assert_eq!(disk.len("shards/ab/file.0").unwrap(), 11);
        // Committing again replaces the file.
        write(disk, "shards/ab/file.0", b"bye");
        assert_eq!(disk.read_at("shards/ab/file.0", 0, 100).unwrap(), b"bye");
    }

    fn uncommitted_file_is_invisible_but_listed_as_temp(disk: &dyn Disk) {
        let mut f = disk.create("a/b.1").unwrap();
        f.write_all(b"partial").unwrap();
        assert!(matches!(disk.read_at("a/b.1", 0, 10), Err(StorageError::NotFound(_))));
        assert!(matches!(disk.len("a/b.1"), Err(StorageError::NotFound(_))));
        let listed = disk.list().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(listed[0].name.starts_with("a/b.1.") && listed[0].name.ends_with(TEMP_SUFFIX), "{listed:?}");
        f.commit().unwrap();
        let listed = disk.list().unwrap();
        assert_eq!(listed.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a/b.1"]);
        assert_eq!(listed[0].len, 7);
    }

    fn dropped_writer_removes_its_temp_file(disk: &dyn Disk) {
        let mut f = disk.create("x/y").unwrap();
        f.write_all(&[7u8; 300 * 1024]).unwrap();
        drop(f);
        assert_eq!(disk.list().unwrap(), vec![]);
        assert!(matches!(disk.read_at("x/y", 0, 1), Err(StorageError::NotFound(_))));
    }

    fn list_is_recursive_and_sorted(disk: &dyn Disk) {
        write(disk, "z", b"1");
        write(disk, "shards/01/a.0", b"22");
        write(disk, "shards/ff/b.2", b"333");
        write(disk, "shards/01/deeper/c", b"");
        let listed = disk.list().unwrap();
        let names: Vec<(&str, u64)> = listed.iter().map(|e| (e.name.as_str(), e.len)).collect();
        assert_eq!(names, [("shards/01/a.0", 2), ("shards/01/deeper/c", 0), ("shards/ff/b.2", 3), ("z", 1)]);
    }

    fn remove_is_idempotent(disk: &dyn Disk) {
        write(disk, "gone", b"x");
        disk.remove("gone").unwrap();
        disk.remove("gone").unwrap();
        disk.remove("never/was").unwrap();
        assert!(matches!(disk.read_at("gone", 0, 1), Err(StorageError::NotFound(_))));
    }

    fn bad_names_are_refused(disk: &dyn Disk) {
        for name in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "./a", "a\\b", "a.tmp"] {
            assert!(matches!(disk.create(name), Err(StorageError::InvalidName(_))), "create {name:?}");
        }
        for name in ["", "/etc/passwd", "../x", "a/./b"] {
            assert!(matches!(disk.read_at(name, 0, 1), Err(StorageError::InvalidName(_))), "read {name:?}");
            assert!(matches!(disk.remove(name), Err(StorageError::InvalidName(_))), "remove {name:?}");
        }
    }

    /// A file many times the direct-write chunk and the write-behind and sync thresholds, written in pieces that
    /// straddle them (as shard files are: a piece and its 4-byte CRC) and ending in a partial block, reads back
    /// whole, and only once committed.
    fn large_file_written_in_pieces_reads_back(disk: &dyn Disk) {
        let piece_len = 256 * 1024 + 4;
        let pieces: Vec<Vec<u8>> =
            (0..90u32).map(|i| (0..piece_len).map(|j| (i as usize * 31 + j * 7) as u8).collect()).collect();
        let mut f = disk.create("shards/aa/large").unwrap();
        for p in &pieces {
            f.write_all(p).unwrap();
        }
        assert!(matches!(disk.read_at("shards/aa/large", 0, 1), Err(StorageError::NotFound(_))));
        f.commit().unwrap();
        let total = piece_len as u64 * pieces.len() as u64;
        assert!(total > 2 * SYNC_EVERY);
        assert_ne!(total % DIRECT_ALIGN as u64, 0, "ends in a partial block");
        assert_eq!(disk.len("shards/aa/large").unwrap(), total);
        for i in [0, 31, 32, 89] {
            let at = (i * piece_len) as u64;
            assert_eq!(disk.read_at("shards/aa/large", at, piece_len).unwrap(), pieces[i], "piece {i}");
        }
    }

    /// Files of whole direct-write chunks, and an empty one, leave nothing for the partial-block tail.
    fn files_of_whole_chunks_and_empty_files_read_back(disk: &dyn Disk) {
        let bytes: Vec<u8> = (0..2 * DIRECT_CHUNK).map(|i| (i * 13 + i / 4096) as u8).collect();
        write(disk, "whole", &bytes);
        assert_eq!(disk.len("whole").unwrap(), bytes.len() as u64);
        assert_eq!(disk.read_at("whole", 0, bytes.len()).unwrap(), bytes);
        write(disk, "empty", b"");
        assert_eq!(disk.len("empty").unwrap(), 0);
        assert_eq!(disk.read_at("empty", 0, 10).unwrap(), b"");
    }

    macro_rules! for_both_disks {
        ($($behaviour:ident),* $(,)?) => {
            mod file_disk {
                $(
                    #[test]
                    fn $behaviour() {
                        let dir = tempfile::tempdir().unwrap();
                        let disk = super::FileDisk::open(dir.path().join("disk")).unwrap();
                        super::$behaviour(&disk);
                    }
                )*
            }
            mod mem_disk {
                $(
                    #[test]
                    fn $behaviour() {
                        super::$behaviour(&super::mem());
                    }
                )*
            }
            mod buffered_file_disk {
                $(
                    #[test]
                    fn $behaviour() {
                        let dir = tempfile::tempdir().unwrap();
                        let disk = super::FileDisk::open(dir.path().join("disk")).unwrap().buffered();
                        super::$behaviour(&disk);
                    }
                )*
            }
        };
    }

    for_both_disks!(
        committed_file_reads_back,
        uncommitted_file_is_invisible_but_listed_as_temp,
        dropped_writer_removes_its_temp_file,
        list_is_recursive_and_sorted,
        remove_is_idempotent,
        bad_names_are_refused,
        large_file_written_in_pieces_reads_back,
        files_of_whole_chunks_and_empty_files_read_back,
    );

    /// A file whose first direct write is refused goes on through the page cache with everything gathered
    /// so far, reads back whole, and the disk writes the next files through the page cache.
    #[test]
    fn a_refused_direct_write_falls_back_to_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FileDisk::open(dir.path().join("disk")).unwrap();
        let bytes: Vec<u8> = (0..3 * DIRECT_CHUNK + 123).map(|i| (i * 7 + i / 1000) as u8).collect();
        let mut w = disk.create_file("fallback").unwrap();
        w.write_all(&bytes[..1000]).unwrap();
        if matches!(w.sink, Some(Sink::Direct { .. })) {
            // What a write's EINVAL leads to, on a file system that takes O_DIRECT here.
            w.refused_direct(&std::io::Error::from(ErrorKind::InvalidInput)).unwrap();
        }
        assert!(matches!(w.sink, Some(Sink::Buffered { .. })));
        w.write_all(&bytes[1000..]).unwrap();
        Box::new(w).commit().unwrap();
        assert_eq!(disk.read_at("fallback", 0, bytes.len()).unwrap(), bytes);
        assert!(!disk.direct.load(Ordering::Relaxed));
        let next = disk.create_file("next").unwrap();
        assert!(matches!(next.sink, Some(Sink::Buffered { .. })));
    }

    #[test]
    fn file_disk_heals_after_its_root_directory_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("disk");
        let disk = FileDisk::open(&root).unwrap();
        write(&disk, "shards/aa/one", b"1");
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(disk.list().unwrap(), vec![]);
        assert!(matches!(disk.read_at("shards/aa/one", 0, 1), Err(StorageError::NotFound(_))));
        write(&disk, "shards/aa/two", b"22");
        assert_eq!(disk.read_at("shards/aa/two", 0, 10).unwrap(), b"22");
        assert_eq!(disk.list().unwrap().len(), 1);
    }

    #[test]
    fn file_disk_reports_mtime_in_unix_ms() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FileDisk::open(dir.path()).unwrap();
        write(&disk, "f", b"1");
        let listed = disk.list().unwrap();
        // After 2020-01-01.
        assert!(listed[0].modified_ms > 1_577_836_800_000, "{listed:?}");
    }

    #[test]
    fn file_disk_commit_fails_cleanly_if_directory_vanished_mid_write() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("disk");
        let disk = FileDisk::open(&root).unwrap();
        let mut f = disk.create("a/b").unwrap();
        f.write_all(b"data").unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(f.commit().is_err());
        write(&disk, "a/b", b"again");
        assert_eq!(disk.read_at("a/b", 0, 10).unwrap(), b"again");
    }

    #[test]
    fn mem_disk_uses_env_time_for_modified_ms() {
        let env = Arc::new(SimEnv::new(1, 5_000));
        let disk = MemDisk::new(env.clone());
        write(&disk, "f", b"1");
        env.advance(10);
        let mut g = disk.create("g").unwrap();
        g.write_all(b"2").unwrap();
        let times: Vec<i64> = disk.list().unwrap().iter().map(|e| e.modified_ms).collect();
        assert_eq!(times, [5_000, 5_010]);
    }

    #[test]
    fn mem_disk_corrupt_flips_one_byte_and_wipe_loses_everything() {
        let disk = mem();
        write(&disk, "f", b"abc");
        disk.corrupt("f", 1).unwrap();
        assert_eq!(disk.read_at("f", 0, 3).unwrap(), [b'a', !b'b', b'c']);
        assert!(matches!(disk.corrupt("f", 3), Err(StorageError::NotFound(_))));
        assert!(matches!(disk.corrupt("nope", 0), Err(StorageError::NotFound(_))));
        let mut pending = disk.create("pending").unwrap();
        disk.wipe();
        assert_eq!(disk.list().unwrap(), vec![]);
        assert!(pending.write_all(b"x").is_err());
        assert!(pending.commit().is_err());
    }
}
