//! A restartable actor handle.
//!
//! Handles travel in `NodeContext` and outlive the actor they point at: when a supervisor restarts a
//! child it puts the new `ActorRef` into the same slot, so every holder of the handle reaches the new
//! actor. While the actor is down, calls fail at once with `ActorError::Unavailable`, never hang.
//! Every call carries a deadline.

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
}

impl<M: Message> Clone for Slot<M> {
    fn clone(&self) -> Self {
        Slot { name: self.name, inner: self.inner.clone() }
    }
}

impl<M: Message> Slot<M> {
    pub fn new(name: &'static str) -> Self {
        Slot { name, inner: Arc::new(RwLock::new(None)) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Points the slot at a (re)started actor.
    pub fn set(&self, actor: ActorRef<M>) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        *guard = Some(actor);
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

    /// Sends a message without waiting for an answer.
    pub fn cast(&self, msg: M) -> Result<()> {
        self.get()?.cast(msg).map_err(|_| ActorError::Unavailable(self.name))
    }
}
