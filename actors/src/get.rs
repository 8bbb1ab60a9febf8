//! Reading byte ranges of segments back: the k data pieces of each wanted block, parity only when a
//! data piece is missing, corrupt or slow, reconstruction in the EC pool.
//!
//! Slow disks: a block's first k reads go to its data pieces, except on disks that are degraded or have a
//! job stuck right now (those pieces are read last, if at all). A read slower than a few times its disk's
//! recent latency is hedged: parity pieces are read for the pieces still missing, and the first k to
//! arrive make the block. Pieces that time out or were hedged away are not damage and are not reported.
//!
//! Invariants:
//! - Only the blocks a range touches are read.
//! - A piece whose CRC fails is never used; bytes are returned only from verified pieces.
//! - Damage found on the way is reported to repair, once per segment and read.
//! - The stream is produced by its own task into a channel of two blocks, reading `READ_AHEAD` blocks
//!   at once: memory stays bounded and a slow client slows the reads down instead of filling memory.
//! - A plain block with every data piece read is sent as its pieces, views of the buffers they were read
//!   into, never copied into one block. A sealed block is opened by the encryptor pool from its pieces
//!   into one reused buffer (`Sealer::open_parts`).
//! - Ranges are in plaintext bytes. A sealed block is opened (encryptor pool) before any of it is sent;
//!   a block that fails authentication ends the stream with an error and nothing of it is returned.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use hoard_protocol::Segment;
use hoard_storage::pages::slice_parts;
use hoard_storage::seal;
use hoard_storage::seal::Sealer;
use hoard_storage::shard_file;
use hoard_storage::shard_file::ShardHeader;
use tokio::sync::mpsc;

use crate::encryptor::BlockPlace;
use crate::error::ActorError;
use crate::error::Result;
use crate::put::SealKey;
use crate::shard::Shard;
use crate::NodeContext;

/// How long one piece read may take before parity is used instead.
pub const PIECE_READ_DEADLINE: Duration = Duration::from_secs(5);

/// How many blocks of a range are read and opened at once. The next block is read (and, sealed, opened
/// on another encryptor worker) while this one is opened and sent, so disks and cores overlap; memory
/// stays at this many blocks plus the two in the channel.
pub const READ_AHEAD: usize = 2;

/// One segment and the plaintext byte range wanted from it, `[start, end)`.
#[derive(Debug, Clone)]
pub struct SegmentRange {
    pub segment: Segment,
    pub start: u64,
    pub end: u64,
}

/// Streams the plaintext bytes of `ranges` in order, opening sealed segments with `key`.
pub fn read_ranges(
    ctx: NodeContext,
    ranges: Vec<SegmentRange>,
    key: Option<SealKey>,
) -> impl Stream<Item = Result<Bytes>> + Send + Sync + 'static {
    let (tx, rx) = mpsc::channel::<Result<Vec<Bytes>>>(2);
    tokio::spawn(async move {
        for r in ranges {
            if r.start >= r.end {
                continue;
            }
            let opener = match opener(&r.segment, key.as_ref()) {
                Ok(o) => o,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let block_size = r.segment.plain_block().max(1);
            let first = r.start / block_size;
            let last = (r.end - 1) / block_size;
            let (ctx, segment, opener) = (&ctx, &r.segment, opener.as_ref());
            let blocks = futures::stream::iter(first..=last)
                .map(|block| async move {
                    let mut damaged = Vec::new();
                    let res = read_plain_block(ctx, segment, opener, block, &mut damaged).await;
                    (block, res, damaged)
                })
                .buffered(READ_AHEAD);
            let mut blocks = std::pin::pin!(blocks);
            let mut damaged: Vec<u8> = Vec::new();
            while let Some((block, res, found)) = blocks.next().await {
                for i in found {
                    if !damaged.contains(&i) {
                        damaged.push(i);
                    }
                }
                let item = res.map(|parts| {
                    let block_start = block * block_size;
                    let from = r.start.saturating_sub(block_start) as usize;
                    let to = (r.end - block_start) as usize;
                    slice_parts(&parts, from, to)
                });
                let failed = item.is_err();
                // A failed block ends the stream; so does a client that went away.
                if tx.send(item).await.is_err() || failed {
                    if !damaged.is_empty() {
                        ctx.repair.report(segment.clone(), damaged);
                    }
                    return;
                }
            }
            if !damaged.is_empty() {
                ctx.repair.report(segment.clone(), damaged);
            }
        }
    });
    parts_of(rx)
}

/// The bytes of each block from `rx`, part after part.
fn parts_of(mut rx: mpsc::Receiver<Result<Vec<Bytes>>>) -> impl Stream<Item = Result<Bytes>> + Send + Sync + 'static {
    let mut parts = std::collections::VecDeque::new();
    futures::stream::poll_fn(move |cx| loop {
        if let Some(part) = parts.pop_front() {
            return std::task::Poll::Ready(Some(Ok(part)));
        }
        match std::task::ready!(rx.poll_recv(cx)) {
            Some(Ok(block)) => parts.extend(block),
            Some(Err(e)) => return std::task::Poll::Ready(Some(Err(e))),
            None => return std::task::Poll::Ready(None),
        }
    })
}

/// What opens a sealed segment's blocks: its sealer (one AES key schedule per segment, not per block) and
/// how many blocks it has, so the last one is opened as last.
struct Opener {
    sealer: Arc<Sealer>,
    blocks: u64,
}

/// The opener of `segment`, `None` when it is not sealed; an error when the segment and the key disagree.
fn opener(segment: &Segment, key: Option<&SealKey>) -> Result<Option<Opener>> {
    match (segment.seal, key) {
        (None, None) => Ok(None),
        (Some(s), Some(key)) => Ok(Some(Opener {
            sealer: key.sealer(segment.part_number, s.salt),
            blocks: seal::block_count(segment.size, segment.plain_block())?,
        })),
        (Some(_), None) => Err(ActorError::Invalid(format!("segment {} is sealed and no key was given", segment.id))),
        (None, Some(_)) => {
            Err(ActorError::Invalid(format!("segment {} of an encrypted object is not sealed", segment.id)))
        }
    }
}

/// Reads one block of a segment as its parts in order and, when the segment is sealed, opens it (one part).
async fn read_plain_block(
    ctx: &NodeContext,
    segment: &Segment,
    opener: Option<&Opener>,
    block: u64,
    damaged: &mut Vec<u8>,
) -> Result<Vec<Bytes>> {
    let parts = read_block(ctx, segment, block, damaged).await?;
    match opener {
        None => Ok(parts),
        Some(o) => {
            let place = BlockPlace { index: block, last: block + 1 == o.blocks };
            Ok(vec![ctx.encryptor.open(o.sealer.clone(), place, parts).await?])
        }
    }
}

fn header_of(segment: &Segment, index: u8) -> ShardHeader {
    ShardHeader::for_layout(segment.id, index, &segment.layout)
}

fn shard_of(ctx: &NodeContext, segment: &Segment, index: u8) -> Result<Shard> {
    let disk =
        segment.layout.disks.get(index as usize).ok_or(ActorError::Invalid("shard index out of layout".into()))?;
    ctx.shard(*disk).ok_or(ActorError::Invalid(format!("disk {} of node {} is unreachable", disk.disk, disk.node)))
}

/// Whether a failed piece read says the piece is damaged (missing, corrupt), rather than that its disk was
/// slow, busy or out of reach: only damage goes to repair.
fn is_damage(e: &ActorError) -> bool {
    !matches!(e, ActorError::Timeout(_) | ActorError::Unavailable(_))
}

/// Reads one whole block of a segment: its data pieces in order, cut to the block's length, or the block
/// rebuilt from parity as one part.
pub async fn read_block(ctx: &NodeContext, segment: &Segment, block: u64, damaged: &mut Vec<u8>) -> Result<Vec<Bytes>> {
    let layout = &segment.layout;
    let k = layout.data as usize;
    let width = layout.width();
    let block_len = shard_file::block_len(segment.size, layout.block_size, block);
    // Each piece's disk, or why it is out of reach: looked up once per block.
    let shards: Vec<std::result::Result<Shard, String>> =
        (0..width as u8).map(|i| shard_of(ctx, segment, i).map_err(|e| e.to_string())).collect();
    // Data pieces first, then parity; pieces on disks that are degraded or stuck right now go last.
    // Judged once per block, so that the order is consistent while it is sorted.
    let avoid: Vec<bool> = shards.iter().map(|s| s.as_ref().map_or(true, |s| s.is_degraded() || s.lagging())).collect();
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by_key(|&i| (avoid[i], i >= k));
    let hedge_after = order
        .iter()
        .take(k)
        .filter_map(|&i| shards[i].as_ref().ok().map(|s| s.hedge_after()))
        .max()
        .unwrap_or(PIECE_READ_DEADLINE);

    let mut pieces: Vec<Option<Bytes>> = vec![None; width];
    let mut reads = futures::stream::FuturesUnordered::new();
    let mut next = order.iter().copied();
    let read = |i: usize| {
        let shard = shards[i].clone();
        async move {
            let piece = match shard {
                Ok(s) => s.read_piece(header_of(segment, i as u8), block, block_len, PIECE_READ_DEADLINE).await,
                Err(why) => Err(ActorError::Invalid(why)),
            };
            (i, piece)
        }
    };
    for i in next.by_ref().take(k) {
        reads.push(read(i));
    }
    let hedge = tokio::time::sleep(hedge_after);
    tokio::pin!(hedge);
    let mut hedged = false;
    let mut present = 0;
    while present < k {
        tokio::select! {
            done = reads.next() => {
                let Some((i, r)) = done else { break };
                match r {
                    Ok(p) => {
                        pieces[i] = Some(p);
                        present += 1;
                    }
                    Err(e) => {
                        if is_damage(&e) {
                            tracing::warn!(segment = %segment.id, shard = i, block, error = %e, "piece unreadable");
                            if !damaged.contains(&(i as u8)) {
                                damaged.push(i as u8);
                            }
                        } else {
                            tracing::debug!(segment = %segment.id, shard = i, block, error = %e, "piece not read in time");
                        }
                        if let Some(j) = next.next() {
                            reads.push(read(j));
                        }
                    }
                }
            }
            _ = &mut hedge, if !hedged => {
                hedged = true;
                for j in next.by_ref().take(k - present) {
                    reads.push(read(j));
                }
            }
        }
    }
    if present < k {
        return Err(ActorError::Quorum(format!(
            "block {block} of segment {}: {present} of {width} pieces readable, {k} needed",
            segment.id
        )));
    }
    if pieces[..k].iter().all(Option::is_some) {
        let data: Vec<Bytes> = pieces.into_iter().take(k).flatten().collect();
        return Ok(slice_parts(&data, 0, block_len));
    }
    let pieces = pieces.into_iter().map(|p| p.map(Vec::from)).collect();
    let data = ctx.ec.decode(layout.data, layout.parity, pieces, block_len).await?;
    Ok(vec![Bytes::from(data)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of blocks given as parts yields the parts in order, and an error ends it after what came
    /// before.
    #[tokio::test]
    async fn the_stream_yields_each_part_in_order_then_the_error() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")])).await.unwrap();
        tx.send(Ok(vec![])).await.unwrap();
        tx.send(Ok(vec![Bytes::from_static(b"de")])).await.unwrap();
        tx.send(Err(ActorError::Unavailable("disk"))).await.unwrap();
        drop(tx);
        let got: Vec<Result<Bytes>> = parts_of(rx).collect().await;
        let ok: Vec<&[u8]> = got.iter().filter_map(|r| r.as_ref().ok().map(|b| &b[..])).collect();
        assert_eq!(ok, [&b"ab"[..], b"c", b"de"]);
        assert_eq!(got.len(), 4);
        assert!(got[3].is_err());
    }
}
