//! The input format of the `sigv4_request` target: an HTTP request in a few lines of text.
//!
//! ```text
//! byte 0   bits 0..3  the method: GET, PUT, POST, DELETE, HEAD, OPTIONS, PATCH, or (7) one of its own, LIST
//!          bit 3      sign the request with the target's key at the current time
//!          bits 4..7  when signing, x-amz-content-sha256: 0 UNSIGNED-PAYLOAD, 1 the body's SHA-256,
//!                     2 STREAMING-UNSIGNED-PAYLOAD-TRAILER, 3 STREAMING-AWS4-HMAC-SHA256-PAYLOAD,
//!                     4..8 the value the header lines give
//!          bit 7      the connection is secure (TLS), so SSE-C headers are accepted
//! then     the request target (path and query), up to the first '\n'
//! then     header lines `name: value`, up to an empty line (at most MAX_HEADERS; lines that are no valid
//!          header are skipped)
//! then     the body
//! ```
//!
//! A request with a body and neither `content-length` nor `transfer-encoding` gets a `content-length`, as one
//! that came over HTTP/1.1 would.

use bytes::Bytes;
use http::header;
use http::HeaderMap;
use http::HeaderName;
use http::HeaderValue;
use http::Method;
use http::Request;
use http::Uri;
use sha2::Digest as _;

use crate::sigv4;

/// Header lines read at most.
const MAX_HEADERS: usize = 32;

/// What `x-amz-content-sha256` a signed request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    Unsigned,
    BodySha256,
    StreamingUnsignedTrailer,
    StreamingSigned,
    AsGiven,
}

pub(crate) struct FuzzRequest<'a> {
    method: Method,
    sign: bool,
    payload: Payload,
    secure: bool,
    target: &'a [u8],
    headers: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

impl<'a> FuzzRequest<'a> {
    /// Splits an input into its parts; `None` for an empty input.
    pub(crate) fn parse(data: &'a [u8]) -> Option<FuzzRequest<'a>> {
        let (&flags, rest) = data.split_first()?;
        let method = match flags & 7 {
            0 => Method::GET,
            1 => Method::PUT,
            2 => Method::POST,
            3 => Method::DELETE,
            4 => Method::HEAD,
            5 => Method::OPTIONS,
            6 => Method::PATCH,
            _ => Method::from_bytes(b"LIST").ok()?,
        };
        let payload = match (flags >> 4) & 7 {
            0 => Payload::Unsigned,
            1 => Payload::BodySha256,
            2 => Payload::StreamingUnsignedTrailer,
            3 => Payload::StreamingSigned,
            _ => Payload::AsGiven,
        };
        let (target, mut rest) = split_line(rest);
        let mut headers = Vec::new();
        while !rest.is_empty() {
            let (line, after) = split_line(rest);
            rest = after;
            if line.is_empty() {
                break;
            }
            if headers.len() < MAX_HEADERS {
                if let Some(colon) = line.iter().position(|&b| b == b':') {
                    headers.push((&line[..colon], line[colon + 1..].trim_ascii()));
                }
            }
        }
        Some(FuzzRequest {
            method,
            sign: flags & 8 != 0,
            payload,
            secure: flags & 0x80 != 0,
            target,
            headers,
            body: rest,
        })
    }

    /// The request, as hoard's listener would hand it on; `None` if the target is no valid URI.
    pub(crate) fn build(&self) -> Option<Request<s3s::Body>> {
        let uri = Uri::try_from(self.target).ok()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
                continue;
            };
            headers.append(name, value);
        }
        if !self.body.is_empty()
            && !headers.contains_key(header::CONTENT_LENGTH)
            && !headers.contains_key(header::TRANSFER_ENCODING)
        {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        if self.sign {
            let payload_hash = match self.payload {
                Payload::Unsigned => Some("UNSIGNED-PAYLOAD".to_string()),
                Payload::BodySha256 => Some(hex::encode(sha2::Sha256::digest(self.body))),
                Payload::StreamingUnsignedTrailer => Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_string()),
                Payload::StreamingSigned => Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_string()),
                Payload::AsGiven => None,
            };
            if let Some(hash) = payload_hash {
                headers.insert("x-amz-content-sha256", HeaderValue::from_str(&hash).ok()?);
            }
            sigv4::sign(&self.method, &uri, &mut headers, time::OffsetDateTime::now_utc());
        }
        let mut req = Request::new(s3s::Body::from(Bytes::copy_from_slice(self.body)));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        req.extensions_mut().insert(hoard_s3::frontend::Operation::default());
        req.extensions_mut().insert(hoard_s3::sse::Secure(self.secure));
        Some(req)
    }
}

/// The bytes up to the first '\n' (without it, and without a '\r' before it), and the bytes after it.
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[data.len()..]),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), rest)
}
