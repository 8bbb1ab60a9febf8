//! hoard's wire and log types: everything that crosses the network or goes into the Raft log.
//!
//! Invariants kept here:
//! - Every type that is persisted or sent is reached through a versioned encoding ([`encode`]/[`decode`]
//!   prefix the type's own version, and read every earlier one: see [`format`]), so a node reads what an
//!   older one wrote.
//! - Enums only ever grow at the end: bincode numbers variants by position, so a new variant appended
//!   keeps every old encoding valid. Never reorder or remove a variant; add a new one instead.
//! - Ids are random and never reused: a segment id names one upload of one stream of bytes.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;

pub mod format;
pub mod names;
pub mod rpc;

pub use format::decode;
pub use format::encode;
pub use format::Persisted;
pub use format::ProtocolError;

use serde::Deserialize;
use serde::Serialize;

/// A node of the cluster. A one-node cluster has node 1.
pub type NodeId = u64;

/// The version byte that led every persisted value before types had versions of their own; every type
/// written then is at version 1.
pub const FORMAT_V1: u8 = 1;

// The stored and sent types, each at version 1 (see `format` for how a type moves to version 2).
persisted_v1!(
    ObjectRecord,
    BucketRecord,
    UploadRecord,
    PartRecord,
    RepairRecord,
    Segment,
    EncryptionSettings,
    Rotation,
    Rewrap,
    Credential,
    StoredCredential,
    MetaCommand,
    MetaResponse,
    NodeAddr,
    ClusterRecord,
    StaleCopy,
    Draining,
    VersioningStatus,
    VersionRecord,
    AccessKeyRecord,
    Grant,
);

/// One disk of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DiskRef {
    pub node: NodeId,
    /// Index of the disk in the node's disk list.
    pub disk: u32,
}

/// A random 128-bit id naming one written stream of shard files (one PUT body, or one part upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SegmentId(pub u128);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl SegmentId {
    pub fn parse(s: &str) -> Option<SegmentId> {
        if s.len() != 32 {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(SegmentId)
    }
}

/// Where and how one segment's bytes are coded: `data + parity` shards, shard `i` on `disks[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLayout {
    pub data: u8,
    pub parity: u8,
    /// Bytes of the stored stream per block (the last block may be shorter).
    pub block_size: u32,
    pub disks: Vec<DiskRef>,
}

impl ShardLayout {
    pub fn width(&self) -> usize {
        self.data as usize + self.parity as usize
    }
}

/// Bytes of the tag that follows every sealed block (AES-256-GCM).
pub const SEAL_TAG_LEN: u64 = 16;

/// One stream of bytes stored as shard files: a whole single-PUT object, or one part of a multipart object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub id: SegmentId,
    /// Part number for multipart objects, 0 for a single PUT.
    pub part_number: u32,
    /// Length of the stored stream in bytes (ciphertext and tags when sealed).
    pub size: u64,
    pub layout: ShardLayout,
    /// Present when the stream is sealed: then each stored block is one sealed block of
    /// `layout.block_size - SEAL_TAG_LEN` plaintext bytes plus its tag.
    pub seal: Option<SegmentSeal>,
}

/// A segment waiting for repair on this node and the shards found damaged in it. Kept node-locally (never
/// replicated, never in a snapshot) so that repair picks up where it left off after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRecord {
    pub segment: Segment,
    /// Indexes of the damaged shards, sorted, without repeats.
    pub shards: Vec<u8>,
}

/// How a segment's blocks were sealed, besides the object's data key and data id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSeal {
    /// The random nonce salt drawn for this upload of this part.
    pub salt: u64,
}

impl Segment {
    /// Plaintext bytes per block.
    pub fn plain_block(&self) -> u64 {
        let stored = u64::from(self.layout.block_size);
        match self.seal {
            Some(_) => stored.saturating_sub(SEAL_TAG_LEN),
            None => stored,
        }
    }

    /// Length of the segment's plaintext.
    pub fn plain_size(&self) -> u64 {
        match self.seal {
            None => self.size,
            Some(_) => {
                let stored_block = u64::from(self.layout.block_size).max(1);
                let blocks = self.size.div_ceil(stored_block).max(1);
                self.size.saturating_sub(blocks * SEAL_TAG_LEN)
            }
        }
    }
}

/// Checksums a client asked for (`x-amz-checksum-*`), base64 as S3 returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub crc64nvme: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE` for multipart objects.
    pub checksum_type: Option<String>,
}

/// The HTTP headers an object keeps and returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
}

/// How an object's bytes are protected at rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encryption {
    /// Stored as sent.
    #[default]
    None,
    /// SSE-S3: the data key is wrapped by the master key named `key_id`.
    SseS3 { key_id: String, key: WrappedKey },
    /// SSE-C: the data key is wrapped by the customer's key, which hoard never keeps.
    SseC { key: WrappedKey },
}

impl Encryption {
    pub fn wrapped(&self) -> Option<&WrappedKey> {
        match self {
            Encryption::None => None,
            Encryption::SseS3 { key, .. } | Encryption::SseC { key } => Some(key),
        }
    }
}

/// An object's data key as stored: wrapped, with the data id that binds its sealed blocks.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The sealed chunk format (1).
    pub format: u8,
    /// Random, made with the data key; bound into every block. Not secret.
    pub data_id: [u8; 16],
    /// The data key under AES key wrap (RFC 3394): 40 bytes.
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
}

/// Prints the data id only: a wrapped key is not secret, but nothing key-shaped goes into logs.
impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey").field("format", &self.format).field("data_id", &hex_of(&self.data_id)).finish()
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A bucket's default encryption (PutBucketEncryption).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketEncryption {
    /// Objects written without SSE headers are SSE-S3.
    SseS3,
}

/// Node- or cluster-wide encryption settings, changed only through Raft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionSettings {
    /// Every new write is SSE-S3 unless it asks for SSE-C (`hoard cluster encrypt`; never turned off).
    pub encrypt_all: bool,
    /// The master key id new SSE-S3 data keys are wrapped under (`None`: the node's configured key).
    pub active_key_id: Option<String>,
    /// The latest master-key rotation, running or finished.
    pub rotation: Option<Rotation>,
}

/// A master-key rotation (`hoard cluster rotate-key`): every SSE-S3 data key is rewrapped under
/// `to_key_id`; no object bytes are rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The key rewrapped to; also the active key for new writes from the start of the rotation.
    pub to_key_id: String,
    /// Where nodes load that key from: a path on the node, never the key itself.
    pub key_file: String,
    pub started_ms: i64,
    /// How far the walk has got.
    pub cursor: RotationCursor,
    /// Set when a record wrapped under another key is written while the walk runs (it may be behind
    /// the cursor): the walk then starts one more pass instead of finishing.
    pub again: bool,
    /// Data keys rewrapped so far, over every pass.
    pub rewrapped: u64,
    pub finished_ms: Option<i64>,
}

/// Where a rotation's walk is: after `after` (a metadata map key, exclusive) among objects, then among
/// multipart uploads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationCursor {
    Objects {
        after: Option<Vec<u8>>,
    },
    Uploads {
        after: Option<Vec<u8>>,
    },
    /// The walk reached the end.
    End,
    /// Among the noncurrent versions of versioned buckets (after the uploads).
    Versions {
        after: Option<Vec<u8>>,
    },
    /// Among the access keys' sealed secrets (after the versions).
    AccessKeys {
        after: Option<Vec<u8>>,
    },
}

/// One data key to rewrap: applied only if the record still carries `before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrap {
    pub target: RewrapTarget,
    pub before: Encryption,
    pub after: Encryption,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RewrapTarget {
    Object {
        bucket: String,
        key: String,
        version_id: String,
    },
    Upload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// The sealed root credential's data key.
    RootCredential,
    /// The data key sealing an access key's secret.
    AccessKey {
        access_key: String,
    },
}

/// A committed object: everything needed to read it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    /// A fresh random id for every write of the key, never reused.
    pub version_id: String,
    /// Plaintext length of the object.
    pub size: u64,
    /// Quoted-less ETag: MD5 hex for a single PUT, `md5-of-md5s-N` for multipart.
    pub etag: String,
    pub last_modified_ms: i64,
    pub headers: ObjectHeaders,
    pub checksums: Checksums,
    /// In order; their sizes add up to `size`. Empty when the bytes are inline.
    pub segments: Vec<Segment>,
    pub encryption: Encryption,
    /// The bytes of a small object, kept in the record itself (and so in the Raft log) instead of in
    /// shard files: one metadata commit is the whole write. Serialized as one run of bytes: the same bincode
    /// form as a sequence of bytes, but decoded element by element a 32 KiB body took a million instructions.
    #[serde(with = "serde_bytes")]
    pub inline: Option<Vec<u8>>,
}

impl ObjectRecord {
    /// Whether this is its key's null version (written while the bucket was not versioned).
    pub fn is_null_version(&self) -> bool {
        is_null_version_id(&self.version_id)
    }

    /// The version id clients see.
    pub fn public_version_id(&self) -> &str {
        public_version_id(&self.version_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    pub created_ms: i64,
    /// Default encryption for writes that ask for none (PutBucketEncryption).
    pub encryption: Option<BucketEncryption>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: i64,
    pub headers: ObjectHeaders,
    /// The checksum algorithm named at CreateMultipartUpload, if any (`CRC32`, `SHA256`, ...).
    pub checksum_algorithm: Option<String>,
    pub encryption: Encryption,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub part_number: u32,
    /// MD5 hex of the part's plaintext.
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: i64,
    pub checksums: Checksums,
    pub segment: Segment,
}

/// Root credentials kept in metadata when the operator did not give them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub access_key: String,
    pub secret_key: String,
}

/// Never prints the secret: Debug output ends up in logs and error messages.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential").field("access_key", &self.access_key).field("secret_key", &"<redacted>").finish()
    }
}

/// The root credential as metadata keeps it. Where the node that made it holds a master key, the secret is
/// sealed: a fresh data key, wrapped under the master key like an object's (and rewrapped by a rotation),
/// seals the secret's bytes (one AES-256-GCM block, bound to the key's data id), so neither the Raft log nor
/// a snapshot ever holds the secret in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredCredential {
    /// In clear: made on a node without a master key.
    Plain(Credential),
    /// `secret` is the secret key sealed under the data key that `key` (always `Encryption::SseS3`) wraps.
    Sealed {
        access_key: String,
        key: Encryption,
        #[serde(with = "serde_bytes")]
        secret: Vec<u8>,
    },
}

impl StoredCredential {
    pub fn access_key(&self) -> &str {
        match self {
            StoredCredential::Plain(c) => &c.access_key,
            StoredCredential::Sealed { access_key, .. } => access_key,
        }
    }
}

/// Every change to metadata. Applied in log order by every node; deterministic (times are chosen by the
/// proposer and carried in the command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    CreateBucket(BucketRecord),
    DeleteBucket {
        name: String,
    },
    /// The commit point of a single PUT or a copy: replaces any current version of the key.
    CommitObject {
        record: ObjectRecord,
        now_ms: i64,
    },
    /// Removes the key's current object when it is the null version (the delete of an unversioned bucket); a
    /// current object of a versioned write is left as it is ([`MetaResponse::PreconditionFailed`]).
    DeleteObject {
        bucket: String,
        key: String,
        now_ms: i64,
    },
    CreateUpload(UploadRecord),
    /// Records a part; replaces an earlier upload of the same part number.
    CommitPart {
        bucket: String,
        key: String,
        upload_id: String,
        part: PartRecord,
        now_ms: i64,
    },
    /// Turns an upload into an object. `record.segments` are taken from the named parts.
    CompleteUpload {
        upload_id: String,
        record: ObjectRecord,
        now_ms: i64,
    },
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
        now_ms: i64,
    },
    /// Stores root credentials generated at first start (only if none are stored yet).
    SetRootCredential(Credential),
    /// Forgets segments whose shard files scrub has deleted.
    ForgetGarbage {
        segments: Vec<SegmentId>,
    },
    /// A conditional write (`If-None-Match: *`, `If-Match: <etag>`): commits like `CommitObject` only if
    /// the key's current version satisfies `condition` when the command is applied.
    CommitObjectIf {
        record: ObjectRecord,
        now_ms: i64,
        condition: WriteCondition,
    },
    /// A copy that shares its source's segments: commits like `CommitObject` only if the source key still
    /// holds `source_version_id`, so segments the source's replacement queued as garbage are never taken.
    CommitCopy {
        record: ObjectRecord,
        now_ms: i64,
        source_bucket: String,
        source_key: String,
        source_version_id: String,
    },
    /// Sets (or with `None` removes) a bucket's default encryption.
    SetBucketEncryption {
        bucket: String,
        encryption: Option<BucketEncryption>,
    },
    /// Makes SSE-S3 the default for every new write (enable-only); `key_id` becomes the active master key
    /// unless one is already active.
    EncryptAll {
        key_id: String,
    },
    /// Starts a master-key rotation to `to_key_id` (which becomes the active key at once). Refused while
    /// a rotation to another key is unfinished; a rotation to the same key carries on where it was.
    StartRotation {
        to_key_id: String,
        key_file: String,
        now_ms: i64,
    },
    /// One step of a rotation's walk: rewraps what still matches and moves the cursor (to `End` finishes
    /// the rotation, unless a late write asks for one more pass).
    RewrapBatch {
        to_key_id: String,
        rewraps: Vec<Rewrap>,
        cursor: RotationCursor,
        now_ms: i64,
    },
    /// A conditional CompleteMultipartUpload: completes like `CompleteUpload` only if the key's current
    /// version satisfies `condition` when the command is applied; otherwise nothing changes and the upload
    /// stays open.
    CompleteUploadIf {
        upload_id: String,
        record: ObjectRecord,
        now_ms: i64,
        condition: WriteCondition,
    },
    /// Stores the root credential: only if none is stored yet, or in place of the stored one with `replace`
    /// (sealing a clear one, `hoard cluster rotate-root-key`).
    PutRootCredential {
        credential: StoredCredential,
        replace: bool,
    },
    /// DeleteBucket as S3 does it: refused while the bucket holds an object; otherwise the bucket and its
    /// unfinished multipart uploads go in one step (their parts become garbage). `DeleteBucket`, which is
    /// refused while an upload is open, stays as it was for the entries that already carry it.
    DeleteBucketAndUploads {
        name: String,
        now_ms: i64,
    },
    /// Records a join token (`hoard cluster token`) by the SHA-256 of its secret, valid until `expires_ms`.
    /// Tokens expired by `now_ms` are dropped; refused when [`MAX_JOIN_TOKENS`] are live.
    AddJoinToken {
        hash: [u8; 32],
        expires_ms: i64,
        now_ms: i64,
    },
    /// Spends a join token: when a live token has this hash, it is removed and the joining node, reached at
    /// `addr`, gets the next node id ([`MetaResponse::Admitted`]); otherwise [`MetaResponse::JoinRefused`].
    /// One entry, so a token admits one node however many joins present it at once.
    AdmitNode {
        hash: [u8; 32],
        addr: String,
        now_ms: i64,
    },
    /// Marks a node removed: its certificate is refused from now on, by every node, and its id is never
    /// given again.
    RemoveNode {
        node_id: NodeId,
        now_ms: i64,
    },
    /// Names the cluster's master key when none is named yet (the first node of a cluster to start with a
    /// key names it): every node then wraps new SSE-S3 data keys under it, and a node that lacks it refuses
    /// SSE-S3 instead of wrapping under a key of its own.
    SetActiveKey {
        key_id: String,
    },
    /// Moves shards to other disks (rebalance): each move whose `holders` are every record naming the
    /// segment, all with the shard still on `from`, points them at `to` and records the copy on `from` as
    /// stale (deleted after the grace period, so a read still streaming from it is not cut off). A move that
    /// does not hold any more (a record changed, a copy appeared) changes nothing. One entry, however many
    /// moves: each is all or nothing.
    MoveShards {
        moves: Vec<ShardMove>,
        now_ms: i64,
    },
    /// Forgets stale copies whose files are deleted.
    ForgetStaleCopies {
        copies: Vec<StaleCopy>,
    },
    /// Marks a node draining (its shards are moved to the other nodes, and no new shard goes to it) or not.
    SetDraining {
        node_id: NodeId,
        draining: bool,
    },
    /// Turns a bucket's versioning on or suspends it (a bucket never goes back to unversioned).
    SetBucketVersioning {
        bucket: String,
        status: VersioningStatus,
    },
    /// DELETE without a version id on a versioned bucket: the delete marker becomes the key's current
    /// version. The current object becomes noncurrent, or is removed when both it and the marker are the
    /// null version (see [`ObjectRecord::is_null_version`]); so is a noncurrent null version when the marker
    /// is one.
    PutDeleteMarker {
        marker: DeleteMarker,
        now_ms: i64,
    },
    /// Removes one version of a key for good (`versionId` as clients name it, `null` included). When it
    /// was the current one, the newest remaining version becomes current. A version that does not exist
    /// changes nothing.
    DeleteVersion {
        bucket: String,
        key: String,
        version_id: String,
        now_ms: i64,
    },
    /// Adds an access key besides root ([`MetaResponse::AccessKeyExists`] if its id is taken, root's included).
    PutAccessKey(AccessKeyRecord),
    /// Removes an access key and every grant it holds ([`MetaResponse::NoSuchAccessKey`] if there is none).
    DeleteAccessKey {
        access_key: String,
    },
    /// Sets what a key may do in a bucket; a grant of nothing removes the key's grant there.
    SetGrant {
        access_key: String,
        bucket: String,
        grant: Grant,
    },
    /// Sets (or with `None` removes) one of a bucket's access settings. The value is kept as the S3 layer
    /// gave it (which validated it); at most [`MAX_BUCKET_SETTING`] bytes.
    SetBucketSetting {
        bucket: String,
        setting: BucketSetting,
        value: Option<String>,
    },
    /// CreateBucket with its owner and first settings in one step: `owner` (an access key; `None` for root)
    /// gets a full grant and is recorded as the bucket's owner, and `settings` (an ACL asked for at creation)
    /// are set. Refused with [`MetaResponse::NoSuchAccessKey`] when the owner's key was deleted meanwhile.
    CreateOwnedBucket {
        record: BucketRecord,
        owner: Option<String>,
        settings: Vec<(BucketSetting, String)>,
    },
    /// Sets (or with `None` removes) the ACL of one version of an object (`version_id` as stored); kept with the
    /// version, under [`ACL_METADATA`] in its metadata. [`MetaResponse::NoSuchKey`] when the version is gone.
    SetObjectAcl {
        bucket: String,
        key: String,
        version_id: String,
        acl: Option<String>,
    },
    /// Lets an access key create buckets, or stops it ([`MetaResponse::NoSuchAccessKey`] if there is none).
    SetKeyCreatesBuckets {
        access_key: String,
        allowed: bool,
    },
    /// Several commands proposed together, so that they share one log entry and one fsync (group commit):
    /// applied in order, each on its own, as if each were its own entry; one that is refused changes nothing
    /// and the others still apply. Answered with [`MetaResponse::Batch`], one answer per command. At most
    /// [`MAX_BATCH_COMMANDS`] commands, none of them a batch.
    Batch(Vec<MetaCommand>),
}

/// The most commands one [`MetaCommand::Batch`] carries.
pub const MAX_BATCH_COMMANDS: usize = 64;

/// A bucket's access settings besides grants (`SetBucketSetting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketSetting {
    /// The bucket's ACL (canned or explicit grants).
    Acl,
    /// The bucket policy, as the client wrote it.
    Policy,
    /// Block Public Access.
    PublicAccessBlock,
    /// CORS rules.
    Cors,
}

impl BucketSetting {
    /// Its name in the state machine's keys.
    pub fn name(self) -> &'static str {
        match self {
            BucketSetting::Acl => "acl",
            BucketSetting::Policy => "policy",
            BucketSetting::PublicAccessBlock => "public_access_block",
            BucketSetting::Cors => "cors",
        }
    }
}

/// The most bytes a bucket setting may hold (a bucket policy may be 20 KiB; CORS rules up to 64 KiB).
pub const MAX_BUCKET_SETTING: usize = 128 * 1024;

/// Where an object version's ACL is kept among its metadata: a name no client's metadata can have (it is not
/// an HTTP header token), which the S3 layer drops from what clients send and never shows.
pub const ACL_METADATA: &str = "\u{0}acl";

impl ObjectHeaders {
    /// The ACL kept with the version, if one was set.
    pub fn acl(&self) -> Option<&str> {
        self.user_metadata.get(ACL_METADATA).map(String::as_str)
    }

    /// Sets or removes the kept ACL.
    pub fn set_acl(&mut self, acl: Option<String>) {
        match acl {
            Some(acl) => self.user_metadata.insert(ACL_METADATA.to_string(), acl),
            None => self.user_metadata.remove(ACL_METADATA),
        };
    }

    /// The metadata clients may see (without the kept ACL).
    pub fn client_metadata(&self) -> impl Iterator<Item = (&String, &String)> {
        self.user_metadata.iter().filter(|(k, _)| k.as_str() != ACL_METADATA)
    }
}

/// The most access keys a cluster keeps besides root (each is looked up at every request it signs; the number
/// bounds the Raft state they take).
pub const MAX_ACCESS_KEYS: usize = 10_000;

/// An access key besides root (`hoard key create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    /// What the operator calls it.
    pub name: String,
    /// The key id and its secret, kept as the root's is: sealed under the master key where the node that made
    /// it holds one.
    pub credential: StoredCredential,
    pub created_ms: i64,
    /// Whether it may create buckets (it owns those it creates).
    pub may_create_buckets: bool,
}

/// What an access key may do in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// List, GET and HEAD.
    pub read: bool,
    /// PUT, copy into, multipart, DELETE.
    pub write: bool,
    /// The bucket's settings (versioning, encryption, and later ACLs and policies) and its deletion.
    pub owner: bool,
}

impl Grant {
    pub fn is_none(&self) -> bool {
        !(self.read || self.write || self.owner)
    }
}

/// The version id S3 clients see for the null version: the one written while the bucket was not versioned
/// (or was suspended). A key has at most one.
pub const NULL_VERSION_ID: &str = "null";

/// How the version ids of versioned writes start: [`VERSIONED_ID_PREFIX`] and 32 lowercase hex digits. A
/// null version's id (32 hex digits, as every id was before buckets had versioning) never has this form.
pub const VERSIONED_ID_PREFIX: char = 'v';

/// Whether a stored version id marks the null version: every id but a versioned write's.
pub fn is_null_version_id(version_id: &str) -> bool {
    let Some(digits) = version_id.strip_prefix(VERSIONED_ID_PREFIX) else { return true };
    !(digits.len() == 32 && digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// A new version id for a write: versioned (see [`VERSIONED_ID_PREFIX`]) or a null version's.
pub fn new_version_id(random: u128, versioned: bool) -> String {
    if versioned {
        format!("{VERSIONED_ID_PREFIX}{random:032x}")
    } else {
        format!("{random:032x}")
    }
}

/// The version id a client sees for a stored one.
pub fn public_version_id(version_id: &str) -> &str {
    if is_null_version_id(version_id) {
        NULL_VERSION_ID
    } else {
        version_id
    }
}

/// A bucket's versioning (PutBucketVersioning). A bucket that never had it has no status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersioningStatus {
    Enabled,
    Suspended,
}

/// A delete marker: a version that says the key was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteMarker {
    pub bucket: String,
    pub key: String,
    /// As an object's: [`VERSIONED_ID_PREFIX`] and 32 hex digits, or 32 hex digits for the null version.
    pub version_id: String,
    pub last_modified_ms: i64,
}

/// A version of a key that is not its current object: a noncurrent object, or a delete marker (which may
/// be the current version: a key whose newest version is a delete marker has no current object).
// Nearly every version is an object: boxing it would cost an allocation on each read to save space only in
// the rare delete marker.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionRecord {
    Object(ObjectRecord),
    DeleteMarker(DeleteMarker),
}

impl VersionRecord {
    pub fn version_id(&self) -> &str {
        match self {
            VersionRecord::Object(o) => &o.version_id,
            VersionRecord::DeleteMarker(m) => &m.version_id,
        }
    }

    pub fn bucket(&self) -> &str {
        match self {
            VersionRecord::Object(o) => &o.bucket,
            VersionRecord::DeleteMarker(m) => &m.bucket,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            VersionRecord::Object(o) => &o.key,
            VersionRecord::DeleteMarker(m) => &m.key,
        }
    }

    pub fn last_modified_ms(&self) -> i64 {
        match self {
            VersionRecord::Object(o) => o.last_modified_ms,
            VersionRecord::DeleteMarker(m) => m.last_modified_ms,
        }
    }

    pub fn is_delete_marker(&self) -> bool {
        matches!(self, VersionRecord::DeleteMarker(_))
    }
}

/// A record that names a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentHolder {
    /// The current version of an object.
    Object { bucket: String, key: String },
    /// An uploaded part of a multipart upload in progress.
    Part { upload_id: String, part_number: u32 },
    /// A noncurrent version of an object (`version_id` as clients name it).
    Version { bucket: String, key: String, version_id: String },
}

/// One shard of a segment moved from one disk to another; its bytes are already on `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMove {
    pub segment: SegmentId,
    pub shard: u8,
    pub from: DiskRef,
    pub to: DiskRef,
    /// Every record naming the segment, as the mover read them.
    pub holders: Vec<SegmentHolder>,
}

/// A shard file that no record places where it is any more (the old copy of a moved shard), kept until the
/// grace period is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StaleCopy {
    pub segment: SegmentId,
    pub shard: u8,
    pub disk: DiskRef,
    /// When the shard moved away from `disk`.
    pub since_ms: i64,
}

/// The nodes being drained before they are removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draining {
    pub nodes: BTreeSet<NodeId>,
}

/// The most join tokens that may be live at once: a bound on what a leaked admin credential can grow.
pub const MAX_JOIN_TOKENS: usize = 1024;

/// The cluster's membership record in the state machine: live join tokens and every node admitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// SHA-256 of each live token's secret → when it expires.
    pub join_tokens: BTreeMap<[u8; 32], i64>,
    /// The id the next admitted node gets (never reused).
    pub next_node_id: NodeId,
    /// Every node admitted by a join (the first node is not listed).
    pub nodes: BTreeMap<NodeId, NodeRecord>,
}

impl ClusterRecord {
    /// Whether `node` was removed (its certificate is refused).
    pub fn is_removed(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.removed_ms.is_some())
    }

    /// Every removed node.
    pub fn removed(&self) -> BTreeSet<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.removed_ms.is_some()).map(|(id, _)| *id).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The address it joined with.
    pub addr: String,
    pub joined_ms: i64,
    pub removed_ms: Option<i64>,
}

/// A change of the metadata group's membership, made at the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Adds a node as a learner (it receives the log and holds shards, but does not vote).
    AddLearner { node: NodeId, addr: String },
    /// Makes these learners voters.
    Promote(BTreeSet<NodeId>),
    /// Makes exactly these nodes the voters (the others stay learners).
    SetVoters(BTreeSet<NodeId>),
    /// Takes a node out of the group (voter or learner).
    Remove(NodeId),
    /// Changes the address a member is reached at.
    SetAddr { node: NodeId, addr: String },
}

/// The version of the cluster protocol this build speaks. A node joining a cluster tells its version and is
/// refused when it is older than the cluster's: it would not understand every Raft entry.
pub const CLUSTER_VERSION: u32 = 1;

/// What a conditional write expects of the key's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCondition {
    /// No current version (`If-None-Match: *`).
    Absent,
    /// A current version with this ETag (`If-Match`).
    ETag(String),
}

impl WriteCondition {
    /// Whether a key whose current version is `current` satisfies this condition.
    pub fn holds_for(&self, current: Option<&ObjectRecord>) -> bool {
        match (self, current) {
            (WriteCondition::Absent, None) => true,
            (WriteCondition::ETag(etag), Some(c)) => c.etag == *etag,
            _ => false,
        }
    }
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    Ok,
    BucketAlreadyExists,
    NoSuchBucket,
    BucketNotEmpty,
    NoSuchUpload,
    /// A part number named by CompleteUpload was never uploaded, or its ETag differs.
    InvalidPart {
        part_number: u32,
    },
    /// A committed object replaced or deleted this one.
    Replaced {
        previous: Option<Box<ObjectRecord>>,
    },
    /// The credential now in force (the stored one wins over a late proposal).
    Credential(Credential),
    /// A conditional write's condition did not hold; nothing changed.
    PreconditionFailed,
    /// A sharing copy's source was replaced or deleted before the copy committed; nothing changed.
    SourceChanged,
    /// Another master-key rotation is unfinished.
    RotationInProgress {
        to_key_id: String,
    },
    /// How many data keys a rewrap batch changed.
    Rewrapped {
        count: u64,
    },
    /// The command could not be applied (a name out of bounds, a record that does not decode); nothing
    /// changed and the log moved on. `reason` says why, without echoing names.
    Refused {
        reason: String,
    },
    /// The root credential now in force (the stored one wins over a late first proposal).
    RootCredential(StoredCredential),
    /// A join token was spent: the joining node's id.
    Admitted {
        node_id: NodeId,
    },
    /// A join token was unknown, already used or expired.
    JoinRefused {
        reason: String,
    },
    /// Which moves of a `MoveShards` were made, in order.
    Moved {
        moved: Vec<bool>,
    },
    /// The version a `DeleteVersion` removed (none: there was no such version).
    VersionRemoved {
        removed: Option<Box<VersionRecord>>,
    },
    /// An access key of that id exists already.
    AccessKeyExists,
    /// There is no access key of that id.
    NoSuchAccessKey,
    /// The object (or the version named) does not exist.
    NoSuchKey,
    /// The answers to a [`MetaCommand::Batch`], in its order.
    Batch(Vec<MetaResponse>),
}

/// A raft node's address, as the membership config stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    pub addr: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_refuses_unknown_versions() {
        let cmd = MetaCommand::DeleteBucket { name: "photos".into() };
        let bytes = encode(&cmd);
        assert_eq!(bytes[0], FORMAT_V1);
        let back: MetaCommand = decode(&bytes).expect("decode");
        assert_eq!(back, cmd);
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(matches!(decode::<MetaCommand>(&bad), Err(ProtocolError::UnknownVersion(9))));
        assert!(matches!(decode::<MetaCommand>(&[]), Err(ProtocolError::Empty)));
    }

    /// The stored formats, frozen: every value below as it is in the Raft log, the state machine and snapshots.
    /// A change that moves these bytes makes data already stored undecodable; it needs a new format version
    /// and a reader for the old one, not a new golden file.
    const GOLDEN: &str = include_str!("../tests/golden/records_v1.hex");

    fn golden_values() -> Vec<(&'static str, Vec<u8>)> {
        let wrapped = WrappedKey { format: 1, data_id: [7; 16], wrapped: vec![0xa5; 40] };
        let segment = Segment {
            id: SegmentId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            part_number: 2,
            size: 3 << 20,
            layout: ShardLayout {
                data: 4,
                parity: 2,
                block_size: (1 << 20) + 16,
                disks: (0..6).map(|disk| DiskRef { node: 1, disk }).collect(),
            },
            seal: Some(SegmentSeal { salt: 0x1122_3344_5566_7788 }),
        };
        let headers = ObjectHeaders {
            content_type: Some("image/jpeg".into()),
            cache_control: Some("max-age=60".into()),
            user_metadata: [("camera".to_string(), "x100".to_string())].into(),
            ..ObjectHeaders::default()
        };
        let checksums = Checksums { crc32c: Some("yZRlqg==".into()), ..Checksums::default() };
        let record = ObjectRecord {
            bucket: "photos".into(),
            key: "2026/cat.jpg".into(),
            version_id: "v1".into(),
            size: 3 << 20,
            etag: "\"9e107d9d372bb6826bd81d3542a419d6\"".into(),
            last_modified_ms: 1_790_000_000_000,
            headers: headers.clone(),
            checksums: checksums.clone(),
            segments: vec![segment.clone()],
            encryption: Encryption::SseS3 { key_id: "k1".into(), key: wrapped.clone() },
            inline: None,
        };
        let version_record = ObjectRecord { version_id: "v9".into(), ..record.clone() };
        let inline_record = ObjectRecord {
            size: 12,
            segments: Vec::new(),
            encryption: Encryption::None,
            inline: Some(b"hello, hoard".to_vec()),
            ..record.clone()
        };
        let settings = EncryptionSettings {
            encrypt_all: true,
            active_key_id: Some("k2".into()),
            rotation: Some(Rotation {
                to_key_id: "k2".into(),
                key_file: "/etc/hoard/k2".into(),
                started_ms: 1_790_000_000_000,
                cursor: RotationCursor::Objects { after: Some(b"photos/2026".to_vec()) },
                again: false,
                rewrapped: 41,
                finished_ms: None,
            }),
        };
        let part = PartRecord {
            part_number: 2,
            etag: "\"0cc175b9c0f1b6a831c399e269772661\"".into(),
            size: 3 << 20,
            last_modified_ms: 1_790_000_000_000,
            checksums,
            segment: segment.clone(),
        };
        let upload = UploadRecord {
            bucket: "photos".into(),
            key: "big.iso".into(),
            upload_id: "u1".into(),
            initiated_ms: 1_790_000_000_000,
            headers,
            checksum_algorithm: Some("CRC32C".into()),
            encryption: Encryption::SseC { key: wrapped.clone() },
        };
        vec![
            ("object", encode(&record)),
            (
                "bucket",
                encode(&BucketRecord {
                    name: "photos".into(),
                    created_ms: 1,
                    encryption: Some(BucketEncryption::SseS3),
                }),
            ),
            ("settings", encode(&settings)),
            ("upload", encode(&upload)),
            ("part", encode(&part)),
            ("repair", encode(&RepairRecord { segment: segment.clone(), shards: vec![1, 4] })),
            ("commit_object", encode(&MetaCommand::CommitObject { record: record.clone(), now_ms: 5 })),
            ("inline_object", encode(&inline_record)),
            ("commit_inline_object", encode(&MetaCommand::CommitObject { record: inline_record, now_ms: 5 })),
            (
                "complete_upload_if",
                encode(&MetaCommand::CompleteUploadIf {
                    upload_id: "u1".into(),
                    record,
                    now_ms: 6,
                    condition: WriteCondition::ETag("\"e\"".into()),
                }),
            ),
            (
                "put_root_credential",
                encode(&MetaCommand::PutRootCredential {
                    credential: StoredCredential::Sealed {
                        access_key: "AKROOT".into(),
                        key: Encryption::SseS3 { key_id: "k1".into(), key: wrapped.clone() },
                        secret: vec![0x5a; 56],
                    },
                    replace: true,
                }),
            ),
            (
                "credential_plain",
                encode(&StoredCredential::Plain(Credential { access_key: "AK".into(), secret_key: "SK".into() })),
            ),
            (
                "rewrap_batch",
                encode(&MetaCommand::RewrapBatch {
                    to_key_id: "k2".into(),
                    rewraps: vec![Rewrap {
                        target: RewrapTarget::Upload {
                            bucket: "photos".into(),
                            key: "big.iso".into(),
                            upload_id: "u1".into(),
                        },
                        before: Encryption::SseS3 { key_id: "k1".into(), key: wrapped.clone() },
                        after: Encryption::SseS3 { key_id: "k2".into(), key: wrapped.clone() },
                    }],
                    cursor: RotationCursor::End,
                    now_ms: 7,
                }),
            ),
            (
                "rewrap_root_credential",
                encode(&Rewrap {
                    target: RewrapTarget::RootCredential,
                    before: Encryption::SseS3 { key_id: "k1".into(), key: wrapped.clone() },
                    after: Encryption::SseS3 { key_id: "k2".into(), key: wrapped },
                }),
            ),
            ("garbage_segment", encode(&segment)),
            (
                "delete_bucket_and_uploads",
                encode(&MetaCommand::DeleteBucketAndUploads { name: "photos".into(), now_ms: 8 }),
            ),
            ("add_join_token", encode(&MetaCommand::AddJoinToken { hash: [0x3c; 32], expires_ms: 9, now_ms: 8 })),
            (
                "admit_node",
                encode(&MetaCommand::AdmitNode { hash: [0x3c; 32], addr: "10.0.0.2:7000".into(), now_ms: 9 }),
            ),
            ("remove_node", encode(&MetaCommand::RemoveNode { node_id: 4, now_ms: 10 })),
            ("set_active_key", encode(&MetaCommand::SetActiveKey { key_id: "k1".into() })),
            (
                "cluster_record",
                encode(&ClusterRecord {
                    join_tokens: [([0x3c; 32], 9)].into(),
                    next_node_id: 5,
                    nodes: [(4, NodeRecord { addr: "10.0.0.4:7000".into(), joined_ms: 7, removed_ms: Some(10) })]
                        .into(),
                }),
            ),
            (
                "move_shards",
                encode(&MetaCommand::MoveShards {
                    moves: vec![ShardMove {
                        segment: SegmentId(7),
                        shard: 2,
                        from: DiskRef { node: 1, disk: 0 },
                        to: DiskRef { node: 4, disk: 1 },
                        holders: vec![
                            SegmentHolder::Object { bucket: "photos".into(), key: "cat.jpg".into() },
                            SegmentHolder::Part { upload_id: "u1".into(), part_number: 2 },
                        ],
                    }],
                    now_ms: 11,
                }),
            ),
            (
                "stale_copy",
                encode(&StaleCopy {
                    segment: SegmentId(7),
                    shard: 2,
                    disk: DiskRef { node: 1, disk: 0 },
                    since_ms: 11,
                }),
            ),
            ("forget_stale_copies", encode(&MetaCommand::ForgetStaleCopies { copies: Vec::new() })),
            ("set_draining", encode(&MetaCommand::SetDraining { node_id: 4, draining: true })),
            ("draining", encode(&Draining { nodes: [4].into() })),
            (
                "set_bucket_versioning",
                encode(&MetaCommand::SetBucketVersioning {
                    bucket: "photos".into(),
                    status: VersioningStatus::Suspended,
                }),
            ),
            (
                "put_delete_marker",
                encode(&MetaCommand::PutDeleteMarker {
                    marker: DeleteMarker {
                        bucket: "photos".into(),
                        key: "cat.jpg".into(),
                        version_id: "v0123".into(),
                        last_modified_ms: 12,
                    },
                    now_ms: 12,
                }),
            ),
            (
                "delete_version",
                encode(&MetaCommand::DeleteVersion {
                    bucket: "photos".into(),
                    key: "cat.jpg".into(),
                    version_id: "null".into(),
                    now_ms: 13,
                }),
            ),
            ("version_record", encode(&VersionRecord::Object(version_record))),
            (
                "move_version_shards",
                encode(&MetaCommand::MoveShards {
                    moves: vec![ShardMove {
                        segment: SegmentId(7),
                        shard: 1,
                        from: DiskRef { node: 1, disk: 0 },
                        to: DiskRef { node: 2, disk: 0 },
                        holders: vec![SegmentHolder::Version {
                            bucket: "photos".into(),
                            key: "cat.jpg".into(),
                            version_id: "v1".into(),
                        }],
                    }],
                    now_ms: 14,
                }),
            ),
            (
                "rewrap_versions",
                encode(&MetaCommand::RewrapBatch {
                    to_key_id: "k2".into(),
                    rewraps: Vec::new(),
                    cursor: RotationCursor::Versions { after: Some(b"photos".to_vec()) },
                    now_ms: 15,
                }),
            ),
            (
                "put_access_key",
                encode(&MetaCommand::PutAccessKey(AccessKeyRecord {
                    name: "backups".into(),
                    credential: StoredCredential::Plain(Credential {
                        access_key: "AKB".into(),
                        secret_key: "SK".into(),
                    }),
                    created_ms: 16,
                    may_create_buckets: true,
                })),
            ),
            ("delete_access_key", encode(&MetaCommand::DeleteAccessKey { access_key: "AKB".into() })),
            (
                "set_grant",
                encode(&MetaCommand::SetGrant {
                    access_key: "AKB".into(),
                    bucket: "photos".into(),
                    grant: Grant { read: true, write: false, owner: false },
                }),
            ),
            (
                "set_bucket_setting",
                encode(&MetaCommand::SetBucketSetting {
                    bucket: "photos".into(),
                    setting: BucketSetting::Cors,
                    value: Some("{}".into()),
                }),
            ),
            (
                "create_owned_bucket",
                encode(&MetaCommand::CreateOwnedBucket {
                    record: BucketRecord { name: "photos".into(), created_ms: 17, encryption: None },
                    owner: Some("AKB".into()),
                    settings: vec![(BucketSetting::Acl, "{}".into())],
                }),
            ),
            (
                "set_object_acl",
                encode(&MetaCommand::SetObjectAcl {
                    bucket: "photos".into(),
                    key: "cat.jpg".into(),
                    version_id: "v1".into(),
                    acl: None,
                }),
            ),
            ("no_such_key", encode(&MetaResponse::NoSuchKey)),
            (
                "set_key_creates_buckets",
                encode(&MetaCommand::SetKeyCreatesBuckets { access_key: "AKB".into(), allowed: true }),
            ),
            (
                "rewrap_access_keys",
                encode(&MetaCommand::RewrapBatch {
                    to_key_id: "k2".into(),
                    rewraps: vec![Rewrap {
                        target: RewrapTarget::AccessKey { access_key: "AKB".into() },
                        before: Encryption::None,
                        after: Encryption::None,
                    }],
                    cursor: RotationCursor::AccessKeys { after: Some(b"AKB".to_vec()) },
                    now_ms: 18,
                }),
            ),
        ]
    }

    #[test]
    fn stored_records_match_the_v1_golden_vector() {
        format::assert_golden("protocol/tests/golden/records_v1.hex", GOLDEN, &golden_values());
    }

    #[test]
    fn credential_debug_output_hides_the_secret() {
        let c = Credential { access_key: "AK".into(), secret_key: "s3cr3t-value".into() };
        let printed = format!(
            "{c:?} {:?} {:?}",
            MetaResponse::Credential(c.clone()),
            MetaResponse::RootCredential(StoredCredential::Plain(c.clone()))
        );
        assert!(printed.contains("AK") && !printed.contains("s3cr3t-value"), "{printed}");
    }

    #[test]
    fn only_versioned_writes_ids_are_not_null() {
        assert!(!is_null_version_id(&new_version_id(7, true)));
        assert!(is_null_version_id(&new_version_id(7, false)));
        assert_eq!(public_version_id(&new_version_id(u128::MAX, false)), NULL_VERSION_ID);
        let versioned = new_version_id(u128::MAX, true);
        assert_eq!(public_version_id(&versioned), versioned);
        for odd in ["v", "v-key", "vABCDEF0123456789abcdef0123456789", "x0123456789abcdef0123456789abcdef", ""] {
            assert!(is_null_version_id(odd), "{odd}");
        }
    }

    #[test]
    fn segment_ids_print_and_parse_as_32_hex_digits() {
        let id = SegmentId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let s = id.to_string();
        assert_eq!(s.len(), 32);
        assert_eq!(SegmentId::parse(&s), Some(id));
        assert_eq!(SegmentId::parse("xyz"), None);
    }
}
