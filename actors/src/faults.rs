//! Fault injection points.
//!
//! Code on the data path names its fault points (`put.after_shards`, `put.before_commit`, `shard.write`,
//! `ec.encode`, ...) and asks the node's [`FaultInjector`] at each. The registry that arms them lives in the
//! `hoard` crate (`supervision/`); this crate only knows the seam. With nothing armed a check is one
//! atomic load.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Condvar;
use std::sync::Mutex;
use std::time::Duration;

use hoard_storage::exec;
use tokio::sync::Notify;

use crate::error::ActorError;
use crate::error::Result;

/// What an armed fault does when its point is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The actor running the point panics; its supervisor sees it fail.
    Panic,
    /// The point returns an error, as a failed disk or peer would.
    Error,
    /// The point waits this long before going on, as a slow disk or peer would.
    Stall(Duration),
    /// The point waits until the gate is opened: a test holds one request at a chosen step while others
    /// run, without guessing how long they take.
    Gate(Gate),
}

/// A gate fault points wait at until [`Gate::open`]; [`Gate::reached`] tells when someone waits there.
#[derive(Clone, Default)]
pub struct Gate(Arc<GateState>);

#[derive(Default)]
struct GateState {
    open: Mutex<bool>,
    opened: Condvar,
    opened_async: Notify,
    arrivals: AtomicUsize,
    arrived: Notify,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets every waiter, and every later arrival, through.
    pub fn open(&self) {
        *self.0.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.0.opened.notify_all();
        self.0.opened_async.notify_waiters();
    }

    fn is_open(&self) -> bool {
        *self.0.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves once `n` arrivals have reached the gate (whether or not they have passed it).
    pub async fn reached(&self, n: usize) {
        loop {
            let arrived = self.0.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.0.arrivals.load(Ordering::Acquire) >= n {
                return;
            }
            arrived.await;
        }
    }

    fn arrive(&self) {
        self.0.arrivals.fetch_add(1, Ordering::AcqRel);
        self.0.arrived.notify_waiters();
    }

    async fn pass(&self) {
        self.arrive();
        loop {
            let opened = self.0.opened_async.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if self.is_open() {
                return;
            }
            opened.await;
        }
    }

    fn pass_blocking(&self) {
        self.arrive();
        let mut open = self.0.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = self.0.opened.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("open", &self.is_open()).finish()
    }
}

/// Two gates are equal when they are the same gate.
impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Gate {}

/// The seam through which fault points ask whether they are armed.
pub trait FaultInjector: Send + Sync + 'static {
    /// The fault armed at `point`, if any. An implementation may disarm one-shot faults as they fire.
    fn check(&self, point: &str) -> Option<Fault>;
}

/// Arming and disarming fault points from outside the process (the authenticated admin API).
pub trait FaultAdmin: Send + Sync + 'static {
    /// Arms `point` to fire `times` times (`None`: until disarmed).
    fn arm_times(&self, point: &str, fault: Fault, times: Option<u32>);
    fn disarm(&self, point: &str) -> bool;
    /// `(point, fault, remaining)` for every armed point.
    fn armed(&self) -> Vec<(String, Fault, Option<u32>)>;
}

/// An injector with nothing armed, for nodes started without fault injection.
pub struct NoFaults;

impl FaultInjector for NoFaults {
    fn check(&self, _point: &str) -> Option<Fault> {
        None
    }
}

/// Runs fault point `point`: panics, errors or stalls if armed there.
pub async fn hit(injector: &dyn FaultInjector, point: &str) -> Result<()> {
    match injector.check(point) {
        None => Ok(()),
        Some(Fault::Panic) => panic!("injected panic at {point}"),
        Some(Fault::Error) => Err(ActorError::Injected(point.to_string())),
        Some(Fault::Stall(d)) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Some(Fault::Gate(g)) => {
            g.pass().await;
            Ok(())
        }
    }
}

/// The blocking twin of [`hit`], for points inside blocking disk or CPU work.
///
/// In inline mode ([`exec`], the simulation) the work runs on the simulation's one thread, which must not
/// wait: a stall passes at once (virtual time cannot move inside blocking work), and a gate that is not open
/// panics rather than hang the whole cluster. Faults that must wait there are armed at an async point (a
/// disk's `disk.<slot>` waits asynchronously in inline mode).
pub fn hit_blocking(injector: &dyn FaultInjector, point: &str) -> Result<()> {
    match injector.check(point) {
        None => Ok(()),
        Some(Fault::Panic) => panic!("injected panic at {point}"),
        Some(Fault::Error) => Err(ActorError::Injected(point.to_string())),
        Some(Fault::Stall(_)) if exec::is_inline() => Ok(()),
        Some(Fault::Stall(d)) => {
            std::thread::sleep(d);
            Ok(())
        }
        Some(Fault::Gate(g)) if exec::is_inline() => {
            g.arrive();
            assert!(g.is_open(), "a closed gate at {point} would hang the simulation's only thread");
            Ok(())
        }
        Some(Fault::Gate(g)) => {
            g.pass_blocking();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Armed(Fault);

    impl FaultInjector for Armed {
        fn check(&self, _point: &str) -> Option<Fault> {
            Some(self.0.clone())
        }
    }

    #[test]
    fn in_inline_mode_a_blocking_point_never_waits() {
        exec::set_inline(true);
        // A minute's stall would hold this test for a minute.
        assert!(hit_blocking(&Armed(Fault::Stall(Duration::from_secs(60))), "p").is_ok());
        let gate = Gate::new();
        let closed = std::panic::catch_unwind(|| hit_blocking(&Armed(Fault::Gate(gate.clone())), "p"));
        assert!(closed.is_err(), "a closed gate fails loudly instead of hanging");
        gate.open();
        assert!(hit_blocking(&Armed(Fault::Gate(gate.clone())), "p").is_ok());
        assert_eq!(gate.0.arrivals.load(Ordering::Acquire), 2, "each arrival is counted");
        assert!(matches!(hit_blocking(&Armed(Fault::Error), "p"), Err(ActorError::Injected(_))));
        exec::set_inline(false);
    }
}
