//! Conversions between hoard's types and the wire messages of `hoard_protocol::rpc`, at the edge of the
//! transport: shard headers, errors (an [`ActorError`] crosses the wire as a gRPC status and comes back as
//! the same kind of error, so a remote disk's damage is damage and its timeout a timeout), and openraft's
//! structures inside a [`RaftMessage`].

use hoard_protocol::rpc;
use hoard_protocol::rpc::RaftMessage;
use hoard_protocol::SegmentId;
use hoard_storage::error::StorageError;
use hoard_storage::shard_file::ShardHeader;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Code;
use tonic::Status;

use crate::error::ActorError;

pub fn header_to_wire(h: &ShardHeader) -> rpc::ShardHeader {
    rpc::ShardHeader {
        segment_hi: (h.segment.0 >> 64) as u64,
        segment_lo: h.segment.0 as u64,
        shard_index: u32::from(h.shard_index),
        data: u32::from(h.data),
        parity: u32::from(h.parity),
        block_size: h.block_size,
    }
}

pub fn header_from_wire(h: Option<rpc::ShardHeader>) -> Result<ShardHeader, Status> {
    let h = h.ok_or_else(|| Status::invalid_argument("no shard header"))?;
    let byte = |v: u32, what: &str| {
        u8::try_from(v).map_err(|_| Status::invalid_argument(format!("shard header: {what} {v} is over 255")))
    };
    Ok(ShardHeader {
        segment: SegmentId((u128::from(h.segment_hi) << 64) | u128::from(h.segment_lo)),
        shard_index: byte(h.shard_index, "shard index")?,
        data: byte(h.data, "data shards")?,
        parity: byte(h.parity, "parity shards")?,
        block_size: h.block_size,
    })
}

/// The status an error crosses the wire as.
pub fn status_of(e: ActorError) -> Status {
    match e {
        ActorError::Timeout(what) => Status::deadline_exceeded(format!("{what} did not answer in time")),
        ActorError::Unavailable(what) => Status::unavailable(format!("{what} is unavailable")),
        ActorError::Storage(StorageError::NotFound(m)) => Status::not_found(m),
        ActorError::Storage(StorageError::Corrupt(m)) => Status::data_loss(m),
        ActorError::Storage(StorageError::Io(e)) => Status::internal(e.to_string()),
        ActorError::Storage(e) => Status::invalid_argument(e.to_string()),
        ActorError::Injected(point) => Status::aborted(point),
        ActorError::Invalid(m) => Status::invalid_argument(m),
        other => Status::internal(other.to_string()),
    }
}

/// The error a status from a peer means here. Where `peer` names the remote side in messages.
pub fn error_of(status: Status, peer: &'static str) -> ActorError {
    let m = status.message().to_string();
    match status.code() {
        Code::DeadlineExceeded | Code::Cancelled => ActorError::Timeout(peer),
        Code::Unavailable | Code::ResourceExhausted | Code::Unknown => ActorError::Unavailable(peer),
        Code::NotFound => ActorError::Storage(StorageError::NotFound(m)),
        Code::DataLoss => ActorError::Storage(StorageError::Corrupt(m)),
        Code::Aborted => ActorError::Injected(m),
        Code::InvalidArgument => ActorError::Invalid(m),
        _ => ActorError::Storage(StorageError::Io(std::io::Error::other(format!("{peer}: {m}")))),
    }
}

pub fn encode_raft<T: Serialize>(value: &T) -> Result<RaftMessage, Status> {
    let body = bincode::serialize(value).map_err(|e| Status::internal(format!("encoding a Raft message: {e}")))?;
    Ok(RaftMessage { format: rpc::RAFT_FORMAT_BINCODE, body: body.into() })
}

pub fn decode_raft<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, Status> {
    if msg.format != rpc::RAFT_FORMAT_BINCODE {
        return Err(Status::invalid_argument(format!("Raft message format {} is unknown here", msg.format)));
    }
    bincode::deserialize(&msg.body).map_err(|e| Status::invalid_argument(format!("decoding a Raft message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_cross_the_wire_unchanged_and_oversized_fields_are_refused() {
        let h = ShardHeader {
            segment: SegmentId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            shard_index: 5,
            data: 4,
            parity: 2,
            block_size: 1 << 20,
        };
        assert_eq!(header_from_wire(Some(header_to_wire(&h))).unwrap(), h);
        let mut bad = header_to_wire(&h);
        bad.data = 256;
        assert_eq!(header_from_wire(Some(bad)).unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(header_from_wire(None).unwrap_err().code(), Code::InvalidArgument);
    }

    #[test]
    fn errors_keep_their_kind_across_the_wire() {
        let back = |e| error_of(status_of(e), "peer");
        assert!(matches!(back(ActorError::Timeout("disk")), ActorError::Timeout(_)));
        assert!(matches!(back(ActorError::Unavailable("disk")), ActorError::Unavailable(_)));
        assert!(matches!(
            back(StorageError::NotFound("x".into()).into()),
            ActorError::Storage(StorageError::NotFound(_))
        ));
        assert!(matches!(
            back(StorageError::Corrupt("crc".into()).into()),
            ActorError::Storage(StorageError::Corrupt(_))
        ));
        assert!(matches!(back(ActorError::Invalid("no".into())), ActorError::Invalid(_)));
    }

    #[test]
    fn raft_messages_of_an_unknown_format_are_refused() {
        let mut m = encode_raft(&42u64).unwrap();
        assert_eq!(decode_raft::<u64>(&m).unwrap(), 42);
        m.format = 99;
        assert_eq!(decode_raft::<u64>(&m).unwrap_err().code(), Code::InvalidArgument);
    }
}
