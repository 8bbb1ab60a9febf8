//! Replays every kept input of `regressions/<target>/` through its target, and checks that the signer gets
//! requests past s3s's authentication. `write_seed_inputs` (ignored; run it with `--ignored`) rewrites the
//! seed inputs, which are made here from real records, sealed blocks and requests.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;

use base64::Engine as _;
use hoard_protocol::BucketEncryption;
use hoard_protocol::Checksums;
use hoard_protocol::DiskRef;
use hoard_protocol::Encryption;
use hoard_protocol::ObjectHeaders;
use hoard_protocol::Rewrap;
use hoard_protocol::RewrapTarget;
use hoard_protocol::Rotation;
use hoard_protocol::RotationCursor;
use hoard_protocol::SegmentId;
use hoard_protocol::SegmentSeal;
use hoard_protocol::ShardLayout;
use hoard_protocol::WrappedKey;
use hoard_protocol::WriteCondition;
use md5::Digest as _;

use super::*;

fn regressions(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(target)
}

/// Runs every file of `regressions/<target>/` through `run`; the directory must hold some.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = regressions(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        eprintln!("{target}: {}", file.display());
        run(&data);
    }
}

#[test]
fn every_kept_record_input_decodes_without_panic() {
    replay("record_decoder", record_decoder);
}

#[test]
fn every_kept_shard_header_input_decodes_without_panic() {
    replay("shard_header", shard_header);
}

#[test]
fn every_kept_sealed_chunk_input_opens_or_fails_cleanly() {
    replay("sealed_chunk", sealed_chunk);
}

#[test]
fn every_kept_xml_body_parses_or_fails_cleanly() {
    replay("xml_bodies", xml_bodies);
}

#[test]
fn every_kept_range_and_condition_input_parses_or_fails_cleanly() {
    replay("range_and_conditions", range_and_conditions);
}

#[test]
fn every_kept_request_gets_an_answer() {
    replay("sigv4_request", sigv4_request);
}

/// Sends a `sigv4_request` input through the target's service and returns the status (and the body, which
/// names the S3 error, in the test's output).
fn status_of(input: &[u8]) -> u16 {
    let req = request::FuzzRequest::parse(input).unwrap().build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let resp = service().call(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().store_all_limited(1 << 20).await.unwrap();
        eprintln!("{status} {}", String::from_utf8_lossy(&body));
        status
    })
}

#[test]
fn signed_requests_get_past_authentication_and_unsigned_ones_do_not() {
    // ListBuckets, signed: s3s authenticates it and finds that the service implements nothing.
    assert_eq!(status_of(b"\x08/\n\n"), 501);
    assert_eq!(status_of(b"\x18/\n\n"), 501, "signed over the body's SHA-256");
    assert_eq!(status_of(b"\x08/?max-buckets=5&prefix=a%20b+c\n\n"), 501, "a query to canonicalize");
    // DeleteObjects, signed over its body: the XML is read and parsed before the operation is reached.
    let delete = delete_objects_request(0x1a, DELETE_TWO_KEYS, &[]);
    assert_eq!(status_of(&delete), 501);
    // The same body in aws-chunked framing, unsigned chunks with a trailing checksum: authenticated, and the
    // chunks decoded. (s3s 0.14 then compares the decoded body with a content length it has set to 0, and
    // answers IncompleteBody, so an XML body in aws-chunked framing never reaches the operation.)
    let chunked = delete_objects_request(0x2a, &aws_chunked(DELETE_TWO_KEYS), &chunked_headers(DELETE_TWO_KEYS));
    assert!(![403, 501].contains(&status_of(&chunked)));
    // Unsigned, or signed by someone else: refused.
    assert_eq!(status_of(b"\x00/\n\n"), 403);
    assert_eq!(status_of(STALE_SIGNED_GET.as_bytes()), 403);
}

/// s3s 0.14 overflows (and so panics where overflow checks are on) on a SigV4 date digit below '0'; these
/// inputs, found by the fuzzer, must be refused by hoard's gate before s3s parses them.
#[test]
fn the_gate_keeps_dates_that_overflow_the_s3_library_away_from_it() {
    let names = [
        "crash-s3s-credential-date-digit-below-zero.txt",
        "crash-s3s-amz-date-digit-below-zero.txt",
        "crash-s3s-presigned-date-digit-below-zero.txt",
    ];
    for name in names {
        let input = std::fs::read(regressions("sigv4_request").join(name)).unwrap();
        let req = request::FuzzRequest::parse(&input).unwrap().build().unwrap();
        assert!(hoard_s3::gate::refuse(&req).is_some(), "{name} reaches s3s");
    }
}

const DELETE_TWO_KEYS: &[u8] =
    b"<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Object><Key>photos/2024/a.jpg</Key></Object>\
<Object><Key>notes &amp; drafts/b.txt</Key><VersionId>v1</VersionId></Object><Quiet>true</Quiet></Delete>";

const STALE_SIGNED_GET: &str = "\x00/bucket/key\n\
host: localhost:9000\n\
x-amz-date: 20250101T000000Z\n\
x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
authorization: AWS4-HMAC-SHA256 Credential=hoardtest/20250101/us-east-1/s3/aws4_request, \
SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7\n\n";

/// A `sigv4_request` input: POST `/bucket?delete` with `body` and `headers` (with their MD5 when not chunked).
fn delete_objects_request(flags: u8, body: &[u8], headers: &[(&str, String)]) -> Vec<u8> {
    let mut input = vec![flags];
    input.extend_from_slice(b"/bucket?delete\n");
    for (name, value) in headers {
        input.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    if headers.is_empty() {
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
        input.extend_from_slice(format!("content-md5: {md5}\n").as_bytes());
    }
    input.push(b'\n');
    input.extend_from_slice(body);
    input
}

/// `body` in aws-chunked framing: one chunk, the final empty chunk, and a trailing CRC32 checksum.
fn aws_chunked(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n");
    let crc = base64::engine::general_purpose::STANDARD.encode(crc32(body).to_be_bytes());
    out.extend_from_slice(format!("x-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
    out
}

fn chunked_headers(body: &[u8]) -> Vec<(&'static str, String)> {
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
    vec![
        ("content-encoding", "aws-chunked".to_string()),
        ("x-amz-decoded-content-length", body.len().to_string()),
        ("x-amz-trailer", "x-amz-checksum-crc32".to_string()),
        ("content-md5", md5),
    ]
}

/// CRC-32 (IEEE), bit by bit: only for making seed inputs.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

// ---- seed inputs -------------------------------------------------------------------------------------------

fn record<T: hoard_protocol::Persisted>(kind: &str, value: &T) -> Vec<u8> {
    let index = RECORD_TYPES.iter().position(|t| *t == kind).unwrap();
    let mut out = vec![index as u8];
    out.extend_from_slice(&hoard_protocol::encode(value));
    out
}

fn layout() -> ShardLayout {
    ShardLayout {
        data: 4,
        parity: 2,
        block_size: 1 << 20,
        disks: (0..6).map(|i| DiskRef { node: 1 + i / 2, disk: (i % 2) as u32 }).collect(),
    }
}

fn segment(part_number: u32, sealed: bool) -> Segment {
    Segment {
        id: SegmentId(0x0123_4567_89ab_cdef_0011_2233_4455_6677 + u128::from(part_number)),
        part_number,
        size: 5 << 20,
        layout: layout(),
        seal: sealed.then_some(SegmentSeal { salt: 0x0102_0304_0506_0708 }),
    }
}

fn wrapped() -> WrappedKey {
    WrappedKey { format: 1, data_id: SEAL_DATA_ID, wrapped: vec![0xa5; 40] }
}

fn headers() -> ObjectHeaders {
    ObjectHeaders {
        content_type: Some("text/plain; charset=utf-8".into()),
        content_encoding: Some("gzip".into()),
        cache_control: Some("max-age=60".into()),
        user_metadata: BTreeMap::from([("owner".into(), "hoard".into()), ("x".into(), String::new())]),
        ..ObjectHeaders::default()
    }
}

fn checksums() -> Checksums {
    Checksums {
        crc32c: Some("yZRlqg==".into()),
        sha256: Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into()),
        checksum_type: Some("FULL_OBJECT".into()),
        ..Checksums::default()
    }
}

fn object(inline: bool) -> ObjectRecord {
    ObjectRecord {
        bucket: "photos".into(),
        key: "2024/holiday/beach.jpg".into(),
        version_id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        size: if inline { 11 } else { 10 << 20 },
        etag: if inline {
            "5eb63bbbe01eeed093cb22bb8f5acdc3".into()
        } else {
            "3858f62230ac3c915f300c664312c11f-2".into()
        },
        last_modified_ms: 1_717_000_000_000,
        headers: headers(),
        checksums: checksums(),
        segments: if inline { vec![] } else { vec![segment(1, true), segment(2, true)] },
        encryption: if inline {
            Encryption::None
        } else {
            Encryption::SseS3 { key_id: "00112233aabbccdd".into(), key: wrapped() }
        },
        inline: inline.then(|| b"hello world".to_vec()),
    }
}

fn upload() -> UploadRecord {
    UploadRecord {
        bucket: "photos".into(),
        key: "big.bin".into(),
        upload_id: "b5f0e3a1c2d4".into(),
        initiated_ms: 1_717_000_000_000,
        headers: headers(),
        checksum_algorithm: Some("CRC32C".into()),
        encryption: Encryption::SseC { key: wrapped() },
    }
}

fn part() -> PartRecord {
    PartRecord {
        part_number: 2,
        etag: "9e107d9d372bb6826bd81d3542a419d6".into(),
        size: 5 << 20,
        last_modified_ms: 1_717_000_000_500,
        checksums: checksums(),
        segment: segment(2, false),
    }
}

fn log_id(index: u64) -> openraft::LogId<u64> {
    openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), index)
}

fn membership() -> openraft::Membership<u64, NodeAddr> {
    let nodes: BTreeMap<u64, NodeAddr> = (1..=3).map(|n| (n, NodeAddr { addr: format!("10.0.0.{n}:7000") })).collect();
    openraft::Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

/// A secret key sealed as one block, as a sealed stored credential holds it.
fn sealed_secret() -> Vec<u8> {
    Sealer::new(&DataKey::from_bytes(SEAL_KEY), SEAL_DATA_ID, 0, 0).seal(0, true, b"s3cr3t-k3y").unwrap()
}

fn record_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let bucket = BucketRecord {
        name: "photos".into(),
        created_ms: 1_716_000_000_000,
        encryption: Some(BucketEncryption::SseS3),
    };
    let settings = EncryptionSettings {
        encrypt_all: true,
        active_key_id: Some("00112233aabbccdd".into()),
        rotation: Some(Rotation {
            to_key_id: "8899aabbccddeeff".into(),
            key_file: "/etc/hoard/master-2.key".into(),
            started_ms: 1_717_000_000_000,
            cursor: RotationCursor::Objects { after: Some(b"photos\x00a".to_vec()) },
            again: true,
            rewrapped: 42,
            finished_ms: None,
        }),
    };
    let rewrap = Rewrap {
        target: RewrapTarget::Object { bucket: "photos".into(), key: "a".into(), version_id: "v".into() },
        before: Encryption::SseS3 { key_id: "00112233aabbccdd".into(), key: wrapped() },
        after: Encryption::SseS3 { key_id: "8899aabbccddeeff".into(), key: wrapped() },
    };
    let commit = MetaCommand::CommitObjectIf {
        record: object(false),
        now_ms: 1_717_000_000_001,
        condition: WriteCondition::ETag("3858f62230ac3c915f300c664312c11f-2".into()),
    };
    let entry = |index, payload| openraft::Entry::<TypeConfig> { log_id: log_id(index), payload };
    vec![
        ("object-inline.bin", record("ObjectRecord", &object(true))),
        ("object-sealed-two-segments.bin", record("ObjectRecord", &object(false))),
        ("bucket.bin", record("BucketRecord", &bucket)),
        ("upload-sse-c.bin", record("UploadRecord", &upload())),
        ("part.bin", record("PartRecord", &part())),
        ("command-commit-object-if.bin", record("MetaCommand", &commit)),
        (
            "command-rewrap-batch.bin",
            record(
                "MetaCommand",
                &MetaCommand::RewrapBatch {
                    to_key_id: "8899aabbccddeeff".into(),
                    rewraps: vec![rewrap],
                    cursor: RotationCursor::End,
                    now_ms: 1,
                },
            ),
        ),
        (
            "command-complete-upload.bin",
            record(
                "MetaCommand",
                &MetaCommand::CompleteUploadIf {
                    upload_id: "b5f0e3a1c2d4".into(),
                    record: object(false),
                    now_ms: 2,
                    condition: WriteCondition::Absent,
                },
            ),
        ),
        (
            "response-replaced.bin",
            record("MetaResponse", &MetaResponse::Replaced { previous: Some(Box::new(object(true))) }),
        ),
        ("encryption-settings-rotating.bin", record("EncryptionSettings", &settings)),
        ("repair.bin", record("RepairRecord", &RepairRecord { segment: segment(1, true), shards: vec![0, 3, 5] })),
        (
            "credential.bin",
            record("Credential", &Credential { access_key: "hoardroot".into(), secret_key: "s3cr3t-k3y".into() }),
        ),
        ("garbage-segment.bin", record("Segment", &segment(0, false))),
        (
            "stored-credential-sealed.bin",
            record(
                "StoredCredential",
                &StoredCredential::Sealed {
                    access_key: "hoardroot".into(),
                    key: Encryption::SseS3 { key_id: "00112233aabbccdd".into(), key: wrapped() },
                    secret: sealed_secret(),
                },
            ),
        ),
        (
            "stored-credential-plain.bin",
            record(
                "StoredCredential",
                &StoredCredential::Plain(Credential {
                    access_key: "hoardroot".into(),
                    secret_key: "s3cr3t-k3y".into(),
                }),
            ),
        ),
        (
            "raft-entry-command.bin",
            record("Entry<TypeConfig>", &entry(17, openraft::EntryPayload::Normal(MetaCommand::CreateBucket(bucket)))),
        ),
        (
            "raft-entry-membership.bin",
            record("Entry<TypeConfig>", &entry(1, openraft::EntryPayload::Membership(membership()))),
        ),
        ("raft-entry-blank.bin", record("Entry<TypeConfig>", &entry(2, openraft::EntryPayload::Blank))),
        ("raft-vote.bin", record("Vote<u64>", &openraft::Vote::new(3, 1u64))),
        ("raft-log-id.bin", record("Option<LogId<u64>>", &Some(log_id(99)))),
        (
            "raft-stored-membership.bin",
            record("StoredMembership<u64, NodeAddr>", &openraft::StoredMembership::new(Some(log_id(1)), membership())),
        ),
        ("unknown-format.bin", vec![0, 2, 0, 0, 0]),
    ]
}

fn shard_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let header = ShardHeader::for_layout(segment(1, false).id, 5, &layout());
    let mut with_size = header.encode().to_vec();
    with_size.extend_from_slice(&(10u64 << 20 | 7).to_le_bytes());
    let small = ShardHeader { segment: SegmentId(1), shard_index: 0, data: 1, parity: 0, block_size: 1 };
    let mut bad_crc = header.encode().to_vec();
    bad_crc[63] ^= 1;
    vec![
        ("header-4-2-with-size.bin", with_size),
        ("header-1-0-block-1.bin", small.encode().to_vec()),
        ("header-bad-checksum.bin", bad_crc),
        ("shard-name.txt", shard_file::shard_name(segment(1, false).id, 5).into_bytes()),
    ]
}

fn sealed_input(flags: u8, block: u64, part: u32, salt: u64, plain_block: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&part.to_le_bytes());
    out.extend_from_slice(&salt.to_le_bytes());
    out.extend_from_slice(&plain_block.to_le_bytes());
    out.extend_from_slice(payload);
    assert_eq!(out.len(), SEAL_HEADER_LEN + payload.len());
    out
}

fn sealed_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (part, salt) = (3, 0x0102_0304_0506_0708);
    let sealer = Sealer::new(&DataKey::from_bytes(SEAL_KEY), SEAL_DATA_ID, part, salt);
    let plain = b"hoard keeps every byte it is given, sealed.";
    let one_block = sealer.seal(0, true, plain).unwrap();
    let middle_block = sealer.seal(7, false, &plain[..16]).unwrap();
    let stream = sealer.seal_all(plain, 16).unwrap();
    let empty = sealer.seal_all(&[], 16).unwrap();
    vec![
        ("one-last-block.bin", sealed_input(0x03, 0, part, salt, 64, &one_block)),
        ("middle-block.bin", sealed_input(0x10, 7, part, salt, 16, &middle_block)),
        ("stream-of-three.bin", sealed_input(0xfe, 2, part, salt, 16, &stream)),
        ("empty-stream.bin", sealed_input(0x01, 0, part, salt, 16, &empty)),
        ("plaintext-block-7.bin", sealed_input(0x40, 1, 9, 77, 7, plain)),
        ("past-block-index-limit.bin", sealed_input(0x01, 1 << 32, part, salt, 1, &one_block)),
    ]
}

fn xml_seed(kind: &str, body: &[u8]) -> Vec<u8> {
    let index = XML_BODIES.iter().position(|t| *t == kind).unwrap();
    let mut out = vec![index as u8];
    out.extend_from_slice(body);
    out
}

fn xml_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("delete-two-keys.xml", xml_seed("Delete", DELETE_TWO_KEYS)),
        (
            "delete-escapes.xml",
            xml_seed(
                "Delete",
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete>\n  <Object><Key>&lt;&#x41;&#66;&apos;&quot;&gt;</Key>\
<ETag>\"abc\"</ETag><LastModifiedTime>Wed, 01 May 2024 12:00:00 GMT</LastModifiedTime><Size>3</Size></Object>\n</Delete>\n",
            ),
        ),
        (
            "complete-two-parts.xml",
            xml_seed(
                "CompletedMultipartUpload",
                b"<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
<Part><PartNumber>1</PartNumber><ETag>\"0cc175b9c0f1b6a831c399e269772661\"</ETag></Part>\
<Part><PartNumber>2</PartNumber><ETag>92eb5ffee6ae2fec3ad71c777531578f</ETag>\
<ChecksumCRC32C>yZRlqg==</ChecksumCRC32C></Part></CompleteMultipartUpload>",
            ),
        ),
        (
            "create-bucket-location.xml",
            xml_seed(
                "CreateBucketConfiguration",
                b"<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>",
            ),
        ),
        (
            "bucket-encryption-aes256.xml",
            xml_seed(
                "ServerSideEncryptionConfiguration",
                b"<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>\
<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault>\
<BucketKeyEnabled>false</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>",
            ),
        ),
    ]
}

fn range_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let key = [0x42u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    let sse_c = format!("{}\n{}", b64.encode(key), b64.encode(md5::Md5::digest(key)));
    [
        ("range-closed.txt", "bytes=0-99"),
        ("range-open.txt", "bytes=1048576-"),
        ("range-suffix.txt", "bytes=-500"),
        ("range-largest.txt", "bytes=9223372036854775807-9223372036854775807"),
        ("etag-strong.txt", "\"0cc175b9c0f1b6a831c399e269772661\""),
        ("etag-weak.txt", "W/\"0cc175b9c0f1b6a831c399e269772661-3\""),
        ("etag-unquoted.txt", "3858f62230ac3c915f300c664312c11f-2"),
        ("condition-any.txt", "*"),
        ("copy-source.txt", "/photos/2024/beach%20day.jpg?versionId=0f1e2d3c"),
        ("http-date.txt", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ("date-time.txt", "2024-05-01T12:00:00.000Z"),
    ]
    .into_iter()
    .map(|(name, text)| (name, text.as_bytes().to_vec()))
    .chain([("sse-c-key-and-md5.txt", sse_c.into_bytes())])
    .collect()
}

fn request_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let create_bucket = b"\x19/photos\n\n<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>";
    let complete = b"\x1a/photos/big.bin?uploadId=b5f0e3a1c2d4\ncontent-type: application/xml\n\n\
<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"0cc175b9c0f1b6a831c399e269772661\"</ETag></Part></CompleteMultipartUpload>";
    let presigned = "\x00/photos/beach.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256\
&X-Amz-Credential=hoardtest%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z\
&X-Amz-Expires=3600&X-Amz-SignedHeaders=host\
&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404\nhost: localhost:9000\n\n";
    let key = [0x42u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    let get_sse_c = format!(
        "/photos/secret.bin\n\
x-amz-server-side-encryption-customer-algorithm: AES256\n\
x-amz-server-side-encryption-customer-key: {}\n\
x-amz-server-side-encryption-customer-key-md5: {}\n\
range: bytes=0-9\n\
if-match: \"0cc175b9c0f1b6a831c399e269772661\"\n\n",
        b64.encode(key),
        b64.encode(md5::Md5::digest(key))
    );
    vec![
        ("signed-list-buckets.txt", b"\x08/\n\n".to_vec()),
        ("signed-delete-objects.txt", delete_objects_request(0x1a, DELETE_TWO_KEYS, &[])),
        (
            "signed-delete-objects-aws-chunked.txt",
            delete_objects_request(0x2a, &aws_chunked(DELETE_TWO_KEYS), &chunked_headers(DELETE_TWO_KEYS)),
        ),
        (
            "signed-delete-objects-signed-chunks.txt",
            delete_objects_request(0x3a, &aws_chunked(DELETE_TWO_KEYS), &chunked_headers(DELETE_TWO_KEYS)),
        ),
        ("signed-create-bucket.txt", create_bucket.to_vec()),
        ("signed-complete-upload.txt", complete.to_vec()),
        ("signed-get-sse-c-range.txt", [&[0x88], get_sse_c.as_bytes()].concat()),
        ("stale-signed-get.txt", STALE_SIGNED_GET.as_bytes().to_vec()),
        ("stale-presigned-get.txt", presigned.as_bytes().to_vec()),
        ("sigv2-refused.txt", b"\x00/photos/a\nauthorization: AWS hoardtest:frJIUN8DYpKDtOLCwo//yllqDzg=\n\n".to_vec()),
        (
            "form-upload-refused.txt",
            b"\x02/photos\ncontent-type: multipart/form-data; boundary=x\n\n--x\r\n\r\n--x--\r\n".to_vec(),
        ),
        ("anonymous-body-refused.txt", b"\x01/photos/a\n\nhello".to_vec()),
    ]
}

/// Rewrites the seed inputs in `regressions/`: `cargo test -p hoard-fuzz -- --ignored write_seed_inputs`.
#[test]
#[ignore = "rewrites the kept seed inputs"]
fn write_seed_inputs() {
    let all = [
        ("record_decoder", record_seeds()),
        ("shard_header", shard_seeds()),
        ("sealed_chunk", sealed_seeds()),
        ("xml_bodies", xml_seeds()),
        ("range_and_conditions", range_seeds()),
        ("sigv4_request", request_seeds()),
    ];
    for (target, seeds) in all {
        let dir = regressions(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}

#[test]
fn seeds_reach_past_the_first_checks() {
    for (name, data) in record_seeds().into_iter().filter(|(name, _)| !name.starts_with("unknown")) {
        let (&choice, bytes) = data.split_first().unwrap();
        let decodes = match RECORD_TYPES[usize::from(choice)] {
            "ObjectRecord" => hoard_protocol::decode::<ObjectRecord>(bytes).is_ok(),
            "Entry<TypeConfig>" => hoard_protocol::decode::<openraft::Entry<TypeConfig>>(bytes).is_ok(),
            "MetaCommand" => hoard_protocol::decode::<MetaCommand>(bytes).is_ok(),
            _ => true,
        };
        assert!(decodes, "{name} does not decode");
    }
    for (name, data) in sealed_seeds().into_iter().take(4) {
        let payload = &data[SEAL_HEADER_LEN..];
        let sealer = Sealer::new(&DataKey::from_bytes(SEAL_KEY), SEAL_DATA_ID, read_u32(&data, 9), read_u64(&data, 13));
        let opens = sealer.open(read_u64(&data, 1), data[0] & 1 == 1, payload).is_ok()
            || sealer.open_all(payload, usize::from(read_u16(&data, 21))).is_ok();
        assert!(opens, "{name} does not open");
    }
    for (name, data) in xml_seeds() {
        let body = &data[1..];
        let parses = match XML_BODIES[usize::from(data[0])] {
            "Delete" => parse_xml::<Delete>(body).map(|d| d.objects.len()),
            "CompletedMultipartUpload" => {
                parse_xml::<CompletedMultipartUpload>(body).map(|u| u.parts.map_or(0, |p| p.len()))
            }
            "CreateBucketConfiguration" => parse_xml::<CreateBucketConfiguration>(body).map(|_| 1),
            _ => parse_xml::<ServerSideEncryptionConfiguration>(body).map(|c| c.rules.len()),
        };
        assert!(parses.is_some_and(|n| n > 0), "{name} does not parse");
    }
    let (_, sse_c) = range_seeds().pop().unwrap();
    let text = String::from_utf8(sse_c).unwrap();
    let (key, md5) = text.split_once('\n').unwrap();
    let (algorithm, key, md5) = ("AES256".to_string(), key.to_string(), md5.to_string());
    let headers = hoard_s3::sse::SseCHeaders { algorithm: Some(&algorithm), key: Some(&key), key_md5: Some(&md5) };
    assert!(matches!(hoard_s3::sse::customer_key(headers, hoard_s3::sse::Secure(true)), Ok(Some(_))));
}
