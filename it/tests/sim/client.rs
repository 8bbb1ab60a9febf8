//! The simulated workload's S3 client: SigV4-signed HTTP/1.1 requests, one connection each, over whatever
//! stream its dialer gives (a TCP socket to an in-process node, or the simulator's own). Deliberately small:
//! no retry jitter, no connection pool, no clock but the one SigV4 needs, so a run depends on its seed alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use aws_sigv4::http_request::SignableBody;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::Full;
use md5::Digest as _;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;

use super::workload::Sse;

/// A stream a request travels on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Opens a fresh connection to the node.
pub type Dial = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Io>>> + Send>> + Send + Sync>;

/// A dialer of a TCP address.
pub fn tcp(addr: std::net::SocketAddr) -> Dial {
    Arc::new(move || Box::pin(async move { Ok(Box::new(tokio::net::TcpStream::connect(addr).await?) as Box<dyn Io>) }))
}

/// What the node answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The S3 error code of a failed answer.
    pub fn code(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.split("<Code>").nth(1).and_then(|r| r.split("</Code>").next()).unwrap_or_default().to_string()
    }
}

pub struct Client {
    pub dial: Dial,
    /// The clock requests are signed by.
    pub env: Arc<dyn hoard_storage::env::Env>,
    pub host: String,
    pub access_key: String,
    pub secret_key: String,
}

impl Client {
    /// One signed request; `headers` besides `host` and the signature's.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let credential = (self.access_key.as_str(), self.secret_key.as_str());
        let body_ref = SignableBody::Bytes(&body);
        let now = self.env.now_ms();
        let target = (path_and_query, pairs.as_slice());
        let signed = hoard_it::sigv4_headers_at(now, &self.host, credential, method, target, body_ref)?;
        let mut req = http::Request::builder().method(method).uri(path_and_query).header("host", &self.host);
        for (k, v) in headers.iter().chain(signed.iter()) {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let io = (self.dial)().await.context("connecting")?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
        let conn = tokio::spawn(conn);
        let resp = sender.send_request(req).await;
        let resp = resp.context("sending")?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.context("reading the answer")?.to_bytes().to_vec();
        drop(sender);
        conn.abort();
        Ok(Answer { status, headers, body })
    }
}

/// The headers that ask for `sse` on a write (and, for SSE-C, that give the key to a read).
pub fn sse_headers(sse: &Sse) -> Vec<(String, String)> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match sse {
        Sse::Plain => Vec::new(),
        Sse::SseS3 => vec![("x-amz-server-side-encryption".into(), "AES256".into())],
        Sse::SseC(key) => vec![
            ("x-amz-server-side-encryption-customer-algorithm".into(), "AES256".into()),
            ("x-amz-server-side-encryption-customer-key".into(), b64(key)),
            ("x-amz-server-side-encryption-customer-key-md5".into(), b64(&md5::Md5::digest(key))),
        ],
    }
}

/// A key as it goes in a path (every byte but unreserved ones percent-encoded).
pub fn path_of(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');
    format!("/{bucket}/{}", percent_encoding::utf8_percent_encode(key, KEEP))
}

/// A query parameter's value as it goes in a URL (every byte but unreserved ones percent-encoded).
pub fn query_value(value: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(value, KEEP).to_string()
}
