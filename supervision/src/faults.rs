//! The fault-injection registry: arms named fault points of a node so tests (and, with
//! `--fault-injection`, operators) can make an actor panic, fail or stall at a chosen step.
//!
//! Points in hoard: `put.after_shards`, `put.before_commit`, `shard.write`, `ec.encode`.
//! A fault fires every time its point is reached until disarmed, or only `times` times when armed so.
//! With nothing armed, a check is one atomic load.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

pub use hoard_actors::faults::Fault;
use hoard_actors::faults::FaultAdmin;
use hoard_actors::faults::FaultInjector;
pub use hoard_actors::faults::Gate;
pub use hoard_s3::admin::fault_name;
pub use hoard_s3::admin::parse_fault;
pub use hoard_s3::admin::FAULT_POINTS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Armed {
    pub fault: Fault,
    /// How many more times it fires; `None` = until disarmed.
    pub remaining: Option<u32>,
}

#[derive(Default)]
pub struct FaultRegistry {
    any: AtomicBool,
    armed: Mutex<BTreeMap<String, Armed>>,
    /// How many times each point has fired.
    fired: Mutex<BTreeMap<String, u64>>,
}

impl FaultRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `point` until disarmed.
    pub fn arm(&self, point: &str, fault: Fault) {
        self.arm_times(point, fault, None)
    }

    /// Arms `point` to fire `times` times (`None`: until disarmed).
    pub fn arm_times(&self, point: &str, fault: Fault, times: Option<u32>) {
        let mut m = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(point.to_string(), Armed { fault, remaining: times });
        self.any.store(true, Ordering::Release);
    }

    pub fn disarm(&self, point: &str) -> bool {
        let mut m = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let was = m.remove(point).is_some();
        self.any.store(!m.is_empty(), Ordering::Release);
        was
    }

    pub fn disarm_all(&self) {
        let mut m = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        m.clear();
        self.any.store(false, Ordering::Release);
    }

    pub fn list(&self) -> Vec<(String, Armed)> {
        let m = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// How many times each point has fired since the node started.
    pub fn fired(&self) -> BTreeMap<String, u64> {
        self.fired.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl FaultInjector for FaultRegistry {
    fn check(&self, point: &str) -> Option<Fault> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut m = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let armed = m.get_mut(point)?;
        let fault = armed.fault.clone();
        if let Some(n) = &mut armed.remaining {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(point);
                self.any.store(!m.is_empty(), Ordering::Release);
            }
        }
        drop(m);
        *self.fired.lock().unwrap_or_else(|p| p.into_inner()).entry(point.to_string()).or_default() += 1;
        Some(fault)
    }
}

impl FaultAdmin for FaultRegistry {
    fn arm_times(&self, point: &str, fault: Fault, times: Option<u32>) {
        FaultRegistry::arm_times(self, point, fault, times)
    }
    fn disarm(&self, point: &str) -> bool {
        FaultRegistry::disarm(self, point)
    }
    fn armed(&self) -> Vec<(String, Fault, Option<u32>)> {
        self.list().into_iter().map(|(p, a)| (p, a.fault, a.remaining)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_fault_fires_until_disarmed() {
        let r = FaultRegistry::new();
        assert_eq!(r.check("shard.write"), None);
        r.arm("shard.write", Fault::Error);
        assert_eq!(r.check("shard.write"), Some(Fault::Error));
        assert_eq!(r.check("shard.write"), Some(Fault::Error));
        assert_eq!(r.check("ec.encode"), None);
        assert!(r.disarm("shard.write"));
        assert_eq!(r.check("shard.write"), None);
    }

    #[test]
    fn fault_armed_for_n_times_fires_n_times() {
        let r = FaultRegistry::new();
        r.arm_times("ec.encode", Fault::Panic, Some(2));
        assert_eq!(r.check("ec.encode"), Some(Fault::Panic));
        assert_eq!(r.check("ec.encode"), Some(Fault::Panic));
        assert_eq!(r.check("ec.encode"), None);
        assert!(r.list().is_empty());
        assert_eq!(r.fired().get("ec.encode"), Some(&2), "two firings counted, the unarmed check not");
    }

    #[test]
    fn fault_names_parse() {
        assert_eq!(parse_fault("panic"), Some(Fault::Panic));
        assert_eq!(parse_fault("stall:250"), Some(Fault::Stall(std::time::Duration::from_millis(250))));
        assert_eq!(parse_fault("boom"), None);
        assert_eq!(fault_name(&Fault::Stall(std::time::Duration::from_millis(7))), "stall:7");
    }
}
