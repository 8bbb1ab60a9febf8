//! The KeyKeeper: the one actor that holds master keys.
//!
//! Invariants:
//! - A master key never leaves this actor: it is loaded from its file in `pre_start` (so a restart reloads
//!   it), used here to wrap and unwrap data keys with AES-KW, and zeroized when the actor's state drops.
//!   Nothing it answers contains a master key; key ids are one-way fingerprints.
//! - The keyring is the configured key plus the target key of the rotation recorded in metadata (its
//!   file is named there, never its bytes), so a restart mid-rotation, or after one, still holds every
//!   key records may be wrapped under. A rotation started through another node is picked up on demand: a key id
//!   the keyring lacks that is the recorded rotation's target is loaded from the file the rotation names, before
//!   the wrap, unwrap or rewrap that asked for it (so every node reads the records a rotation rewrapped).
//! - A rotation's rewrap happens inside this actor: the data key is unwrapped and wrapped again without
//!   leaving it.
//! - A data key leaves only to the request that will seal or open with it, and is zeroized when that
//!   request drops it.
//! - While the actor is down every call fails at once ([`crate::slot::Slot`]): an encrypted request then
//!   fails with 503, it never proceeds in plaintext.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hoard_protocol::Encryption;
use hoard_protocol::WrappedKey;
use hoard_storage::exec;
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
use crate::faults;
use crate::faults::FaultInjector;
use crate::meta::MetaHandle;
use crate::slot::Slot;

pub const KEY_KEEPER_DEADLINE: Duration = Duration::from_secs(5);
/// How long reading a key file may take; shorter than a call's deadline, so a load answers in time.
const KEY_FILE_DEADLINE: Duration = Duration::from_secs(3);

pub struct KeyKeeper;

/// Where the KeyKeeper loads its keys from.
#[derive(Clone)]
pub struct KeyKeeperArgs {
    pub master_key_file: Option<PathBuf>,
    /// Read at start for the rotation's key file.
    pub meta: MetaHandle,
    pub faults: Arc<dyn FaultInjector>,
}

pub struct KeyKeeperState {
    /// Master keys by id.
    keys: BTreeMap<String, MasterKey>,
    /// The key new data keys are wrapped under.
    active: Option<String>,
    faults: Arc<dyn FaultInjector>,
    /// Where the recorded rotation (and so its target key's file) is read.
    meta: MetaHandle,
}

/// What the KeyKeeper holds, by id only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub active: Option<String>,
    pub held: Vec<String>,
}

pub enum KeyKeeperMsg {
    Status(RpcReplyPort<KeyStatus>),
    /// Wraps a data key under `key_id` (the active key metadata names), or under the configured key.
    Wrap {
        key: Arc<DataKey>,
        data_id: [u8; DATA_ID_LEN],
        key_id: Option<String>,
        reply: RpcReplyPort<Result<Encryption>>,
    },
    /// Rewraps an SSE-S3 data key under `to` (a rotation step).
    Rewrap {
        from: Encryption,
        to: String,
        reply: RpcReplyPort<Result<Encryption>>,
    },
    /// Loads a key file into the keyring; answers its id.
    Load {
        path: PathBuf,
        reply: RpcReplyPort<Result<String>>,
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
        faults::hit(args.faults.as_ref(), "key_keeper.start").await?;
        let mut state = KeyKeeperState {
            keys: BTreeMap::new(),
            active: None,
            faults: args.faults.clone(),
            meta: args.meta.clone(),
        };
        if let Some(path) = &args.master_key_file {
            let id = state.adopt(read_key(path).await?);
            tracing::info!(key_id = %id, "master key loaded");
            state.active = Some(id);
        }
        // A rotation's target key: named by its file in metadata, loaded like the configured one.
        state.hold_rotation_target(None).await?;
        Ok(state)
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
            KeyKeeperMsg::Wrap { key, data_id, key_id, reply } => {
                faults::hit(state.faults.as_ref(), "key_keeper.wrap").await?;
                state.hold_if_rotation_target(key_id.as_deref()).await;
                let _ = reply.send(state.wrap(&key, data_id, key_id));
            }
            KeyKeeperMsg::Rewrap { from, to, reply } => {
                if let Encryption::SseS3 { key_id, .. } = &from {
                    state.hold_if_rotation_target(Some(key_id)).await;
                }
                state.hold_if_rotation_target(Some(&to)).await;
                let _ = reply.send(state.rewrap(&from, to));
            }
            KeyKeeperMsg::Load { path, reply } => {
                let _ = reply.send(read_key(&path).await.map(|key| state.adopt(key)));
            }
            KeyKeeperMsg::Unwrap { key_id, key, reply } => {
                state.hold_if_rotation_target(Some(&key_id)).await;
                let _ = reply.send(state.unwrap(&key_id, &key));
            }
        }
        Ok(())
    }
}

impl KeyKeeperState {
    /// Loads the recorded rotation's target key if the keyring lacks it (`wanted`: only if it is that key). A
    /// metadata read only when the keyring lacks `wanted`; a file read only for the rotation's own target. What
    /// cannot be loaded is logged, and the request that wanted it fails as before (unknown key).
    async fn hold_if_rotation_target(&mut self, wanted: Option<&str>) {
        if let Some(id) = wanted.filter(|id| !self.keys.contains_key(*id)) {
            if let Err(e) = self.hold_rotation_target(Some(id)).await {
                tracing::warn!(key_id = %id, error = %e, "could not read the recorded rotation");
            }
        }
    }

    /// Loads the target key of the rotation recorded in metadata (when `only` is given, only if that is its
    /// id) from the file the rotation names, unless the keyring holds it.
    async fn hold_rotation_target(&mut self, only: Option<&str>) -> Result<()> {
        let settings = self.meta.read(|r| r.encryption_settings()).await?;
        let Some(rotation) = settings.rotation.filter(|r| only.is_none_or(|id| r.to_key_id == id)) else {
            return Ok(());
        };
        let std::collections::btree_map::Entry::Vacant(slot) = self.keys.entry(rotation.to_key_id.clone()) else {
            return Ok(());
        };
        match read_key(Path::new(&rotation.key_file)).await {
            Ok(key) if key.id().as_str() == rotation.to_key_id => {
                tracing::warn!(
                    key_id = %rotation.to_key_id,
                    key_file = %rotation.key_file,
                    "loaded the rotated-to master key from the file named by the rotation; make it this node's --master-key-file"
                );
                slot.insert(key);
            }
            Ok(other) => tracing::error!(
                key_file = %rotation.key_file,
                expected = %rotation.to_key_id,
                found = %other.id(),
                "the rotation's key file now holds another key; records wrapped under the expected key cannot be read"
            ),
            Err(e) => tracing::error!(
                key_file = %rotation.key_file,
                key_id = %rotation.to_key_id,
                error = %e,
                "cannot load the master key a rotation moved to"
            ),
        }
        Ok(())
    }

    /// Takes a key into the keyring and answers its id.
    fn adopt(&mut self, key: MasterKey) -> String {
        let id = key.id().as_str().to_string();
        self.keys.insert(id.clone(), key);
        id
    }

    fn wrap(&self, key: &DataKey, data_id: [u8; DATA_ID_LEN], key_id: Option<String>) -> Result<Encryption> {
        let key_id = key_id.or_else(|| self.active.clone()).ok_or(ActorError::NoMasterKey)?;
        let master = self.keys.get(&key_id).ok_or_else(|| ActorError::UnknownKeyId(key_id.clone()))?;
        let wrapped = WrappedKey { format: SEAL_FORMAT_V1, data_id, wrapped: master.wrap(key).to_vec() };
        Ok(Encryption::SseS3 { key_id, key: wrapped })
    }

    fn rewrap(&self, from: &Encryption, to: String) -> Result<Encryption> {
        let Encryption::SseS3 { key_id, key } = from else {
            return Err(ActorError::Invalid("only SSE-S3 data keys are wrapped under a master key".into()));
        };
        let dek = self.unwrap(key_id, key)?;
        self.wrap(&dek, key.data_id, Some(to))
    }

    fn unwrap(&self, key_id: &str, key: &WrappedKey) -> Result<DataKey> {
        let master = self.keys.get(key_id).ok_or_else(|| ActorError::UnknownKeyId(key_id.to_string()))?;
        check_format(key)?;
        master.unwrap(&key.wrapped).map_err(|_| ActorError::KeyUnwrap(format!("under master key {key_id}")))
    }
}

/// Reads a master key file on a blocking thread (inline in the simulation), within [`KEY_FILE_DEADLINE`]: a
/// slow or stuck file system delays only this answer, never the actor's thread. The error names the file and
/// what was wrong, never the key or the file's size.
async fn read_key(path: &Path) -> Result<MasterKey> {
    let owned = path.to_path_buf();
    let read = exec::blocking(move || MasterKey::load(&owned));
    match tokio::time::timeout(KEY_FILE_DEADLINE, read).await {
        Err(_) => Err(ActorError::Timeout("reading the master key file")),
        Ok(Err(_)) => Err(ActorError::Unavailable("the master key file reader")),
        Ok(Ok(loaded)) => loaded.map_err(|e| ActorError::Invalid(format!("master key: {e}"))),
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

    /// Wraps `key` under master key `key_id` (the active key metadata names; `None`: the configured key):
    /// the SSE-S3 record of an object with data id `data_id`.
    pub async fn wrap(
        &self,
        key: Arc<DataKey>,
        data_id: [u8; DATA_ID_LEN],
        key_id: Option<String>,
    ) -> Result<Encryption> {
        self.slot.call(|reply| KeyKeeperMsg::Wrap { key, data_id, key_id, reply }, KEY_KEEPER_DEADLINE).await?
    }

    /// Rewraps an SSE-S3 record's data key under master key `to`; the data key stays in the KeyKeeper.
    pub async fn rewrap(&self, from: Encryption, to: String) -> Result<Encryption> {
        self.slot.call(|reply| KeyKeeperMsg::Rewrap { from, to, reply }, KEY_KEEPER_DEADLINE).await?
    }

    /// Loads the key file at `path` (a path on this node) into the keyring; answers the key's id.
    pub async fn load(&self, path: PathBuf) -> Result<String> {
        self.slot.call(|reply| KeyKeeperMsg::Load { path, reply }, KEY_KEEPER_DEADLINE).await?
    }

    pub async fn unwrap(&self, key_id: &str, key: &WrappedKey) -> Result<DataKey> {
        let key_id = key_id.to_string();
        let key = key.clone();
        self.slot.call(|reply| KeyKeeperMsg::Unwrap { key_id, key, reply }, KEY_KEEPER_DEADLINE).await?
    }
}
