//! Fuzz targets for hoard's decoders and parsers: everything that reads bytes hoard did not write itself in
//! this process (records and log entries from disk, shard headers, sealed blocks, S3 XML bodies, request
//! headers and signatures).
//!
//! Each target is a plain function of the input bytes, so that the libFuzzer entry points in `fuzz_targets/`
//! are one line each and `cargo test` can replay the kept inputs in `regressions/<target>/` without libFuzzer.
//!
//! A target must never panic: a panic (or an overflow, or a failed assertion) is a bug found. Besides not
//! panicking, the targets check properties that must hold for every input, such as decode → encode → decode
//! giving back the same value.

use std::cell::RefCell;
use std::fmt::Debug;
use std::sync::Arc;

use hoard_protocol::BucketRecord;
use hoard_protocol::Credential;
use hoard_protocol::EncryptionSettings;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::ObjectRecord;
use hoard_protocol::PartRecord;
use hoard_protocol::RepairRecord;
use hoard_protocol::Segment;
use hoard_protocol::StoredCredential;
use hoard_protocol::UploadRecord;
use hoard_storage::meta::TypeConfig;
use hoard_storage::seal;
use hoard_storage::seal::DataKey;
use hoard_storage::seal::Sealer;
use hoard_storage::shard_file;
use hoard_storage::shard_file::ShardHeader;
use s3s::dto::CompletedMultipartUpload;
use s3s::dto::CopySource;
use s3s::dto::CreateBucketConfiguration;
use s3s::dto::Delete;
use s3s::dto::ETag;
use s3s::dto::ETagCondition;
use s3s::dto::Range;
use s3s::dto::ServerSideEncryptionConfiguration;
use s3s::dto::Timestamp;
use s3s::dto::TimestampFormat;
use s3s::service::S3Service;

mod request;
mod sigv4;

/// The access key the `sigv4_request` target's service knows.
pub const ACCESS_KEY: &str = "hoardtest";
/// Its secret key.
pub const SECRET_KEY: &str = "hoardtestsecret";

/// The data key every `sealed_chunk` input is opened with, so kept inputs sealed under it open.
pub const SEAL_KEY: [u8; seal::KEY_LEN] = [0x5a; seal::KEY_LEN];
/// The data id every `sealed_chunk` input is opened with.
pub const SEAL_DATA_ID: [u8; seal::DATA_ID_LEN] = *b"hoard-fuzz-data!";
/// Bytes of the `sealed_chunk` header before the payload: flags, block index, part, salt, plaintext block size.
pub const SEAL_HEADER_LEN: usize = 1 + 8 + 4 + 8 + 2;
/// The longest plaintext the `sealed_chunk` target seals and damages per input.
const MAX_SEALED_PLAIN: usize = 4096;
/// Plaintext lengths `seal::sealed_len` is checked on: far above anything hoard seals (a part is at most 5 GiB),
/// and low enough that 16 bytes per 1-byte block still fit in a u64 (`sealed_len` does not guard against
/// overflow, so lengths near `u64::MAX` are outside its domain).
const MAX_PLAIN_LEN: u64 = 1 << 59;
/// Plaintext block sizes `seal::plain_len` is checked to invert `seal::sealed_len` on: those hoard's segments can
/// have (a layout's block size is a u32). Within 16 of `u64::MAX`, `plain_len` refuses what `sealed_len` gives
/// (it cannot add the tag to the block size), which no stored segment reaches.
const MAX_PLAIN_BLOCK: u64 = u32::MAX as u64;
/// Stream sizes handed to the shard file layout helpers: far above anything hoard stores (a segment is one part
/// or one object), well below where their arithmetic could overflow.
const MAX_STREAM_SIZE: u64 = 1 << 48;

/// The persisted and sent types of `hoard_protocol`, and the Raft state `hoard_storage::meta` keeps, in the
/// order the first input byte picks them (modulo their count).
pub const RECORD_TYPES: [&str; 15] = [
    "ObjectRecord",
    "BucketRecord",
    "UploadRecord",
    "PartRecord",
    "MetaCommand",
    "MetaResponse",
    "EncryptionSettings",
    "RepairRecord",
    "Credential",
    "Segment",
    "Entry<TypeConfig>",
    "Vote<u64>",
    "Option<LogId<u64>>",
    "StoredMembership<u64, NodeAddr>",
    "StoredCredential",
];

/// Decodes the input (after its first byte) as one of hoard's persisted types, chosen by the first byte. A value
/// that decodes must encode to bytes that decode to the same value.
pub fn record_decoder(data: &[u8]) {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    match usize::from(choice) % RECORD_TYPES.len() {
        0 => record_round_trip::<ObjectRecord>(bytes),
        1 => record_round_trip::<BucketRecord>(bytes),
        2 => record_round_trip::<UploadRecord>(bytes),
        3 => record_round_trip::<PartRecord>(bytes),
        4 => record_round_trip::<MetaCommand>(bytes),
        5 => record_round_trip::<MetaResponse>(bytes),
        6 => record_round_trip::<EncryptionSettings>(bytes),
        7 => record_round_trip::<RepairRecord>(bytes),
        8 => record_round_trip::<Credential>(bytes),
        9 => record_round_trip::<Segment>(bytes),
        10 => record_round_trip::<openraft::Entry<TypeConfig>>(bytes),
        11 => record_round_trip::<openraft::Vote<u64>>(bytes),
        12 => record_round_trip::<Option<openraft::LogId<u64>>>(bytes),
        13 => record_round_trip::<openraft::StoredMembership<u64, NodeAddr>>(bytes),
        _ => record_round_trip::<StoredCredential>(bytes),
    }
}

fn record_round_trip<T>(bytes: &[u8])
where
    T: hoard_protocol::Persisted + PartialEq + Debug,
{
    let Ok(value) = hoard_protocol::decode::<T>(bytes) else {
        return;
    };
    let encoded = hoard_protocol::encode(&value);
    match hoard_protocol::decode::<T>(&encoded) {
        Ok(again) => assert!(again == value, "re-encoded record decodes differently:\n{value:?}\n{again:?}"),
        Err(e) => panic!("re-encoded record does not decode ({e}): {value:?}"),
    }
}

/// Decodes the input as a shard file header. A header that decodes must encode to 64 bytes that decode to the
/// same header; the layout helpers must agree with it for a stream size taken from the bytes after the header,
/// and a shard file name taken from the whole input must parse only if it is the canonical name.
pub fn shard_header(data: &[u8]) {
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some((segment, index)) = shard_file::parse_shard_name(name) {
            assert_eq!(shard_file::shard_name(segment, index), name, "a non-canonical shard name parsed");
        }
    }
    let Ok(header) = ShardHeader::decode(data) else {
        return;
    };
    let encoded = header.encode();
    match ShardHeader::decode(&encoded) {
        Ok(again) => assert_eq!(again, header, "re-encoded shard header decodes differently"),
        Err(e) => panic!("re-encoded shard header does not decode ({e}): {header:?}"),
    }
    let size = read_u64(data, shard_file::HEADER_LEN as usize) % MAX_STREAM_SIZE;
    let blocks = shard_file::block_count(size, header.block_size);
    let file_len = shard_file::shard_file_len(size, header.block_size, header.data);
    assert!(file_len >= shard_file::HEADER_LEN, "shard file of {size} bytes is {file_len} bytes");
    assert!(
        file_len <= shard_file::shard_file_len(size + 1, header.block_size, header.data),
        "shard file length shrinks as the stream grows ({size} bytes)"
    );
    if let Some(last) = blocks.checked_sub(1) {
        let last_len = shard_file::block_len(size, header.block_size, last);
        assert!(last_len > 0 && last_len <= header.block_size as usize, "last block of {size} bytes is {last_len}");
        assert_eq!(shard_file::block_len(size, header.block_size, blocks), 0, "a block past the end has bytes");
        let offset = shard_file::piece_offset(last, header.block_size, header.data);
        assert!(offset < file_len, "last piece at {offset} of a {file_len}-byte file");
    } else {
        assert_eq!(size, 0, "a non-empty stream without blocks");
        assert_eq!(file_len, shard_file::HEADER_LEN);
    }
}

/// Opens the payload as a sealed block and as a sealed stream under [`SEAL_KEY`], with the block index, last
/// flag, part, salt and plaintext block size read from the first [`SEAL_HEADER_LEN`] bytes (little-endian):
///
/// ```text
/// 0       flags: bit 0 last, bits 1..8 the mask that damages a sealed byte
/// 1..9    block index, u64
/// 9..13   part, u32
/// 13..21  salt, u64
/// 21..23  plaintext block size, u16
/// 23..    payload
/// ```
///
/// Whatever opens must seal back to the same bytes; copying and in-place opening must agree. Then the payload
/// (as plaintext) is sealed, one byte flipped, the stream cut short and lengthened: none of those may open. The
/// length helpers must not panic and must invert each other.
pub fn sealed_chunk(data: &[u8]) {
    let flags = data.first().copied().unwrap_or(0);
    let last = flags & 1 == 1;
    let block = read_u64(data, 1);
    let part = read_u32(data, 9);
    let salt = read_u64(data, 13);
    let plain_block = usize::from(read_u16(data, 21));
    let payload = data.get(SEAL_HEADER_LEN..).unwrap_or(&[]);
    let sealer = Sealer::new(&DataKey::from_bytes(SEAL_KEY), SEAL_DATA_ID, part, salt);

    // One block, copied out and in place: both open it or both refuse it, and what opens seals back to the input.
    let opened = sealer.open(block, last, payload);
    let mut in_place = payload.to_vec();
    match (&opened, sealer.open_in_place(block, last, &mut in_place)) {
        (Ok(plain), Ok(len)) => {
            assert_eq!(in_place.get(..len), Some(plain.as_slice()), "open and open_in_place give different plaintext");
            assert_eq!(
                sealer.seal(block, last, plain).ok().as_deref(),
                Some(payload),
                "an opened block re-seals differently"
            );
        }
        (Err(_), Err(_)) => {}
        (copied, in_place) => panic!("open gave {copied:?} but open_in_place gave {in_place:?}"),
    }

    // The payload as a whole stream.
    if let Ok(plain) = sealer.open_all(payload, plain_block) {
        let expected = seal::plain_len(payload.len() as u64, plain_block as u64).ok();
        assert_eq!(Some(plain.len() as u64), expected, "open_all's plaintext length disagrees with plain_len");
        assert_eq!(
            sealer.seal_all(&plain, plain_block).ok().as_deref(),
            Some(payload),
            "an opened stream re-seals differently"
        );
    }

    // The payload as plaintext: sealed, it opens; damaged, cut short or lengthened, it never does.
    if plain_block > 0 {
        let plain = &payload[..payload.len().min(MAX_SEALED_PLAIN)];
        let sealed = match sealer.seal_all(plain, plain_block) {
            Ok(sealed) => sealed,
            Err(e) => panic!("sealing {} bytes in {plain_block}-byte blocks failed: {e}", plain.len()),
        };
        assert_eq!(sealed.len() as u64, seal::sealed_len(plain.len() as u64, plain_block as u64));
        assert_eq!(sealer.open_all(&sealed, plain_block).ok().as_deref(), Some(plain), "a sealed stream does not open");
        let mask = (flags >> 1).max(1);
        let at = (salt % sealed.len() as u64) as usize;
        let mut damaged = sealed.clone();
        damaged[at] ^= mask;
        assert!(sealer.open_all(&damaged, plain_block).is_err(), "a stream opened with byte {at} xored by {mask:#04x}");
        let cut = sealed.len() - 1 - (block % sealed.len() as u64) as usize;
        assert!(sealer.open_all(&sealed[..cut], plain_block).is_err(), "a stream cut to {cut} bytes opened");
        let mut longer = sealed.clone();
        longer.extend_from_slice(payload.get(..(usize::from(mask) % 40) + 1).unwrap_or(&[0]));
        assert!(sealer.open_all(&longer, plain_block).is_err(), "a lengthened stream opened");
    }

    // The length helpers, on every pairing of the header's numbers.
    for len in [payload.len() as u64, salt, block, u64::from(part)] {
        for plain_block in [plain_block as u64, u64::from(part), block, salt] {
            sealed_lengths(len, plain_block);
        }
    }
}

fn sealed_lengths(len: u64, plain_block: u64) {
    let plain = seal::plain_len(len, plain_block);
    let blocks = seal::block_count(len, plain_block);
    match (plain, blocks) {
        (Ok(plain), Ok(blocks)) => {
            assert!(plain < len, "{len} sealed bytes hold {plain} plaintext bytes");
            assert_eq!(seal::sealed_len(plain, plain_block), len, "sealed_len does not invert plain_len");
            assert_eq!(blocks, plain.div_ceil(plain_block).max(1), "{len} sealed bytes in {blocks} blocks");
        }
        (Err(_), Err(_)) => {}
        (plain, blocks) => panic!("plain_len gave {plain:?} but block_count gave {blocks:?} for {len}, {plain_block}"),
    }
    if plain_block > 0 && plain_block <= MAX_PLAIN_BLOCK && len < MAX_PLAIN_LEN {
        let sealed = seal::sealed_len(len, plain_block);
        assert!(sealed > len, "{len} plaintext bytes seal to {sealed}");
        assert_eq!(seal::plain_len(sealed, plain_block).ok(), Some(len), "plain_len does not invert sealed_len");
    }
}

/// The S3 XML bodies hoard accepts, chosen by the first byte; the rest is the body.
pub const XML_BODIES: [&str; 4] =
    ["Delete", "CompletedMultipartUpload", "CreateBucketConfiguration", "ServerSideEncryptionConfiguration"];

/// Parses the input (after its first byte) as one of the S3 XML request bodies hoard accepts, with s3s's
/// deserializer as hoard's S3 layer does (the document, then nothing but the end). A body that parses must
/// serialize to XML that parses to the same value.
pub fn xml_bodies(data: &[u8]) {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    match usize::from(choice) % XML_BODIES.len() {
        0 => {
            if let Some(delete) = parse_xml::<Delete>(body) {
                if delete.objects.iter().filter_map(|object| object.e_tag.as_ref()).all(etag_survives_xml) {
                    xml_round_trip(&delete);
                }
                for object in &delete.objects {
                    let _ = hoard_protocol::names::check_key(&object.key);
                }
            }
        }
        1 => {
            let Some(upload) = parse_xml::<CompletedMultipartUpload>(body) else {
                return;
            };
            // Only bodies whose ETags survive s3s's serializer round-trip (see `etag_survives_xml`); hoard only
            // compares these ETags with the ones it stored, so a part with another ETag is just not found.
            let mut etags = upload.parts.iter().flatten().filter_map(|part| part.e_tag.as_ref());
            if etags.all(etag_survives_xml) {
                xml_round_trip(&upload);
            }
        }
        2 => {
            if let Some(config) = parse_xml::<CreateBucketConfiguration>(body) {
                xml_round_trip(&config);
            }
        }
        _ => {
            if let Some(config) = parse_xml::<ServerSideEncryptionConfiguration>(body) {
                xml_round_trip(&config);
            }
        }
    }
}

fn parse_xml<T>(body: &[u8]) -> Option<T>
where
    T: for<'xml> s3s::xml::Deserialize<'xml>,
{
    let mut d = s3s::xml::Deserializer::new(body);
    let value = T::deserialize(&mut d).ok()?;
    d.expect_eof().ok()?;
    Some(value)
}

/// Serializes a parsed body and parses it again: it must give the same value.
fn xml_round_trip<T>(value: &T)
where
    T: for<'xml> s3s::xml::Deserialize<'xml> + s3s::xml::Serialize + PartialEq + Debug,
{
    let mut out = Vec::new();
    if let Err(e) = value.serialize(&mut s3s::xml::Serializer::new(&mut out)) {
        panic!("a parsed body does not serialize ({e:?}): {value:?}");
    }
    match parse_xml::<T>(&out) {
        Some(again) => assert!(again == *value, "re-serialized body parses differently:\n{value:?}\n{again:?}"),
        None => panic!("re-serialized body does not parse: {:?}", String::from_utf8_lossy(&out)),
    }
}

/// Whether s3s writes an ETag as XML that it parses back. s3s keeps an ETag that is not in header form
/// (`<ETag>\0</ETag>`) as it is, control characters and all, and writes ETags as raw text (for the literal
/// quotes), so one holding `&` or `<` makes malformed XML. hoard's own ETags are hex.
fn etag_survives_xml(etag: &ETag) -> bool {
    let header = etag.to_http_header();
    let is_header = header.is_ok_and(|header| ETag::parse_http_header(header.as_bytes()).is_ok_and(|e| e == *etag));
    is_header && !etag.value().contains(['&', '<'])
}

/// Parses the input as the request header values hoard reads with s3s's parsers: `Range` (checked against
/// object sizes taken from the input and the range itself), `ETag`, `If-Match`/`If-None-Match`,
/// `x-amz-copy-source` (whose bucket and key then go through hoard's name checks), the HTTP dates of
/// `If-Modified-Since` and friends, and, split at the first newline, an SSE-C key and its MD5.
pub fn range_and_conditions(data: &[u8]) {
    let text = std::str::from_utf8(data).ok();

    if let Some(range) = text.and_then(|t| Range::parse(t).ok()) {
        let again = Range::parse(&range.to_header_string()).ok();
        assert_eq!(again, Some(range), "a parsed range prints as {:?}", range.to_header_string());
        let (a, b) = match range {
            Range::Int { first, last } => (first, last.unwrap_or(first)),
            Range::Suffix { length } => (length, length),
        };
        let sizes = [0, 1, a, a.saturating_add(1), b, b.saturating_add(1), read_u64(data, 0), u64::MAX];
        for size in sizes {
            check_range(range, size);
        }
    }

    if let Ok(etag) = ETag::parse_http_header(data) {
        match etag.to_http_header() {
            Ok(header) => {
                let again = ETag::parse_http_header(header.as_bytes()).ok();
                assert_eq!(again.as_ref(), Some(&etag), "a parsed ETag prints as {header:?}");
            }
            Err(e) => panic!("a parsed ETag is not a header value ({e}): {etag:?}"),
        }
    }

    if let Ok(condition) = ETagCondition::parse_http_header(data) {
        match condition.to_http_header() {
            Ok(header) => {
                let again = ETagCondition::parse_http_header(header.as_bytes()).ok();
                assert_eq!(again.as_ref(), Some(&condition), "a parsed condition prints as {header:?}");
            }
            Err(e) => panic!("a parsed ETag condition is not a header value ({e}): {condition:?}"),
        }
    }

    if let Some(text) = text {
        if let Ok(CopySource::Bucket { bucket, key, version_id }) = CopySource::parse(text) {
            let _ = hoard_protocol::names::check_bucket(&bucket);
            let _ = hoard_protocol::names::check_key(&key);
            let printed = CopySource::Bucket { bucket, key, version_id }.format_to_string();
            let _ = CopySource::parse(&printed);
        }
        for format in [TimestampFormat::HttpDate, TimestampFormat::DateTime, TimestampFormat::EpochSeconds] {
            if let Ok(t) = Timestamp::parse(format, text) {
                let mut printed = Vec::new();
                let _ = t.format(format, &mut printed);
            }
        }
        let (key, md5) = text.split_once('\n').unwrap_or((text, ""));
        let (algorithm, key, md5) = ("AES256".to_string(), key.to_string(), md5.to_string());
        let headers = hoard_s3::sse::SseCHeaders { algorithm: Some(&algorithm), key: Some(&key), key_md5: Some(&md5) };
        let _ = hoard_s3::sse::customer_key(headers, hoard_s3::sse::Secure(true));
    }
}

fn check_range(range: Range, size: u64) {
    let Ok(window) = range.check(size) else {
        return;
    };
    assert!(window.start <= window.end && window.end <= size, "{range:?} of {size} bytes is {window:?}");
    if size > 0 {
        assert!(window.start < window.end, "{range:?} of {size} bytes is empty");
    }
    if let Range::Int { first, .. } = range {
        assert_eq!(window.start, first, "{range:?} of {size} bytes starts elsewhere");
    }
}

thread_local! {
    /// The runtime and service every `sigv4_request` input goes through, made once per thread.
    static SERVICE: RefCell<Option<(tokio::runtime::Runtime, S3Service)>> = const { RefCell::new(None) };
}

/// An S3 service that implements nothing: every operation it reaches answers NotImplemented, after s3s has
/// authenticated the request and parsed its input as hoard's service would see it.
struct Nothing;

impl s3s::S3 for Nothing {}

fn service() -> S3Service {
    let mut builder = s3s::service::S3ServiceBuilder::new(Nothing);
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = hoard_s3::gate::MAX_XML_BODY;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config))));
    builder.set_auth(hoard_s3::auth::Credentials::new([(ACCESS_KEY.to_string(), SECRET_KEY.to_string())]));
    builder.build()
}

/// Builds an HTTP request from the input and sends it through hoard's gate ([`hoard_s3::gate::refuse`]) and, if
/// the gate lets it through (as in hoard's frontend), through an s3s service configured as hoard's (hoard's
/// credentials check and XML body limit; s3s's own access check, which refuses anonymous requests) whose operations all answer NotImplemented. This
/// exercises SigV4 header and presigned-query parsing, the aws-chunked decoder and s3s's request parsing as
/// hoard sees them. The input format is in the `request` module; an input with the sign flag set is signed with
/// the service's own key at the current time, so that it gets past authentication.
pub fn sigv4_request(data: &[u8]) {
    let Some(parsed) = request::FuzzRequest::parse(data) else {
        return;
    };
    let Some(req) = parsed.build() else {
        return;
    };
    // As hoard's frontend: what the gate refuses never reaches s3s.
    if let Some(refusal) = hoard_s3::gate::refuse(&req) {
        if let Ok(resp) = refusal.to_http_response() {
            assert!(resp.status().as_u16() >= 400, "a refusal answered {}", resp.status());
        }
        return;
    }
    SERVICE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (runtime, service) = slot.get_or_insert_with(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            (runtime, service())
        });
        runtime.block_on(async {
            if let Ok(resp) = service.call(req).await {
                assert_ne!(resp.status().as_u16(), 0, "a response without a status");
                let mut body = resp.into_body();
                let _ = body.store_all_limited(1 << 20).await;
            }
        });
    });
}

fn read_u64(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = data.get(at + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

fn read_u16(data: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([data.get(at).copied().unwrap_or(0), data.get(at + 1).copied().unwrap_or(0)])
}

#[cfg(test)]
mod tests;
