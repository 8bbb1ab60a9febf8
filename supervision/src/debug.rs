//! `hoard debug fault arm|disarm|list`: the client side of the fault admin API of a running node
//! (started with `--fault-injection`). Requests are SigV4-signed with the root credentials.

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
use clap::Subcommand;
use http_body_util::BodyExt;
use http_body_util::Empty;

#[derive(Debug, Args)]
pub struct FaultArgs {
    /// The node's S3 endpoint.
    #[arg(long, env = "HOARD_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// Root access key (or AWS_ACCESS_KEY_ID).
    #[arg(long, env = "HOARD_ROOT_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Root secret key (or AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "HOARD_ROOT_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    #[command(subcommand)]
    pub action: FaultAction,
}

#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// Arm a fault point: FAULT is panic, error or stall:<ms>.
    Arm {
        point: String,
        fault: String,
        /// Fire only this many times (default: until disarmed).
        #[arg(long)]
        times: Option<u32>,
    },
    /// Disarm a fault point.
    Disarm { point: String },
    /// List armed fault points.
    List,
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub async fn run(args: FaultArgs) -> anyhow::Result<String> {
    let access_key = args
        .access_key
        .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
        .context("give --access-key or set HOARD_ROOT_ACCESS_KEY / AWS_ACCESS_KEY_ID")?;
    let secret_key = args
        .secret_key
        .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok())
        .context("give --secret-key or set HOARD_ROOT_SECRET_KEY / AWS_SECRET_ACCESS_KEY")?;
    let (method, query) = match &args.action {
        FaultAction::Arm { point, fault, times } => {
            let mut q = format!("hoard-faults=&action=arm&point={}&fault={}", encode(point), encode(fault));
            if let Some(t) = times {
                q.push_str(&format!("&times={t}"));
            }
            ("POST", q)
        }
        FaultAction::Disarm { point } => ("POST", format!("hoard-faults=&action=disarm&point={}", encode(point))),
        FaultAction::List => ("GET", "hoard-faults=&action=list".to_string()),
    };
    let url = format!("{}/?{query}", args.endpoint.trim_end_matches('/'));
    let mut req = http::Request::builder().method(method).uri(&url).body(Empty::<Bytes>::new())?;
    let authority = req.uri().authority().map(|a| a.to_string()).context("endpoint has no host")?;
    req.headers_mut().insert(http::header::HOST, authority.parse()?);

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

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let resp = client.request(req).await.with_context(|| format!("connecting to {}", args.endpoint))?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body).to_string();
    if !status.is_success() {
        anyhow::bail!("{status}: {text}");
    }
    Ok(text)
}
