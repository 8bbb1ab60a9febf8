//! Tests of the front door: hidden customer keys, bodies without a declared length, refused paths and sizes,
//! which requests are preflights, and joined Content-Encoding headers.

use super::*;

#[test]
fn customer_keys_are_never_printed_with_a_request() {
    let mut h = http::HeaderMap::new();
    h.insert("x-amz-server-side-encryption-customer-key", http::HeaderValue::from_static("S2V5S2V5S2V5"));
    h.insert("x-amz-copy-source-server-side-encryption-customer-key", http::HeaderValue::from_static("T2xkT2xk"));
    h.insert("x-amz-server-side-encryption-customer-algorithm", http::HeaderValue::from_static("AES256"));
    hide_customer_keys(&mut h);
    let printed = format!("{h:?}");
    assert!(!printed.contains("S2V5S2V5S2V5") && !printed.contains("T2xkT2xk"), "{printed}");
    assert!(printed.contains("AES256"), "other headers print as before: {printed}");
    assert_eq!(h["x-amz-server-side-encryption-customer-key"], "S2V5S2V5S2V5", "the value itself is kept");
}

/// A body of `chunks` whose length nobody declared, as hyper gives a chunked one.
struct Chunked(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

fn chunked(chunks: &[&'static [u8]]) -> Chunked {
    Chunked(chunks.iter().map(|c| Bytes::from_static(c)).collect())
}

async fn next<B: http_body::Body + Unpin>(b: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
    futures::future::poll_fn(|cx| Pin::new(&mut *b).poll_frame(cx)).await
}

#[tokio::test]
async fn a_body_without_a_length_streams_up_to_its_limit_and_fails_past_it() {
    let mut body = UndeclaredLength::new(chunked(&[b"abcd", b"efgh"]), 8);
    assert_eq!(http_body::Body::size_hint(&body).exact(), Some(8), "until read: what s3s's check asks");
    let first = next(&mut body).await.expect("a frame").expect("data");
    assert_eq!(first.into_data().ok(), Some(Bytes::from_static(b"abcd")));
    assert_eq!(http_body::Body::size_hint(&body).exact(), None, "once read: the connection's own hint");
    assert!(next(&mut body).await.expect("a frame").is_ok(), "exactly the limit is allowed");
    assert!(next(&mut body).await.is_none());

    let mut body = UndeclaredLength::new(chunked(&[b"abcd", b"efgh", b"ijkl"]), 7);
    assert!(next(&mut body).await.expect("a frame").is_ok());
    let err = next(&mut body).await.expect("a frame").expect_err("past the limit");
    let s3 = crate::error::to_s3(hoard_actors::error::ActorError::Body(err.to_string()));
    assert_eq!(s3.code(), &s3s::S3ErrorCode::EntityTooLarge, "answered as S3 answers a body too large");
}

#[test]
fn only_unsigned_puts_that_declare_no_length_get_an_undeclared_length_body() {
    let put = |headers: &[(&str, &str)], method: &str| {
        let mut b = Request::builder().method(method).uri("/b/k");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(chunked(&[b"x"])).expect("a request")
    };
    let unsigned = ("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    assert!(is_unsigned_put_without_length(&put(&[unsigned], "PUT")));
    assert!(!is_unsigned_put_without_length(&put(&[unsigned, ("content-length", "1")], "PUT")));
    assert!(!is_unsigned_put_without_length(&put(&[unsigned], "POST")));
    let whole = ("x-amz-content-sha256", "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    assert!(!is_unsigned_put_without_length(&put(&[whole], "PUT")), "a body signed whole needs its length");
    let streamed = ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    assert!(!is_unsigned_put_without_length(&put(&[streamed], "PUT")), "aws-chunked has its decoded length");
    let empty = Request::builder().method("PUT").uri("/b/k").header(unsigned.0, unsigned.1).body(Body::empty());
    assert!(!is_unsigned_put_without_length(&empty.expect("a request")), "a body known to be empty has a length");
}

#[test]
fn a_path_that_is_not_utf8_once_decoded_is_an_invalid_uri() {
    let at = |path: &str| {
        let req = Request::builder().uri(path).body(()).expect("a request");
        undecodable_path(&req).map(|e| e.code().clone())
    };
    for bad in ["/b/%FF", "/b/a%C3%28", "/%E9/k", "/b/%ED%A0%80"] {
        assert_eq!(at(bad), Some(s3s::S3ErrorCode::InvalidURI), "{bad}");
    }
    for good in ["/b/%C3%A9", "/b/plain", "/", "/b/%25FF", "/b/%F0%9F%A6%80"] {
        assert_eq!(at(good), None, "{good}");
    }
}

#[test]
fn an_aws_chunked_put_may_declare_at_most_5_gib() {
    let put = |decoded: u64, method: &str| {
        let b = Request::builder().method(method).uri("/b/k").header("x-amz-decoded-content-length", decoded);
        decoded_too_large(&b.body(()).expect("a request")).map(|e| e.code().clone())
    };
    let max = MAX_PUT_SIZE as u64;
    assert_eq!(put(max + 1, "PUT"), Some(s3s::S3ErrorCode::EntityTooLarge));
    assert_eq!(put(max, "PUT"), None);
    assert_eq!(put(max + 1, "GET"), None);
}

#[test]
fn only_an_options_naming_a_bucket_is_a_preflight() {
    let at = |method: &str, uri: &str| {
        preflight_bucket(&Request::builder().method(method).uri(uri).body(()).expect("a request"))
    };
    assert_eq!(at("OPTIONS", "/bkt/some/key?X-Amz-Signature=0"), Some("bkt".to_owned()));
    assert_eq!(at("OPTIONS", "/bkt"), Some("bkt".to_owned()));
    assert_eq!(at("OPTIONS", "/"), None, "no bucket: not a preflight hoard answers");
    assert_eq!(at("GET", "/bkt/k"), None);
    assert_eq!(at("PUT", "/bkt/k"), None);
}

#[test]
fn repeated_content_encodings_become_one_comma_separated_header() {
    let mut h = http::HeaderMap::new();
    h.append(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
    h.append(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("aws-chunked"));
    join_repeated_content_encoding(&mut h);
    let all: Vec<_> = h.get_all(http::header::CONTENT_ENCODING).iter().collect();
    assert_eq!(all, vec!["gzip,aws-chunked"]);
}
