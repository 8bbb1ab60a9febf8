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
//! - [`FileDisk`] writes around the page cache (O_DIRECT, in aligned 512 KiB chunks, the last partial block
//!   through the cache) where the file system allows it, and through the page cache elsewhere; durability is
//!   the same either way, since commit fsyncs. It reads around the page cache too (O_DIRECT, the aligned span
//!   around the wanted bytes), where the file system allows it: a GET reads a piece once, and the page cache
//!   path costs more CPU than the drive's reads take.
//! - The API is blocking; async callers run it off the async runtime (a disk's own I/O threads in `hoard-actors`'
//!   `disk_io`), or inline in the simulation ([`crate::exec`]).
//!
//! Parts: this file (the seam and name rules), `file` ([`FileDisk`]), `writer` (its writers: direct I/O,
//! write-behind), `reader` (its direct reads), `mem` ([`MemDisk`]).

use std::fs::File;
use std::path::Path;

use bytes::Bytes;

use crate::error::Result;
use crate::error::StorageError;

mod file;
mod mem;
mod reader;
pub mod sim;
mod writer;

pub use file::FileDisk;
pub use mem::MemDisk;

/// Suffix of the names of unfinished writes.
pub const TEMP_SUFFIX: &str = ".tmp";
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
    fn read_at(&self, name: &str, offset: u64, len: usize) -> Result<Bytes>;
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
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `contents` to `path` readable by its owner only (a private key, token hashes) and syncs the file
/// (the caller syncs the directory once its entries are final).
pub fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests;
