//! The rotation actor: carries out a master-key rotation recorded in metadata (`hoard cluster rotate-key`)
//! by rewrapping every SSE-S3 data key under the new key, a batch at a time. No object byte is read or
//! written: only the wrapped keys in metadata change.
//!
//! Invariants:
//! - All progress lives in metadata (the rotation's cursor moves in the same Raft command as the batch it
//!   covers), so a node killed at any moment resumes where the last committed batch left off.
//! - A rewrap is applied only if the record still carries the wrapping the walk read, so a record
//!   replaced or deleted meanwhile is never brought back or changed.
//! - Data keys are rewrapped inside the KeyKeeper; this actor only sees wrapped keys. The sealed root
//!   credential's data key is rewrapped at the start of every pass, like a record's.
//! - The walk finishes only after a pass during which no record wrapped under another key was written
//!   (metadata sets `again` when one is).

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use hoard_protocol::AccessKeyRecord;
use hoard_protocol::Encryption;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::ObjectRecord;
use hoard_protocol::Rewrap;
use hoard_protocol::RewrapTarget;
use hoard_protocol::Rotation;
use hoard_protocol::RotationCursor;
use hoard_protocol::StoredCredential;
use hoard_protocol::UploadRecord;
use hoard_protocol::VersionRecord;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;

use crate::error::ActorError;
use crate::error::Result;
use crate::faults;
use crate::slot::Slot;
use crate::NodeContext;

/// Records read (and at most rewrapped) per Raft command.
pub const ROTATION_BATCH: usize = 64;
/// How often an idle actor looks for an unfinished rotation (one started elsewhere, reopened by a late
/// write, or stopped by an error such as a missing key).
pub const ROTATION_POLL: Duration = Duration::from_secs(5);

pub struct RotationActor;

pub enum RotationMsg {
    /// Walk on if a rotation is unfinished (does nothing while a walk is under way).
    Kick,
    /// One batch of the walk.
    Step,
}

pub struct RotationState {
    ctx: NodeContext,
    walking: bool,
}

/// Shared with the admin API: the last error that stopped the walk, for `cluster status`.
#[derive(Clone, Default)]
pub struct RotationStatus {
    last_error: Arc<Mutex<Option<String>>>,
}

impl RotationStatus {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

impl Actor for RotationActor {
    type Msg = RotationMsg;
    type State = RotationState;
    type Arguments = NodeContext;

    async fn pre_start(
        &self,
        me: ActorRef<RotationMsg>,
        ctx: NodeContext,
    ) -> std::result::Result<RotationState, ActorProcessingErr> {
        me.send_interval(ROTATION_POLL, || RotationMsg::Kick);
        // A node that restarts mid-rotation goes on at once.
        me.cast(RotationMsg::Kick)?;
        Ok(RotationState { ctx, walking: false })
    }

    async fn handle(
        &self,
        me: ActorRef<RotationMsg>,
        msg: RotationMsg,
        state: &mut RotationState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            RotationMsg::Kick if state.walking => {}
            RotationMsg::Kick | RotationMsg::Step => match step(&state.ctx).await {
                Ok(true) => {
                    state.walking = true;
                    state.ctx.rotation.status.set(None);
                    me.cast(RotationMsg::Step)?;
                }
                Ok(false) => state.walking = false,
                Err(e) => {
                    // Retried on the next poll; the error is shown by `cluster status`.
                    tracing::warn!(error = %e, "master-key rotation stopped; retrying");
                    state.ctx.rotation.status.set(Some(e.to_string()));
                    state.walking = false;
                }
            },
        }
        Ok(())
    }
}

/// One batch of the walk; `true` while the rotation is unfinished.
async fn step(ctx: &NodeContext) -> Result<bool> {
    let settings = ctx.meta.read(|r| r.encryption_settings()).await?;
    let Some(rotation) = settings.rotation.filter(|r| r.finished_ms.is_none()) else {
        return Ok(false);
    };
    let (rewraps, cursor) = batch(ctx, &rotation).await?;
    faults::hit(ctx.faults.as_ref(), "rotation.batch").await?;
    let cmd =
        MetaCommand::RewrapBatch { to_key_id: rotation.to_key_id.clone(), rewraps, cursor, now_ms: ctx.env.now_ms() };
    match ctx.meta.write(cmd).await? {
        MetaResponse::Rewrapped { count } => {
            if count > 0 {
                tracing::debug!(count, to_key_id = %rotation.to_key_id, "rewrapped a batch of data keys");
            }
            Ok(true)
        }
        // Another rotation took over; the next step reads it.
        MetaResponse::RotationInProgress { .. } => Ok(true),
        other => Err(ActorError::Refused(other)),
    }
}

/// The rewraps of the records after the cursor, and where the cursor goes next.
async fn batch(ctx: &NodeContext, rotation: &Rotation) -> Result<(Vec<Rewrap>, RotationCursor)> {
    let to = rotation.to_key_id.as_str();
    match &rotation.cursor {
        RotationCursor::Objects { after } => {
            let first_page = after.is_none();
            let after = after.clone();
            let page = ctx.meta.read(move |r| r.objects_after(after.as_deref(), ROTATION_BATCH)).await?;
            let target = |o: &ObjectRecord| RewrapTarget::Object {
                bucket: o.bucket.clone(),
                key: o.key.clone(),
                version_id: o.version_id.clone(),
            };
            let mut rewraps = rewraps_of(ctx, &page, to, |o| &o.encryption, target).await?;
            if first_page {
                // Each pass begins with the sealed root credential, whose data key is wrapped like an object's.
                if let Some(StoredCredential::Sealed { key, .. }) = ctx.meta.read(|r| r.root_credential()).await? {
                    if let Some(after) = rewrapped(ctx, &key, to).await? {
                        rewraps.push(Rewrap { target: RewrapTarget::RootCredential, before: key, after });
                    }
                }
            }
            let next = |after| RotationCursor::Objects { after };
            Ok((rewraps, next_cursor(&page, next, RotationCursor::Uploads { after: None })))
        }
        RotationCursor::Uploads { after } => {
            let after = after.clone();
            let page = ctx.meta.read(move |r| r.uploads_after(after.as_deref(), ROTATION_BATCH)).await?;
            let target = |u: &UploadRecord| RewrapTarget::Upload {
                bucket: u.bucket.clone(),
                key: u.key.clone(),
                upload_id: u.upload_id.clone(),
            };
            let rewraps = rewraps_of(ctx, &page, to, |u| &u.encryption, target).await?;
            let next = |after| RotationCursor::Uploads { after };
            Ok((rewraps, next_cursor(&page, next, RotationCursor::Versions { after: None })))
        }
        RotationCursor::Versions { after } => {
            let after = after.clone();
            let page = ctx.meta.read(move |r| r.versions_after(after.as_deref(), ROTATION_BATCH)).await?;
            let target = |v: &VersionRecord| RewrapTarget::Object {
                bucket: v.bucket().to_string(),
                key: v.key().to_string(),
                version_id: v.version_id().to_string(),
            };
            let rewraps = rewraps_of(ctx, &page, to, version_encryption, target).await?;
            let next = |after| RotationCursor::Versions { after };
            Ok((rewraps, next_cursor(&page, next, RotationCursor::AccessKeys { after: None })))
        }
        RotationCursor::AccessKeys { after } => {
            let after = after.clone();
            let page = ctx.meta.read(move |r| r.access_keys_after(after.as_deref(), ROTATION_BATCH)).await?;
            let target = |k: &AccessKeyRecord| RewrapTarget::AccessKey { access_key: k.credential.access_key().into() };
            let rewraps = rewraps_of(ctx, &page, to, access_key_encryption, target).await?;
            let next = |after| RotationCursor::AccessKeys { after };
            Ok((rewraps, next_cursor(&page, next, RotationCursor::End)))
        }
        RotationCursor::End => Ok((Vec::new(), RotationCursor::End)),
    }
}

/// How an access key's secret is sealed (one in clear has no data key).
fn access_key_encryption(record: &AccessKeyRecord) -> &Encryption {
    static UNSEALED: Encryption = Encryption::None;
    match &record.credential {
        StoredCredential::Sealed { key, .. } => key,
        StoredCredential::Plain(_) => &UNSEALED,
    }
}

/// How a version's bytes are protected (a delete marker has none).
fn version_encryption(version: &VersionRecord) -> &Encryption {
    static UNSEALED: Encryption = Encryption::None;
    match version {
        VersionRecord::Object(o) => &o.encryption,
        VersionRecord::DeleteMarker(_) => &UNSEALED,
    }
}

/// The rewraps of a page's records that are SSE-S3 under a key other than `to`.
async fn rewraps_of<T>(
    ctx: &NodeContext,
    page: &[(Vec<u8>, T)],
    to: &str,
    encryption: impl Fn(&T) -> &Encryption,
    target: impl Fn(&T) -> RewrapTarget,
) -> Result<Vec<Rewrap>> {
    let mut rewraps = Vec::new();
    for (_, record) in page {
        let before = encryption(record);
        if let Some(after) = rewrapped(ctx, before, to).await? {
            rewraps.push(Rewrap { target: target(record), before: before.clone(), after });
        }
    }
    Ok(rewraps)
}

/// After a full page, the cursor stays in its keyspace after the page's last key; after a short one it
/// moves on to `then`.
fn next_cursor<T>(
    page: &[(Vec<u8>, T)],
    here: impl Fn(Option<Vec<u8>>) -> RotationCursor,
    then: RotationCursor,
) -> RotationCursor {
    match page.last() {
        Some((key, _)) if page.len() == ROTATION_BATCH => here(Some(key.clone())),
        _ => then,
    }
}

/// The record's wrapping under `to`, if it is an SSE-S3 record wrapped under another key.
async fn rewrapped(ctx: &NodeContext, encryption: &Encryption, to: &str) -> Result<Option<Encryption>> {
    match encryption {
        Encryption::SseS3 { key_id, .. } if key_id != to => {
            Ok(Some(ctx.key_keeper.rewrap(encryption.clone(), to.to_string()).await?))
        }
        _ => Ok(None),
    }
}

#[derive(Clone)]
pub struct RotationHandle {
    pub slot: Slot<RotationMsg>,
    pub status: RotationStatus,
}

impl Default for RotationHandle {
    fn default() -> Self {
        RotationHandle { slot: Slot::new("rotation"), status: RotationStatus::default() }
    }
}

impl RotationHandle {
    /// Asks the actor to walk now (after a rotation was started).
    pub fn kick(&self) -> Result<()> {
        self.slot.cast(RotationMsg::Kick)
    }
}
