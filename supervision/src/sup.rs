//! The one supervisor behaviour every `*_sup.rs` uses: spawn children in order, watch them, restart a
//! child that fails (one-for-one) after a back-off ([`BACKOFF`], the one place restart delays are decided),
//! and escalate — stopping itself so that its own supervisor restarts the whole subtree — when children
//! fail more often than the policy allows.
//!
//! Invariants:
//! - A restart that fails is tried again, later, like any other failure; it is never a reason to give up.
//! - A supervisor whose policy does not escalate (the node's root) never stops for a failing child: it
//!   keeps restarting it with the longest back-off, and meanwhile reports it down ([`SupStats::down`]), which
//!   `/health/ready` and `hoard cluster status` show. Requests that need the missing actor are answered
//!   503 (`ServiceUnavailable`, or `SlowDown` when it does not answer in time); the rest are served.
//! - At its first start, a supervisor that escalates fails its own start when a child cannot start (its
//!   parent then retries it); the root retries each child's first start with the back-off until it starts,
//!   so a node whose metadata has no leader yet (its peers not up) waits for it instead of exiting.
//!
//! Actors that are not in the child list (per-request sessions under `s3_sup`) are temporary: their
//! failures are logged and counted, never restarted.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::Actor;
use ractor::ActorCell;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::SpawnErr;
use ractor::SupervisionEvent;
use tokio::time::Instant;

/// How long a stopping supervisor waits for each child to stop.
pub const CHILD_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a child may take to start (its `pre_start`, and its subtree's); one that takes longer counts as
/// a failed start, so a hung start cannot hang its supervisor.
pub const CHILD_START_DEADLINE: Duration = Duration::from_secs(120);

/// Starts one child under `parent`, failing if it does not start within [`CHILD_START_DEADLINE`].
async fn start_child(child: &ChildSpec, parent: ActorCell) -> Result<ActorCell, SpawnErr> {
    match tokio::time::timeout(CHILD_START_DEADLINE, (child.start)(parent)).await {
        Ok(started) => started,
        Err(_) => Err(SpawnErr::StartupFailed(
            format!("{} did not start within {} s", child.name, CHILD_START_DEADLINE.as_secs()).into(),
        )),
    }
}

/// How many restarts a supervisor allows within a window before it escalates.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub max_restarts: usize,
    pub window: Duration,
    /// Past `max_restarts`, stop so that the parent restarts this subtree; `false` for the root, which
    /// keeps restarting with the longest back-off instead.
    pub escalate: bool,
}

/// How long a failed child waits before it is started again: `first`, doubled for each further failure in
/// the policy's window, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// Every supervisor's restart back-off.
pub const BACKOFF: Backoff = Backoff { first: Duration::from_millis(100), max: Duration::from_secs(30) };

impl Backoff {
    /// The delay before the restart that follows the `failures`-th failure in a row (1 for the first).
    pub fn delay(&self, failures: usize) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1)).unwrap_or(u32::MAX).min(20);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

pub type StartFn = Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// A permanent child: started with its supervisor, restarted when it fails or stops.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: String,
    pub start: StartFn,
}

impl ChildSpec {
    pub fn new<F>(name: impl Into<String>, start: F) -> Self
    where
        F: Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync + 'static,
    {
        ChildSpec { name: name.into(), start: Arc::new(start) }
    }
}

pub struct SupSpec {
    pub name: &'static str,
    pub policy: RestartPolicy,
    pub children: Vec<ChildSpec>,
    pub stats: Arc<SupStats>,
}

/// What a supervisor has seen, readable from outside (tests, status).
#[derive(Default)]
pub struct SupStats {
    pub restarts: AtomicU64,
    /// Failures of temporary children (sessions).
    pub temporary_failures: AtomicU64,
    /// Children down now, waiting for their next restart: name → why.
    down: Mutex<BTreeMap<String, String>>,
}

impl SupStats {
    /// The children down now, with why.
    pub fn down(&self) -> Vec<(String, String)> {
        self.down.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn set_down(&self, child: &str, why: Option<String>) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match why {
            Some(why) => down.insert(child.to_string(), why),
            None => down.remove(child),
        };
    }
}

/// A supervisor's message to itself: start child `0` again (its back-off is over).
pub struct Restart(usize);

pub struct Supervisor;

pub struct SupState {
    name: &'static str,
    policy: RestartPolicy,
    /// Each permanent child and its running actor (`None` while it waits for a restart).
    children: Vec<(ChildSpec, Option<ActorCell>)>,
    recent: VecDeque<Instant>,
    stats: Arc<SupStats>,
}

impl SupState {
    /// Notes that child `pos` is down for `why` and schedules its restart, or escalates.
    fn failed(&mut self, me: &ActorRef<Restart>, pos: usize, why: String) {
        let name = self.children[pos].0.name.clone();
        self.children[pos].1 = None;
        self.stats.set_down(&name, Some(why.clone()));
        let now = Instant::now();
        self.recent.push_back(now);
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > self.policy.window) {
            self.recent.pop_front();
        }
        let failures = self.recent.len();
        if failures > self.policy.max_restarts && self.policy.escalate {
            tracing::error!(supervisor = self.name, child = %name, "child {why}; too many restarts, escalating");
            me.stop(Some(format!("{}: {name} failed {failures} times", self.name)));
            return;
        }
        let delay = if failures > self.policy.max_restarts { BACKOFF.max } else { BACKOFF.delay(failures) };
        tracing::error!(supervisor = self.name, child = %name, retry_in_ms = delay.as_millis() as u64, "child {why}");
        let me = me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // A stopped supervisor has no children to restart.
            let _ = me.cast(Restart(pos));
        });
    }
}

impl Actor for Supervisor {
    type Msg = Restart;
    type State = SupState;
    type Arguments = SupSpec;

    async fn pre_start(&self, me: ActorRef<Restart>, spec: SupSpec) -> Result<SupState, ActorProcessingErr> {
        // A supervisor started again (after it escalated) starts every child afresh: none is down.
        spec.stats.down.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut children = Vec::with_capacity(spec.children.len());
        for child in spec.children {
            let mut failures = 0;
            let cell = loop {
                match start_child(&child, me.get_cell()).await {
                    Ok(cell) => break cell,
                    // The root waits for a child that cannot start yet (metadata without a leader while its
                    // peers are down, a port still held): the node does not exit for it.
                    Err(e) if !spec.policy.escalate => {
                        failures += 1;
                        let delay = BACKOFF.delay(failures);
                        spec.stats.set_down(&child.name, Some(format!("did not start: {e}")));
                        tracing::error!(
                            supervisor = spec.name,
                            child = %child.name,
                            retry_in_ms = delay.as_millis() as u64,
                            "child did not start: {e}"
                        );
                        tokio::time::sleep(delay).await;
                    }
                    Err(e) => return Err(format!("{}: starting {} failed: {e}", spec.name, child.name).into()),
                }
            };
            spec.stats.set_down(&child.name, None);
            children.push((child, Some(cell)));
        }
        Ok(SupState { name: spec.name, policy: spec.policy, children, recent: VecDeque::new(), stats: spec.stats })
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Restart>,
        event: SupervisionEvent,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        // Described only when it is to be told: a temporary actor (one per S3 request) that ends well is the
        // common case, and costs no formatting.
        let (cell, why) = match &event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Err(err)),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, Ok(reason)),
            _ => return Ok(()),
        };
        let describe = || match why {
            Err(err) => format!("failed: {err}"),
            Ok(reason) => format!("stopped: {reason:?}"),
        };
        let running = |c: &Option<ActorCell>| c.as_ref().is_some_and(|c| c.get_id() == cell.get_id());
        let Some(pos) = state.children.iter().position(|(_, c)| running(c)) else {
            if why.is_err() {
                state.stats.temporary_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(supervisor = state.name, actor = %cell.get_id(), "temporary actor {}", describe());
            }
            return Ok(());
        };
        state.failed(&me, pos, describe());
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Restart>,
        msg: Restart,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        let Restart(pos) = msg;
        let Some((child, None)) = state.children.get(pos).cloned() else { return Ok(()) };
        match start_child(&child, me.get_cell()).await {
            Ok(cell) => {
                state.children[pos].1 = Some(cell);
                state.stats.restarts.fetch_add(1, Ordering::Relaxed);
                state.stats.set_down(&child.name, None);
                tracing::info!(supervisor = state.name, child = %child.name, "child restarted");
            }
            Err(e) => state.failed(&me, pos, format!("did not restart: {e}")),
        }
        Ok(())
    }

    /// A stopping supervisor takes its subtree with it (OTP shutdown): ractor does not stop the children of an
    /// actor that stops normally, so without this a stopped node kept serving on its port and holding its stores.
    /// Permanent children stop in reverse start order, each waited for; then any temporary ones (sessions).
    async fn post_stop(&self, me: ActorRef<Restart>, state: &mut SupState) -> Result<(), ActorProcessingErr> {
        for (spec, cell) in state.children.iter().rev() {
            let Some(cell) = cell else { continue };
            if let Err(e) = cell.stop_and_wait(None, Some(CHILD_SHUTDOWN_DEADLINE)).await {
                tracing::warn!(supervisor = state.name, child = %spec.name, error = %e, "child did not stop in time");
            }
        }
        me.stop_children_and_wait(None, Some(CHILD_SHUTDOWN_DEADLINE)).await;
        Ok(())
    }
}

/// Spawns a supervisor under `parent` and returns its cell.
pub async fn spawn_sup(parent: ActorCell, spec: SupSpec) -> Result<ActorCell, SpawnErr> {
    let name = spec.name;
    let (r, _) = Supervisor::spawn_linked(Some(format!("{name}-{}", uniq())), Supervisor, spec, parent).await?;
    Ok(r.get_cell())
}

/// Names must be unique per process; several nodes may run in one (tests).
pub fn uniq() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn back_off_doubles_from_the_first_delay_up_to_the_longest() {
        let delays: Vec<u128> = (1..=12).map(|n| BACKOFF.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]);
        assert_eq!(BACKOFF.delay(0), BACKOFF.first);
        assert_eq!(BACKOFF.delay(usize::MAX), BACKOFF.max);
    }

    /// The root at its first start: a child that fails to start is tried again after the back-off until
    /// it starts, and the supervisor starts then.
    #[tokio::test(start_paused = true)]
    async fn the_root_waits_for_a_child_that_cannot_start_yet() {
        let attempts = Arc::new(AtomicU64::new(0));
        let tries = attempts.clone();
        let late = ChildSpec::new("late", move |parent| {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    return Err(SpawnErr::StartupFailed("not yet".into()));
                }
                let (r, _) = Supervisor::spawn_linked(
                    Some(format!("inner-{}", uniq())),
                    Supervisor,
                    SupSpec {
                        name: "inner",
                        policy: RestartPolicy { max_restarts: 1, window: Duration::from_secs(60), escalate: true },
                        children: vec![],
                        stats: Arc::default(),
                    },
                    parent,
                )
                .await?;
                Ok(r.get_cell())
            }
            .boxed()
        });
        let stats = Arc::new(SupStats::default());
        let spec = SupSpec {
            name: "root",
            policy: RestartPolicy { max_restarts: 1, window: Duration::from_secs(60), escalate: false },
            children: vec![late],
            stats: stats.clone(),
        };
        let started = tokio::time::Instant::now();
        let (root, _) = Supervisor::spawn(Some(format!("root-{}", uniq())), Supervisor, spec).await.unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 4, "three failed starts, then one that took");
        assert!(started.elapsed() >= BACKOFF.delay(1) + BACKOFF.delay(2) + BACKOFF.delay(3), "it backed off");
        assert!(stats.down().is_empty(), "started, so not down");
        root.stop(None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_that_never_starts_fails_its_supervisor_start_after_the_deadline() {
        let hung = ChildSpec::new("hung", |_parent| futures::future::pending().boxed());
        let spec = SupSpec {
            name: "test_sup",
            policy: RestartPolicy { max_restarts: 1, window: Duration::from_secs(60), escalate: true },
            children: vec![hung],
            stats: Arc::default(),
        };
        let started = tokio::time::Instant::now();
        let result = Supervisor::spawn(Some(format!("test_sup-{}", uniq())), Supervisor, spec).await;
        let Err(e) = result else { panic!("a supervisor whose child never starts must not start") };
        assert!(e.to_string().contains("did not start within"), "{e}");
        assert!(started.elapsed() >= CHILD_START_DEADLINE, "it waited the whole deadline");
    }
}
