//! The one place where hoard's errors become S3 errors (code, HTTP status, message).

use hoard_actors::error::ActorError;
use hoard_protocol::names::NameError;
use hoard_protocol::MetaResponse;
use s3s::s3_error;
use s3s::S3Error;

/// What a request body that declared no length fails with once it passes the most one PUT may carry (see
/// `frontend`); the object layer reports it as the body's error, and it is answered as `EntityTooLarge`.
pub const BODY_TOO_LARGE: &str = "the body is larger than 5 GiB, the most one PUT or part may carry";

/// Maps an internal error to the S3 error a client should see. Messages say what failed without
/// echoing request bodies or keys.
pub fn to_s3(e: ActorError) -> S3Error {
    match e {
        ActorError::Refused(MetaResponse::NoSuchBucket) => {
            s3_error!(NoSuchBucket, "The specified bucket does not exist")
        }
        ActorError::Refused(MetaResponse::NoSuchKey) => s3_error!(NoSuchKey, "The specified key does not exist."),
        ActorError::Refused(MetaResponse::NoSuchAccessKey) => {
            s3_error!(InvalidArgument, "There is no access key of that id")
        }
        ActorError::Refused(MetaResponse::NoSuchUpload) => {
            s3_error!(NoSuchUpload, "The specified multipart upload does not exist")
        }
        ActorError::Refused(MetaResponse::BucketNotEmpty) => {
            s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty")
        }
        ActorError::Refused(MetaResponse::BucketAlreadyExists) => {
            s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it"
            )
        }
        ActorError::Refused(MetaResponse::InvalidPart { part_number }) => {
            s3_error!(InvalidPart, "Part {part_number} was not uploaded to this upload, or its ETag does not match")
        }
        ActorError::Refused(MetaResponse::PreconditionFailed) => {
            s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
        }
        ActorError::Refused(MetaResponse::SourceChanged) => s3_error!(
            OperationAborted,
            "The copy source was replaced or deleted while it was being copied; please try again"
        ),
        ActorError::Refused(MetaResponse::Refused { reason }) => {
            s3_error!(InvalidArgument, "The request cannot be stored: {reason}; nothing was changed")
        }
        ActorError::Refused(other) => s3_error!(InternalError, "metadata refused the request: {other:?}"),
        // A signed aws-chunked body whose chunk fails its signature is a bad signature, not a short body.
        ActorError::Body(msg) if is_chunk_signature_mismatch(&msg) => s3_error!(
            SignatureDoesNotMatch,
            "A chunk of the body does not match its chunk signature; nothing was stored."
        ),
        ActorError::Body(msg) if msg.contains(BODY_TOO_LARGE) => s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size of 5 GiB; nothing was stored"
        ),
        ActorError::Body(msg) => s3_error!(IncompleteBody, "The request body could not be read: {msg}"),
        ActorError::Timeout(what) => s3_error!(SlowDown, "{what} did not answer in time; retry"),
        ActorError::Unavailable(what) => s3_error!(ServiceUnavailable, "{what} is unavailable; retry"),
        ActorError::Quorum(msg) => s3_error!(ServiceUnavailable, "not enough healthy disks: {msg}"),
        ActorError::Invalid(msg) => s3_error!(InvalidRequest, "{msg}"),
        ActorError::NoMasterKey => s3_error!(
            NotImplemented,
            "SSE-S3 (AES256) needs a master key and this node holds none (start it with --master-key-file); nothing was stored"
        ),
        ActorError::UnknownKeyId(id) => {
            tracing::error!(key_id = %id, "a record names a master key this node does not hold");
            s3_error!(
                InternalError,
                "The object's data key is wrapped under master key {id}, which this node does not hold"
            )
        }
        e @ (ActorError::KeyUnwrap(_) | ActorError::Sealed(_)) => {
            tracing::error!(error = %e, "encrypted data could not be opened");
            s3_error!(InternalError, "{e}; no bytes were returned")
        }
        e @ (ActorError::Injected(_) | ActorError::Storage(_) | ActorError::Meta(_)) => {
            tracing::error!(error = %e, "internal error");
            s3_error!(InternalError, "{e}")
        }
    }
}

/// A name that cannot reach metadata, as the S3 error its kind calls for.
pub fn name_error(e: NameError) -> S3Error {
    match e {
        NameError::KeyTooLong { .. } => s3_error!(KeyTooLongError, "Your key is too long: {e}"),
        NameError::Bucket => s3_error!(InvalidBucketName, "The specified bucket is not valid: {e}"),
        NameError::UploadId => s3_error!(NoSuchUpload, "The specified multipart upload does not exist"),
        NameError::KeyEmpty | NameError::KeyHasNul | NameError::Field(_) => s3_error!(InvalidArgument, "{e}"),
    }
}

/// `?`-friendly conversion.
pub trait OrS3<T> {
    fn or_s3(self) -> Result<T, S3Error>;
}

impl<T> OrS3<T> for Result<T, ActorError> {
    fn or_s3(self) -> Result<T, S3Error> {
        self.map_err(to_s3)
    }
}

/// Whether a body error's message is s3s refusing a chunk of a signed aws-chunked body. s3s keeps that
/// error type private, so it is known by its message (pinned by `Cargo.lock`; the signed-chunk test in
/// `it` fails if it changes).
fn is_chunk_signature_mismatch(message: &str) -> bool {
    message.contains("SignatureMismatch")
}
