//! Each disk's own I/O threads, and what they tell of the disk's health.
//!
//! Invariants:
//! - A disk's file I/O runs on that disk's threads only ([`DISK_THREADS`] of them), never on the shared
//!   blocking pool: a hung disk stalls its own threads and nothing else of the node.
//! - At most [`DISK_QUEUE`] jobs wait for a disk's threads; past that, new work is refused at once
//!   (`Unavailable`), so callers read parity or write elsewhere instead of queueing behind a hung disk.
//! - Every job is timed by a task of its own, so a caller that stops waiting (a read hedged by parity) does
//!   not stop the disk from being judged by it; the job's result goes straight from the disk's thread to
//!   its caller, and is dropped on that thread when the caller has gone.
//! - A job that has not answered [`SLOW_IO`] after a thread took it is a strike against the disk; a job
//!   that answers sooner clears the strikes. Time in the queue, and a full queue, are not strikes: a busy
//!   disk is not a slow one. [`STRIKES_TO_DEGRADE`] strikes in a row mark the disk degraded: reads go to parity
//!   instead, new segments are placed on other disks where there are enough, writers waiting on it give up
//!   on it. A degraded disk is probed (one stat of its marker) at most every [`PROBE_EVERY`]; the first
//!   probe or job that answers in time marks it healthy again.
//! - Slowness is never damage: a timed-out or refused job is not reported to repair.
//! - Fault point `disk.<slot>` runs on the disk's thread before each job (stall it and the disk hangs).
//! - In inline mode ([`exec`], the simulation) a disk has no threads: each job is a task of its own on the
//!   calling thread's runtime, [`DISK_THREADS`] of them at a time and at most [`DISK_QUEUE`] waiting, and its
//!   fault point waits asynchronously, in virtual time. The rules above hold with tasks for threads (a stalled
//!   job holds its permit, as it would hold its thread).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt as _;
use hoard_storage::disk::Disk;
use hoard_storage::exec;
use tokio::sync::oneshot;
use tokio::sync::watch;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::ActorError;
use crate::error::Result;
use crate::faults;
use crate::faults::FaultInjector;

/// Threads per disk: enough for a few reads and writes to overlap on one device.
pub const DISK_THREADS: usize = 4;
/// Jobs that may wait for a disk's threads.
pub const DISK_QUEUE: usize = 256;
/// A job not answered after this long is a strike against its disk.
pub const SLOW_IO: Duration = Duration::from_secs(2);
/// Strikes in a row that mark a disk degraded.
pub const STRIKES_TO_DEGRADE: u32 = 3;
/// How often a degraded disk is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The least a read waits before it is hedged, whatever the disk's recent latency.
pub const HEDGE_MIN: Duration = Duration::from_millis(20);
/// How many times its recent latency a read may take before it is hedged.
const HEDGE_FACTOR: u32 = 4;

/// A job outstanding this long is taken as stuck for good (its thread is lost) rather than as a sign that
/// the disk is slow now.
const STUCK_FOR_GOOD: Duration = Duration::from_secs(20);

/// What a job is, for the latency a read is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    /// One piece: its latency is what a piece read is judged by.
    Read,
    Write,
    /// A whole file or directory (scrub's verify, a listing): long by nature, not counted in read latency.
    Scan,
}

/// A job: told when a thread takes it, then run with the disk (or the error a fault injected in its place).
struct Job {
    started: Option<oneshot::Sender<Instant>>,
    run: RunJob,
}

/// What a job does with the disk it is given (or the error a fault injected in its place).
type RunJob = Box<dyn FnOnce(std::result::Result<&dyn Disk, ActorError>) + Send>;

/// Who runs a disk's jobs.
enum Runner {
    /// The disk's own threads, fed through a queue of [`DISK_QUEUE`].
    Threads(mpsc::SyncSender<Job>),
    /// Inline mode: a task per job.
    Tasks(Arc<Tasks>),
}

/// A disk's jobs as tasks on the calling thread's runtime (inline mode): each waits for one of
/// [`DISK_THREADS`] permits, as a job waits for a thread.
struct Tasks {
    disk: Arc<dyn Disk>,
    faults: Arc<dyn FaultInjector>,
    point: String,
    threads: Semaphore,
    /// Jobs submitted and not done: those holding a permit, and the queue behind them.
    pending: AtomicUsize,
}

/// One disk's threads and health. Cheap to clone; the threads end when the last clone is dropped (once
/// their current job returns).
#[derive(Clone)]
pub struct DiskIo {
    inner: Arc<IoInner>,
}

struct IoInner {
    slot: u32,
    label: String,
    runner: Runner,
    next_id: AtomicU64,
    /// Job id → when it was submitted, for jobs not answered yet.
    outstanding: Mutex<HashMap<u64, Instant>>,
    /// Smoothed latency of reads that answered, in microseconds (0: none yet).
    read_latency_us: AtomicU64,
    strikes: AtomicU32,
    degraded: watch::Sender<bool>,
    /// Jobs that answered after [`SLOW_IO`], or never, or were refused: a counter for `/metrics`.
    slow_jobs: AtomicU64,
    probing: AtomicBool,
    last_probe: Mutex<Option<Instant>>,
}

impl DiskIo {
    /// Starts `disk`'s threads (none in inline mode). `slot` names the disk in logs and its fault point.
    pub fn new(slot: u32, disk: Arc<dyn Disk>, faults: Arc<dyn FaultInjector>) -> DiskIo {
        let point = format!("disk.{slot}");
        let label = disk.label();
        let runner = if exec::is_inline() {
            let threads = Semaphore::new(DISK_THREADS);
            Runner::Tasks(Arc::new(Tasks { disk, faults, point, threads, pending: AtomicUsize::new(0) }))
        } else {
            Runner::Threads(spawn_threads(slot, disk, faults, point))
        };
        DiskIo {
            inner: Arc::new(IoInner {
                slot,
                label,
                runner,
                next_id: AtomicU64::new(0),
                outstanding: Mutex::new(HashMap::new()),
                read_latency_us: AtomicU64::new(0),
                strikes: AtomicU32::new(0),
                degraded: watch::channel(false).0,
                slow_jobs: AtomicU64::new(0),
                probing: AtomicBool::new(false),
                last_probe: Mutex::new(None),
            }),
        }
    }

    /// Runs `f` on one of the disk's threads (in a task of its own in inline mode). A panic in `f` is resumed
    /// in the caller, as if it had panicked itself. Refused at once (`Unavailable`) when the disk's queue is full.
    pub async fn run<T, F>(&self, kind: IoKind, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Disk) -> Result<T> + Send + 'static,
    {
        let (answer_tx, answer) = oneshot::channel();
        let (started_tx, started) = oneshot::channel::<Instant>();
        let (done_tx, done) = oneshot::channel::<()>();
        let run = Box::new(move |disk: std::result::Result<&dyn Disk, ActorError>| {
            let r = match disk {
                Ok(disk) => std::panic::catch_unwind(AssertUnwindSafe(|| f(disk))),
                Err(e) => Ok(Err(e)),
            };
            // Sent from this thread: when the caller has gone (a hedged read, a writer that gave up), what it
            // would have got (an open file, say) is dropped here, on the disk's own thread.
            let _ = answer_tx.send(r);
            let _ = done_tx.send(());
        });
        let job = Job { started: Some(started_tx), run };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.outstanding().insert(id, Instant::now());
        if let Err(e) = self.inner.runner.submit(job) {
            self.inner.outstanding().remove(&id);
            // A full queue says the disk is busy, not that it is slow: counted, but no strike.
            self.inner.slow_jobs.fetch_add(1, Ordering::Relaxed);
            return Err(match e {
                mpsc::TrySendError::Full(_) => ActorError::Unavailable("disk (its queue is full)"),
                mpsc::TrySendError::Disconnected(_) => ActorError::Unavailable("disk threads"),
            });
        }
        // The job's clock, in a task of its own so that a caller that stops waiting does not stop it. Time in
        // the queue is not the disk's doing: the clock starts when a thread takes the job.
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let Ok(started) = started.await else {
                inner.outstanding().remove(&id);
                return;
            };
            let mut done = done;
            let slow = tokio::time::sleep_until(started + SLOW_IO);
            let on_time = tokio::select! {
                _ = &mut done => true,
                _ = slow => false,
            };
            if !on_time {
                inner.strike();
                let _ = done.await;
            }
            inner.answered(id, kind, started.elapsed());
        });
        match answer.await {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(ActorError::Unavailable("disk threads")),
        }
    }

    /// Drops `value` (an open file of this disk, say) on one of the disk's threads, without waiting: closing
    /// or removing a file of a slow disk must not hold an async worker.
    pub fn release<T: Send + 'static>(&self, value: T) {
        let job = Job { started: None, run: Box::new(move |_| drop(value)) };
        if let Err(mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job)) =
            self.inner.runner.submit(job)
        {
            let run = move || (job.run)(Err(ActorError::Unavailable("released")));
            match (&self.inner.runner, tokio::runtime::Handle::try_current()) {
                // The disk's threads are this seam's own: the blocking pool stands in for them when they are full.
                #[allow(clippy::disallowed_methods)]
                (Runner::Threads(_), Ok(runtime)) => drop(runtime.spawn_blocking(run)),
                _ => run(),
            }
        }
    }

    /// Whether the disk is degraded now. Asking may start a probe of a degraded disk.
    pub fn is_degraded(&self) -> bool {
        let degraded = *self.inner.degraded.borrow();
        if degraded {
            self.probe();
        }
        degraded
    }

    /// Resolves once the disk is degraded (at once if it is).
    pub async fn degraded(&self) {
        let mut rx = self.inner.degraded.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Resolves when the disk is not degraded, or after [`PROBE_EVERY`] (time for another probe).
    #[cfg(test)]
    async fn degraded_cleared(&self) {
        let mut rx = self.inner.degraded.subscribe();
        let _ = tokio::time::timeout(PROBE_EVERY, rx.wait_for(|d| !*d)).await;
    }

    /// How long a read of this disk may take before it is hedged: a few times its recent read latency.
    pub fn hedge_after(&self) -> Duration {
        let us = self.inner.read_latency_us.load(Ordering::Relaxed);
        Duration::from_micros(us.saturating_mul(u64::from(HEDGE_FACTOR))).clamp(HEDGE_MIN, SLOW_IO)
    }

    /// Whether a job of this disk has been waiting longer than a read should: the disk is stuck now, and a
    /// reader that has a choice reads elsewhere.
    pub fn lagging(&self) -> bool {
        let limit = self.hedge_after();
        self.inner.outstanding().values().any(|at| {
            let age = at.elapsed();
            // A job stuck for good holds one thread, not the disk: past a while it no longer counts.
            age > limit && age < STUCK_FOR_GOOD
        })
    }

    /// Jobs submitted and not answered yet (a hung disk's reads stay here until it answers).
    pub fn pending_jobs(&self) -> usize {
        self.inner.outstanding().len()
    }

    /// Jobs that ran longer than [`SLOW_IO`] or were refused (a full queue), since the node started.
    pub fn slow_jobs(&self) -> u64 {
        self.inner.slow_jobs.load(Ordering::Relaxed)
    }

    /// One stat of the disk's marker, at most every [`PROBE_EVERY`] and one at a time: its timely answer
    /// marks the disk healthy again.
    fn probe(&self) {
        let now = Instant::now();
        {
            let mut last = self.inner.last_probe.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < PROBE_EVERY) {
                return;
            }
            if self.inner.probing.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(now);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.probing.store(false, Ordering::Release);
            return;
        };
        let io = self.clone();
        runtime.spawn(async move {
            // Whatever the stat says (a missing marker included), the disk answered.
            let _ = io.run(IoKind::Read, |disk| Ok(disk.len(hoard_storage::identity::DISK_MARKER).is_ok())).await;
            io.inner.probing.store(false, Ordering::Release);
        });
    }
}

/// Starts the disk's [`DISK_THREADS`] threads, serving jobs from the queue it returns the sending end of.
fn spawn_threads(
    slot: u32,
    disk: Arc<dyn Disk>,
    faults: Arc<dyn FaultInjector>,
    point: String,
) -> mpsc::SyncSender<Job> {
    let (jobs, queue) = mpsc::sync_channel::<Job>(DISK_QUEUE);
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..DISK_THREADS {
        let (queue, disk, faults, point) = (queue.clone(), disk.clone(), faults.clone(), point.clone());
        let spawned = std::thread::Builder::new().name(format!("hoard-disk{slot}-{n}")).spawn(move || loop {
            // One thread waits on the queue at a time; the others wait on the lock.
            let job = match queue.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            if let Some(started) = job.started {
                let _ = started.send(Instant::now());
            }
            // A stall holds this thread as a hung disk would; an injected error (or panic) fails the
            // job as a failing disk would, and the thread goes on.
            let fault = std::panic::catch_unwind(AssertUnwindSafe(|| faults::hit_blocking(faults.as_ref(), &point)));
            serve(job.run, fault, disk.as_ref(), &point);
        });
        if let Err(e) = spawned {
            tracing::error!(disk = slot, error = %e, "could not start a disk I/O thread");
        }
    }
    jobs
}

/// Runs a job after its fault point: with the disk, or with the error the point injected in its place.
fn serve(run: RunJob, fault: std::thread::Result<Result<()>>, disk: &dyn Disk, point: &str) {
    match fault {
        Ok(Ok(())) => run(Ok(disk)),
        Ok(Err(e)) => run(Err(e)),
        Err(_) => run(Err(ActorError::Injected(point.to_string()))),
    }
}

impl Runner {
    /// Hands `job` to the disk's threads, or starts its task; refused when the queue is full.
    fn submit(&self, job: Job) -> std::result::Result<(), mpsc::TrySendError<Job>> {
        match self {
            Runner::Threads(jobs) => jobs.try_send(job),
            Runner::Tasks(tasks) => tasks.submit(job),
        }
    }
}

impl Tasks {
    fn submit(self: &Arc<Self>, job: Job) -> std::result::Result<(), mpsc::TrySendError<Job>> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(mpsc::TrySendError::Disconnected(job));
        };
        if self.pending.fetch_add(1, Ordering::AcqRel) >= DISK_THREADS + DISK_QUEUE {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(mpsc::TrySendError::Full(job));
        }
        let tasks = self.clone();
        runtime.spawn(async move {
            // The semaphore is never closed.
            let thread = tasks.threads.acquire().await;
            if let Some(started) = job.started {
                let _ = started.send(Instant::now());
            }
            let fault = AssertUnwindSafe(faults::hit(tasks.faults.as_ref(), &tasks.point)).catch_unwind().await;
            serve(job.run, fault, tasks.disk.as_ref(), &tasks.point);
            drop(thread);
            tasks.pending.fetch_sub(1, Ordering::AcqRel);
        });
        Ok(())
    }
}

impl IoInner {
    fn outstanding(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.outstanding.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn strike(&self) {
        self.slow_jobs.fetch_add(1, Ordering::Relaxed);
        let strikes = self.strikes.fetch_add(1, Ordering::AcqRel) + 1;
        if strikes >= STRIKES_TO_DEGRADE && !self.degraded.send_replace(true) {
            tracing::warn!(
                disk = self.slot,
                path = %self.label,
                strikes,
                "disk degraded: it keeps taking longer than {SLOW_IO:?}; reads use parity and new data goes elsewhere until it answers again"
            );
        }
    }

    fn answered(&self, id: u64, kind: IoKind, took: Duration) {
        self.outstanding().remove(&id);
        if took >= SLOW_IO {
            return;
        }
        if kind == IoKind::Read {
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
            let old = self.read_latency_us.load(Ordering::Relaxed);
            let new = if old == 0 { us } else { old - old / 8 + us / 8 };
            self.read_latency_us.store(new, Ordering::Relaxed);
        }
        self.strikes.store(0, Ordering::Release);
        if self.degraded.send_replace(false) {
            tracing::info!(disk = self.slot, path = %self.label, "disk answers in time again; no longer degraded");
        }
    }
}

#[cfg(test)]
mod tests {
    use hoard_storage::disk::MemDisk;
    use hoard_storage::env::SimEnv;

    use futures::FutureExt as _;

    use super::*;
    use crate::faults::Fault;
    use crate::faults::Gate;

    /// Arms faults by point name, as the node's registry does.
    #[derive(Default)]
    struct Armed(Mutex<HashMap<String, Fault>>);

    impl FaultInjector for Armed {
        fn check(&self, point: &str) -> Option<Fault> {
            self.0.lock().unwrap().get(point).cloned()
        }
    }

    fn disk_io(faults: Arc<Armed>) -> DiskIo {
        DiskIo::new(3, Arc::new(MemDisk::new(Arc::new(SimEnv::new(1, 1)))), faults)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_on_the_disk_threads_and_panics_reach_the_caller() {
        let io = disk_io(Arc::default());
        let name = io.run(IoKind::Read, |_| Ok(std::thread::current().name().map(str::to_string))).await.unwrap();
        assert!(name.is_some_and(|n| n.starts_with("hoard-disk3-")));
        let panicked = tokio::spawn({
            let io = io.clone();
            async move { io.run(IoKind::Write, |_| -> Result<()> { panic!("boom") }).await }
        })
        .await;
        assert!(panicked.unwrap_err().is_panic());
        assert!(io.run(IoKind::Read, |_| Ok(7)).await.unwrap() == 7, "a panicking job does not take a thread");
    }

    /// A hung disk: its threads stall, its queue fills and refuses, it is marked degraded after three slow
    /// jobs, and once it answers again a probe marks it healthy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_disk_is_degraded_refuses_work_past_its_queue_and_recovers() {
        let faults = Arc::new(Armed::default());
        let io = disk_io(faults.clone());
        let gate = Gate::new();
        faults.0.lock().unwrap().insert("disk.3".into(), Fault::Gate(gate.clone()));
        let job = || {
            let io = io.clone();
            tokio::spawn(async move { io.run(IoKind::Read, |_| Ok(())).await })
        };
        // First every thread is held, then the queue fills behind them.
        let mut stuck: Vec<_> = (0..DISK_THREADS).map(|_| job()).collect();
        gate.reached(DISK_THREADS).await;
        stuck.extend((0..DISK_QUEUE).map(|_| job()));
        let submitted = tokio::time::timeout(Duration::from_secs(10), async {
            while io.inner.outstanding().len() < DISK_THREADS + DISK_QUEUE {
                tokio::task::yield_now().await;
            }
        });
        assert!(submitted.await.is_ok(), "every job was submitted");
        // Every thread is held and the queue is full (or all but full: a job counts as outstanding a moment
        // before it is queued): a job more is refused at once, without waiting.
        let refused = (0..DISK_THREADS)
            .any(|_| matches!(io.run(IoKind::Read, |_| Ok(())).now_or_never(), Some(Err(ActorError::Unavailable(_)))));
        assert!(refused, "a full queue refuses at once");
        io.degraded().await;
        assert!(io.is_degraded());
        assert!(io.slow_jobs() >= u64::from(STRIKES_TO_DEGRADE));
        assert!(io.lagging());

        faults.0.lock().unwrap().clear();
        gate.open();
        // Each held or queued job answers once the disk does; one that lost its place in the queue to a
        // probe of the check above was refused (a job counts as outstanding a moment before it is queued).
        let mut answered = 0;
        for job in stuck {
            match job.await.unwrap() {
                Ok(()) => answered += 1,
                Err(e) => assert!(matches!(e, ActorError::Unavailable(_)), "{e}"),
            }
        }
        assert!(answered >= DISK_QUEUE, "{answered} jobs answered");
        // The stuck jobs answered late, which clears nothing; asking starts a probe, whose timely answer does.
        let recovered = tokio::time::timeout(Duration::from_secs(10), async {
            while io.is_degraded() {
                io.degraded_cleared().await;
            }
        });
        assert!(recovered.await.is_ok(), "a probe marks the disk healthy");
        // Each job's clock stops in its own task, a moment after its caller has the answer.
        let caught_up = tokio::time::timeout(Duration::from_secs(10), async {
            while io.lagging() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        assert!(caught_up.await.is_ok(), "no job outstanding once every one has answered");
    }

    /// In inline mode a disk has no threads: its jobs are tasks on the caller's thread, a panic still reaches
    /// the caller, a disk stalled at its fault point is degraded after three slow jobs in virtual time, and a
    /// hung disk's queue refuses work past its bound.
    #[test]
    fn in_inline_mode_jobs_are_tasks_judged_in_virtual_time() {
        exec::set_inline(true);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        runtime.block_on(async {
            let faults = Arc::new(Armed::default());
            let io = disk_io(faults.clone());
            assert!(matches!(io.inner.runner, Runner::Tasks(_)));
            let me = std::thread::current().id();
            assert_eq!(io.run(IoKind::Read, |_| Ok(std::thread::current().id())).await.unwrap(), me);
            let panicked = tokio::spawn({
                let io = io.clone();
                async move { io.run(IoKind::Write, |_| -> Result<()> { panic!("boom") }).await }
            })
            .await;
            assert!(panicked.unwrap_err().is_panic());

            faults.0.lock().unwrap().insert("disk.3".into(), Fault::Stall(SLOW_IO * 2));
            let begun = Instant::now();
            for _ in 0..STRIKES_TO_DEGRADE {
                io.run(IoKind::Read, |_| Ok(())).await.unwrap();
            }
            assert!(begun.elapsed() >= SLOW_IO * 2 * STRIKES_TO_DEGRADE, "the stalls passed in virtual time");
            assert!(*io.inner.degraded.borrow(), "three slow jobs degrade the disk");
            faults.0.lock().unwrap().clear();
            for _ in 0..3 {
                if !io.is_degraded() {
                    break;
                }
                io.degraded_cleared().await;
            }
            assert!(!io.is_degraded(), "a probe marks the disk healthy");

            let gate = Gate::new();
            faults.0.lock().unwrap().insert("disk.3".into(), Fault::Gate(gate.clone()));
            let stuck: Vec<_> = (0..DISK_THREADS + DISK_QUEUE)
                .map(|_| {
                    let io = io.clone();
                    tokio::spawn(async move { io.run(IoKind::Read, |_| Ok(())).await })
                })
                .collect();
            gate.reached(DISK_THREADS).await;
            // Paused time does not move while tasks run: a bounded number of yields, not a timeout.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert_eq!(io.inner.outstanding().len(), DISK_THREADS + DISK_QUEUE, "every job was taken");
            let refused = io.run(IoKind::Read, |_| Ok(())).now_or_never();
            assert!(matches!(refused, Some(Err(ActorError::Unavailable(_)))), "a full queue refuses at once");
            gate.open();
            for job in stuck {
                job.await.unwrap().unwrap();
            }
        });
        exec::set_inline(false);
    }
}
