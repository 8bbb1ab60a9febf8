//! A fixed set of worker actors behind one handle, for CPU-bound work.
//!
//! Each worker does one job at a time on the blocking pool, so at most `workers` jobs of a pool run at
//! once: CPU use is bounded and the async runtime is never starved. Jobs go round-robin.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractor::Message;
use ractor::RpcReplyPort;

use crate::error::Result;
use crate::slot::Slot;

pub struct Pool<M: Message> {
    workers: Arc<Vec<Slot<M>>>,
    next: Arc<AtomicUsize>,
}

impl<M: Message> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool { workers: self.workers.clone(), next: self.next.clone() }
    }
}

impl<M: Message> Pool<M> {
    pub fn new(name: &'static str, workers: usize) -> Self {
        let workers = (0..workers.max(1)).map(|_| Slot::new(name)).collect();
        Pool { workers: Arc::new(workers), next: Arc::new(AtomicUsize::new(0)) }
    }

    pub fn slots(&self) -> &[Slot<M>] {
        &self.workers
    }

    pub async fn call<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> M,
        deadline: Duration,
    ) -> Result<T> {
        self.next_worker().call(build, deadline).await
    }

    /// Sends a message to the next worker without waiting.
    pub fn cast(&self, msg: M) -> Result<()> {
        self.next_worker().cast(msg)
    }

    fn next_worker(&self) -> &Slot<M> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        &self.workers[i]
    }
}
