//! The encryptor worker: the CPU-bound byte work of a request other than erasure coding — digests
//! (MD5 for ETags, the `x-amz-checksum-*` algorithms) and AES-256-GCM sealing and opening of blocks.
//!
//! Digest state travels with each job, so consecutive blocks of one object may run on different workers
//! while the result is the same as hashing the whole stream in one place. A [`Sealer`] travels the same
//! way; it holds the data key's AES key schedule, which is zeroized when the last job drops it.
//!
//! Digest jobs do not go round-robin: they wait in one queue that a single worker at a time drains, up to
//! [`md5::LANES`] jobs side by side, so the blocks of concurrent PUTs are hashed together
//! ([`hoard_storage::md5`]); a job that arrives meanwhile takes the next free lane. A lone stream is
//! hashed at once, as before. The worker hands the queue on after a bounded turn.
//!
//! Fault point: `encryptor.seal` (before each block is sealed).

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use hoard_protocol::Checksums;
use hoard_storage::md5;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;
use sha2::Digest as _;
use std::sync::Arc;

use hoard_storage::seal::Sealer;
use hoard_storage::seal::TAG_LEN;

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
    pub crc64nvme: bool,
}

/// Running digests of one stream.
#[derive(Clone)]
pub struct DigestState {
    md5: md5::Md5,
    crc32: Option<crc32fast::Hasher>,
    crc32c: Option<u32>,
    sha1: Option<sha1::Sha1>,
    sha256: Option<sha2::Sha256>,
    crc64nvme: Option<crc_fast::Digest>,
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
            crc64nvme: want.crc64nvme.then(|| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme)),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.update_checksums(data);
    }

    /// Adds `blocks[i]` to `states[i]` for every `i`; the MD5s are stepped together.
    pub fn update_many(states: &mut [&mut DigestState], blocks: &[&[u8]]) {
        let mut md5s: Vec<&mut md5::Md5> = states.iter_mut().map(|s| &mut s.md5).collect();
        md5::update_lanes(&mut md5s, blocks);
        for (state, block) in states.iter_mut().zip(blocks) {
            state.update_checksums(block);
        }
    }

    fn update_checksums(&mut self, data: &[u8]) {
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
        if let Some(h) = &mut self.crc64nvme {
            h.update(data);
        }
    }

    pub fn finish(self) -> Digests {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Digests {
            md5: self.md5.finalize(),
            checksums: Checksums {
                crc32: self.crc32.map(|h| b64(&h.finalize().to_be_bytes())),
                crc32c: self.crc32c.map(|c| b64(&c.to_be_bytes())),
                sha1: self.sha1.map(|h| b64(&h.finalize())),
                sha256: self.sha256.map(|h| b64(&h.finalize())),
                crc64nvme: self.crc64nvme.map(|h| b64(&h.finalize().to_be_bytes())),
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

/// A sealed block as it is stored: its ciphertext, then its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlock {
    pub ciphertext: Bytes,
    pub tag: [u8; TAG_LEN],
}

impl SealedBlock {
    /// Stored bytes: the ciphertext and the tag.
    pub fn len(&self) -> usize {
        self.ciphertext.len() + TAG_LEN
    }

    /// Never: a sealed block has at least its tag.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Ciphertext and tag, as consecutive parts (for coding without joining them).
    pub fn parts(self) -> Vec<Bytes> {
        vec![self.ciphertext, Bytes::copy_from_slice(&self.tag)]
    }

    /// Ciphertext and tag in one buffer (for a body kept inline).
    pub fn joined(&self) -> Bytes {
        let mut joined = Vec::with_capacity(self.len());
        joined.extend_from_slice(&self.ciphertext);
        joined.extend_from_slice(&self.tag);
        Bytes::from(joined)
    }
}

pub enum EncryptorMsg {
    /// Hash a turn of the pool's digest queue; the ticket is its drain flag.
    DrainDigests(DrainTicket),
    Seal {
        sealer: Arc<Sealer>,
        place: BlockPlace,
        block: Bytes,
        waiting: Waiting,
        reply: RpcReplyPort<Result<SealedBlock>>,
    },
    Open {
        sealer: Arc<Sealer>,
        place: BlockPlace,
        parts: Vec<Bytes>,
        waiting: Waiting,
        reply: RpcReplyPort<Result<Bytes>>,
    },
}

/// Counts a seal or open job among those waiting for a worker ([`DigestQueue::blocks_waiting`]) until the
/// worker begins it, or until the job is dropped unbegun.
pub struct Waiting(Arc<DigestQueue>);

impl Waiting {
    fn new(queue: &Arc<DigestQueue>) -> Waiting {
        queue.blocks_waiting.fetch_add(1, Ordering::SeqCst);
        // A turn gathering digests begins at once rather than hold this job up.
        queue.arrived.notify_one();
        Waiting(queue.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.blocks_waiting.fetch_sub(1, Ordering::SeqCst);
    }
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
            EncryptorMsg::DrainDigests(ticket) => drain_digests(ticket).await,
            EncryptorMsg::Seal { sealer, place, block, waiting, reply } => {
                drop(waiting);
                faults::hit(faults.as_ref(), "encryptor.seal").await?;
                let r = blocking::run(move || match block.try_into_mut() {
                    // A block no one else holds any more (its digest is done) is sealed where it lies.
                    Ok(mut buf) => {
                        let tag = sealer.seal_in_place(place.index, place.last, &mut buf).map_err(ActorError::from)?;
                        Ok(SealedBlock { ciphertext: buf.freeze(), tag })
                    }
                    // One still being digested (or an inline body the caller keeps) is sealed into a buffer of
                    // its own: the plaintext is read once, never copied.
                    Err(shared) => {
                        let (ciphertext, tag) =
                            sealer.seal_to(place.index, place.last, &shared).map_err(ActorError::from)?;
                        Ok(SealedBlock { ciphertext: ciphertext.into_bytes(), tag })
                    }
                })
                .await;
                let _ = reply.send(r);
            }
            EncryptorMsg::Open { sealer, place, parts, waiting, reply } => {
                drop(waiting);
                let r = blocking::run(move || {
                    let opened = sealer.open_parts(place.index, place.last, &parts).map_err(ActorError::from)?;
                    Ok(opened.into_bytes())
                })
                .await;
                let _ = reply.send(r);
            }
        }
        Ok(())
    }
}

/// One block to add to one stream's digests.
struct DigestJob {
    state: Box<DigestState>,
    block: Bytes,
    reply: tokio::sync::oneshot::Sender<Result<Box<DigestState>>>,
}

/// Digest jobs waiting for a worker.
#[derive(Default)]
struct DigestQueue {
    jobs: Mutex<VecDeque<DigestJob>>,
    /// A worker is draining the queue (or has been asked to).
    draining: AtomicBool,
    /// Seal and open jobs sent to a worker and not yet begun: a turn of digests ends early for them.
    blocks_waiting: AtomicUsize,
    /// PUT streams under way ([`EncryptorPool::stream`]), whose next blocks a turn waits for a little.
    streams: AtomicUsize,
    /// Told of each job queued.
    arrived: tokio::sync::Notify,
}

impl DigestQueue {
    fn jobs(&self) -> MutexGuard<'_, VecDeque<DigestJob>> {
        // Every update is one push or pop: a panic elsewhere while it was held left the queue whole.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The right to drain the digest queue, carried by the one `DrainDigests` message in flight: it holds the
/// queue's drain flag. Dropped without finishing its turn (lost in the mailbox of a worker that stopped,
/// refused by a worker that is restarting, or in a panic mid-turn) it clears the flag and fails the jobs
/// still queued, whose callers get `Unavailable` at once instead of waiting out their deadline; the next
/// job asks a worker again.
pub struct DrainTicket {
    pool: EncryptorPool,
    finished: bool,
}

impl Drop for DrainTicket {
    fn drop(&mut self) {
        if !self.finished {
            self.pool.digests.jobs().clear();
        }
        self.pool.digests.draining.store(false, Ordering::SeqCst);
    }
}

/// Bytes of each lane hashed between looks at the queue: a job that arrives mid-batch joins the next step.
const DIGEST_STEP: usize = 64 * 1024;
/// Bytes one worker hashes before it hands the queue on, so that seal and open jobs in its mailbox never
/// wait behind a long run of digests.
const DIGEST_TURN: usize = 16 * 1024 * 1024;
/// Bytes after which a turn ends early while seal or open jobs wait for a worker: a sealing PUT's next blocks
/// wait for their seals, and a GET's for their opening. Without them the long turns go on, whose hand-overs
/// cost less.
const DIGEST_TURN_YIELDING: usize = 1024 * 1024;

/// How long a turn waits, before it begins, for a block from every PUT stream under way (up to
/// [`md5::LANES`]). MD5 costs the same per step for one lane as for four: streams that arrive one after another
/// and are hashed alone cost up to four times the CPU of the same blocks hashed together. A PUT digests its
/// blocks in a chain beside its sealing, coding and writing, so the wait holds up no stream.
const DIGEST_GATHER: Duration = Duration::from_millis(2);

/// A PUT's stream of blocks under way ([`EncryptorPool::stream`]).
pub struct DigestStream(Arc<DigestQueue>);

impl Drop for DigestStream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until the queue holds a job from as many streams as are under way (at most [`md5::LANES`]), or
/// for [`DIGEST_GATHER`]; not at all while a seal or open job waits for a worker.
async fn gather(queue: &DigestQueue) {
    let until = tokio::time::Instant::now() + DIGEST_GATHER;
    loop {
        let want = queue.streams.load(Ordering::SeqCst).clamp(1, md5::LANES);
        let queued = queue.jobs().len();
        // An empty queue was drained by the turn before: this one ends at once.
        if queued == 0 || queued >= want || queue.blocks_waiting.load(Ordering::SeqCst) > 0 {
            return;
        }
        // A job queued since the check left a permit: this returns at once.
        if tokio::time::timeout_at(until, queue.arrived.notified()).await.is_err() {
            return;
        }
    }
}

/// Hashes jobs from the queue, up to [`md5::LANES`] side by side, taking new ones into free lanes as they
/// arrive, for one turn; then hands the queue on to the next worker if jobs are left.
async fn drain_digests(mut ticket: DrainTicket) {
    let pool = ticket.pool.clone();
    let queue = pool.digests.clone();
    let turn = queue.clone();
    gather(&queue).await;
    // An error here is only the blocking pool refusing work: the jobs stay queued for the next turn.
    if let Err(e) = blocking::run(move || {
        digest_turn(&turn);
        Ok(())
    })
    .await
    {
        tracing::warn!(error = %e, "digest turn not run");
    }
    ticket.finished = true;
    drop(ticket);
    // Jobs queued late in the turn found the flag set and asked no one: ask the next worker, unless a
    // caller already has since the flag was cleared.
    if !queue.jobs().is_empty() && !queue.draining.swap(true, Ordering::SeqCst) {
        pool.ask_to_drain();
    }
}

fn digest_turn(queue: &DigestQueue) {
    // (job, bytes of its block hashed so far)
    let mut lanes: Vec<(DigestJob, usize)> = Vec::with_capacity(md5::LANES);
    let mut budget = DIGEST_TURN;
    loop {
        if budget > 0 {
            let mut jobs = queue.jobs();
            while lanes.len() < md5::LANES {
                match jobs.pop_front() {
                    Some(job) => lanes.push((job, 0)),
                    None => break,
                }
            }
        }
        if lanes.is_empty() {
            return;
        }
        let mut states: Vec<&mut DigestState> = Vec::with_capacity(lanes.len());
        let mut slices: Vec<&[u8]> = Vec::with_capacity(lanes.len());
        for (job, at) in lanes.iter_mut() {
            let end = (*at + DIGEST_STEP).min(job.block.len());
            states.push(&mut *job.state);
            slices.push(&job.block[*at..end]);
            *at = end;
        }
        let stepped: usize = slices.iter().map(|s| s.len()).sum();
        DigestState::update_many(&mut states, &slices);
        budget = budget.saturating_sub(stepped);
        if DIGEST_TURN - budget >= DIGEST_TURN_YIELDING && queue.blocks_waiting.load(Ordering::SeqCst) > 0 {
            budget = 0;
        }
        let mut i = 0;
        while i < lanes.len() {
            if lanes[i].1 == lanes[i].0.block.len() {
                let (DigestJob { state, block, reply }, _) = lanes.swap_remove(i);
                // Let go of the block once hashed: a seal that begins after this finds it unshared and seals it
                // where it lies.
                drop(block);
                let _ = reply.send(Ok(state));
            } else {
                i += 1;
            }
        }
    }
}

#[derive(Clone)]
pub struct EncryptorPool {
    pub pool: Pool<EncryptorMsg>,
    digests: Arc<DigestQueue>,
}

impl EncryptorPool {
    pub fn new(workers: usize) -> Self {
        EncryptorPool { pool: Pool::new("encryptor pool", workers), digests: Arc::new(DigestQueue::default()) }
    }

    /// Adds `block` to the stream's digests.
    pub async fn digest(&self, state: Box<DigestState>, block: Bytes) -> Result<Box<DigestState>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.digests.jobs().push_back(DigestJob { state, block, reply });
        self.digests.arrived.notify_one();
        if !self.digests.draining.swap(true, Ordering::SeqCst) {
            self.ask_to_drain();
        }
        match tokio::time::timeout(ENCRYPTOR_DEADLINE, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ActorError::Unavailable("encryptor pool")),
            Err(_) => Err(ActorError::Timeout("encryptor pool")),
        }
    }

    /// Counts a PUT's stream of blocks among those a turn of digests gathers from, until it is dropped.
    pub fn stream(&self) -> DigestStream {
        self.digests.streams.fetch_add(1, Ordering::SeqCst);
        DigestStream(self.digests.clone())
    }

    /// Asks a worker to drain the digest queue; the caller has just set the drain flag, which the ticket
    /// now holds. If no worker takes it (one is restarting) the dropped ticket clears the flag and fails
    /// the queued jobs, as a call to a stopped worker would fail.
    fn ask_to_drain(&self) {
        let ticket = DrainTicket { pool: self.clone(), finished: false };
        if let Err(e) = self.pool.cast(EncryptorMsg::DrainDigests(ticket)) {
            tracing::debug!(error = %e, "no encryptor worker took the digest queue");
        }
    }

    /// Seals one plaintext block: where it lies if the caller passes the only reference to it, else into a
    /// reused buffer of its own.
    pub async fn seal(&self, sealer: Arc<Sealer>, place: BlockPlace, block: Bytes) -> Result<SealedBlock> {
        let waiting = Waiting::new(&self.digests);
        self.pool.call(|reply| EncryptorMsg::Seal { sealer, place, block, waiting, reply }, ENCRYPTOR_DEADLINE).await?
    }

    /// Opens one sealed block, given as the parts it was read as, into a reused buffer; an error, never
    /// bytes, if it fails authentication.
    pub async fn open(&self, sealer: Arc<Sealer>, place: BlockPlace, parts: Vec<Bytes>) -> Result<Bytes> {
        let waiting = Waiting::new(&self.digests);
        self.pool.call(|reply| EncryptorMsg::Open { sealer, place, parts, waiting, reply }, ENCRYPTOR_DEADLINE).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_split_stream_equal_digests_of_whole() {
        let want = ChecksumSet { crc32: true, crc32c: true, sha1: true, sha256: true, crc64nvme: true };
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
    fn crc64nvme_is_the_nvme_polynomial_big_endian_in_base64() {
        let mut d = DigestState::new(ChecksumSet { crc64nvme: true, ..Default::default() });
        d.update(b"123456789");
        // CRC-64/NVME's check value (the catalogue's), 0xae8b14860a799888, as S3 writes it.
        let expected = base64::engine::general_purpose::STANDARD.encode(0xae8b_1486_0a79_9888u64.to_be_bytes());
        assert_eq!(d.finish().checksums.crc64nvme, Some(expected));
    }

    /// Streams hashed through the pool at the same time, in blocks of uneven sizes, so that jobs share
    /// lanes, join mid-turn and end at different times: each gets its own digests.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_streams_through_the_pool_get_their_own_digests() {
        use ::md5::Digest as _;
        let pool = EncryptorPool::new(2);
        start_workers(&pool).await;
        let want = ChecksumSet { crc32: true, ..Default::default() };
        let streams = (0..7u32).map(|s| {
            let pool = pool.clone();
            async move {
                let data: Vec<u8> =
                    (0..(150_000 + s * 90_001)).map(|i| (i.wrapping_mul(2654435761) >> (s + 3)) as u8).collect();
                let mut state = Box::new(DigestState::new(want));
                let mut at = 0usize;
                let mut n = 0usize;
                while at < data.len() {
                    let len = (1 + (n * 37_003 + s as usize * 5_001) % 200_000).min(data.len() - at);
                    state = pool.digest(state, Bytes::copy_from_slice(&data[at..at + len])).await.unwrap();
                    at += len;
                    n += 1;
                }
                (data, state.finish())
            }
        });
        for (data, got) in futures::future::join_all(streams).await {
            let md5: [u8; 16] = ::md5::Md5::digest(&data).into();
            assert_eq!(got.md5, md5, "stream of {} bytes", data.len());
            let mut crc = DigestState::new(want);
            crc.update(&data);
            assert_eq!(got.checksums, crc.finish().checksums);
        }
    }

    /// A turn waits for a block from each PUT stream under way, up to four: it begins as soon as the last
    /// of them is queued, or after [`DIGEST_GATHER`] if one never comes, and at once with one stream or none.
    #[tokio::test(start_paused = true)]
    async fn a_turn_gathers_a_block_of_every_stream_under_way() {
        let pool = EncryptorPool::new(1);
        let queue = pool.digests.clone();
        let mut answers = Vec::new();
        let mut queue_one = || {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let state = Box::new(DigestState::new(ChecksumSet::default()));
            queue.jobs().push_back(DigestJob { state, block: Bytes::from_static(b"block"), reply });
            queue.arrived.notify_one();
            answers.push(answer);
        };
        let began = tokio::time::Instant::now();
        queue_one();
        gather(&queue).await;
        assert_eq!(began.elapsed(), Duration::ZERO, "no stream: nothing to wait for");
        queue.jobs().clear();
        gather(&queue).await;
        assert_eq!(began.elapsed(), Duration::ZERO, "an empty queue: nothing to wait for");

        let streams: Vec<DigestStream> = (0..6).map(|_| pool.stream()).collect();
        queue_one();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { gather(&queue).await }
        });
        // The timer's resolution is a millisecond.
        tokio::time::sleep(DIGEST_GATHER / 2).await;
        queue_one();
        queue_one();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "three of four lanes");
        queue_one();
        waiting.await.unwrap();
        assert_eq!(began.elapsed(), DIGEST_GATHER / 2, "the fourth block began the turn");

        queue.jobs().clear();
        queue_one();
        let began = tokio::time::Instant::now();
        gather(&queue).await;
        assert_eq!(began.elapsed(), DIGEST_GATHER, "a stream that sends nothing holds the turn back no longer");

        let seal = Waiting::new(&queue);
        let began = tokio::time::Instant::now();
        gather(&queue).await;
        assert_eq!(began.elapsed(), Duration::ZERO, "a seal waits for a worker");
        drop(seal);

        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { gather(&queue).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "one of four lanes");
        let seal = Waiting::new(&queue);
        waiting.await.unwrap();
        assert_eq!(began.elapsed(), Duration::ZERO, "a seal that comes during the wait ends it");
        drop(seal);

        drop(streams);
        assert_eq!(queue.streams.load(Ordering::SeqCst), 0);
        let began = tokio::time::Instant::now();
        gather(&queue).await;
        assert_eq!(began.elapsed(), Duration::ZERO, "the streams have ended");
    }

    /// A turn of digests hashes on while no seal or open job waits (eight 1 MiB blocks, well within a turn),
    /// and stops taking new blocks after [`DIGEST_TURN_YIELDING`] bytes while one does: it finishes the four
    /// it has in its lanes and leaves the other four queued. The count of waiting jobs falls when a job is
    /// dropped unbegun too.
    #[test]
    fn a_turn_of_digests_ends_early_while_a_seal_waits() {
        let queue = Arc::new(DigestQueue::default());
        let fill = |queue: &DigestQueue| {
            let mut answers = Vec::new();
            for i in 0..8u8 {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let state = Box::new(DigestState::new(ChecksumSet::default()));
                queue.jobs().push_back(DigestJob { state, block: Bytes::from(vec![i; 1 << 20]), reply });
                answers.push(answer);
            }
            answers
        };
        let answers = fill(&queue);
        digest_turn(&queue);
        assert!(queue.jobs().is_empty(), "nothing waited: the whole queue in one turn");
        assert!(answers.into_iter().all(|mut a| matches!(a.try_recv(), Ok(Ok(_)))));

        let waiting = Waiting::new(&queue);
        let answers = fill(&queue);
        digest_turn(&queue);
        assert_eq!(queue.jobs().len(), 4, "a seal waited: the turn ended with its lanes");
        let hashed = answers.into_iter().map(|mut a| a.try_recv().is_ok()).filter(|done| *done).count();
        assert_eq!(hashed, 4);
        drop(waiting);
        assert_eq!(queue.blocks_waiting.load(Ordering::SeqCst), 0);
    }

    /// Starts a worker in each of the pool's slots.
    async fn start_workers(pool: &EncryptorPool) {
        for slot in pool.pool.slots() {
            let faults: Arc<dyn FaultInjector> = Arc::new(faults::NoFaults);
            let (actor, _) = Actor::spawn(None, EncryptorWorker, faults).await.unwrap();
            slot.set(actor);
        }
    }

    /// With no worker to take the digest queue, a digest fails at once as unavailable (not at its deadline),
    /// and the queue is not left marked as being drained: once workers run, digests work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_digest_with_no_worker_fails_at_once_and_leaves_the_queue_usable() {
        let pool = EncryptorPool::new(2);
        let state = Box::new(DigestState::new(ChecksumSet::default()));
        let r = pool.digest(state, Bytes::from_static(b"abc")).await;
        assert!(matches!(r, Err(ActorError::Unavailable(_))), "{:?}", r.err());
        start_workers(&pool).await;
        let state = Box::new(DigestState::new(ChecksumSet::default()));
        let done = pool.digest(state, Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(hex::encode(done.finish().md5), "900150983cd24fb0d6963f7d28e17f72");
    }

    /// A block its caller holds alone is sealed where it lies; a block shared with anyone else is left as it
    /// was and sealed into a buffer of its own. Both give the bytes `Sealer::seal` gives, ciphertext then tag.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_block_held_alone_is_sealed_in_place_and_a_shared_one_is_left_alone() {
        use hoard_storage::seal::DataKey;
        let pool = EncryptorPool::new(1);
        start_workers(&pool).await;
        let sealer = Arc::new(Sealer::new(&DataKey::from_bytes([3; 32]), [9; 16], 1, 77));
        let place = BlockPlace { index: 5, last: false };
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let want = sealer.seal(place.index, place.last, &plain).unwrap();

        let alone = Bytes::from(plain.clone());
        let at = alone.as_ptr();
        let sealed = pool.seal(sealer.clone(), place, alone).await.unwrap();
        assert_eq!(sealed.ciphertext.as_ptr(), at, "sealed where it lay");
        assert_eq!(sealed.joined()[..], want[..]);

        let shared = Bytes::from(plain.clone());
        let sealed = pool.seal(sealer.clone(), place, shared.clone()).await.unwrap();
        assert_ne!(sealed.ciphertext.as_ptr(), shared.as_ptr());
        assert_eq!(shared[..], plain[..], "the other holder still reads the plaintext");
        assert_eq!(sealed.joined()[..], want[..]);
        assert_eq!(sealed.len(), want.len());
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
