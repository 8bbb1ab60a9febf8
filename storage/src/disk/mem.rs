//! [`MemDisk`]: files in memory, for tests and the simulation.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;

use bytes::Bytes;

use super::validate_name;
use super::validate_new_name;
use super::Disk;
use super::DiskEntry;
use super::DiskFile;
use super::TEMP_SUFFIX;
use crate::env::Env;
use crate::error::Result;
use crate::error::StorageError;

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

    fn read_at(&self, name: &str, offset: u64, len: usize) -> Result<Bytes> {
        validate_name(name)?;
        let files = self.inner.files();
        let Some((bytes, _)) = files.get(name) else {
            return Err(StorageError::NotFound(name.to_string()));
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(len).min(bytes.len());
        Ok(Bytes::copy_from_slice(&bytes[start..end]))
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
