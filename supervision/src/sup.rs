//! The one supervisor behaviour every `*_sup.rs` uses: spawn children in order, watch them, restart a
//! child that fails (one-for-one), and give up — stopping itself so that its own supervisor sees the
//! failure — when children fail more often than the policy allows.
//!
//! Actors that are not in the child list (per-request sessions under `s3_sup`) are temporary: their
//! failures are logged and counted, never restarted.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use futures::future::BoxFuture;
use ractor::Actor;
use ractor::ActorCell;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::SpawnErr;
use ractor::SupervisionEvent;

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

/// How many restarts a supervisor allows within a window before it gives up.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub max_restarts: usize,
    pub window: Duration,
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
}

pub struct Supervisor;

pub struct SupState {
    name: &'static str,
    policy: RestartPolicy,
    children: Vec<(ChildSpec, ActorCell)>,
    recent: VecDeque<Instant>,
    stats: Arc<SupStats>,
}

impl Actor for Supervisor {
    type Msg = ();
    type State = SupState;
    type Arguments = SupSpec;

    async fn pre_start(&self, me: ActorRef<()>, spec: SupSpec) -> Result<SupState, ActorProcessingErr> {
        let mut children = Vec::with_capacity(spec.children.len());
        for child in spec.children {
            let cell = start_child(&child, me.get_cell())
                .await
                .map_err(|e| format!("{}: starting {} failed: {e}", spec.name, child.name))?;
            children.push((child, cell));
        }
        Ok(SupState { name: spec.name, policy: spec.policy, children, recent: VecDeque::new(), stats: spec.stats })
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, format!("stopped: {reason:?}")),
            _ => return Ok(()),
        };
        let Some(pos) = state.children.iter().position(|(_, c)| c.get_id() == cell.get_id()) else {
            if why.starts_with("failed") {
                state.stats.temporary_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(supervisor = state.name, actor = %cell.get_id(), "temporary actor {why}");
            }
            return Ok(());
        };
        let name = state.children[pos].0.name.clone();
        tracing::error!(supervisor = state.name, child = %name, "child {why}; restarting");
        let now = Instant::now();
        state.recent.push_back(now);
        while state.recent.front().is_some_and(|t| now.duration_since(*t) > state.policy.window) {
            state.recent.pop_front();
        }
        if state.recent.len() > state.policy.max_restarts {
            tracing::error!(supervisor = state.name, "too many restarts; giving up");
            me.stop(Some(format!("{}: too many restarts", state.name)));
            return Ok(());
        }
        let child = state.children[pos].0.clone();
        match start_child(&child, me.get_cell()).await {
            Ok(new_cell) => {
                state.children[pos].1 = new_cell;
                state.stats.restarts.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(supervisor = state.name, child = %name, error = %e, "restart failed; giving up");
                me.stop(Some(format!("{}: restarting {name} failed", state.name)));
            }
        }
        Ok(())
    }

    async fn handle(&self, _me: ActorRef<()>, _msg: (), _state: &mut SupState) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    /// A stopping supervisor takes its subtree with it (OTP shutdown): ractor does not stop the children of an
    /// actor that stops normally, so without this a stopped node kept serving on its port and holding its stores.
    /// Permanent children stop in reverse start order, each waited for; then any temporary ones (sessions).
    async fn post_stop(&self, me: ActorRef<()>, state: &mut SupState) -> Result<(), ActorProcessingErr> {
        for (spec, cell) in state.children.iter().rev() {
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

    #[tokio::test(start_paused = true)]
    async fn a_child_that_never_starts_fails_its_supervisor_start_after_the_deadline() {
        let hung = ChildSpec::new("hung", |_parent| futures::future::pending().boxed());
        let spec = SupSpec {
            name: "test_sup",
            policy: RestartPolicy { max_restarts: 1, window: Duration::from_secs(60) },
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
