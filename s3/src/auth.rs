//! Credentials: who may sign requests, and how the root credential is kept.
//!
//! Invariants:
//! - Secret keys are compared only inside s3s's SigV4 check; they are never logged.
//! - A root credential given by the operator (`HOARD_ROOT_ACCESS_KEY`/`HOARD_ROOT_SECRET_KEY`) lives only in
//!   the process's memory. One hoard made lives in metadata: sealed under the master key where the node
//!   holds one ([`seal`]), so the Raft log and snapshots never hold its secret in clear; in clear otherwise.
//! - A stored credential is read from the local state machine at every signed request and opened again only
//!   when it changed, so `hoard cluster rotate-root-key` takes effect on every node as soon as the node has
//!   applied it, with no restart. Access keys besides root (`hoard key create`) are kept the same way (sealed
//!   where the node has a master key) and looked up after root: deleting one refuses its next request on
//!   every node that has applied the delete.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

use hoard_actors::error::ActorError;
use hoard_actors::NodeContext;
use hoard_protocol::Credential;
use hoard_protocol::Encryption;
use hoard_protocol::StoredCredential;
use hoard_storage::seal::DataKey;
use hoard_storage::seal::Sealer;
use hoard_storage::seal::DATA_ID_LEN;
use s3s::auth::S3Auth;
use s3s::auth::SecretKey;
use s3s::s3_error;
use s3s::S3Result;

use crate::error::OrS3;

pub enum Credentials {
    /// Given by the operator: fixed for the life of the process.
    Given(HashMap<String, SecretKey>),
    /// Kept in metadata.
    Stored(Box<Kept>),
}

/// The node whose metadata keeps the credential, and the last stored form opened, with what it opened to.
pub struct Kept {
    ctx: NodeContext,
    opened: Mutex<Option<(StoredCredential, Arc<Credential>)>>,
}

impl Credentials {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Credentials::Given(pairs.into_iter().map(|(a, s)| (a, SecretKey::from(s))).collect())
    }

    /// The root credential kept in `ctx`'s metadata.
    pub fn stored(ctx: NodeContext) -> Self {
        Credentials::Stored(Box::new(Kept { ctx, opened: Mutex::new(None) }))
    }

    /// Whether the credential is the operator's (and so cannot be rotated by hoard).
    pub fn is_given(&self) -> bool {
        matches!(self, Credentials::Given(_))
    }
}

impl Kept {
    /// The credential in force on this node: read from the local state machine, opened again only when it
    /// changed.
    async fn current(&self) -> S3Result<Arc<Credential>> {
        let (ctx, opened) = (&self.ctx, &self.opened);
        let stored = ctx.meta.local().and_then(|r| r.root_credential().map_err(|e| ActorError::Meta(e.to_string())));
        let stored = stored.or_s3()?.ok_or_else(|| s3_error!(InternalError, "no root credential is stored"))?;
        if let Some((known, credential)) = opened.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if *known == stored {
                return Ok(credential.clone());
            }
        }
        let credential = Arc::new(open(ctx, &stored).await.or_s3()?);
        *opened.lock().unwrap_or_else(|p| p.into_inner()) = Some((stored, credential.clone()));
        Ok(credential)
    }
}

fn unknown_key() -> s3s::S3Error {
    s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
}

#[async_trait::async_trait]
impl S3Auth for Credentials {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self {
            Credentials::Given(keys) => keys.get(access_key).cloned().ok_or_else(unknown_key),
            Credentials::Stored(kept) => {
                let credential = kept.current().await?;
                if credential.access_key != access_key {
                    return Err(unknown_key());
                }
                Ok(SecretKey::from(credential.secret_key.clone()))
            }
        }
    }
}

/// Who may sign requests on a node: root, then the access keys kept in metadata. Shared by the S3 layer's
/// SigV4 check and the browser form uploads' (whose signature is in the form, see `post`).
#[derive(Clone)]
pub struct SharedCredentials {
    pub root: Arc<Credentials>,
    /// `None` only where no metadata is at hand (the fuzz harness): root alone signs.
    pub keys: Option<Arc<AccessKeys>>,
}

impl SharedCredentials {
    pub fn new(root: Credentials, ctx: Option<NodeContext>) -> Self {
        let keys = ctx.map(|ctx| Arc::new(AccessKeys { ctx, opened: Mutex::new(HashMap::new()) }));
        SharedCredentials { root: Arc::new(root), keys }
    }

    /// Who signed with `access_key`: root, an access key, or nobody (`None`).
    pub async fn principal(&self, access_key: Option<&str>) -> S3Result<crate::access::Principal> {
        use crate::access::Principal;
        match access_key {
            None => Ok(Principal::Anonymous),
            Some(key) if self.is_root(key).await? => Ok(Principal::Root),
            Some(key) => Ok(Principal::Key(key.to_string())),
        }
    }

    /// Whether `access_key` is root's (now: a rotated-away root key is nobody's).
    pub async fn is_root(&self, access_key: &str) -> S3Result<bool> {
        match self.root.as_ref() {
            Credentials::Given(keys) => Ok(keys.contains_key(access_key)),
            Credentials::Stored(kept) => Ok(kept.current().await?.access_key == access_key),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for SharedCredentials {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.root.get_secret_key(access_key).await {
            Err(e) if *e.code() == s3s::S3ErrorCode::InvalidAccessKeyId => match &self.keys {
                Some(keys) => keys.secret(access_key).await,
                None => Err(e),
            },
            found => found,
        }
    }
}

/// The most opened access-key secrets a node keeps at once; past it the cache starts again empty.
const MAX_OPENED_KEYS: usize = 4096;

/// The access keys besides root (`hoard key create`), read from the local state machine at every request,
/// each opened again only when its stored form changed (a deleted key is refused at once; a sealed secret
/// is opened by the KeyKeeper once, not at every request).
pub struct AccessKeys {
    ctx: NodeContext,
    opened: Mutex<HashMap<String, (StoredCredential, Arc<Credential>)>>,
}

impl AccessKeys {
    async fn secret(&self, access_key: &str) -> S3Result<SecretKey> {
        let ctx = &self.ctx;
        let record =
            ctx.meta.local().and_then(|r| r.access_key(access_key).map_err(|e| ActorError::Meta(e.to_string())));
        let Some(record) = record.or_s3()? else {
            return Err(unknown_key());
        };
        let cached = {
            let opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
            opened.get(access_key).filter(|(known, _)| *known == record.credential).map(|(_, c)| c.clone())
        };
        let credential = match cached {
            Some(c) => c,
            None => {
                let credential = Arc::new(open(ctx, &record.credential).await.or_s3()?);
                let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
                if opened.len() >= MAX_OPENED_KEYS {
                    opened.clear();
                }
                opened.insert(access_key.to_string(), (record.credential, credential.clone()));
                credential
            }
        };
        Ok(SecretKey::from(credential.secret_key.clone()))
    }
}

/// A fresh credential (root's, or an access key's): 20 characters of access key, 40 of secret, from the node's
/// random source.
pub fn generate(ctx: &NodeContext) -> Credential {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 60];
    ctx.env.fill_random(&mut bytes);
    let access_key = bytes[..20].iter().map(|b| UPPER[(*b as usize) % UPPER.len()] as char).collect();
    let secret_key = bytes[20..].iter().map(|b| MIXED[(*b as usize) % MIXED.len()] as char).collect();
    Credential { access_key, secret_key }
}

/// The credential as metadata should keep it: sealed under the node's active master key when it holds one
/// (a fresh data key wrapped like an object's seals the secret's bytes), in clear otherwise.
pub async fn seal(ctx: &NodeContext, credential: &Credential) -> Result<StoredCredential, ActorError> {
    if !ctx.key_keeper.has_key().await? {
        return Ok(StoredCredential::Plain(credential.clone()));
    }
    let active = ctx.meta.read(|r| r.encryption_settings()).await?.active_key_id;
    let key = Arc::new(DataKey::generate(|buf| ctx.env.fill_random(buf)));
    let mut data_id = [0u8; DATA_ID_LEN];
    ctx.env.fill_random(&mut data_id);
    let secret = Sealer::new(&key, data_id, 0, 0).seal(0, true, credential.secret_key.as_bytes())?;
    let wrapped = ctx.key_keeper.wrap(key, data_id, active).await?;
    Ok(StoredCredential::Sealed { access_key: credential.access_key.clone(), key: wrapped, secret })
}

/// Opens a stored credential: a sealed one through the KeyKeeper, which must hold the master key named.
pub async fn open(ctx: &NodeContext, stored: &StoredCredential) -> Result<Credential, ActorError> {
    match stored {
        StoredCredential::Plain(credential) => Ok(credential.clone()),
        StoredCredential::Sealed { access_key, key, secret } => {
            let Encryption::SseS3 { key_id, key: wrapped } = key else {
                return Err(ActorError::Invalid("a sealed root credential must be wrapped under a master key".into()));
            };
            let dek = ctx.key_keeper.unwrap(key_id, wrapped).await?;
            let plain = zeroize::Zeroizing::new(Sealer::new(&dek, wrapped.data_id, 0, 0).open(0, true, secret)?);
            let secret_key = std::str::from_utf8(&plain)
                .map_err(|_| ActorError::Invalid("the sealed root secret is not text".into()))?
                .to_string();
            Ok(Credential { access_key: access_key.clone(), secret_key })
        }
    }
}
