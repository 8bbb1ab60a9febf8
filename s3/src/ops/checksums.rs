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
        other => {
            return Err(s3_error!(
                InvalidRequest,
                "checksum algorithm {other} is not supported; use CRC32, CRC32C, SHA1 or SHA256"
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
    if crc64nvme.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "CRC64NVME checksums are not supported; use CRC32, CRC32C, SHA1 or SHA256"
        ));
    }
    let mut want = ChecksumSet {
        crc32: crc32.is_some(),
        crc32c: crc32c.is_some(),
        sha1: sha1.is_some(),
        sha256: sha256.is_some(),
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
    Ok(ExpectedChecksums {
        given: Checksums { crc32, crc32c, sha1, sha256, crc64nvme: None, checksum_type: None },
        want,
    })
}

/// Adds checksums that arrived in the aws-chunked trailer to those from the headers.
pub(super) fn with_trailer(mut given: Checksums, trailers: Option<&s3s::TrailingHeaders>) -> Checksums {
    if let Some(t) = trailers {
        let get = |name: &str| t.read(|h| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)).flatten();
        given.crc32 = given.crc32.or_else(|| get("x-amz-checksum-crc32"));
        given.crc32c = given.crc32c.or_else(|| get("x-amz-checksum-crc32c"));
        given.sha1 = given.sha1.or_else(|| get("x-amz-checksum-sha1"));
        given.sha256 = given.sha256.or_else(|| get("x-amz-checksum-sha256"));
    }
    given
}

pub(super) fn verify_checksums(given: &Checksums, computed: &Checksums) -> S3Result<()> {
    let pairs = [
        ("CRC32", &given.crc32, &computed.crc32),
        ("CRC32C", &given.crc32c, &computed.crc32c),
        ("SHA1", &given.sha1, &computed.sha1),
        ("SHA256", &given.sha256, &computed.sha256),
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
        crc64nvme: None,
        checksum_type: None,
    }
}

/// S3's COMPOSITE checksum of a multipart object: the checksum of the parts' raw checksums, `-N`.
pub(super) fn composite_checksums(alg: Option<&str>, parts: &[PartRecord]) -> Checksums {
    let mut out = Checksums::default();
    let Some(alg) = alg else { return out };
    let pick = |p: &PartRecord| -> Option<String> {
        match alg {
            "CRC32" => p.checksums.crc32.clone(),
            "CRC32C" => p.checksums.crc32c.clone(),
            "SHA1" => p.checksums.sha1.clone(),
            "SHA256" => p.checksums.sha256.clone(),
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
    fn content_md5_must_be_base64_of_16_bytes() {
        assert!(parse_content_md5(Some(&"XUFAKrxLKna5cZ2REBfFkg==".to_string())).unwrap().is_some());
        assert!(parse_content_md5(Some(&"nope".to_string())).is_err());
        assert!(parse_content_md5(Some(&"aGVsbG8=".to_string())).is_err());
    }
}
