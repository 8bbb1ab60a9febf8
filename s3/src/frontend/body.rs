//! The checks and the body for a PUT whose body has no declared length.
//!
//! A PUT body with no declared length (`Transfer-Encoding: chunked`, or an HTTP/2 stream without
//! `Content-Length`) is taken as S3 takes it: signed `UNSIGNED-PAYLOAD`, or `aws-chunked` with
//! `x-amz-decoded-content-length`. It streams like any body and may carry at most [`MAX_PUT_SIZE`] bytes, the
//! most one PUT (or part) may. Only a body signed whole (its SHA-256 in `x-amz-content-sha256`) needs its length
//! up front, and s3s answers 411 `MissingContentLength` for it. Nothing in hoard reads a request body's size
//! hint (see [`UndeclaredLength`]).

use std::pin::Pin;
use std::task::Context;
use std::task::Poll;

use bytes::Bytes;
use http::Request;
use http_body::Frame;
use http_body::SizeHint;
use s3s::s3_error;

use crate::error::BODY_TOO_LARGE;
use crate::ops::MAX_PUT_SIZE;

/// Whether `req` is a PUT whose body has no declared length and is signed `UNSIGNED-PAYLOAD`: the body
/// [`UndeclaredLength`] is for.
pub(super) fn is_unsigned_put_without_length<B: http_body::Body>(req: &Request<B>) -> bool {
    req.method() == http::Method::PUT
        && !req.headers().contains_key(http::header::CONTENT_LENGTH)
        && http_body::Body::size_hint(req.body()).exact().is_none()
        && req.headers().get("x-amz-content-sha256").is_some_and(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD")
}

/// An `aws-chunked` PUT that says it will carry more than one PUT may: refused before anything is read. (With a
/// `Content-Length` the object layer would refuse it too; without one, this is the only bound.)
pub(super) fn decoded_too_large<B>(req: &Request<B>) -> Option<s3s::S3Error> {
    let decoded = req.headers().get("x-amz-decoded-content-length")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    (req.method() == http::Method::PUT && decoded > MAX_PUT_SIZE as u64)
        .then(|| s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size of 5 GiB"))
}

/// The body of a PUT signed `UNSIGNED-PAYLOAD` that declares no length, as S3 takes it: streamed, and failed
/// (with [`BODY_TOO_LARGE`], which the object layer answers as `EntityTooLarge`) once more than `limit` bytes
/// have come.
///
/// s3s refuses such a body as MinIO does (411 `MissingContentLength`), knowing it by a size hint that is not
/// exact. So until it is first read, which s3s's check always comes before, this body's size hint says
/// `limit` bytes exactly; from then on it is the connection's own.
pub(super) struct UndeclaredLength<B> {
    inner: B,
    limit: u64,
    /// Data bytes passed so far.
    read: u64,
    /// Whether a frame was asked for yet.
    polled: bool,
}

impl<B> UndeclaredLength<B> {
    pub(super) fn new(inner: B, limit: u64) -> UndeclaredLength<B> {
        UndeclaredLength { inner, limit, read: 0, polled: false }
    }
}

/// What an [`UndeclaredLength`] body fails with past its limit.
#[derive(Debug)]
struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(BODY_TOO_LARGE)
    }
}

impl std::error::Error for BodyTooLarge {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> http_body::Body for UndeclaredLength<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.polled = true;
        let frame = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => frame,
        };
        self.read += frame.data_ref().map_or(0, |d| d.len() as u64);
        if self.read > self.limit {
            return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.polled {
            self.inner.size_hint()
        } else {
            SizeHint::with_exact(self.limit)
        }
    }
}
