//! Writing one stream of bytes as a segment: blocks → digest (encryptor pool), and, for an encrypted
//! object, sealing (encryptor pool) → Reed-Solomon (EC pool) → one piece per shard file → sync.
//!
//! Invariants:
//! - Memory per stream is bounded by a few blocks plus their pieces, whatever the stream's length: the block
//!   being read, the one being coded, up to `2 * WRITE_BLOCKS` whose pieces wait for the disks or are being
//!   written, and up to `DIGEST_LAG + 1` whose digest is still to come (mostly the same blocks as those being
//!   coded and written; an encrypted block's ciphertext is a buffer of its own while its plaintext is still
//!   being digested). Each stage waits for the next when it is that far ahead.
//! - Nothing here is visible to readers. The caller commits the returned segment through metadata;
//!   if it never does, the shard files are orphans that scrub removes after its grace period.
//! - A segment is returned only if at least the write quorum of shard files were synced; shard files
//!   that failed are reported to repair once the caller has committed.
//! - Encrypt-then-code: a sealed segment's shard files hold only ciphertext. Every upload of a part draws
//!   a fresh nonce salt, and the body is read one block ahead so the last block is sealed as last.
//!
//! Fault point: `put.after_shards` (after every shard file is synced, before returning).

use std::time::Duration;

use bytes::Bytes;
use bytes::BytesMut;
use futures::Stream;
use futures::StreamExt;
use std::sync::Arc;

use hoard_protocol::Segment;
use hoard_protocol::SegmentId;
use hoard_protocol::SegmentSeal;
use hoard_protocol::ShardLayout;
use hoard_protocol::SEAL_TAG_LEN;
use hoard_storage::seal::DataKey;
use hoard_storage::seal::Sealer;
use hoard_storage::shard_file::ShardHeader;

use crate::encryptor::BlockPlace;
use crate::encryptor::ChecksumSet;
use crate::encryptor::DigestState;
use crate::encryptor::Digests;
use crate::error::ActorError;
use crate::error::Result;
use crate::faults;
use crate::shard::ShardWriter;
use crate::NodeContext;

/// Blocks queued for their digest, besides the one being digested: the coding of the next block waits while
/// this many are queued.
const DIGEST_LAG: usize = 2;

/// Blocks whose pieces go to the disks in one job per shard file (the last job may have fewer): half the jobs,
/// thread hand-overs and system calls of a job per block. Also how many coded blocks may be queued for the
/// disks, besides those of the job being written, before the coding waits.
const WRITE_BLOCKS: usize = 2;

/// How long a client may send nothing in the middle of a body before the request is given up.
pub const BODY_IDLE_DEADLINE: Duration = Duration::from_secs(120);

/// The next chunk of a body, or an error if the client stalls past [`BODY_IDLE_DEADLINE`].
async fn next_chunk<S, E>(body: &mut S) -> Result<Option<Bytes>>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(BODY_IDLE_DEADLINE, body.next()).await {
        Err(_) => Err(ActorError::Body("the client sent nothing for too long".into())),
        Ok(None) => Ok(None),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(e))) => Err(ActorError::Body(e.to_string())),
    }
}

/// What writing a stream produced.
#[derive(Debug)]
pub struct Written {
    pub segment: Segment,
    pub digests: Digests,
    /// Shard indexes whose files could not be written; repair rebuilds them after commit.
    pub failed_shards: Vec<u8>,
}

/// The nonce salt of inline bodies. A constant is safe there: an inline body is sealed exactly once under
/// its own fresh data key (a copy or a rewrap keeps the ciphertext; it never seals again), so no
/// (data key, nonce) pair can repeat.
pub const INLINE_SALT: u64 = 0;

/// The key an object's blocks are sealed and opened with: its data key and data id.
#[derive(Clone)]
pub struct SealKey {
    pub key: Arc<DataKey>,
    pub data_id: [u8; 16],
}

impl SealKey {
    pub fn new(key: DataKey, data_id: [u8; 16]) -> SealKey {
        SealKey { key: Arc::new(key), data_id }
    }

    /// The sealer of one stream (a part, or the whole body of a single PUT) with nonce salt `salt`.
    pub fn sealer(&self, part: u32, salt: u64) -> Arc<Sealer> {
        Arc::new(Sealer::new(&self.key, self.data_id, part, salt))
    }
}

/// How a body was stored.
#[derive(Debug)]
pub enum Stored {
    /// Small enough to live in the object's metadata record (sealed when the object is encrypted).
    Inline {
        data: Bytes,
        /// Plaintext length.
        size: u64,
        digests: Digests,
    },
    Segment(Written),
}

impl Stored {
    /// Plaintext length.
    pub fn size(&self) -> u64 {
        match self {
            Stored::Inline { size, .. } => *size,
            Stored::Segment(w) => w.segment.plain_size(),
        }
    }

    pub fn written(&self) -> Option<&Written> {
        match self {
            Stored::Inline { .. } => None,
            Stored::Segment(w) => Some(w),
        }
    }

    pub fn digests(&self) -> &Digests {
        match self {
            Stored::Inline { digests, .. } => digests,
            Stored::Segment(w) => &w.digests,
        }
    }
}

/// Inline bodies up to this size are digested in the request's own task: hashing them takes a few
/// microseconds, less than the hop to the encryptor pool and back.
const DIGEST_IN_PLACE: usize = 8 << 10;

/// Stores a body inline when it ends within `ctx.config.inline_max` bytes, as a segment otherwise;
/// sealed with `seal` when given. Only `inline_max + 1` bytes are read before deciding, so memory stays
/// bounded either way.
pub async fn write_object<S, E>(ctx: &NodeContext, body: S, want: ChecksumSet, seal: Option<&SealKey>) -> Result<Stored>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let limit = ctx.config.inline_max;
    let mut body = body;
    let mut head: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    let mut ended = false;
    while len <= limit {
        match next_chunk(&mut body).await? {
            Some(chunk) => {
                len += chunk.len();
                head.push(chunk);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    if ended {
        let mut data = BytesMut::with_capacity(len);
        for c in head {
            data.extend_from_slice(&c);
        }
        let data = data.freeze();
        let size = data.len() as u64;
        let digest = async {
            let mut state = Box::new(DigestState::new(want));
            if data.len() <= DIGEST_IN_PLACE {
                state.update(&data);
                Ok(state)
            } else {
                ctx.encryptor.digest(state, data.clone()).await
            }
        };
        let (digests, data) = match seal {
            None => (digest.await?.finish(), data),
            Some(seal) => {
                let place = BlockPlace { index: 0, last: true };
                let sealed = ctx.encryptor.seal(seal.sealer(0, INLINE_SALT), place, data.clone());
                let (digest, sealed) = tokio::join!(digest, sealed);
                (digest?.finish(), sealed?.joined())
            }
        };
        return Ok(Stored::Inline { data, size, digests });
    }
    let rest = futures::stream::iter(head.into_iter().map(Ok)).chain(body);
    Ok(Stored::Segment(write_segment(ctx, 0, rest, want, seal).await?))
}

/// Shards that must be durable before a write may commit: `data` (enough to read), one more when
/// parity equals data so that a write can never be split-brained by a single loss.
pub fn write_quorum(data: u8, parity: u8) -> usize {
    if parity > 0 && parity == data {
        data as usize + 1
    } else {
        data as usize
    }
}

/// Writes `body` as a new segment with a fresh id and the node's current layout.
#[tracing::instrument(skip_all, fields(part = part_number))]
pub async fn write_segment<S, E>(
    ctx: &NodeContext,
    part_number: u32,
    body: S,
    want: ChecksumSet,
    seal: Option<&SealKey>,
) -> Result<Written>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut layout = ctx.choose_layout()?;
    let id = SegmentId(ctx.env.random_u128());
    let width = layout.width();
    // Blocks are cut from the plaintext; a sealed block is stored with its tag.
    let block_size = layout.block_size as usize;
    let (sealer, segment_seal) = match seal {
        Some(key) => {
            let salt = ctx.env.random_u64();
            layout.block_size += SEAL_TAG_LEN as u32;
            (Some(key.sealer(part_number, salt)), Some(SegmentSeal { salt }))
        }
        None => (None, None),
    };

    let mut writers: Vec<Option<ShardWriter>> = Vec::with_capacity(width);
    let creates = layout.disks.iter().enumerate().map(|(i, d)| {
        let header = ShardHeader::for_layout(id, i as u8, &layout);
        let shard = ctx.shard(*d);
        async move {
            match shard {
                Some(s) => s.create(header).await,
                None => Err(ActorError::Invalid(format!("no local disk {}", d.disk))),
            }
        }
    });
    for r in futures::future::join_all(creates).await {
        match r {
            Ok(w) => writers.push(Some(w)),
            Err(e) => {
                tracing::warn!(error = %e, "shard file could not be created");
                writers.push(None)
            }
        }
    }
    check_quorum(&writers, &layout)?;

    // Every block's digest runs in a chain of its own, beside the loop and up to DIGEST_LAG + 1 blocks behind
    // it: the digest queue may hold a block back a little to hash it beside those of other PUTs, and neither
    // reading nor coding the next blocks waits for that. An encrypted block is sealed meanwhile: in place if
    // its digest is already done, else into a buffer of its own (the plaintext is never copied).
    let state = Box::new(DigestState::new(want));
    let (to_digest, digest_queue) = tokio::sync::mpsc::channel::<Bytes>(DIGEST_LAG);
    let chain = digest_chain(ctx, state, digest_queue);
    let mut size: u64 = 0;
    let mut index: u64 = 0;
    // What is left of the last chunk read past the previous block.
    let mut carry = Bytes::new();
    let mut body = body;
    let mut ended = false;
    // The stages overlap: the body is read into a block while the block before it is coded, and the pieces
    // of those before are written and their digests taken in the chains beside. Reading waits only
    // when a chain is as far behind as its queue allows.
    let mut to_code: Option<(Bytes, BlockPlace)> = None;
    // Coded blocks' pieces go to the disks in a chain of their own, beside the loop, WRITE_BLOCKS blocks'
    // pieces in each job.
    let (to_write, write_queue) = tokio::sync::mpsc::channel::<Vec<Bytes>>(WRITE_BLOCKS);
    let writes = write_chain(writers, &layout, write_queue);
    let stages = async {
        loop {
            let read = async {
                if ended && carry.is_empty() {
                    return Ok(None);
                }
                // Each block in a buffer of its own, exactly its size: never grown (which would copy it), and
                // sealed where it lies if its digest is done before its seal begins.
                let mut filling = Vec::with_capacity(block_size);
                while filling.len() < block_size {
                    if carry.is_empty() {
                        match next_chunk(&mut body).await? {
                            Some(chunk) => carry = chunk,
                            None => {
                                ended = true;
                                break;
                            }
                        }
                    }
                    let take = carry.len().min(block_size - filling.len());
                    filling.extend_from_slice(&carry.split_to(take));
                }
                // A byte past the block: only then is it known whether this block is the last.
                while carry.is_empty() && !ended {
                    match next_chunk(&mut body).await? {
                        Some(chunk) => carry = chunk,
                        None => ended = true,
                    }
                }
                // An empty body is no block at all, or, sealed, one empty last block.
                if filling.is_empty() && (sealer.is_none() || index > 0) {
                    return Ok(None);
                }
                let place = BlockPlace { index, last: ended && carry.is_empty() };
                index += 1;
                Ok::<_, ActorError>(Some((Bytes::from(filling), place)))
            };
            let code = async {
                let Some((block, place)) = to_code.take() else { return Ok(None) };
                // Waits only while DIGEST_LAG blocks are queued for the chain; fails if the chain failed.
                to_digest.send(block.clone()).await.map_err(|_| ActorError::Invalid("digest chain stopped".into()))?;
                let parts = match &sealer {
                    None => vec![block],
                    Some(sealer) => ctx.encryptor.seal(sealer.clone(), place, block).await?.parts(),
                };
                let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
                // The tag is coded after the ciphertext as if they were one buffer.
                Ok::<_, ActorError>(Some((len, ctx.ec.encode(layout.data, layout.parity, parts).await?)))
            };
            let (read, coded) = tokio::join!(read, code);
            if let Some((len, pieces)) = coded? {
                size += len;
                // Waits only while WRITE_BLOCKS blocks are queued for the disks; fails if the writes failed.
                to_write.send(pieces).await.map_err(|_| ActorError::Invalid("shard writes stopped".into()))?;
            }
            to_code = read?;
            if to_code.is_none() {
                break;
            }
        }
        // The chains end once they have digested and written the last block.
        drop(to_digest);
        drop(to_write);
        Ok::<_, ActorError>(())
    };
    let ((), digest, writers) = tokio::try_join!(stages, chain, writes)?;

    let commits = writers.into_iter().map(|w| async move {
        match w {
            Some(w) => w.commit().await.is_ok(),
            None => false,
        }
    });
    let ok: Vec<bool> = futures::future::join_all(commits).await;
    let durable = ok.iter().filter(|b| **b).count();
    if durable < write_quorum(layout.data, layout.parity) {
        return Err(ActorError::Quorum(format!("{durable} of {width} shard files synced")));
    }
    faults::hit(ctx.faults.as_ref(), "put.after_shards").await?;
    let failed_shards = ok.iter().enumerate().filter(|(_, b)| !**b).map(|(i, _)| i as u8).collect();
    let segment = Segment { id, part_number, size, layout, seal: segment_seal };
    Ok(Written { segment, digests: digest.finish(), failed_shards })
}

/// Adds each block of a stream to its digests, in order, until the stream's last block has come. The
/// stream counts among those the digest queue gathers blocks from while its digests come.
async fn digest_chain(
    ctx: &NodeContext,
    mut state: Box<DigestState>,
    mut blocks: tokio::sync::mpsc::Receiver<Bytes>,
) -> Result<Box<DigestState>> {
    let mut stream = None;
    while let Some(block) = blocks.recv().await {
        stream.get_or_insert_with(|| ctx.encryptor.stream());
        state = ctx.encryptor.digest(state, block).await?;
    }
    Ok(state)
}

/// Writes each coded block's pieces (one per shard, in block order) as they come, those of [`WRITE_BLOCKS`]
/// blocks in one job per disk (fewer at the end); fails once fewer than the write quorum of disks are left.
async fn write_chain(
    mut writers: Vec<Option<ShardWriter>>,
    layout: &ShardLayout,
    mut blocks: tokio::sync::mpsc::Receiver<Vec<Bytes>>,
) -> Result<Vec<Option<ShardWriter>>> {
    while let Some(first) = blocks.recv().await {
        let mut pieces: Vec<Vec<Bytes>> = first.into_iter().map(|piece| vec![piece]).collect();
        for _ in 1..WRITE_BLOCKS {
            let Some(next) = blocks.recv().await else { break };
            for (shard, piece) in pieces.iter_mut().zip(next) {
                shard.push(piece);
            }
        }
        append_all(&mut writers, pieces).await;
        check_quorum(&writers, layout)?;
    }
    Ok(writers)
}

/// Appends the pieces of a few blocks to each shard file (`pieces[shard]`, in block order), one job per disk,
/// all disks at once; a failed disk drops out.
async fn append_all(writers: &mut [Option<ShardWriter>], pieces: Vec<Vec<Bytes>>) {
    let appends = writers.iter_mut().zip(pieces).map(|(w, piece)| async move {
        if let Some(writer) = w {
            if let Err(e) = writer.append(piece).await {
                tracing::warn!(error = %e, "shard write failed");
                *w = None;
            }
        }
    });
    futures::future::join_all(appends).await;
}

fn check_quorum(writers: &[Option<ShardWriter>], layout: &ShardLayout) -> Result<()> {
    let alive = writers.iter().filter(|w| w.is_some()).count();
    if alive < write_quorum(layout.data, layout.parity) {
        return Err(ActorError::Quorum(format!("{alive} of {} disks writable", layout.width())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_quorum_needs_data_shards_and_one_more_when_parity_equals_data() {
        assert_eq!(write_quorum(4, 2), 4);
        assert_eq!(write_quorum(2, 2), 3);
        assert_eq!(write_quorum(1, 0), 1);
        assert_eq!(write_quorum(3, 3), 4);
    }
}
