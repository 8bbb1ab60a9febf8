//! A restartable actor handle.
//!
//! Handles travel in `NodeContext` and outlive the actor they point at: when a supervisor restarts a
//! child it puts the new `ActorRef` into the same slot, so every holder of the handle reaches the new
//! actor. While the actor is down, calls fail at once with `ActorError::Unavailable`, never hang
//! ([`Slot::call_waiting`] waits for the next incarnation instead, within its deadline). Every call carries a
//! deadline.

use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::ActorRef;
use ractor::Message;
use ractor::RpcReplyPort;

use crate::error::ActorError;
use crate::error::Result;

pub struct Slot<M: Message> {
    name: &'static str,
    inner: Arc<RwLock<Option<ActorRef<M>>>>,
    /// Counts the actors put in the slot: told each time one (re)starts.
    started: Arc<tokio::sync::watch::Sender<u64>>,
}

impl<M: Message> Clone for Slot<M> {
    fn clone(&self) -> Self {
        Slot { name: self.name, inner: self.inner.clone(), started: self.started.clone() }
    }
}

impl<M: Message> Slot<M> {
    pub fn new(name: &'static str) -> Self {
        Slot { name, inner: Arc::new(RwLock::new(None)), started: Arc::new(tokio::sync::watch::Sender::new(0)) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Points the slot at a (re)started actor.
    pub fn set(&self, actor: ActorRef<M>) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        *guard = Some(actor);
        drop(guard);
        self.started.send_modify(|n| *n += 1);
    }

    pub fn get(&self) -> Result<ActorRef<M>> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or(ActorError::Unavailable(self.name))
    }

    /// Sends a request and waits for the answer at most `deadline`.
    pub async fn call<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> M,
        deadline: Duration,
    ) -> Result<T> {
        let actor = self.get()?;
        match actor.call(build, Some(deadline)).await {
            Ok(CallResult::Success(v)) => Ok(v),
            Ok(CallResult::Timeout) => Err(ActorError::Timeout(self.name)),
            Ok(CallResult::SenderError) | Err(_) => Err(ActorError::Unavailable(self.name)),
        }
    }

    /// [`Slot::call`], but an actor between incarnations (its supervisor restarting it) is waited for, and the
    /// request sent to the next one, all within `deadline`: for callers that want the work done, not a prompt
    /// refusal.
    pub async fn call_waiting<T: Send + 'static>(
        &self,
        build: impl Fn(RpcReplyPort<T>) -> M,
        deadline: Duration,
    ) -> Result<T> {
        let until = tokio::time::Instant::now() + deadline;
        let mut started = self.started.subscribe();
        loop {
            // Seen before the call: an actor put in the slot after it failed wakes the wait below.
            started.borrow_and_update();
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.call(&build, left).await {
                Err(ActorError::Unavailable(_)) => match tokio::time::timeout_at(until, started.changed()).await {
                    Ok(Ok(())) => continue,
                    _ => return Err(ActorError::Unavailable(self.name)),
                },
                other => return other,
            }
        }
    }

    /// Sends a message without waiting for an answer.
    pub fn cast(&self, msg: M) -> Result<()> {
        self.get()?.cast(msg).map_err(|_| ActorError::Unavailable(self.name))
    }
}

#[cfg(test)]
mod tests {
    use ractor::Actor;
    use ractor::ActorProcessingErr;

    use super::*;

    struct Echo;

    impl Actor for Echo {
        type Msg = RpcReplyPort<u32>;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _me: ActorRef<Self::Msg>, _args: ()) -> std::result::Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _me: ActorRef<Self::Msg>,
            reply: Self::Msg,
            _state: &mut (),
        ) -> std::result::Result<(), ActorProcessingErr> {
            let _ = reply.send(7);
            Ok(())
        }
    }

    /// An empty slot refuses `call` at once; `call_waiting` is answered by the actor put in the slot later, and
    /// gives up at its deadline when none comes.
    #[tokio::test(start_paused = true)]
    async fn call_waiting_waits_for_the_next_incarnation_within_its_deadline() {
        let slot: Slot<RpcReplyPort<u32>> = Slot::new("echo");
        assert!(matches!(slot.call(|r| r, Duration::from_secs(1)).await, Err(ActorError::Unavailable("echo"))));
        let filler = slot.clone();
        let restart = tokio::spawn(async move {
            // The supervisor's back-off before the restart.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (actor, _) = Actor::spawn(None, Echo, ()).await.unwrap();
            filler.set(actor);
        });
        assert_eq!(slot.call_waiting(|r| r, Duration::from_secs(5)).await.unwrap(), 7);
        restart.await.unwrap();

        let empty: Slot<RpcReplyPort<u32>> = Slot::new("none");
        let began = tokio::time::Instant::now();
        assert!(matches!(
            empty.call_waiting(|r| r, Duration::from_secs(2)).await,
            Err(ActorError::Unavailable("none"))
        ));
        assert_eq!(began.elapsed(), Duration::from_secs(2), "it waited its whole deadline, no more");
    }
}
