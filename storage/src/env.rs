//! The seam for time and randomness.
//!
//! Invariants:
//! - Code of hoard reads the clock and draws random bytes only through an [`Env`]; `clippy.toml` forbids
//!   `SystemTime::now` and `rand::thread_rng` everywhere else, and the `impl Env for SystemEnv` block below is
//!   the one place allowed to call them. That is what lets a whole cluster run deterministically on a
//!   [`SimEnv`].
//! - [`SystemEnv`] draws from a cryptographically secure generator (it makes data keys and nonce salts).
//! - [`SimEnv`] is fully determined by its seed and the calls made on it: the same seed and the same sequence
//!   of calls give the same times and the same bytes. Its clock only moves when a test moves it.

use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::RngCore;
use rand::SeedableRng;

/// Time and randomness, as the rest of hoard sees them.
pub trait Env: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Fills `buf` with random bytes (cryptographically secure for [`SystemEnv`]).
    fn fill_random(&self, buf: &mut [u8]);

    fn random_u128(&self) -> u128 {
        let mut b = [0u8; 16];
        self.fill_random(&mut b);
        u128::from_le_bytes(b)
    }

    fn random_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_random(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The real world: the wall clock and the operating system's entropy (through `rand`'s thread-local
/// ChaCha generator, which the OS reseeds).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

#[allow(clippy::disallowed_methods)]
impl Env for SystemEnv {
    fn now_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock set before 1970: report a negative time rather than panic.
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn fill_random(&self, buf: &mut [u8]) {
        rand::thread_rng().fill_bytes(buf);
    }
}

/// A deterministic world for tests and the simulation: a seeded generator and a clock that only moves when
/// told to.
#[derive(Debug)]
pub struct SimEnv {
    rng: Mutex<StdRng>,
    now_ms: AtomicI64,
}

impl SimEnv {
    pub fn new(seed: u64, start_ms: i64) -> SimEnv {
        SimEnv { rng: Mutex::new(StdRng::seed_from_u64(seed)), now_ms: AtomicI64::new(start_ms) }
    }

    /// Moves the clock forward by `ms` (backward if negative) and returns the new time.
    pub fn advance(&self, ms: i64) -> i64 {
        self.now_ms.fetch_add(ms, Ordering::SeqCst) + ms
    }

    /// Sets the clock to `ms`.
    pub fn set(&self, ms: i64) {
        self.now_ms.store(ms, Ordering::SeqCst);
    }
}

impl Env for SimEnv {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // A panic while holding the lock cannot leave the generator half-updated in a way that matters for
        // tests, so a poisoned lock is simply taken over.
        let mut rng = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rng.fill_bytes(buf);
    }
}

/// The simulation's world: a seeded generator, and a clock that is tokio's (so it moves with a paused runtime's
/// virtual time, as timers do), counted from `start_ms`. Built inside the runtime it serves.
#[derive(Debug)]
pub struct VirtualEnv {
    rng: Mutex<StdRng>,
    start_ms: i64,
    origin: tokio::time::Instant,
}

impl VirtualEnv {
    pub fn new(seed: u64, start_ms: i64) -> VirtualEnv {
        VirtualEnv { rng: Mutex::new(StdRng::seed_from_u64(seed)), start_ms, origin: tokio::time::Instant::now() }
    }
}

impl Env for VirtualEnv {
    fn now_ms(&self) -> i64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin).as_millis();
        self.start_ms.saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }

    fn fill_random(&self, buf: &mut [u8]) {
        let mut rng = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rng.fill_bytes(buf);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn sim_env_with_same_seed_draws_same_bytes() {
        let a = SimEnv::new(7, 0);
        let b = SimEnv::new(7, 0);
        assert_eq!(a.random_u128(), b.random_u128());
        assert_eq!(a.random_u64(), b.random_u64());
        let c = SimEnv::new(8, 0);
        assert_ne!(SimEnv::new(7, 0).random_u128(), c.random_u128());
    }

    #[test]
    fn sim_env_clock_moves_only_when_told() {
        let env = SimEnv::new(1, 1_000);
        assert_eq!(env.now_ms(), 1_000);
        assert_eq!(env.now_ms(), 1_000);
        assert_eq!(env.advance(500), 1_500);
        assert_eq!(env.now_ms(), 1_500);
        env.set(42);
        assert_eq!(env.now_ms(), 42);
    }

    #[test]
    fn system_env_reads_a_plausible_wall_clock_and_random_bytes() {
        let env: Arc<dyn Env> = Arc::new(SystemEnv);
        // After 2020-01-01 and before 2200-01-01.
        let now = env.now_ms();
        assert!(now > 1_577_836_800_000 && now < 7_258_118_400_000, "now_ms = {now}");
        // Two 128-bit draws colliding means the generator is broken.
        assert_ne!(env.random_u128(), env.random_u128());
    }

    #[test]
    fn a_virtual_clock_moves_with_the_runtimes_paused_time() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let env = VirtualEnv::new(1, 1_000);
            assert_eq!(env.now_ms(), 1_000);
            tokio::time::sleep(std::time::Duration::from_secs(90)).await;
            assert_eq!(env.now_ms(), 91_000, "90 virtual seconds, whatever the wall clock did");
            let again = VirtualEnv::new(1, 0);
            assert_eq!(env.random_u64(), again.random_u64(), "seeded like SimEnv");
        });
    }
}
