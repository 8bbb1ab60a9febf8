//! The KeyKeeper: the one actor that holds master keys.
//!
//! Invariants:
//! - A master key never leaves this actor: it is loaded from its file in `pre_start` (so a restart reloads
//!   it), used here to wrap and unwrap data keys with AES-KW, and zeroized when the actor's state drops.
//!   Nothing it answers contains a master key; key ids are one-way fingerprints.
//! - A data key leaves only to the request that will seal or open with it, and is zeroized when that
//!   request drops it.
//! - While the actor is down every call fails at once ([`crate::slot::Slot`]): an encrypted request then
//!   fails with 503, it never proceeds in plaintext.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hoard_protocol::Encryption;
use hoard_protocol::WrappedKey;
use hoard_storage::seal::DataKey;
use hoard_storage::seal::MasterKey;
use hoard_storage::seal::DATA_ID_LEN;
use hoard_storage::seal::SEAL_FORMAT_V1;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;

use crate::error::ActorError;
use crate::error::Result;
use crate::slot::Slot;

pub const KEY_KEEPER_DEADLINE: Duration = Duration::from_secs(5);

pub struct KeyKeeper;

/// Where the KeyKeeper loads its key from.
#[derive(Clone)]
pub struct KeyKeeperArgs {
    pub master_key_file: Option<PathBuf>,
}

pub struct KeyKeeperState {
    /// Master keys by id.
    keys: BTreeMap<String, MasterKey>,
    /// The key new data keys are wrapped under.
    active: Option<String>,
}

/// What the KeyKeeper holds, by id only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub active: Option<String>,
    pub held: Vec<String>,
}

pub enum KeyKeeperMsg {
    Status(RpcReplyPort<KeyStatus>),
    /// Wraps a data key under the active master key (SSE-S3).
    Wrap {
        key: Arc<DataKey>,
        data_id: [u8; DATA_ID_LEN],
        reply: RpcReplyPort<Result<Encryption>>,
    },
    /// Unwraps an SSE-S3 data key wrapped under `key_id`.
    Unwrap {
        key_id: String,
        key: WrappedKey,
        reply: RpcReplyPort<Result<DataKey>>,
    },
}

impl Actor for KeyKeeper {
    type Msg = KeyKeeperMsg;
    type State = KeyKeeperState;
    type Arguments = KeyKeeperArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<KeyKeeperMsg>,
        args: KeyKeeperArgs,
    ) -> std::result::Result<KeyKeeperState, ActorProcessingErr> {
        let mut keys = BTreeMap::new();
        let mut active = None;
        if let Some(path) = &args.master_key_file {
            let key = MasterKey::load(path)?;
            let id = key.id().as_str().to_string();
            tracing::info!(key_id = %id, "master key loaded");
            active = Some(id.clone());
            keys.insert(id, key);
        }
        Ok(KeyKeeperState { keys, active })
    }

    async fn handle(
        &self,
        _me: ActorRef<KeyKeeperMsg>,
        msg: KeyKeeperMsg,
        state: &mut KeyKeeperState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            KeyKeeperMsg::Status(reply) => {
                let _ =
                    reply.send(KeyStatus { active: state.active.clone(), held: state.keys.keys().cloned().collect() });
            }
            KeyKeeperMsg::Wrap { key, data_id, reply } => {
                let _ = reply.send(state.wrap(&key, data_id));
            }
            KeyKeeperMsg::Unwrap { key_id, key, reply } => {
                let _ = reply.send(state.unwrap(&key_id, &key));
            }
        }
        Ok(())
    }
}

impl KeyKeeperState {
    fn wrap(&self, key: &DataKey, data_id: [u8; DATA_ID_LEN]) -> Result<Encryption> {
        let key_id = self.active.clone().ok_or(ActorError::NoMasterKey)?;
        let master = self.keys.get(&key_id).ok_or_else(|| ActorError::UnknownKeyId(key_id.clone()))?;
        let wrapped = WrappedKey { format: SEAL_FORMAT_V1, data_id, wrapped: master.wrap(key).to_vec() };
        Ok(Encryption::SseS3 { key_id, key: wrapped })
    }

    fn unwrap(&self, key_id: &str, key: &WrappedKey) -> Result<DataKey> {
        let master = self.keys.get(key_id).ok_or_else(|| ActorError::UnknownKeyId(key_id.to_string()))?;
        check_format(key)?;
        master.unwrap(&key.wrapped).map_err(|_| ActorError::KeyUnwrap(format!("under master key {key_id}")))
    }
}

/// Refuses a wrapped key of a format this node cannot read.
pub fn check_format(key: &WrappedKey) -> Result<()> {
    if key.format != SEAL_FORMAT_V1 {
        return Err(ActorError::Invalid(format!("sealed format {} is not known to this node", key.format)));
    }
    Ok(())
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
    pub async fn status(&self) -> Result<KeyStatus> {
        self.slot.call(KeyKeeperMsg::Status, KEY_KEEPER_DEADLINE).await
    }

    pub async fn has_key(&self) -> Result<bool> {
        Ok(self.status().await?.active.is_some())
    }

    /// Wraps `key` under the active master key: the SSE-S3 record of an object with data id `data_id`.
    pub async fn wrap(&self, key: Arc<DataKey>, data_id: [u8; DATA_ID_LEN]) -> Result<Encryption> {
        self.slot.call(|reply| KeyKeeperMsg::Wrap { key, data_id, reply }, KEY_KEEPER_DEADLINE).await?
    }

    pub async fn unwrap(&self, key_id: &str, key: &WrappedKey) -> Result<DataKey> {
        let key_id = key_id.to_string();
        let key = key.clone();
        self.slot.call(|reply| KeyKeeperMsg::Unwrap { key_id, key, reply }, KEY_KEEPER_DEADLINE).await?
    }
}
