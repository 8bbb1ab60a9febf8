//! PostObject: browser form uploads (`POST /bucket` with `multipart/form-data`), as AWS S3 documents them
//! ("Browser-Based Uploads Using POST", SigV4).
//!
//! Taken before s3s, which would gather the whole file in memory: here the file part streams into the normal
//! PUT path (the same operation, commit and errors as PutObject).
//!
//! Invariants:
//! - Nothing past the form fields is read before the policy's signature, its expiration and every condition
//!   on the fields have been checked. The form fields before the file are bounded (each, and all together),
//!   so a hostile form cannot grow memory; the file is never buffered whole.
//! - The signature is the SigV4 one over the base64 policy, with the secret of the access key the
//!   credential names; it is compared in constant time. A form without a policy would be an anonymous
//!   upload, which hoard does not allow.
//! - Every form field but `x-amz-signature`, `file`, `policy` and `x-ignore-*` must be named by a condition of
//!   the policy, as in S3; conditions on `bucket` are checked against the bucket of the URL.
//! - A file outside the policy's `content-length-range` (or over the 5 GiB a PUT may carry) fails the upload:
//!   the PUT never commits, so nothing is stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt as _;
use hmac::Mac as _;
use http::Request;
use http::Response;
use http::StatusCode;
use s3s::auth::S3Auth;
use s3s::dto::*;
use s3s::post_policy::PostPolicy;
use s3s::post_policy::PostPolicyCondition;
use s3s::s3_error;
use s3s::Body;
use s3s::S3Error;
use s3s::S3Request;
use s3s::S3Result;
use s3s::S3;

use crate::auth::SharedCredentials;
use crate::ops::HoardS3;
use crate::ops::MAX_PUT_SIZE;

/// The most bytes one form field before the file may have (a policy is a few KiB).
const MAX_FIELD_BYTES: u64 = 64 << 10;
/// The most bytes all the form fields before the file may have together.
const MAX_FIELDS_BYTES: usize = 256 << 10;
/// The most form fields before the file.
const MAX_FIELDS: usize = 100;
/// How much of a form's body is read before the form has been checked: its fields (at most
/// [`MAX_FIELDS_BYTES`]) with their part headers, and what the parser reads ahead. Past it the body is held
/// back (not refused) until the check passes, so an unsigned or endless form holds at most this much memory.
const MAX_BEFORE_CHECK: u64 = 2 << 20;
/// How long a form may take to reach its file and be checked.
const FIELDS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves browser form uploads.
pub struct PostObject {
    pub s3: HoardS3,
    pub credentials: SharedCredentials,
}

/// Whether a request is a browser form upload: `POST /bucket` (no query) with a `multipart/form-data` body.
pub fn is_form_upload<B>(req: &Request<B>) -> bool {
    let path = req.uri().path().trim_start_matches('/').trim_end_matches('/');
    req.method() == http::Method::POST
        && req.uri().query().is_none()
        && !path.is_empty()
        && !path.contains('/')
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// A form field's value, as S3 compares them: field names are case-insensitive.
type Fields = BTreeMap<String, String>;

impl PostObject {
    /// Handles one form upload; errors are S3's XML errors.
    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        match self.upload(req).await {
            Ok(resp) => resp,
            Err(e) => e.to_http_response().unwrap_or_else(|_| {
                let mut resp = Response::new(Body::from("bad request\n".to_string()));
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                resp
            }),
        }
    }

    /// Whether `principal` may PUT `key` (and set its ACL, when the form asks for one).
    fn authorize(
        &self,
        extensions: &http::Extensions,
        principal: &crate::access::Principal,
        bucket: &str,
        key: &str,
        asks_for_acl: bool,
    ) -> S3Result<()> {
        use crate::access::AccessRequest;
        let reader = self.s3.ctx.meta.local().map_err(crate::error::to_s3)?;
        let req = AccessRequest {
            principal,
            op: "PutObject",
            bucket: Some(bucket),
            key: Some(key),
            version_id: None,
            secure: extensions.get::<crate::sse::Secure>().is_some_and(|s| s.0),
            source_ip: extensions.get::<crate::access::ClientAddr>().map(|a| a.0),
            prefix: None,
        };
        crate::access::decide(&reader, &req)?;
        if asks_for_acl {
            crate::access::decide_new_acl(&reader, &req)?;
        }
        Ok(())
    }

    async fn upload(&self, req: Request<Body>) -> S3Result<Response<Body>> {
        let (parts, body) = req.into_parts();
        let raw_bucket = parts.uri.path().trim_start_matches('/').trim_end_matches('/');
        let bucket = percent_encoding::percent_decode_str(raw_bucket)
            .decode_utf8()
            .map_err(|_| s3_error!(InvalidURI, "Couldn't parse the specified URI."))?
            .into_owned();
        hoard_protocol::names::check_bucket(&bucket).map_err(crate::error::name_error)?;
        let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let boundary = multer::parse_boundary(content_type).map_err(|_| {
            s3_error!(MalformedPOSTRequest, "The body of your POST request is not well-formed multipart/form-data.")
        })?;
        let gate = Arc::new(CheckGate::default());
        let body = HeldBack { inner: Box::pin(body), read: 0, gate: gate.clone() };
        // Field sizes are bounded as each is read (`read_fields`), the file's by `guarded`.
        let limits = multer::SizeLimit::new().per_field(MAX_PUT_SIZE as u64);
        let mut form =
            multer::Multipart::with_constraints(body, boundary, multer::Constraints::new().size_limit(limits));

        let before_file = tokio::time::timeout(FIELDS_DEADLINE, async {
            let (fields, file) = read_fields(&mut form).await?;
            let filename = file.file_name().unwrap_or_default().to_string();
            match self.check_form(&fields, &bucket, &filename).await {
                Ok(checked) => Ok((fields, file, checked)),
                Err(e) => {
                    drain(Some(file), &mut form).await;
                    Err(e)
                }
            }
        })
        .await
        .map_err(|_| {
            s3_error!(RequestTimeout, "Your form was not read in time: its fields must arrive within 60 s.")
        })?;
        let (fields, file, (access_key, length_range, key)) = before_file?;
        // Allowed as a PUT of the key by the form's signer would be, before the file is read.
        let principal = crate::access::Caller(self.credentials.principal(Some(&access_key)).await?);
        let asks_for_acl = fields
            .iter()
            .any(|(k, v)| (k == "acl" && !crate::access::canned_is_private(v)) || k.starts_with("x-amz-grant-"));
        self.authorize(&parts.extensions, &principal.0, &bucket, &key, asks_for_acl)?;
        gate.open();
        let too_large = Arc::new(Mutex::new(None));
        let (min, max) = length_range.unwrap_or((0, MAX_PUT_SIZE as u64));
        let body = guarded(file, min, max.min(MAX_PUT_SIZE as u64), too_large.clone());
        let input = put_input(&fields, bucket.clone(), key.clone(), body)?;
        let put = S3Request {
            input,
            method: http::Method::PUT,
            uri: parts.uri.clone(),
            headers: http::HeaderMap::new(),
            extensions: {
                let mut extensions = parts.extensions;
                extensions.insert(principal);
                extensions
            },
            credentials: Some(s3s::auth::Credentials {
                access_key,
                secret_key: s3s::auth::SecretKey::from(String::new()),
            }),
            region: None,
            service: None,
            trailing_headers: None,
        };
        if let Some(op) = put.extensions.get::<crate::frontend::Operation>() {
            op.set("PostObject");
        }
        let out = match self.s3.put_object(put).await {
            Ok(out) => out.output,
            Err(e) => {
                drain(None, &mut form).await;
                let cut: Option<S3Error> = too_large.lock().unwrap_or_else(|p| p.into_inner()).take();
                return Err(cut.unwrap_or(e));
            }
        };
        respond(&fields, &bucket, &key, out)
    }

    /// Checks a form before its file is read: its signature, its policy's expiration and conditions, its key.
    /// Answers the access key that signed it, the policy's content-length range, and the object key (with
    /// `${filename}` replaced by the file's name).
    async fn check_form(
        &self,
        fields: &Fields,
        bucket: &str,
        filename: &str,
    ) -> S3Result<(String, Option<(u64, u64)>, String)> {
        let access_key = self.verify_signature(fields).await?;
        let policy = fields.get("policy").map(String::as_str).unwrap_or_default();
        let policy = PostPolicy::from_base64(policy).map_err(|_| {
            s3_error!(InvalidPolicyDocument, "Invalid Policy: the policy is not base64 of a policy document.")
        })?;
        let expires: time::OffsetDateTime = policy.expiration.clone().into();
        let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.s3.ctx.env.now_ms()) * 1_000_000)
            .map_err(|_| s3_error!(InternalError, "the clock is out of range"))?;
        if now >= expires {
            return Err(s3_error!(AccessDenied, "Invalid according to Policy: Policy expired."));
        }
        // As in S3, `${filename}` is expanded before the conditions are checked: they see the key stored.
        let key = fields
            .get("key")
            .ok_or_else(|| s3_error!(InvalidArgument, "Bucket POST must contain a field named 'key'."))?
            .replace("${filename}", filename);
        let mut expanded = fields.clone();
        expanded.insert("key".into(), key.clone());
        let length_range = check_conditions(&policy, &expanded, bucket)?;
        Ok((access_key, length_range, key))
    }

    /// Checks the form's SigV4 signature; answers the access key that signed it.
    async fn verify_signature(&self, fields: &Fields) -> S3Result<String> {
        let get = |name: &str| fields.get(name).map(String::as_str);
        let (Some(algorithm), Some(credential), Some(date), Some(policy), Some(signature)) =
            (get("x-amz-algorithm"), get("x-amz-credential"), get("x-amz-date"), get("policy"), get("x-amz-signature"))
        else {
            return Err(s3_error!(
                AccessDenied,
                "A signed POST needs policy, x-amz-algorithm, x-amz-credential, x-amz-date and x-amz-signature; anonymous uploads are not allowed."
            ));
        };
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(s3_error!(InvalidArgument, "x-amz-algorithm must be AWS4-HMAC-SHA256."));
        }
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, day, region, service, "aws4_request"] = scope[..] else {
            return Err(s3_error!(InvalidArgument, "x-amz-credential is not <key>/<date>/<region>/s3/aws4_request."));
        };
        if service != "s3" || day.len() != 8 || !date.starts_with(day) {
            return Err(s3_error!(InvalidArgument, "x-amz-credential and x-amz-date do not agree."));
        }
        let secret = self.credentials.get_secret_key(access_key).await?;
        let hmac = |key: &[u8], data: &[u8]| -> S3Result<Vec<u8>> {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
                .map_err(|_| s3_error!(InternalError, "an HMAC key of any length is accepted"))?;
            mac.update(data);
            Ok(mac.finalize().into_bytes().to_vec())
        };
        let k_secret = zeroize::Zeroizing::new(format!("AWS4{}", secret.expose()));
        // The derived signing keys are as good as the secret for a day: zeroized like it.
        let key = zeroize::Zeroizing::new(hmac(k_secret.as_bytes(), day.as_bytes())?);
        let key = zeroize::Zeroizing::new(hmac(&key, region.as_bytes())?);
        let key = zeroize::Zeroizing::new(hmac(&key, service.as_bytes())?);
        let key = zeroize::Zeroizing::new(hmac(&key, b"aws4_request")?);
        let given = hex::decode(signature).unwrap_or_default();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .map_err(|_| s3_error!(InternalError, "an HMAC key of any length is accepted"))?;
        mac.update(policy.as_bytes());
        mac.verify_slice(&given).map_err(|_| {
            s3_error!(
                SignatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided."
            )
        })?;
        Ok(access_key.to_string())
    }
}

/// Reads the form's fields up to its file part: bounded in number, each and together.
async fn read_fields(form: &mut multer::Multipart<'static>) -> S3Result<(Fields, multer::Field<'static>)> {
    let mut fields = Fields::new();
    let mut total = 0usize;
    loop {
        let Some(mut field) = form.next_field().await.map_err(malformed)? else {
            return Err(s3_error!(InvalidArgument, "POST requires exactly one file upload per request."));
        };
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            return Ok((fields, field));
        }
        if fields.len() == MAX_FIELDS {
            return Err(s3_error!(MalformedPOSTRequest, "The POST request has too many form fields."));
        }
        let too_large = || {
            s3_error!(
                MaxPostPreDataLengthExceededError,
                "Your POST request fields preceding the upload file were too large."
            )
        };
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            value.extend_from_slice(&chunk);
            total += chunk.len();
            if value.len() as u64 > MAX_FIELD_BYTES || total > MAX_FIELDS_BYTES {
                return Err(too_large());
            }
        }
        let value =
            String::from_utf8(value).map_err(|_| s3_error!(InvalidArgument, "The form field {name} is not UTF-8."))?;
        total += name.len();
        if fields.insert(name.clone(), value).is_some() {
            return Err(s3_error!(InvalidArgument, "The form field {name} is given more than once."));
        }
    }
}

/// Opened once a form has been checked: until then [`HeldBack`] reads no more than [`MAX_BEFORE_CHECK`].
#[derive(Default)]
struct CheckGate {
    open: std::sync::atomic::AtomicBool,
    waker: Mutex<Option<std::task::Waker>>,
}

impl CheckGate {
    fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            waker.wake();
        }
    }

    fn is_open(&self) -> bool {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A form's body, held back past [`MAX_BEFORE_CHECK`] bytes until its [`CheckGate`] opens.
struct HeldBack {
    inner: std::pin::Pin<Box<Body>>,
    read: u64,
    gate: Arc<CheckGate>,
}

impl futures::Stream for HeldBack {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.read >= MAX_BEFORE_CHECK && !self.gate.is_open() {
            *self.gate.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            // Opened between the test and storing the waker: go on rather than wait for a wake that came.
            if !self.gate.is_open() {
                return std::task::Poll::Pending;
            }
        }
        let item = std::task::ready!(self.inner.as_mut().poll_next(cx));
        if let Some(Ok(bytes)) = &item {
            self.read += bytes.len() as u64;
        }
        std::task::Poll::Ready(item)
    }
}

/// How long a refused form's rest is read before the answer goes out, and how much of its file at most.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const DRAIN_BYTES: u64 = 16 << 20;

/// Reads and drops what is left of a refused form (within [`DRAIN_TIME`], and [`DRAIN_BYTES`] of the file),
/// so that a client still sending gets the answer: over TLS, a server that stops reading mid-body and closes
/// has its answer lost in a broken connection. Nothing read is kept.
async fn drain(file: Option<multer::Field<'static>>, form: &mut multer::Multipart<'static>) {
    let work = async {
        if let Some(mut file) = file {
            let mut read = 0u64;
            while let Some(Ok(chunk)) = file.next().await {
                read += chunk.len() as u64;
                if read > DRAIN_BYTES {
                    return;
                }
            }
        }
        while let Ok(Some(_)) = form.next_field().await {}
    };
    let _ = tokio::time::timeout(DRAIN_TIME, work).await;
}

fn malformed(e: multer::Error) -> S3Error {
    match e {
        multer::Error::FieldSizeExceeded { field_name, .. } if field_name.as_deref() == Some("file") => {
            s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size.")
        }
        multer::Error::FieldSizeExceeded { .. } => {
            s3_error!(
                MaxPostPreDataLengthExceededError,
                "Your POST request fields preceding the upload file were too large."
            )
        }
        _ => s3_error!(MalformedPOSTRequest, "The body of your POST request is not well-formed multipart/form-data."),
    }
}

/// Checks every condition of the policy against the form, and that every field is covered by one; answers
/// the content-length range if the policy sets one.
fn check_conditions(policy: &PostPolicy, fields: &Fields, bucket: &str) -> S3Result<Option<(u64, u64)>> {
    let value = |name: &str| -> String {
        if name == "bucket" {
            return bucket.to_string();
        }
        fields.get(name).cloned().unwrap_or_default()
    };
    let failed = |what: &str| s3_error!(AccessDenied, "Invalid according to Policy: Policy Condition failed: {what}");
    let mut covered = std::collections::BTreeSet::new();
    let mut range = None;
    for condition in &policy.conditions {
        match condition {
            PostPolicyCondition::Eq { field, value: want } => {
                let field = field.to_ascii_lowercase();
                if value(&field) != *want {
                    return Err(failed(&format!("[\"eq\", \"${field}\", \"{want}\"]")));
                }
                covered.insert(field);
            }
            PostPolicyCondition::StartsWith { field, prefix } => {
                let field = field.to_ascii_lowercase();
                let given = value(&field);
                // A Content-Type may list several types: each must start with the prefix (as in S3), or a form
                // allowed `image/` could store `image/png,text/html`, which browsers render as HTML.
                let holds = match field.as_str() {
                    "content-type" => given.split(',').all(|t| t.trim().starts_with(prefix.as_str())),
                    _ => given.starts_with(prefix.as_str()),
                };
                if !holds {
                    return Err(failed(&format!("[\"starts-with\", \"${field}\", \"{prefix}\"]")));
                }
                covered.insert(field);
            }
            // Several ranges all hold: the tightest wins.
            PostPolicyCondition::ContentLengthRange { min, max } => {
                let (low, high) = range.unwrap_or((0, u64::MAX));
                range = Some(((*min).max(low), (*max).min(high)));
            }
        }
    }
    let exempt = |name: &str| matches!(name, "x-amz-signature" | "file" | "policy") || name.starts_with("x-ignore-");
    if let Some(extra) = fields.keys().find(|name| !exempt(name) && !covered.contains(*name)) {
        return Err(s3_error!(AccessDenied, "Invalid according to Policy: Extra input fields: {extra}"));
    }
    Ok(range)
}

/// The file part as a PUT body: it fails once more than `max` bytes came, or at its end with fewer than
/// `min`, and notes why for the answer.
fn guarded(file: multer::Field<'static>, min: u64, max: u64, cut: Arc<Mutex<Option<S3Error>>>) -> StreamingBlob {
    let mut seen = 0u64;
    let mut done = false;
    let stream = file.map(Some).chain(futures::stream::once(async { None })).filter_map(move |item| {
        let out = match item {
            _ if done => None,
            Some(Ok(bytes)) => {
                seen += bytes.len() as u64;
                if seen > max {
                    done = true;
                    *cut.lock().unwrap_or_else(|p| p.into_inner()) = Some(s3_error!(
                        EntityTooLarge,
                        "Your proposed upload exceeds the maximum allowed size: the policy allows at most {max} bytes."
                    ));
                    Some(Err(std::io::Error::other("the file is larger than the policy allows")))
                } else {
                    Some(Ok::<Bytes, std::io::Error>(bytes))
                }
            }
            Some(Err(e)) => {
                done = true;
                *cut.lock().unwrap_or_else(|p| p.into_inner()) = Some(malformed(e));
                Some(Err(std::io::Error::other("the form's file part could not be read")))
            }
            None if seen < min => {
                done = true;
                *cut.lock().unwrap_or_else(|p| p.into_inner()) = Some(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed size: the policy asks for at least {min} bytes."
                ));
                Some(Err(std::io::Error::other("the file is smaller than the policy allows")))
            }
            None => None,
        };
        async move { out }
    });
    StreamingBlob::wrap(stream)
}

/// The PutObject a form asks for: its key and bucket, content headers, user metadata, checksums and SSE
/// fields.
fn put_input(fields: &Fields, bucket: String, key: String, body: StreamingBlob) -> S3Result<PutObjectInput> {
    let get = |name: &str| fields.get(name).cloned();
    if fields.keys().any(|k| k.starts_with("x-amz-object-lock-")) {
        return Err(s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration"));
    }
    let metadata: Metadata = fields
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("x-amz-meta-").map(|name| (name.to_string(), v.clone())))
        .collect();
    let expires = match get("expires") {
        None => None,
        Some(e) => Some(
            Timestamp::parse(TimestampFormat::HttpDate, &e)
                .map_err(|_| s3_error!(InvalidArgument, "The Expires field is not an HTTP date."))?,
        ),
    };
    let mut input = PutObjectInput::builder()
        .bucket(bucket)
        .key(key)
        .body(Some(body))
        .content_type(get("content-type"))
        .cache_control(get("cache-control"))
        .content_disposition(get("content-disposition"))
        .content_encoding(get("content-encoding"))
        .content_language(get("content-language"))
        .expires(expires)
        .metadata((!metadata.is_empty()).then_some(metadata))
        .content_md5(get("content-md5"))
        .checksum_algorithm(get("x-amz-checksum-algorithm").map(ChecksumAlgorithm::from))
        .checksum_crc32(get("x-amz-checksum-crc32"))
        .checksum_crc32c(get("x-amz-checksum-crc32c"))
        .checksum_crc64nvme(get("x-amz-checksum-crc64nvme"))
        .checksum_sha1(get("x-amz-checksum-sha1"))
        .checksum_sha256(get("x-amz-checksum-sha256"))
        .server_side_encryption(get("x-amz-server-side-encryption").map(ServerSideEncryption::from))
        .sse_customer_algorithm(get("x-amz-server-side-encryption-customer-algorithm"))
        .sse_customer_key(get("x-amz-server-side-encryption-customer-key"))
        .sse_customer_key_md5(get("x-amz-server-side-encryption-customer-key-md5"))
        .acl(get("acl").map(ObjectCannedACL::from))
        .grant_read(get("x-amz-grant-read"))
        .grant_read_acp(get("x-amz-grant-read-acp"))
        .grant_write_acp(get("x-amz-grant-write-acp"))
        .grant_full_control(get("x-amz-grant-full-control"))
        .build()
        .map_err(|e| s3_error!(InvalidArgument, "The form does not make a PutObject: {e}"))?;
    input.content_length = None;
    Ok(input)
}

/// The answer S3 gives a form upload: a redirect to `success_action_redirect`, else `success_action_status`
/// (200 or 201 with a `PostResponse` document; 204 otherwise).
fn respond(fields: &Fields, bucket: &str, key: &str, out: PutObjectOutput) -> S3Result<Response<Body>> {
    let etag = out.e_tag.as_ref().map(|e| format!("\"{}\"", e.value())).unwrap_or_default();
    const PATH: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let location = format!("/{bucket}/{}", percent_encoding::utf8_percent_encode(key, PATH));
    let mut builder = Response::builder().header(http::header::ETAG, &etag);
    if let Some(v) = &out.version_id {
        builder = builder.header("x-amz-version-id", v);
    }
    if let Some(sse) = &out.server_side_encryption {
        builder = builder.header("x-amz-server-side-encryption", sse.as_str());
    }
    if let Some(md5) = &out.sse_customer_key_md5 {
        builder = builder.header("x-amz-server-side-encryption-customer-algorithm", "AES256");
        builder = builder.header("x-amz-server-side-encryption-customer-key-md5", md5);
    }
    let built = |b: http::response::Builder, body: Body| {
        b.body(body).map_err(|_| s3_error!(InternalError, "the response could not be built"))
    };
    if let Some(redirect) = fields.get("success_action_redirect").filter(|r| !r.is_empty()) {
        if let Ok(mut url) = redirect.parse::<http::Uri>().map(|u| u.to_string()) {
            let enc =
                |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("bucket={}&key={}&etag={}", enc(bucket), enc(key), enc(&etag)));
            return built(builder.status(StatusCode::SEE_OTHER).header(http::header::LOCATION, url), Body::empty());
        }
    }
    let builder = builder.header(http::header::LOCATION, &location);
    match fields.get("success_action_status").map(String::as_str) {
        Some("200") => built(builder.status(StatusCode::OK), Body::empty()),
        Some("201") => {
            let esc =
                |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                esc(&location),
                esc(bucket),
                esc(key),
                esc(&etag)
            );
            built(
                builder.status(StatusCode::CREATED).header(http::header::CONTENT_TYPE, "application/xml"),
                Body::from(xml),
            )
        }
        _ => built(builder.status(StatusCode::NO_CONTENT), Body::empty()),
    }
}
