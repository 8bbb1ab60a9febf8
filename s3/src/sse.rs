//! Server-side encryption as S3 requests ask for it: SSE-S3 (`x-amz-server-side-encryption: AES256`, a
//! bucket default, or the node's encrypt-all setting) and SSE-C (`x-amz-server-side-encryption-customer-*`).
//!
//! Invariants:
//! - Everything here runs before a body is read: a request that cannot be honoured is refused with
//!   nothing stored.
//! - A customer key lives only as long as its request: it is parsed into a zeroizing [`CustomerKey`],
//!   checked against the MD5 the client sent, used to wrap or unwrap the data key, and dropped. Neither
//!   the key nor its MD5 is stored; a wrong key is found by the failed unwrap (403).
//! - SSE-C is accepted only over TLS, or from a TLS-terminating proxy the operator said to trust.
//! - No path here ever treats an encrypted record as plaintext: every encrypted record needs its key.

use base64::Engine;
use hoard_actors::put::SealKey;
use hoard_actors::NodeContext;
use hoard_protocol::BucketEncryption;
use hoard_protocol::Encryption;
use hoard_protocol::EncryptionSettings;
use hoard_protocol::WrappedKey;
use hoard_storage::seal::CustomerKey;
use hoard_storage::seal::DataKey;
use hoard_storage::seal::DATA_ID_LEN;
use hoard_storage::seal::SEAL_FORMAT_V1;
use md5::Digest as _;
use s3s::dto::ServerSideEncryption;
use s3s::s3_error;
use s3s::S3Error;
use s3s::S3Result;

use crate::error::OrS3;

/// How the connection a request came over is protected; put into every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secure(pub bool);

/// A customer key given with a request, its MD5 checked.
pub struct GivenKey {
    key: CustomerKey,
    /// The base64 MD5 of the key, as the client sent it: echoed in responses, never stored.
    md5: String,
}

/// The three SSE-C headers of a request, or of its copy source.
pub struct SseCHeaders<'a> {
    pub algorithm: Option<&'a String>,
    pub key: Option<&'a String>,
    pub key_md5: Option<&'a String>,
}

/// The SSE-C headers of an s3s input: `sse_c_headers!(i)` for the request's own,
/// `sse_c_headers!(i, copy_source)` for those of its copy source.
macro_rules! sse_c_headers {
    ($i:expr) => {
        $crate::sse::SseCHeaders {
            algorithm: $i.sse_customer_algorithm.as_ref(),
            key: $i.sse_customer_key.as_ref(),
            key_md5: $i.sse_customer_key_md5.as_ref(),
        }
    };
    ($i:expr, copy_source) => {
        $crate::sse::SseCHeaders {
            algorithm: $i.copy_source_sse_customer_algorithm.as_ref(),
            key: $i.copy_source_sse_customer_key.as_ref(),
            key_md5: $i.copy_source_sse_customer_key_md5.as_ref(),
        }
    };
}
pub(crate) use sse_c_headers;

/// Parses and checks a set of SSE-C headers; `None` when the request names no customer key.
pub fn customer_key(headers: SseCHeaders<'_>, secure: Secure) -> S3Result<Option<GivenKey>> {
    let SseCHeaders { algorithm, key, key_md5 } = headers;
    let (algorithm, key) = match (algorithm, key) {
        (None, None) if key_md5.is_none() => return Ok(None),
        (Some(a), Some(k)) => (a, k),
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with Customer provided keys must provide the algorithm, the key and the key's MD5"
            ))
        }
    };
    if !secure.0 {
        return Err(s3_error!(
            InvalidRequest,
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
        ));
    }
    if algorithm != "AES256" {
        return Err(s3_error!(
            InvalidArgument,
            "The encryption algorithm for Server Side Encryption with Customer provided keys must be AES256"
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes = zeroize::Zeroizing::new(b64.decode(key.trim()).map_err(|_| {
        s3_error!(InvalidArgument, "The secret key was invalid for the specified algorithm: it is not base64")
    })?);
    let key = CustomerKey::from_slice(&bytes).map_err(|_| {
        s3_error!(InvalidArgument, "The secret key was invalid for the specified algorithm: it must be 256 bits")
    })?;
    let md5 = b64.encode(md5::Md5::digest(&bytes[..]));
    let given = key_md5.ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide the key's MD5"
        )
    })?;
    if given.trim() != md5 {
        return Err(s3_error!(
            InvalidArgument,
            "The calculated MD5 hash of the key did not match the hash that was provided."
        ));
    }
    Ok(Some(GivenKey { key, md5 }))
}

/// The refusal of an encryption algorithm hoard does not offer (`aws:kms`, ...).
pub fn unsupported(algorithm: &str) -> S3Error {
    s3_error!(
        NotImplemented,
        "server-side encryption {algorithm} is not supported; hoard supports SSE-S3 (AES256) and SSE-C"
    )
}

/// What a new object (or a copy's destination) is to be stored as.
pub enum Target<'a> {
    Plain,
    /// Wrapped under this master key (the active key metadata names), or the node's configured key.
    SseS3(Option<String>),
    SseC(&'a GivenKey),
}

/// Decides how a new object is stored: the request's headers win, then the bucket's default, then the
/// node's encrypt-all setting.
pub fn target<'a>(
    sse: Option<&ServerSideEncryption>,
    customer: Option<&'a GivenKey>,
    bucket_default: Option<BucketEncryption>,
    settings: &EncryptionSettings,
) -> S3Result<Target<'a>> {
    let sse_s3 = || Target::SseS3(settings.active_key_id.clone());
    if let Some(given) = customer {
        if sse.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
            ));
        }
        return Ok(Target::SseC(given));
    }
    match sse.map(|s| s.as_str()) {
        Some(ServerSideEncryption::AES256) => Ok(sse_s3()),
        Some(other) => Err(unsupported(other)),
        None if bucket_default == Some(BucketEncryption::SseS3) || settings.encrypt_all => Ok(sse_s3()),
        None => Ok(Target::Plain),
    }
}

/// A write's encryption: the key its blocks are sealed with and the record that goes into metadata.
pub struct WriteSeal {
    pub key: SealKey,
    pub encryption: Encryption,
}

/// Draws a fresh data key for a new object stored as `target`; `None` for plaintext.
pub async fn seal_new(ctx: &NodeContext, target: &Target<'_>) -> S3Result<Option<WriteSeal>> {
    if matches!(target, Target::Plain) {
        return Ok(None);
    }
    let key = DataKey::generate(|buf| ctx.env.fill_random(buf));
    let mut data_id = [0u8; DATA_ID_LEN];
    ctx.env.fill_random(&mut data_id);
    let key = SealKey::new(key, data_id);
    let encryption = wrap_for(ctx, &key, target).await?.ok_or_else(|| s3_error!(InternalError, "no encryption"))?;
    Ok(Some(WriteSeal { key, encryption }))
}

/// Wraps an existing data key for `target`, keeping its data id: how a copy between encrypted objects
/// changes keys without touching ciphertext. `None` for a plaintext target.
pub async fn wrap_for(ctx: &NodeContext, key: &SealKey, target: &Target<'_>) -> S3Result<Option<Encryption>> {
    match target {
        Target::Plain => Ok(None),
        Target::SseC(given) => {
            let wrapped =
                WrappedKey { format: SEAL_FORMAT_V1, data_id: key.data_id, wrapped: given.key.wrap(&key.key).to_vec() };
            Ok(Some(Encryption::SseC { key: wrapped }))
        }
        Target::SseS3(key_id) => {
            Ok(Some(ctx.key_keeper.wrap(key.key.clone(), key.data_id, key_id.clone()).await.or_s3()?))
        }
    }
}

/// The key to open an object with: none for a plaintext object; the KeyKeeper's unwrap for SSE-S3; the
/// request's customer key for SSE-C.
pub async fn for_read(
    ctx: &NodeContext,
    encryption: &Encryption,
    customer: Option<&GivenKey>,
) -> S3Result<Option<SealKey>> {
    match (encryption, customer) {
        (Encryption::None, None) => Ok(None),
        (Encryption::None | Encryption::SseS3 { .. }, Some(_)) => Err(s3_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object."
        )),
        (Encryption::SseS3 { key_id, key }, None) => {
            let dek = ctx.key_keeper.unwrap(key_id, key).await.or_s3()?;
            Ok(Some(SealKey::new(dek, key.data_id)))
        }
        (Encryption::SseC { .. }, None) => Err(s3_error!(
            InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
        )),
        (Encryption::SseC { key }, Some(given)) => Ok(Some(unwrap_customer(key, given)?)),
    }
}

/// Unwraps an SSE-C data key with the request's customer key; a wrong key is 403.
fn unwrap_customer(key: &WrappedKey, given: &GivenKey) -> S3Result<SealKey> {
    hoard_actors::key_keeper::check_format(key).or_s3()?;
    let dek = given.key.unwrap(&key.wrapped).map_err(|_| {
        s3_error!(AccessDenied, "The customer key given does not match the key the object was encrypted with")
    })?;
    Ok(SealKey::new(dek, key.data_id))
}

/// The response headers that describe an object's encryption.
#[derive(Debug, Default)]
pub struct SseHeaders {
    pub server_side_encryption: Option<ServerSideEncryption>,
    pub sse_customer_algorithm: Option<String>,
    pub sse_customer_key_md5: Option<String>,
}

pub fn headers(encryption: &Encryption, customer: Option<&GivenKey>) -> SseHeaders {
    match encryption {
        Encryption::None => SseHeaders::default(),
        Encryption::SseS3 { .. } => SseHeaders {
            server_side_encryption: Some(ServerSideEncryption::from_static(ServerSideEncryption::AES256)),
            ..Default::default()
        },
        Encryption::SseC { .. } => SseHeaders {
            sse_customer_algorithm: Some("AES256".into()),
            sse_customer_key_md5: customer.map(|c| c.md5.clone()),
            ..Default::default()
        },
    }
}
