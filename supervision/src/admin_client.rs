//! The client side of a node's admin API (`hoard debug fault …`, `hoard cluster …`): SigV4-signed
//! requests with the root credentials, over HTTP or HTTPS.
//!
//! HTTPS trusts the system's roots, or only the certificates of `--ca-bundle` (`AWS_CA_BUNDLE`, as the
//! aws CLI reads it) when one is given — the usual case for a node with a self-signed certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::sign;
use aws_sigv4::http_request::PayloadChecksumKind;
use aws_sigv4::http_request::SignableBody;
use aws_sigv4::http_request::SignableRequest;
use aws_sigv4::http_request::SigningSettings;
use aws_sigv4::sign::v4;
use bytes::Bytes;
use clap::Args;
use http_body_util::BodyExt;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;

/// Where the node is and how to sign in.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The node's S3 endpoint.
    #[arg(long, env = "HOARD_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// Root access key (or AWS_ACCESS_KEY_ID).
    #[arg(long, env = "HOARD_ROOT_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Root secret key (or AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "HOARD_ROOT_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// PEM file of the certificates to trust for an https:// endpoint (instead of the system's roots).
    #[arg(long, env = "AWS_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
}

pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl ConnectArgs {
    /// Sends `method /?query` signed with the root credentials; the body of a 2xx answer, or an error
    /// carrying the status and the node's message.
    pub async fn call(&self, method: &str, query: &str) -> anyhow::Result<String> {
        let access_key = self
            .access_key
            .clone()
            .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
            .context("give --access-key or set HOARD_ROOT_ACCESS_KEY / AWS_ACCESS_KEY_ID")?;
        let secret_key = self
            .secret_key
            .clone()
            .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok())
            .context("give --secret-key or set HOARD_ROOT_SECRET_KEY / AWS_SECRET_ACCESS_KEY")?;
        let url = format!("{}/?{query}", self.endpoint.trim_end_matches('/'));
        let mut req = http::Request::builder().method(method).uri(&url).body(Empty::<Bytes>::new())?;
        let uri = req.uri().clone();
        let authority = uri.authority().context("the endpoint has no host")?.clone();
        req.headers_mut().insert(http::header::HOST, authority.as_str().parse()?);

        let identity = Credentials::new(access_key, secret_key, None, None, "hoard-cli").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        // The signing time is the client's wall clock, as for any S3 client; node logic never reads it.
        #[allow(clippy::disallowed_methods)]
        let now = SystemTime::now();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(now)
            .settings(settings)
            .build()?
            .into();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let signable = SignableRequest::new(
            method,
            url.clone(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&[]),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut req);

        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => anyhow::bail!("the endpoint must start with http:// or https://"),
        };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("connecting to {}", self.endpoint))?;
        let resp = if https {
            let connector = tokio_rustls::TlsConnector::from(self.tls_config()?);
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .with_context(|| format!("{host} is not a valid TLS server name"))?;
            let tls = connector.connect(name, tcp).await.with_context(|| format!("TLS with {}", self.endpoint))?;
            send(TokioIo::new(tls), req).await?
        } else {
            send(TokioIo::new(tcp), req).await?
        };
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&body).to_string();
        if !status.is_success() {
            anyhow::bail!("{status}: {}", s3_message(&text));
        }
        Ok(text)
    }

    fn tls_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_bundle {
            Some(path) => {
                for cert in hoard_s3::tls::load_certs(path)? {
                    roots.add(cert).with_context(|| format!("a certificate in {} is not usable", path.display()))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(hoard_s3::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

async fn send<I>(
    io: TokioIo<I>,
    req: http::Request<Empty<Bytes>>,
) -> anyhow::Result<http::Response<hyper::body::Incoming>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    // Drives the connection; it ends on its own once the answer has been read.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

/// The `<Message>` of an S3 error document, or the whole text when there is none.
fn s3_message(text: &str) -> String {
    let code = between(text, "<Code>", "</Code>");
    match (code, between(text, "<Message>", "</Message>")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => text.trim().to_string(),
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_are_shortened_to_code_and_message() {
        let doc = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no key</Message></Error>";
        assert_eq!(s3_message(doc), "AccessDenied: no key");
        assert_eq!(s3_message(" plain text \n"), "plain text");
    }
}
