//! Fault injection points.
//!
//! Code on the data path names its fault points (`put.after_shards`, `put.before_commit`, `shard.write`,
//! `ec.encode`, ...) and asks the node's [`FaultInjector`] at each. The registry that arms them lives in the
//! `hoard` crate (`supervision/`); this crate only knows the seam. With nothing armed a check is one
//! atomic load.

use std::time::Duration;

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
}

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
    }
}

/// The blocking twin of [`hit`], for points inside blocking disk or CPU work.
pub fn hit_blocking(injector: &dyn FaultInjector, point: &str) -> Result<()> {
    match injector.check(point) {
        None => Ok(()),
        Some(Fault::Panic) => panic!("injected panic at {point}"),
        Some(Fault::Error) => Err(ActorError::Injected(point.to_string())),
        Some(Fault::Stall(d)) => {
            std::thread::sleep(d);
            Ok(())
        }
    }
}
