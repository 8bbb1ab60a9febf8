//! The async runtime the metadata Raft runs on: tokio, as openraft's own `TokioRuntime`, except for where its
//! election timeouts draw their randomness from.
//!
//! Invariants:
//! - In a running node the randomness is the OS's, as openraft's default (each thread's `rand::thread_rng`).
//! - A deterministic simulation seeds it per thread ([`seed_raft_rng`]), so the same seed draws the same election
//!   timeouts and so the same elections. Nothing else reads this generator.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::AsyncRuntime;
use openraft::async_runtime::TokioOneShotSender;
use openraft::OptionalSend;
use openraft::TokioInstant;
use rand::rngs::StdRng;
use rand::RngCore;
use rand::SeedableRng as _;

thread_local! {
    /// This thread's seeded generator, if a simulation gave one.
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes the Raft randomness drawn on this thread come from `seed` (simulation only).
pub fn seed_raft_rng(seed: u64) {
    SEEDED.with(|s| *s.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// The generator openraft draws election timeouts from: this thread's seeded one, or the OS's.
pub struct RaftRng;

impl RaftRng {
    // The OS's randomness is what an unseeded node wants (openraft's default); the seam is `seed_raft_rng`.
    #[allow(clippy::disallowed_methods)]
    fn with<T>(f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        SEEDED.with(|s| match s.borrow_mut().as_mut() {
            Some(seeded) => f(seeded),
            None => f(&mut rand::thread_rng()),
        })
    }
}

impl RngCore for RaftRng {
    fn next_u32(&mut self) -> u32 {
        RaftRng::with(|r| r.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        RaftRng::with(|r| r.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        RaftRng::with(|r| r.fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        RaftRng::with(|r| r.try_fill_bytes(dest))
    }
}

/// openraft's tokio runtime with [`RaftRng`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HoardRuntime;

impl AsyncRuntime for HoardRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = RaftRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::task::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        tokio::time::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        RaftRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (TokioOneShotSender(tx), rx)
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng as _;

    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_timeouts_every_time() {
        let draw = || (0..8).map(|_| HoardRuntime::thread_rng().gen_range(150..300u64)).collect::<Vec<_>>();
        seed_raft_rng(42);
        let first = draw();
        seed_raft_rng(42);
        assert_eq!(draw(), first, "the same seed, the same draws");
        seed_raft_rng(43);
        assert_ne!(draw(), first, "another seed, other draws");
        // An unseeded thread draws from the OS (here: only that it draws in range).
        let other = std::thread::spawn(|| HoardRuntime::thread_rng().gen_range(150..300u64)).join().unwrap();
        assert!((150..300).contains(&other));
    }
}
