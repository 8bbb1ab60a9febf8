//! Integrity of bodies: Content-MD5, `x-amz-checksum-*` (header or trailer) expected, verified, stored, and
//! the COMPOSITE checksums of multipart objects.

use super::*;

/// The checksum algorithms an object was stored with, to compute again when its bytes are rewritten.
pub(super) fn checksum_set_of(c: &Checksums) -> ChecksumSet {
    ChecksumSet {
        crc32: c.crc32.is_some(),
        crc32c: c.crc32c.is_some(),
        sha1: c.sha1.is_some(),
        sha256: c.sha256.is_some(),
        crc64nvme: c.crc64nvme.is_some(),
    }
}

/// The `x-amz-checksum-*` values a request carries in headers, and which algorithms to compute
/// (also those announced for a trailer).
pub(super) struct ExpectedChecksums {
    pub(super) given: Checksums,
    pub(super) want: ChecksumSet,
}

pub(super) fn algorithm_set(alg: &str, want: &mut ChecksumSet) -> S3Result<()> {
    match alg.to_ascii_uppercase().as_str() {
        "CRC32" => want.crc32 = true,
        "CRC32C" => want.crc32c = true,
        "SHA1" => want.sha1 = true,
        "SHA256" => want.sha256 = true,
        "CRC64NVME" => want.crc64nvme = true,
        other => {
            return Err(s3_error!(
                InvalidRequest,
                "checksum algorithm {other} is not supported; use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"
            ))
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn expected_checksums(
    headers: &http::HeaderMap,
    algorithm: Option<&ChecksumAlgorithm>,
    crc32: Option<String>,
    crc32c: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
    crc64nvme: Option<String>,
) -> S3Result<ExpectedChecksums> {
    let mut want = ChecksumSet {
        crc32: crc32.is_some(),
        crc32c: crc32c.is_some(),
        sha1: sha1.is_some(),
        sha256: sha256.is_some(),
        crc64nvme: crc64nvme.is_some(),
    };
    if let Some(alg) = algorithm {
        algorithm_set(alg.as_str(), &mut want)?;
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        for name in trailer.split(',').map(str::trim) {
            if let Some(alg) = name.to_ascii_lowercase().strip_prefix("x-amz-checksum-") {
                algorithm_set(alg, &mut want)?;
            }
        }
    }
    Ok(ExpectedChecksums { given: Checksums { crc32, crc32c, sha1, sha256, crc64nvme, checksum_type: None }, want })
}

/// Adds checksums that arrived in the aws-chunked trailer to those from the headers.
pub(super) fn with_trailer(mut given: Checksums, trailers: Option<&s3s::TrailingHeaders>) -> Checksums {
    if let Some(t) = trailers {
        let get = |name: &str| t.read(|h| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)).flatten();
        given.crc32 = given.crc32.or_else(|| get("x-amz-checksum-crc32"));
        given.crc32c = given.crc32c.or_else(|| get("x-amz-checksum-crc32c"));
        given.sha1 = given.sha1.or_else(|| get("x-amz-checksum-sha1"));
        given.sha256 = given.sha256.or_else(|| get("x-amz-checksum-sha256"));
        given.crc64nvme = given.crc64nvme.or_else(|| get("x-amz-checksum-crc64nvme"));
    }
    given
}

pub(super) fn verify_checksums(given: &Checksums, computed: &Checksums) -> S3Result<()> {
    let pairs = [
        ("CRC32", &given.crc32, &computed.crc32),
        ("CRC32C", &given.crc32c, &computed.crc32c),
        ("SHA1", &given.sha1, &computed.sha1),
        ("SHA256", &given.sha256, &computed.sha256),
        ("CRC64NVME", &given.crc64nvme, &computed.crc64nvme),
    ];
    for (name, g, c) in pairs {
        if let Some(g) = g {
            if Some(g) != c.as_ref() {
                return Err(s3_error!(BadDigest, "The {name} you specified did not match the calculated checksum."));
            }
        }
    }
    Ok(())
}

pub(super) fn parse_content_md5(v: Option<&String>) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = v else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid base64."))?;
    let arr: [u8; 16] =
        bytes.try_into().map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified is not 16 bytes."))?;
    Ok(Some(arr))
}

/// Keeps only the computed checksums the client asked for, to store and return.
pub(super) fn stored_checksums(want: ChecksumSet, computed: &Checksums) -> Checksums {
    Checksums {
        crc32: computed.crc32.clone().filter(|_| want.crc32),
        crc32c: computed.crc32c.clone().filter(|_| want.crc32c),
        sha1: computed.sha1.clone().filter(|_| want.sha1),
        sha256: computed.sha256.clone().filter(|_| want.sha256),
        crc64nvme: computed.crc64nvme.clone().filter(|_| want.crc64nvme),
        checksum_type: None,
    }
}

/// An upload's checksum algorithm and whether the object's checksum is FULL_OBJECT (else COMPOSITE), from
/// what its record keeps: the algorithm, followed by ` FULL_OBJECT` when a full-object checksum was asked for
/// CRC32 or CRC32C. CRC64NVME is always full-object, as in S3.
pub(super) fn upload_checksum(stored: Option<&str>) -> Option<(&str, bool)> {
    let stored = stored?;
    Some(match stored.split_once(' ') {
        Some((alg, "FULL_OBJECT")) => (alg, true),
        _ => (stored, stored == "CRC64NVME"),
    })
}

/// What an upload record keeps for CreateMultipartUpload's `x-amz-checksum-algorithm` and
/// `x-amz-checksum-type`, refusing the pairs S3 refuses: FULL_OBJECT is for CRC32, CRC32C and CRC64NVME,
/// COMPOSITE for CRC32, CRC32C, SHA1 and SHA256, and a type needs an algorithm.
pub(super) fn upload_checksum_of(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<String>> {
    let Some(alg) = algorithm.map(|a| a.as_str().to_ascii_uppercase()) else {
        return match kind {
            None => Ok(None),
            Some(_) => Err(s3_error!(InvalidRequest, "x-amz-checksum-type needs x-amz-checksum-algorithm")),
        };
    };
    algorithm_set(&alg, &mut ChecksumSet::default())?;
    let full = match kind.map(|k| k.as_str()) {
        None => alg == "CRC64NVME",
        Some(ChecksumType::FULL_OBJECT) => true,
        Some(ChecksumType::COMPOSITE) => false,
        Some(other) => return Err(s3_error!(InvalidRequest, "checksum type {other} is not FULL_OBJECT or COMPOSITE")),
    };
    match (alg.as_str(), full) {
        ("CRC64NVME", false) => Err(s3_error!(InvalidRequest, "CRC64NVME checksums are FULL_OBJECT only")),
        ("SHA1" | "SHA256", true) => Err(s3_error!(InvalidRequest, "{alg} checksums are COMPOSITE only")),
        ("CRC32" | "CRC32C", true) => Ok(Some(format!("{alg} FULL_OBJECT"))),
        _ => Ok(Some(alg)),
    }
}

/// The checksum of a multipart object from its parts': with `full`, the FULL_OBJECT checksum (the parts' CRCs
/// combined, as if the whole object had been hashed at once: CRC32, CRC32C, CRC64NVME), else S3's COMPOSITE
/// checksum (the checksum of the parts' raw checksums, `-N`: CRC32, CRC32C, SHA1, SHA256).
pub(super) fn multipart_checksums(alg: Option<&str>, full: bool, parts: &[PartRecord]) -> Checksums {
    let mut out = Checksums::default();
    let Some(alg) = alg else { return out };
    let pick = |p: &PartRecord| -> Option<String> {
        match alg {
            "CRC32" => p.checksums.crc32.clone(),
            "CRC32C" => p.checksums.crc32c.clone(),
            "SHA1" => p.checksums.sha1.clone(),
            "SHA256" => p.checksums.sha256.clone(),
            "CRC64NVME" => p.checksums.crc64nvme.clone(),
            _ => None,
        }
    };
    let mut raw = Vec::new();
    for p in parts {
        let Some(v) = pick(p) else { return out };
        match base64::engine::general_purpose::STANDARD.decode(v) {
            Ok(b) => raw.extend_from_slice(&b),
            Err(_) => return out,
        }
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    if full {
        let (crc_alg, width) = match alg {
            "CRC32" => (crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4),
            "CRC32C" => (crc_fast::CrcAlgorithm::Crc32Iscsi, 4),
            "CRC64NVME" => (crc_fast::CrcAlgorithm::Crc64Nvme, 8),
            _ => return out,
        };
        if raw.len() != parts.len() * width {
            return out;
        }
        let mut whole: Option<u64> = None;
        for (p, crc) in parts.iter().zip(raw.chunks(width)) {
            let crc = crc.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            whole = Some(match whole {
                None => crc,
                Some(before) => crc_fast::checksum_combine(crc_alg, before, crc, p.size),
            });
        }
        let Some(whole) = whole else { return out };
        let value = b64(&whole.to_be_bytes()[8 - width..]);
        match alg {
            "CRC32" => out.crc32 = Some(value),
            "CRC32C" => out.crc32c = Some(value),
            _ => out.crc64nvme = Some(value),
        }
        out.checksum_type = Some("FULL_OBJECT".into());
        return out;
    }
    let n = parts.len();
    let value = match alg {
        "CRC32" => b64(&crc32fast::hash(&raw).to_be_bytes()),
        "CRC32C" => b64(&crc32c::crc32c(&raw).to_be_bytes()),
        "SHA1" => {
            use sha1::Digest;
            b64(&sha1::Sha1::digest(&raw))
        }
        "SHA256" => {
            use sha2::Digest;
            b64(&sha2::Sha256::digest(&raw))
        }
        _ => return out,
    };
    let value = format!("{value}-{n}");
    match alg {
        "CRC32" => out.crc32 = Some(value),
        "CRC32C" => out.crc32c = Some(value),
        "SHA1" => out.sha1 = Some(value),
        _ => out.sha256 = Some(value),
    }
    out.checksum_type = Some("COMPOSITE".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_crc64nvme_is_the_whole_objects() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let crc = |b: &[u8]| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b);
        let b64 = |c: u64| base64::engine::general_purpose::STANDARD.encode(c.to_be_bytes());
        let part = |n: u32, bytes: &[u8]| PartRecord {
            part_number: n,
            etag: String::new(),
            size: bytes.len() as u64,
            last_modified_ms: 0,
            checksums: Checksums { crc64nvme: Some(b64(crc(bytes))), ..Checksums::default() },
            segment: hoard_protocol::Segment {
                id: hoard_protocol::SegmentId(u128::from(n)),
                part_number: n,
                size: bytes.len() as u64,
                layout: hoard_protocol::ShardLayout { data: 1, parity: 0, block_size: 1, disks: Vec::new() },
                seal: None,
            },
        };
        let parts = [part(1, &data[..7_000]), part(2, &data[7_000..19_999]), part(3, &data[19_999..])];
        let got = multipart_checksums(Some("CRC64NVME"), true, &parts);
        assert_eq!(got.crc64nvme, Some(b64(crc(&data))));
        assert_eq!(got.checksum_type.as_deref(), Some("FULL_OBJECT"));
        // CRC32C the same way, from 4-byte part CRCs.
        let crc32c = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(b).to_be_bytes());
        let mut parts = parts;
        parts[0].checksums.crc32c = Some(crc32c(&data[..7_000]));
        parts[1].checksums.crc32c = Some(crc32c(&data[7_000..19_999]));
        parts[2].checksums.crc32c = Some(crc32c(&data[19_999..]));
        assert_eq!(multipart_checksums(Some("CRC32C"), true, &parts).crc32c, Some(crc32c(&data)));
        let composite = multipart_checksums(Some("CRC32C"), false, &parts);
        assert!(composite.crc32c.is_some_and(|c| c.ends_with("-3")));
    }

    #[test]
    fn checksum_types_pair_with_algorithms_as_in_s3() {
        let alg = |a: &str| Some(ChecksumAlgorithm::from(a.to_string()));
        let kind = |k: &str| Some(ChecksumType::from(k.to_string()));
        let of = |a: Option<ChecksumAlgorithm>, k: Option<ChecksumType>| upload_checksum_of(a.as_ref(), k.as_ref());
        assert_eq!(of(alg("CRC64NVME"), None).unwrap().as_deref(), Some("CRC64NVME"));
        assert_eq!(upload_checksum(Some("CRC64NVME")), Some(("CRC64NVME", true)));
        assert_eq!(of(alg("crc32"), kind("FULL_OBJECT")).unwrap().as_deref(), Some("CRC32 FULL_OBJECT"));
        assert_eq!(upload_checksum(Some("CRC32 FULL_OBJECT")), Some(("CRC32", true)));
        assert_eq!(upload_checksum(Some("CRC32")), Some(("CRC32", false)));
        assert!(of(alg("CRC64NVME"), kind("COMPOSITE")).is_err());
        assert!(of(alg("SHA256"), kind("FULL_OBJECT")).is_err());
        assert!(of(None, kind("COMPOSITE")).is_err());
        assert!(of(alg("MD5"), None).is_err());
    }

    #[test]
    fn content_md5_must_be_base64_of_16_bytes() {
        assert!(parse_content_md5(Some(&"XUFAKrxLKna5cZ2REBfFkg==".to_string())).unwrap().is_some());
        assert!(parse_content_md5(Some(&"nope".to_string())).is_err());
        assert!(parse_content_md5(Some(&"aGVsbG8=".to_string())).is_err());
    }
}
