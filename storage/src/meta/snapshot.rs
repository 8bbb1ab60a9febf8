//! Metadata snapshots as files: written and read as streams, so a snapshot's size is bounded by the disk,
//! never by memory or by the largest value the database can hold.
//!
//! Format (version 1), all integers little-endian:
//! ```text
//! "HOARDSNP" | version u8 = 1
//! then records:
//!   0x01 | name length u8 | keyspace name          the pairs that follow belong to this keyspace
//!   0x02 | key length u32 | key | value length u32 | value
//!   0xFF | CRC32C u32 of every byte before it, the 0xFF tag included; nothing may follow
//! ```
//!
//! Invariants:
//! - A snapshot file is complete before it has its final name: written as `*.tmp`, fsynced, renamed,
//!   and the directory fsynced. A received snapshot is fsynced and renamed the same way before use.
//! - A reader never trusts a length: every length is checked against what is left of the file before
//!   anything is allocated, so a corrupt file fails with an error, never with a huge allocation.
//! - The trailing CRC covers the whole file; [`verify`] reads it end to end before any state changes.

use std::fs::File;
use std::io;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Read;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Context;
use std::task::Poll;

use tokio::io::AsyncRead;
use tokio::io::AsyncSeek;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;

use super::MetaError;
use super::Result;
use crate::disk::create_dirs_durably;
use crate::disk::sync_dir;

const MAGIC: &[u8; 8] = b"HOARDSNP";
const VERSION: u8 = 1;
const TAG_KEYSPACE: u8 = 0x01;
const TAG_PAIR: u8 = 0x02;
const TAG_END: u8 = 0xFF;

/// The suffix of a complete snapshot file.
const SNAP: &str = ".snap";

/// One item of a snapshot file, in file order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Keyspace(String),
    Pair(Vec<u8>, Vec<u8>),
}

/// The directory holding the node's snapshot files.
pub(crate) struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// Opens (creating, durably) the snapshot directory.
    pub(crate) fn open(dir: &Path) -> Result<SnapshotDir> {
        create_dirs_durably(dir, dir)?;
        Ok(SnapshotDir { dir: dir.to_path_buf() })
    }

    /// The path of the snapshot file `name`.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The file name of snapshot number `counter`.
    pub(crate) fn name(counter: u64) -> String {
        format!("snapshot-{counter:020}{SNAP}")
    }

    /// Writes a complete snapshot file `name`; `fill` writes its keyspaces and pairs.
    pub(crate) fn write(&self, name: &str, fill: impl FnOnce(&mut Writer<File>) -> Result<()>) -> Result<()> {
        let tmp = self.tmp_path(name);
        let mut writer = Writer::new(File::create(&tmp)?)?;
        fill(&mut writer)?;
        drop(writer.finish()?);
        self.publish(&tmp, name)
    }

    fn tmp_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.tmp"))
    }

    /// Makes the complete file at `from` the snapshot file `name`: fsynced, renamed, the rename fsynced.
    fn publish(&self, from: &Path, name: &str) -> Result<()> {
        File::open(from)?.sync_all()?;
        std::fs::rename(from, self.path(name))?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Creates the file a snapshot sent by the leader is received into.
    pub(crate) fn incoming(&self, counter: u64) -> Result<SnapshotFile> {
        let path = self.dir.join(format!("incoming-{counter:020}.part"));
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path)?;
        Ok(SnapshotFile { file: tokio::fs::File::from_std(file), path })
    }

    /// Makes a received file the complete snapshot file `name`: a file this directory handed out for
    /// receiving is moved, any other file (say, another node's own snapshot) is copied.
    pub(crate) fn adopt(&self, received: &Path, name: &str) -> Result<()> {
        let ours = received.parent() == Some(self.dir.as_path())
            && received.file_name().is_some_and(|n| n.to_string_lossy().starts_with("incoming-"));
        if ours {
            return self.publish(received, name);
        }
        let tmp = self.tmp_path(name);
        std::fs::copy(received, &tmp)?;
        self.publish(&tmp, name)
    }

    /// Opens the snapshot file `name` for streaming to openraft.
    pub(crate) fn open_file(&self, name: &str) -> Result<SnapshotFile> {
        let path = self.path(name);
        let file = File::open(&path)?;
        Ok(SnapshotFile { file: tokio::fs::File::from_std(file), path })
    }

    /// Deletes every file in the directory except the snapshots named in `keep`: older snapshots,
    /// unfinished builds and unfinished receptions.
    pub(crate) fn retain_only(&self, keep: &[&str]) -> Result<()> {
        let mut removed = false;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !keep.contains(&name.as_ref()) && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Writes the snapshot format to `W`, computing the trailing CRC as it goes.
pub(crate) struct Writer<W: Write> {
    out: BufWriter<W>,
    crc: u32,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W) -> Result<Writer<W>> {
        let mut writer = Writer { out: BufWriter::with_capacity(1 << 20, out), crc: 0 };
        writer.put(MAGIC)?;
        writer.put(&[VERSION])?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.out.write_all(bytes)?;
        Ok(())
    }

    /// Starts the pairs of keyspace `name`.
    pub(crate) fn keyspace(&mut self, name: &str) -> Result<()> {
        let len = u8::try_from(name.len()).map_err(|_| MetaError::Corrupt(format!("keyspace name {name:?}")))?;
        self.put(&[TAG_KEYSPACE, len])?;
        self.put(name.as_bytes())
    }

    /// Writes one pair of the current keyspace.
    pub(crate) fn pair(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(&[TAG_PAIR])?;
        self.put(&len32(key.len())?.to_le_bytes())?;
        self.put(key)?;
        self.put(&len32(value.len())?.to_le_bytes())?;
        self.put(value)
    }

    /// Writes the trailer and hands back the underlying writer, flushed.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.put(&[TAG_END])?;
        let crc = self.crc;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.into_inner().map_err(|e| MetaError::Io(e.into_error()))
    }
}

fn len32(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| MetaError::Corrupt(format!("a snapshot value of {len} bytes")))
}

/// Reads the snapshot format item by item. The CRC is checked when the trailer is reached, so only a
/// reader that ran to the end (or [`verify`]) knows the items were intact.
pub(crate) struct Reader<R: Read> {
    input: R,
    remaining: u64,
    crc: u32,
    done: bool,
}

impl Reader<BufReader<File>> {
    /// Opens the snapshot file at `path` and checks its header.
    pub(crate) fn open(path: &Path) -> Result<Reader<BufReader<File>>> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Reader::new(BufReader::with_capacity(1 << 20, file), len)
    }
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(input: R, len: u64) -> Result<Reader<R>> {
        let mut reader = Reader { input, remaining: len, crc: 0, done: false };
        let mut magic = [0u8; 8];
        reader.take(&mut magic)?;
        if &magic != MAGIC {
            return Err(corrupt("not a hoard snapshot file"));
        }
        let mut version = [0u8; 1];
        reader.take(&mut version)?;
        if version[0] != VERSION {
            return Err(corrupt(&format!("snapshot format version {} is not known", version[0])));
        }
        Ok(reader)
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<()> {
        if (buf.len() as u64) > self.remaining {
            return Err(corrupt("the snapshot file ends early"));
        }
        self.input.read_exact(buf)?;
        self.remaining -= buf.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(())
    }

    fn take_u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.take(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn take_vec(&mut self, len: usize) -> Result<Vec<u8>> {
        if (len as u64) > self.remaining {
            return Err(corrupt("a snapshot record is longer than the file"));
        }
        let mut v = vec![0u8; len];
        self.take(&mut v)?;
        Ok(v)
    }

    /// The next item, or `None` after the trailer (whose CRC then matched).
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.take(&mut tag)?;
        match tag[0] {
            TAG_KEYSPACE => {
                let mut len = [0u8; 1];
                self.take(&mut len)?;
                let name = self.take_vec(usize::from(len[0]))?;
                let name = String::from_utf8(name).map_err(|_| corrupt("a keyspace name is not UTF-8"))?;
                Ok(Some(Item::Keyspace(name)))
            }
            TAG_PAIR => {
                let len = self.take_u32()? as usize;
                let key = self.take_vec(len)?;
                let len = self.take_u32()? as usize;
                let value = self.take_vec(len)?;
                Ok(Some(Item::Pair(key, value)))
            }
            TAG_END => {
                let computed = self.crc;
                let stored = self.take_u32()?;
                if stored != computed {
                    return Err(corrupt("the snapshot file's checksum does not match"));
                }
                if self.remaining != 0 {
                    return Err(corrupt("bytes follow the end of the snapshot file"));
                }
                self.done = true;
                Ok(None)
            }
            other => Err(corrupt(&format!("unknown snapshot record tag {other:#04x}"))),
        }
    }
}

fn corrupt(what: &str) -> MetaError {
    MetaError::Corrupt(what.to_string())
}

/// Reads the whole snapshot file at `path` and checks its structure and checksum.
pub(crate) fn verify(path: &Path) -> Result<()> {
    let mut reader = Reader::open(path)?;
    while reader.next_item()?.is_some() {}
    Ok(())
}

/// A snapshot file as openraft streams it: sent from a built snapshot, or received from the leader.
#[derive(Debug)]
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
}

impl SnapshotFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.file).poll_complete(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(items: &[Item]) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new()).unwrap();
        for item in items {
            match item {
                Item::Keyspace(name) => writer.keyspace(name).unwrap(),
                Item::Pair(k, v) => writer.pair(k, v).unwrap(),
            }
        }
        writer.finish().unwrap()
    }

    fn decoded(bytes: &[u8]) -> Result<Vec<Item>> {
        let mut reader = Reader::new(bytes, bytes.len() as u64)?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    fn sample() -> Vec<Item> {
        vec![
            Item::Keyspace("buckets".into()),
            Item::Pair(b"b".to_vec(), b"\x01rec".to_vec()),
            Item::Keyspace("objects".into()),
            Item::Keyspace("parts".into()),
            Item::Pair(Vec::new(), Vec::new()),
        ]
    }

    #[test]
    fn the_v1_layout_is_pinned() {
        let bytes = encoded(&[Item::Keyspace("ks".into()), Item::Pair(b"k".to_vec(), b"vv".to_vec())]);
        let mut expected = b"HOARDSNP\x01\x01\x02ks\x02\x01\x00\x00\x00k\x02\x00\x00\x00vv\xff".to_vec();
        let crc = crc32c::crc32c(&expected);
        expected.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(bytes, expected);
        // The CRC of this exact prefix, so a change of checksum algorithm is caught too.
        assert_eq!(crc, 0x10ff_dcb0, "crc {crc:#010x}");
    }

    #[test]
    fn items_round_trip() {
        assert_eq!(decoded(&encoded(&sample())).unwrap(), sample());
        assert_eq!(decoded(&encoded(&[])).unwrap(), Vec::<Item>::new());
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let bytes = encoded(&sample());
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(decoded(&bad).is_err(), "bit {bit} of byte {i} flipped was accepted");
            }
            assert!(decoded(&bytes[..i]).is_err(), "a file cut to {i} bytes was accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decoded(&longer).is_err(), "a byte after the trailer was accepted");
    }

    #[test]
    fn a_huge_length_fails_without_allocating_it() {
        let mut bytes = b"HOARDSNP\x01\x02".to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        let error = decoded(&bytes).unwrap_err();
        assert!(error.to_string().contains("longer than the file"), "{error}");
    }

    #[test]
    fn files_are_written_whole_and_leftovers_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(&tmp.path().join("snapshots")).unwrap();
        let name = SnapshotDir::name(7);
        dir.write(&name, |w| {
            w.keyspace("buckets")?;
            w.pair(b"k", b"v")
        })
        .unwrap();
        verify(&dir.path(&name)).unwrap();
        let incoming = dir.incoming(8).unwrap();
        let stale = SnapshotDir::name(6);
        std::fs::write(dir.path(&stale), b"old").unwrap();
        let failed = dir.write(&SnapshotDir::name(9), |_| Err(corrupt("the build failed")));
        assert!(failed.is_err());
        dir.retain_only(&[&name]).unwrap();
        let left: Vec<String> = std::fs::read_dir(tmp.path().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec![name]);
        assert!(!incoming.path().exists());
    }
}
