//! The KeyKeeper: the one actor that may hold the master key.
//!
//! Invariant: the master key never leaves this actor. Today it answers whether the node holds a key;
//! wrapping and unwrapping data keys is added here, and only here, with encryption at rest.

use std::time::Duration;

use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;

use crate::error::Result;
use crate::slot::Slot;

pub const KEY_KEEPER_DEADLINE: Duration = Duration::from_secs(5);

pub struct KeyKeeper;

pub struct KeyKeeperState {
    has_key: bool,
}

pub enum KeyKeeperMsg {
    HasKey(RpcReplyPort<bool>),
}

impl Actor for KeyKeeper {
    type Msg = KeyKeeperMsg;
    type State = KeyKeeperState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ActorRef<KeyKeeperMsg>,
        _: (),
    ) -> std::result::Result<KeyKeeperState, ActorProcessingErr> {
        Ok(KeyKeeperState { has_key: false })
    }

    async fn handle(
        &self,
        _me: ActorRef<KeyKeeperMsg>,
        msg: KeyKeeperMsg,
        state: &mut KeyKeeperState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            KeyKeeperMsg::HasKey(reply) => {
                let _ = reply.send(state.has_key);
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct KeyKeeperHandle {
    pub slot: Slot<KeyKeeperMsg>,
}

impl Default for KeyKeeperHandle {
    fn default() -> Self {
        KeyKeeperHandle { slot: Slot::new("key keeper") }
    }
}

impl KeyKeeperHandle {
    pub async fn has_key(&self) -> Result<bool> {
        self.slot.call(KeyKeeperMsg::HasKey, KEY_KEEPER_DEADLINE).await
    }
}
