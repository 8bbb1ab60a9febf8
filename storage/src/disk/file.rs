//! [`FileDisk`]: files in a directory of the local file system.

use std::fs::File;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::io::ErrorKind;
use std::io::Read;
use std::io::Seek;
use std::io::SeekFrom;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use super::create_dirs_durably;
use super::reader;
use super::reader::Direct;
use super::validate_name;
use super::validate_new_name;
use super::writer::direct;
use super::writer::refuses_direct;
use super::writer::AlignedBuf;
use super::writer::FileDiskFile;
use super::writer::Sink;
use super::writer::DIRECT_CHUNK;
use super::writer::WRITE_BUFFER;
use super::Disk;
use super::DiskEntry;
use super::DiskFile;
use super::TEMP_SUFFIX;
use crate::error::Result;
use crate::error::StorageError;

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
    pub(super) direct: Arc<AtomicBool>,
    /// Read around the page cache: true until the file system refuses it (or in tests of the other way).
    direct_reads: AtomicBool,
    /// The root was a mount point when the disk was opened (its own file system): if it stops being one, the
    /// drive is not mounted, and nothing may be written into the empty directory it leaves.
    was_mounted: bool,
}

/// Whether `path` is the root of a file system of its own (its device differs from its parent's). `None`
/// where that cannot be told.
pub(super) fn is_mount_point(path: &Path) -> Option<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Some(std::fs::metadata(path).ok()?.dev() != std::fs::metadata(parent).ok()?.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
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
        let was_mounted = is_mount_point(&root).unwrap_or(false);
        Ok(FileDisk {
            root,
            marker: None,
            direct: Arc::new(AtomicBool::new(true)),
            direct_reads: AtomicBool::new(true),
            was_mounted,
        })
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
    pub(super) fn buffered(self) -> FileDisk {
        self.direct.store(false, Ordering::Relaxed);
        self.direct_reads.store(false, Ordering::Relaxed);
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
    pub(super) fn create_file(&self, name: &str) -> Result<FileDiskFile> {
        validate_new_name(name)?;
        let final_path = self.path(name);
        let dir = match final_path.parent() {
            Some(dir) => dir.to_path_buf(),
            None => return Err(StorageError::InvalidName(format!("{name:?}: no parent directory"))),
        };
        // Every time, not once at open: an operator may have emptied or deleted the directory since (a
        // drive swapped at the same mount point). The marker goes first, so that no file of this disk is ever
        // on it without it: a restart would not take a directory that holds files but no marker.
        if let Some((marker, bytes)) = &self.marker {
            if marker != name && !self.path(marker).is_file() {
                // A drive that was mounted here and is not any more leaves an empty directory on the parent's
                // file system: marking it would put this disk's data where no drive is.
                if self.was_mounted && is_mount_point(&self.root) == Some(false) {
                    return Err(StorageError::Io(std::io::Error::other(format!(
                        "{}: the drive mounted here when hoard started is not mounted now",
                        self.root.display()
                    ))));
                }
                let mut f = self.create(marker)?;
                f.write_all(bytes)?;
                f.commit()?;
                tracing::warn!(disk = %self.label(), "the disk's marker was gone (a replaced or emptied disk); wrote it again");
            }
        }
        if !dir.is_dir() {
            create_dirs_durably(&self.root, &dir)?;
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

    fn read_at(&self, name: &str, offset: u64, len: usize) -> Result<Bytes> {
        validate_name(name)?;
        let path = self.path(name);
        if self.direct_reads.load(Ordering::Relaxed) {
            match reader::read(&path, offset, len).map_err(|e| not_found_or_io(name, e))? {
                Direct::Read(bytes) => return Ok(bytes),
                // Once refused, the same file system will refuse again: through the page cache from now on.
                Direct::Refused(e) => {
                    if self.direct_reads.swap(false, Ordering::Relaxed) {
                        tracing::info!(disk = %self.label(), error = %e, "no direct reads on this file system; reading through the page cache");
                    }
                }
            }
        }
        let mut file = File::open(&path).map_err(|e| not_found_or_io(name, e))?;
        let want = reader::readable(&file, offset, len)?;
        let mut buf = Vec::with_capacity(want);
        if want > 0 {
            file.seek(SeekFrom::Start(offset))?;
            file.take(want as u64).read_to_end(&mut buf)?;
        }
        Ok(Bytes::from(buf))
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
