//! The one error type of `hoard-actors`. Converted to S3 errors in one place in `hoard-s3`.

use hoard_protocol::MetaResponse;
use hoard_storage::error::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    /// An actor did not answer within its deadline.
    #[error("{0} did not answer in time")]
    Timeout(&'static str),
    /// An actor is not running (crashed and not yet restarted, or stopped).
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// A fault armed at this point fired.
    #[error("injected fault at {0}")]
    Injected(String),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Fewer shards than the write quorum could be written, or fewer than `data` could be read.
    #[error("not enough healthy shards: {0}")]
    Quorum(String),
    #[error("metadata: {0}")]
    Meta(String),
    /// The state machine refused a command (no such bucket, ...).
    #[error("metadata refused the command: {0:?}")]
    Refused(MetaResponse),
    /// The client's body stream failed or was cut short.
    #[error("request body: {0}")]
    Body(String),
    #[error("{0}")]
    Invalid(String),
    /// Encryption was asked of a node that holds no master key.
    #[error("this node holds no master key")]
    NoMasterKey,
    /// A record names a master key this node does not hold.
    #[error("the object's data key is wrapped under master key {0}, which this node does not hold")]
    UnknownKeyId(String),
    /// A wrapped data key failed its integrity check: the wrong key, or a damaged record.
    #[error("the data key could not be unwrapped {0}")]
    KeyUnwrap(String),
    /// A sealed block failed authentication or a sealed length is impossible.
    #[error("sealed data: {0}")]
    Sealed(#[from] hoard_storage::seal::SealError),
}

pub type Result<T> = std::result::Result<T, ActorError>;
