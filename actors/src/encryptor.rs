//! The encryptor worker: the CPU-bound byte work of a request other than erasure coding — digests
//! (MD5 for ETags, the `x-amz-checksum-*` algorithms) and AES-256-GCM sealing and opening of blocks.
//!
//! Digest state travels with each job, so consecutive blocks of one object may run on different workers
//! while the result is the same as hashing the whole stream in one place. A [`Sealer`] travels the same
//! way; it holds the data key's AES key schedule, which is zeroized when the last job drops it.
//!
//! Fault point: `encryptor.seal` (before each block is sealed).

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use hoard_protocol::Checksums;
use md5::Digest as _;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;
use std::sync::Arc;

use hoard_storage::seal::Sealer;

use crate::blocking;
use crate::error::ActorError;
use crate::error::Result;
use crate::faults;
use crate::faults::FaultInjector;
use crate::pool::Pool;

pub const ENCRYPTOR_DEADLINE: Duration = Duration::from_secs(30);

/// Which `x-amz-checksum-*` algorithms to compute besides MD5.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChecksumSet {
    pub crc32: bool,
    pub crc32c: bool,
    pub sha1: bool,
    pub sha256: bool,
}

/// Running digests of one stream.
#[derive(Clone)]
pub struct DigestState {
    md5: md5::Md5,
    crc32: Option<crc32fast::Hasher>,
    crc32c: Option<u32>,
    sha1: Option<sha1::Sha1>,
    sha256: Option<sha2::Sha256>,
}

/// The finished digests of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: [u8; 16],
    pub checksums: Checksums,
}

impl DigestState {
    pub fn new(want: ChecksumSet) -> Self {
        DigestState {
            md5: md5::Md5::new(),
            crc32: want.crc32.then(crc32fast::Hasher::new),
            crc32c: want.crc32c.then_some(0),
            sha1: want.sha1.then(sha1::Sha1::new),
            sha256: want.sha256.then(sha2::Sha256::new),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(h) = &mut self.crc32 {
            h.update(data);
        }
        if let Some(c) = &mut self.crc32c {
            *c = crc32c::crc32c_append(*c, data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
    }

    pub fn finish(self) -> Digests {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Digests {
            md5: self.md5.finalize().into(),
            checksums: Checksums {
                crc32: self.crc32.map(|h| b64(&h.finalize().to_be_bytes())),
                crc32c: self.crc32c.map(|c| b64(&c.to_be_bytes())),
                sha1: self.sha1.map(|h| b64(&h.finalize())),
                sha256: self.sha256.map(|h| b64(&h.finalize())),
                crc64nvme: None,
                checksum_type: None,
            },
        }
    }
}

pub struct EncryptorWorker;

/// Where a block sits in its sealed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPlace {
    pub index: u64,
    pub last: bool,
}

pub enum EncryptorMsg {
    Digest { state: Box<DigestState>, block: Bytes, reply: RpcReplyPort<Result<Box<DigestState>>> },
    Seal { sealer: Arc<Sealer>, place: BlockPlace, block: Bytes, reply: RpcReplyPort<Result<Bytes>> },
    Open { sealer: Arc<Sealer>, place: BlockPlace, block: Bytes, reply: RpcReplyPort<Result<Bytes>> },
}

impl Actor for EncryptorWorker {
    type Msg = EncryptorMsg;
    type State = Arc<dyn FaultInjector>;
    type Arguments = Arc<dyn FaultInjector>;

    async fn pre_start(
        &self,
        _me: ActorRef<EncryptorMsg>,
        faults: Arc<dyn FaultInjector>,
    ) -> std::result::Result<Arc<dyn FaultInjector>, ActorProcessingErr> {
        Ok(faults)
    }

    async fn handle(
        &self,
        _me: ActorRef<EncryptorMsg>,
        msg: EncryptorMsg,
        faults: &mut Arc<dyn FaultInjector>,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            EncryptorMsg::Digest { mut state, block, reply } => {
                let r = blocking::run(move || {
                    state.update(&block);
                    Ok(state)
                })
                .await;
                let _ = reply.send(r);
            }
            EncryptorMsg::Seal { sealer, place, block, reply } => {
                faults::hit(faults.as_ref(), "encryptor.seal").await?;
                let r = blocking::run(move || {
                    let sealed = sealer.seal(place.index, place.last, &block).map_err(ActorError::from)?;
                    Ok(Bytes::from(sealed))
                })
                .await;
                let _ = reply.send(r);
            }
            EncryptorMsg::Open { sealer, place, block, reply } => {
                let r = blocking::run(move || match block.try_into_mut() {
                    // The usual case: the block read from disk is ours alone, so it is opened where it lies.
                    Ok(mut buf) => {
                        let len = sealer.open_in_place(place.index, place.last, &mut buf).map_err(ActorError::from)?;
                        buf.truncate(len);
                        Ok(buf.freeze())
                    }
                    Err(shared) => {
                        let opened = sealer.open(place.index, place.last, &shared).map_err(ActorError::from)?;
                        Ok(Bytes::from(opened))
                    }
                })
                .await;
                let _ = reply.send(r);
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct EncryptorPool {
    pub pool: Pool<EncryptorMsg>,
}

impl EncryptorPool {
    pub fn new(workers: usize) -> Self {
        EncryptorPool { pool: Pool::new("encryptor pool", workers) }
    }

    pub async fn digest(&self, state: Box<DigestState>, block: Bytes) -> Result<Box<DigestState>> {
        self.pool.call(|reply| EncryptorMsg::Digest { state, block, reply }, ENCRYPTOR_DEADLINE).await?
    }

    /// Seals one plaintext block.
    pub async fn seal(&self, sealer: Arc<Sealer>, place: BlockPlace, block: Bytes) -> Result<Bytes> {
        self.pool.call(|reply| EncryptorMsg::Seal { sealer, place, block, reply }, ENCRYPTOR_DEADLINE).await?
    }

    /// Opens one sealed block; an error, never bytes, if it fails authentication.
    pub async fn open(&self, sealer: Arc<Sealer>, place: BlockPlace, block: Bytes) -> Result<Bytes> {
        self.pool.call(|reply| EncryptorMsg::Open { sealer, place, block, reply }, ENCRYPTOR_DEADLINE).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_split_stream_equal_digests_of_whole() {
        let want = ChecksumSet { crc32: true, crc32c: true, sha1: true, sha256: true };
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = DigestState::new(want);
        whole.update(&data);
        let mut split = DigestState::new(want);
        for chunk in data.chunks(777) {
            split.update(chunk);
        }
        assert_eq!(whole.finish(), split.finish());
    }

    #[test]
    fn md5_and_crc32_match_known_values() {
        let mut d = DigestState::new(ChecksumSet { crc32: true, ..Default::default() });
        d.update(b"hello");
        let out = d.finish();
        assert_eq!(hex::encode(out.md5), "5d41402abc4b2a76b9719d911017c592");
        // CRC32("hello") = 0x3610a686
        assert_eq!(out.checksums.crc32.as_deref(), Some("NhCmhg=="));
    }
}
