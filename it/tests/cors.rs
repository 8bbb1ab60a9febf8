//! CORS as a browser and an SDK see it: the bucket's rules put, read and deleted through `aws-sdk-s3`; preflights
//! and cross-origin requests sent off a bare HTTP/1.1 socket, headers and all; and a real headless Chromium that
//! loads a page from another origin and uploads to hoard through a presigned URL only where the rules allow it.
//!
//! The browser test needs Chromium (`chromium`, `chromium-browser`, `google-chrome`, or the binary named by
//! `HOARD_CHROMIUM`). Without one it fails, saying so; `HOARD_SKIP_BROWSER=1` makes it pass with a notice instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CorsConfiguration;
use aws_sdk_s3::types::CorsRule;
use aws_sdk_s3::Client;
use hoard_it::client;
use hoard_it::failure;
use hoard_it::md5_hex;
use hoard_it::pattern;
use hoard_it::TestNode;
use tokio::io::AsyncReadExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

/// How long a test waits on one bare HTTP exchange.
const RAW_HTTP_DEADLINE: Duration = Duration::from_secs(30);
/// How long the browser may take to start, load the page, upload, read back and report.
const BROWSER_DEADLINE: Duration = Duration::from_secs(40);
const PRESIGNED_FOR: Duration = Duration::from_secs(600);
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed.";

// ---------------------------------------------------------------------------------------------------
// Nodes, rules and bare HTTP
// ---------------------------------------------------------------------------------------------------

async fn start_with_bucket(bucket: &str) -> anyhow::Result<(TestNode, Client)> {
    let node = TestNode::builder().start().await?;
    let c = client(&node);
    c.create_bucket().bucket(bucket).send().await?;
    Ok((node, c))
}

fn rule(origins: &[&str], methods: &[&str]) -> CorsRule {
    let mut r = CorsRule::builder();
    for o in origins {
        r = r.allowed_origins(*o);
    }
    for m in methods {
        r = r.allowed_methods(*m);
    }
    r.build().expect("a rule with origins and methods")
}

async fn put_rules(c: &Client, bucket: &str, rules: Vec<CorsRule>) -> anyhow::Result<()> {
    let config = CorsConfiguration::builder().set_cors_rules(Some(rules)).build()?;
    c.put_bucket_cors().bucket(bucket).cors_configuration(config).send().await?;
    Ok(())
}

async fn exists(c: &Client, bucket: &str, key: &str) -> bool {
    c.head_object().bucket(bucket).key(key).send().await.is_ok()
}

/// A response read off a bare socket: status, headers (names lowercase, in order) and body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn cors_headers(&self) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.starts_with("access-control-")).map(|(k, _)| k.as_str()).collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 exchange on a fresh connection with exactly the given headers, as a browser or curl sends it.
/// `target` is a path or a whole `http://` URL (a presigned one).
async fn exchange(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Raw {
    exchange_inner(addr, method, target, headers, body).await.unwrap_or_else(|e| panic!("{method} {target}: {e:#}"))
}

async fn exchange_inner(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Raw> {
    let path = match target.strip_prefix("http://") {
        Some(rest) => &rest[rest.find('/').context("a path")?..],
        None => target,
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(RAW_HTTP_DEADLINE, exchange).await.context("raw HTTP deadline")??;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").context("a complete response head")?;
    let head = std::str::from_utf8(&buf[..head_end])?;
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).context("a status line")?.parse()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = &buf[head_end + 4..];
    let body = if chunked && !body.is_empty() { hoard_it::dechunk(body)? } else { body.to_vec() };
    Ok(Raw { status, headers, body })
}

/// The S3 error code in an XML error body.
fn code(raw: &Raw) -> String {
    let text = raw.text();
    let code = text.split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next());
    code.unwrap_or_default().to_string()
}

fn presigned_headers(p: &aws_sdk_s3::presigning::PresignedRequest) -> Vec<(String, String)> {
    p.headers().filter(|(k, _)| !k.eq_ignore_ascii_case("host")).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

// ---------------------------------------------------------------------------------------------------
// The configuration
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_rules_round_trip_through_put_get_and_delete() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let (status, code) = failure(c.get_bucket_cors().bucket("bkt").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchCORSConfiguration"), "no rules yet");

    let mut web = rule(&["https://app.example.com", "https://*.example.org"], &["GET", "PUT"]);
    web.id = Some("web".into());
    web.allowed_headers = Some(vec!["x-amz-*".into(), "Content-Type".into()]);
    web.expose_headers = Some(vec!["ETag".into()]);
    web.max_age_seconds = Some(3000);
    let anyone = rule(&["*"], &["HEAD"]);
    put_rules(&c, "bkt", vec![web.clone(), anyone.clone()]).await?;

    let got = c.get_bucket_cors().bucket("bkt").send().await?;
    assert_eq!(got.cors_rules(), [web, anyone], "the rules come back as they were put, in order");

    c.delete_bucket_cors().bucket("bkt").send().await?;
    let (status, code) = failure(c.get_bucket_cors().bucket("bkt").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchCORSConfiguration"), "deleted");
    c.delete_bucket_cors().bucket("bkt").send().await.context("deleting no rules is no error, as in S3")?;

    let (status, code) = failure(c.get_bucket_cors().bucket("nope").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    let config = CorsConfiguration::builder().cors_rules(rule(&["*"], &["GET"])).build()?;
    let (status, code) = failure(c.put_bucket_cors().bucket("nope").cors_configuration(config).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cors_rules_are_refused_and_the_stored_ones_stay() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let put = |rules: Vec<CorsRule>| {
        let config = CorsConfiguration::builder().set_cors_rules(Some(rules)).build().expect("a configuration");
        c.put_bucket_cors().bucket("bkt").cors_configuration(config).send()
    };

    let (status, code) = failure(put(vec![rule(&["*"], &["GET", "PATCH"])]).await);
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "an unsupported method");
    let (status, code) = failure(c.get_bucket_cors().bucket("bkt").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchCORSConfiguration"), "nothing was stored");

    let kept = rule(&["https://a.example"], &["GET"]);
    put_rules(&c, "bkt", vec![kept.clone()]).await?;
    let (status, code) = failure(put(vec![rule(&["https://*.*.example"], &["GET"])]).await);
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "two wildcards in an origin");
    let (status, code) = failure(put(vec![]).await);
    assert_eq!((status, code.as_str()), (400, "MalformedXML"), "no rule at all");
    let too_many = vec![rule(&["*"], &["GET"]); 101];
    let (status, code) = failure(put(too_many).await);
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "more than 100 rules");
    let got = c.get_bucket_cors().bucket("bkt").send().await?;
    assert_eq!(got.cors_rules(), [kept], "a refused configuration leaves the stored one as it was");
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Preflights
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_that_matches_a_rule_gets_its_headers_and_one_that_does_not_is_403() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let mut r = rule(&["https://app.example.com"], &["GET", "PUT"]);
    r.allowed_headers = Some(vec!["content-type".into(), "x-amz-meta-*".into()]);
    r.expose_headers = Some(vec!["ETag".into(), "x-amz-version-id".into()]);
    r.max_age_seconds = Some(600);
    put_rules(&c, "bkt", vec![r, rule(&["*"], &["GET"])]).await?;
    let addr = node.addr();
    let origin = ("Origin", "https://app.example.com");

    let asked = [
        origin,
        ("Access-Control-Request-Method", "PUT"),
        ("Access-Control-Request-Headers", "Content-Type, X-Amz-Meta-Owner"),
    ];
    let ok = exchange(addr, "OPTIONS", "/bkt/some/key", &asked, b"").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(ok.header("access-control-allow-headers"), Some("content-type, x-amz-meta-owner"));
    assert_eq!(ok.header("access-control-expose-headers"), Some("ETag, x-amz-version-id"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert_eq!(ok.header("vary"), Some(VARY));
    assert!(ok.body.is_empty());

    // Another origin falls through to the second rule, which allows anyone to GET.
    let any = [("Origin", "http://elsewhere:8080"), ("Access-Control-Request-Method", "GET")];
    let star = exchange(addr, "OPTIONS", "/bkt", &any, b"").await;
    assert_eq!(star.status, 200, "{}", star.text());
    assert_eq!(star.header("access-control-allow-origin"), Some("*"));
    assert_eq!(star.header("access-control-allow-credentials"), None, "no credentials with `*`");

    for (what, asked) in [
        ("an origin no rule names", vec![("Origin", "https://evil.example"), ("Access-Control-Request-Method", "PUT")]),
        ("a method no rule allows", vec![origin, ("Access-Control-Request-Method", "DELETE")]),
        (
            "a header no rule allows",
            vec![origin, ("Access-Control-Request-Method", "PUT"), ("Access-Control-Request-Headers", "x-amz-acl")],
        ),
    ] {
        let refused = exchange(addr, "OPTIONS", "/bkt/some/key", &asked, b"").await;
        assert_eq!((refused.status, code(&refused).as_str()), (403, "AccessForbidden"), "{what}");
        assert!(refused.text().contains(NOT_ALLOWED), "{what}: {}", refused.text());
        assert!(refused.cors_headers().is_empty(), "{what}: {:?}", refused.headers);
    }

    let no_origin = exchange(addr, "OPTIONS", "/bkt/k", &[("Access-Control-Request-Method", "GET")], b"").await;
    assert_eq!((no_origin.status, code(&no_origin).as_str()), (400, "BadRequest"));
    assert!(no_origin.text().contains("Origin request header needed"), "{}", no_origin.text());
    let no_method = exchange(addr, "OPTIONS", "/bkt/k", &[origin], b"").await;
    assert_eq!((no_method.status, code(&no_method).as_str()), (400, "BadRequest"));
    assert!(no_method.text().contains("Invalid Access-Control-Request-Method: null"), "{}", no_method.text());

    let asked = [origin, ("Access-Control-Request-Method", "GET")];
    let no_bucket = exchange(addr, "OPTIONS", "/nope/k", &asked, b"").await;
    assert_eq!((no_bucket.status, code(&no_bucket).as_str()), (403, "AccessForbidden"));
    assert!(no_bucket.text().contains("CORSResponse: Bucket not found"), "{}", no_bucket.text());
    c.create_bucket().bucket("plain").send().await?;
    let no_rules = exchange(addr, "OPTIONS", "/plain/k", &asked, b"").await;
    assert_eq!((no_rules.status, code(&no_rules).as_str()), (403, "AccessForbidden"));
    assert!(no_rules.text().contains("CORS is not enabled for this bucket"), "{}", no_rules.text());

    // Preflights are metered like any request, under their own name.
    let series = r#"hoard_s3_requests_total{operation="PreflightRequest",status="200"}"#;
    hoard_it::eventually("two answered preflights counted", || {
        let text = hoard_it::http_get(addr, "/metrics").map(|(_, body)| body).unwrap_or_default();
        hoard_it::metric(&text, series) == Some(2.0)
    })
    .await;
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_of_a_presigned_url_is_answered_without_checking_its_signature() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put_rules(&c, "bkt", vec![rule(&["https://app.example.com"], &["PUT"])]).await?;
    let put = c.put_object().bucket("bkt").key("k").presigned(PresigningConfig::expires_in(PRESIGNED_FOR)?).await?;
    let asked = [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "PUT")];
    let ok = exchange(node.addr(), "OPTIONS", put.uri(), &asked, b"").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert!(!exists(&c, "bkt", "k").await, "a preflight stores nothing");
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Actual requests
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_an_origin_gets_cors_headers_and_one_without_gets_none() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(3, 1000);
    c.put_object().bucket("bkt").key("obj").body(ByteStream::from(data.clone())).send().await?;
    let mut r = rule(&["https://app.example.com"], &["GET", "HEAD"]);
    r.expose_headers = Some(vec!["ETag".into()]);
    put_rules(&c, "bkt", vec![r]).await?;
    let presigned = PresigningConfig::expires_in(PRESIGNED_FOR)?;
    let get = c.get_object().bucket("bkt").key("obj").presigned(presigned.clone()).await?;
    let addr = node.addr();

    let with = exchange(addr, "GET", get.uri(), &[("Origin", "https://app.example.com")], b"").await;
    assert_eq!(with.status, 200, "{}", with.text());
    assert!(with.body == data);
    assert_eq!(with.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(with.header("access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(with.header("access-control-expose-headers"), Some("ETag"));
    assert_eq!(with.header("access-control-allow-headers"), None, "only a preflight names allowed headers");
    assert_eq!(with.header("vary"), Some(VARY));

    let without = exchange(addr, "GET", get.uri(), &[], b"").await;
    assert_eq!(without.status, 200);
    assert!(without.cors_headers().is_empty(), "no Origin, no CORS: {:?}", without.headers);
    let other = exchange(addr, "GET", get.uri(), &[("Origin", "https://evil.example")], b"").await;
    assert_eq!(other.status, 200, "CORS is the browser's to enforce: the read itself is answered");
    assert!(other.cors_headers().is_empty(), "an origin no rule names gets none: {:?}", other.headers);

    // Errors carry the headers too, so a page can read why it was refused.
    let missing = c.get_object().bucket("bkt").key("missing").presigned(presigned).await?;
    let error = exchange(addr, "GET", missing.uri(), &[("Origin", "https://app.example.com")], b"").await;
    assert_eq!((error.status, code(&error).as_str()), (404, "NoSuchKey"));
    assert_eq!(error.header("access-control-allow-origin"), Some("https://app.example.com"));
    let unsigned = exchange(addr, "GET", "/bkt/obj", &[("Origin", "https://app.example.com")], b"").await;
    assert_eq!((unsigned.status, code(&unsigned).as_str()), (403, "AccessDenied"), "anonymous and not allowed");
    assert_eq!(unsigned.header("access-control-allow-origin"), Some("https://app.example.com"));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_put_with_an_origin_gets_cors_headers() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put_rules(&c, "bkt", vec![rule(&["https://*.example.com"], &["PUT"])]).await?;
    let put = c.put_object().bucket("bkt").key("up").presigned(PresigningConfig::expires_in(PRESIGNED_FOR)?).await?;
    let mut headers = presigned_headers(&put);
    headers.push(("Origin".into(), "https://app.example.com".into()));
    let data = pattern(9, 5000);

    let resp = exchange(node.addr(), "PUT", put.uri(), &pairs(&headers), &data).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(resp.header("access-control-allow-methods"), Some("PUT"));
    assert_eq!(resp.header("access-control-allow-credentials"), Some("true"));
    let got = c.get_object().bucket("bkt").key("up").send().await?.body.collect().await?.into_bytes();
    assert!(got == data, "the object holds what was put");

    // A GET is not among the rule's methods: a read with the same origin gets no headers.
    let get = c.get_object().bucket("bkt").key("up").presigned(PresigningConfig::expires_in(PRESIGNED_FOR)?).await?;
    let read = exchange(node.addr(), "GET", get.uri(), &[("Origin", "https://app.example.com")], b"").await;
    assert_eq!(read.status, 200);
    assert!(read.cors_headers().is_empty(), "{:?}", read.headers);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_with_an_origin_gets_cors_headers_even_when_refused() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put_rules(&c, "bkt", vec![rule(&["https://app.example.com"], &["POST"])]).await?;
    let boundary = "hoardboundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nposted\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\n\
         hello\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let headers = [("Origin", "https://app.example.com"), ("Content-Type", content_type.as_str())];
    let resp = exchange(node.addr(), "POST", "/bkt", &headers, form.as_bytes()).await;
    assert_eq!(resp.status, 403, "an unsigned form is refused: {}", resp.text());
    assert_eq!(resp.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(resp.header("access-control-allow-methods"), Some("POST"));
    assert!(!exists(&c, "bkt", "posted").await);
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// A real browser
// ---------------------------------------------------------------------------------------------------

/// The page a browser loads from the test's own origin: it PUTs `BODY_LEN` bytes to a presigned URL of hoard,
/// GETs them back through another, and POSTs what happened to `/result` on its own origin.
const PAGE: &str = r#"<!doctype html>
<html><body><script>
(async () => {
  const put = PUT_URL, get = GET_URL, putHeaders = PUT_HEADERS;
  const body = new Uint8Array(BODY_LEN);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) & 0xff;
  let result;
  try {
    const up = await fetch(put, { method: "PUT", body, headers: putHeaders });
    const etag = up.headers.get("ETag");
    const down = await fetch(get);
    const back = new Uint8Array(await down.arrayBuffer());
    const same = back.length === body.length && back.every((b, i) => b === body[i]);
    result = { ok: true, put_status: up.status, etag, get_status: down.status, same };
  } catch (e) {
    result = { ok: false, error: String(e) };
  }
  await fetch("/result", { method: "POST", body: JSON.stringify(result) });
})();
</script></body></html>
"#;
const BODY_LEN: usize = 3000;

/// The bytes the page uploads.
fn page_body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| ((i * 7 + 3) & 0xff) as u8).collect()
}

/// The browser to run: `HOARD_CHROMIUM`, or the first Chromium on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HOARD_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// A headless Chromium showing one URL, in its own process group, ended with that group.
struct Browser {
    child: Child,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(binary: &std::path::Path, url: &str) -> anyhow::Result<Browser> {
        use std::os::unix::process::CommandExt as _;
        let profile = tempfile::tempdir()?;
        let log = profile.path().with_extension("log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Browser { child, log, _profile: profile })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// How long Chromium may take to shut down (and reap its child processes) once asked to.
const BROWSER_EXIT: Duration = Duration::from_secs(10);

impl Drop for Browser {
    // A browser process takes real time: the wall clock bounds its exit.
    #[allow(clippy::disallowed_methods)]
    fn drop(&mut self) {
        // Asked first, so it ends its renderers and other child processes itself; then whatever is left of its group.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + BROWSER_EXIT;
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Serves `page` at `/` on its own port (another origin than hoard's) and hands the first body POSTed to
/// `/result` to the returned receiver. Everything else is 404.
async fn page_server(page: String) -> anyhow::Result<(SocketAddr, tokio::sync::mpsc::Receiver<String>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (page, tx) = (page.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = serve_one(stream, &page, &tx).await;
            });
        }
    });
    Ok((addr, rx))
}

async fn serve_one(
    mut s: tokio::net::TcpStream,
    page: &str,
    results: &tokio::sync::mpsc::Sender<String>,
) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the browser closed the connection mid-request");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the browser closed the connection mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    let (status, content_type, answer) = if request_line.starts_with("GET / ") {
        ("200 OK", "text/html; charset=utf-8", page.to_string())
    } else if request_line.starts_with("POST /result ") {
        results.send(String::from_utf8_lossy(&body).into_owned()).await?;
        ("200 OK", "text/plain", "thanks".to_string())
    } else {
        ("404 Not Found", "text/plain", "not here".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    s.write_all(response.as_bytes()).await?;
    s.shutdown().await?;
    Ok(())
}

/// Loads the page in headless Chromium from its own origin, with presigned URLs to PUT and GET `bucket/key`,
/// and returns what the page reported (JSON).
async fn browser_upload(
    binary: &std::path::Path,
    c: &Client,
    bucket: &str,
    key: &str,
) -> anyhow::Result<serde_json::Value> {
    let presigned = PresigningConfig::expires_in(PRESIGNED_FOR)?;
    let put = c.put_object().bucket(bucket).key(key).presigned(presigned.clone()).await?;
    let get = c.get_object().bucket(bucket).key(key).presigned(presigned).await?;
    let put_headers: serde_json::Map<String, serde_json::Value> =
        presigned_headers(&put).into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
    let page = PAGE
        .replace("PUT_URL", &serde_json::to_string(put.uri())?)
        .replace("GET_URL", &serde_json::to_string(get.uri())?)
        .replace("PUT_HEADERS", &serde_json::Value::Object(put_headers).to_string())
        .replace("BODY_LEN", &BODY_LEN.to_string());
    let (addr, mut results) = page_server(page).await?;
    let browser = Browser::open(binary, &format!("http://{addr}/"))?;
    let reported = tokio::time::timeout(BROWSER_DEADLINE, results.recv()).await;
    let text = match reported {
        Ok(Some(text)) => text,
        _ => anyhow::bail!(
            "the page reported nothing within {BROWSER_DEADLINE:?}; Chromium said:\n{}",
            browser.log_text()
        ),
    };
    serde_json::from_str(&text).with_context(|| format!("the page's report: {text}"))
}

/// Waits until the node has counted `n` refused preflights: the browser's fetch failed because hoard refused
/// to let it go on, not for some other reason.
async fn refused_preflights_reach(node: &TestNode, n: f64) {
    let series = r#"hoard_s3_requests_total{operation="PreflightRequest",status="403"}"#;
    let addr = node.addr();
    hoard_it::eventually(&format!("{n} refused preflights counted"), || {
        let text = hoard_it::http_get(addr, "/metrics").map(|(_, body)| body).unwrap_or_default();
        hoard_it::metric(&text, series) == Some(n)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_uploads_through_a_presigned_url_only_from_an_allowed_origin() -> anyhow::Result<()> {
    let Some(binary) = chromium() else {
        if std::env::var("HOARD_SKIP_BROWSER").is_ok_and(|v| v == "1") {
            eprintln!("NOTICE: no Chromium found and HOARD_SKIP_BROWSER=1: the browser CORS test was SKIPPED");
            return Ok(());
        }
        panic!(
            "the browser CORS test needs Chromium: install it (`apt-get install chromium`), name it in HOARD_CHROMIUM, \
             or set HOARD_SKIP_BROWSER=1 to skip this test"
        );
    };
    let (node, c) = start_with_bucket("web").await?;

    // No rules: the browser's preflight is refused, its fetch fails, nothing is stored.
    let report = browser_upload(&binary, &c, "web", "no-rules").await?;
    assert_eq!(report["ok"], false, "the browser must refuse the upload without rules: {report}");
    assert!(!exists(&c, "web", "no-rules").await, "nothing stored without rules");
    refused_preflights_reach(&node, 1.0).await;

    // Rules for another origin only: the same.
    put_rules(&c, "web", vec![rule(&["https://elsewhere.example"], &["GET", "PUT"])]).await?;
    let report = browser_upload(&binary, &c, "web", "other-origin").await?;
    assert_eq!(report["ok"], false, "the browser must refuse an origin the rules do not name: {report}");
    assert!(!exists(&c, "web", "other-origin").await, "nothing stored for an origin not allowed");
    refused_preflights_reach(&node, 2.0).await;

    // Rules naming the page's origin (any port on 127.0.0.1): the upload and the read back succeed.
    let mut allowed = rule(&["http://127.0.0.1:*"], &["GET", "PUT"]);
    allowed.allowed_headers = Some(vec!["*".into()]);
    allowed.expose_headers = Some(vec!["ETag".into()]);
    put_rules(&c, "web", vec![allowed]).await?;
    let report = browser_upload(&binary, &c, "web", "uploaded").await?;
    assert_eq!(report["ok"], true, "the browser upload failed: {report}");
    assert_eq!((report["put_status"].as_u64(), report["get_status"].as_u64()), (Some(200), Some(200)), "{report}");
    assert_eq!(report["same"], true, "the page read back what it sent: {report}");
    let data = page_body();
    assert_eq!(report["etag"].as_str(), Some(format!("\"{}\"", md5_hex(&data)).as_str()), "ETag exposed: {report}");
    let stored = c.get_object().bucket("web").key("uploaded").send().await?.body.collect().await?.into_bytes();
    assert!(stored == data, "hoard holds exactly the bytes the page sent");
    node.stop().await;
    Ok(())
}
