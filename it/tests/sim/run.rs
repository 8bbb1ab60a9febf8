//! Drives a drawn workload through the S3 client, telling the oracle what each request began and got, and the
//! trace what happened. Requests go one at a time, each at its own logical instant.

use std::collections::BTreeMap;
use std::time::Duration;

use super::body;
use super::client::path_of;
use super::client::sse_headers;
use super::client::Answer;
use super::client::Client;
use super::oracle::Oracle;
use super::oracle::ReadResult;
use super::trace::Trace;
use super::workload::Op;
use super::workload::Sse;

/// What the driver knows of a key's last acknowledged version: its tag, length, ETag and encryption (a copy
/// names it as its source, so the oracle knows what the copy holds).
#[derive(Debug, Clone)]
struct Known {
    tag: u64,
    len: usize,
    etag: String,
    sse: Sse,
}

pub struct Run<'c> {
    pub client: &'c Client,
    pub bucket: String,
    pub oracle: Oracle,
    pub trace: Trace,
    clock: u64,
    known: BTreeMap<String, Option<Known>>,
    /// The customer key reads offer when an object asks for one.
    customer: Option<[u8; 32]>,
    /// How many times a request that got no answer, or a 5xx, is sent again (as S3 clients do).
    retries: u32,
}

/// How long a request may take before the client gives up on it (and retries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl<'c> Run<'c> {
    pub fn new(client: &'c Client, bucket: &str) -> Run<'c> {
        Run {
            client,
            bucket: bucket.into(),
            oracle: Oracle::new(),
            trace: Trace::default(),
            clock: 0,
            known: BTreeMap::new(),
            customer: None,
            retries: 0,
        }
    }

    /// Sends a request again up to `n` times when it got no answer or a 5xx, after a growing pause.
    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Changes how many times a request is sent again from now on.
    pub fn set_retries(&mut self, n: u32) {
        self.retries = n;
    }

    /// Creates the run's bucket (a retry whose first try made it is told the caller owns it already).
    pub async fn create_bucket(&mut self) {
        let path = format!("/{}", self.bucket);
        let a = self.send("PUT", &path, Vec::new(), Vec::new()).await;
        let code = a.code();
        self.trace.record(format!("create bucket -> {} {code}", a.status));
        assert!(a.status == 200 || code == "BucketAlreadyOwnedByYou", "the bucket was not made: {} {code}", a.status);
    }

    /// The versions the keys hold now, as far as acknowledgements tell: (tag, length, encryption).
    pub fn current(&self) -> Vec<(u64, usize, Sse)> {
        self.known.values().flatten().map(|k| (k.tag, k.len, k.sse)).collect()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    async fn send(&mut self, method: &str, target: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Answer {
        let mut attempt = 0;
        loop {
            let sent = tokio::time::timeout(REQUEST_TIMEOUT, self.client.send(method, target, &headers, body.clone()));
            let answer = match sent.await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => Answer { status: 0, headers: Default::default(), body: format!("{e:#}").into_bytes() },
                Err(_) => Answer { status: 0, headers: Default::default(), body: b"timed out".to_vec() },
            };
            if !(answer.status == 0 || answer.status >= 500) || attempt >= self.retries {
                return answer;
            }
            attempt += 1;
            self.trace.record(format!("retry {attempt} of {method} {target}: {} {}", answer.status, answer.code()));
            tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
        }
    }

    pub async fn op(&mut self, op: &Op) {
        match op {
            Op::Put { key, tag, len, sse } => self.put(key, *tag, *len, *sse).await,
            Op::Multipart { key, tag, len, part_len, sse } => self.multipart(key, *tag, *len, *part_len, *sse).await,
            Op::Copy { from, to } => self.copy(from, to).await,
            Op::Get { key, range } => {
                self.read(key, *range).await;
            }
            Op::Delete { key } => {
                let t0 = self.tick();
                let id = self.oracle.begin_write(key, None, 0, false, t0);
                let a = self.send("DELETE", &path_of(&self.bucket, key), Vec::new(), Vec::new()).await;
                let ok = a.status == 204;
                let t1 = self.tick();
                self.oracle.end_write(id, ok, t1);
                if ok {
                    self.known.insert(key.clone(), None);
                }
                self.trace.record(format!("delete {key} -> {}", a.status));
            }
            Op::List { prefix } => {
                let target = format!("/{}?list-type=2&prefix={prefix}", self.bucket);
                let a = self.send("GET", &target, Vec::new(), Vec::new()).await;
                let text = String::from_utf8_lossy(&a.body);
                let keys: Vec<&str> = text.split("<Key>").skip(1).filter_map(|r| r.split("</Key>").next()).collect();
                self.trace.record(format!("list {prefix} -> {} {keys:?}", a.status));
            }
        }
    }

    /// Starts a rotation of the master key to the key in `file` (a path every node reads), through the admin
    /// API; the rotation then runs in the background while the workload goes on.
    pub async fn rotate_key(&mut self, file: &std::path::Path) {
        let file = super::client::query_value(&file.display().to_string());
        let target = format!("/?hoard-cluster=&action=rotate-key&key-file={file}");
        let a = self.send("POST", &target, Vec::new(), Vec::new()).await;
        self.trace.record(format!("rotate-key -> {} {}", a.status, a.code()));
    }

    async fn put(&mut self, key: &str, tag: u64, len: usize, sse: Sse) {
        self.remember_customer(sse);
        let t0 = self.tick();
        let id = self.oracle.begin_write(key, Some(tag), len, !matches!(sse, Sse::Plain), t0);
        let a = self.send("PUT", &path_of(&self.bucket, key), sse_headers(&sse), body::body(tag, len)).await;
        let t1 = self.tick();
        let ok = a.status == 200;
        self.oracle.end_write(id, ok, t1);
        if ok {
            let etag = a.headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            self.known.insert(key.into(), Some(Known { tag, len, etag, sse }));
        }
        self.trace.record(format!("put {key} v{tag} {len}B {sse:?} -> {}", a.status));
    }

    async fn multipart(&mut self, key: &str, tag: u64, len: usize, part_len: usize, sse: Sse) {
        self.remember_customer(sse);
        let t0 = self.tick();
        let id = self.oracle.begin_write(key, Some(tag), len, !matches!(sse, Sse::Plain), t0);
        let path = path_of(&self.bucket, key);
        let created = self.send("POST", &format!("{path}?uploads"), sse_headers(&sse), Vec::new()).await;
        let text = String::from_utf8_lossy(&created.body).into_owned();
        let upload = text.split("<UploadId>").nth(1).and_then(|r| r.split("</UploadId>").next()).map(str::to_string);
        let mut status = created.status;
        let mut parts = String::new();
        if let Some(upload) = &upload {
            let whole = body::body(tag, len);
            for (i, chunk) in whole.chunks(part_len).enumerate() {
                let n = i + 1;
                let target = format!("{path}?partNumber={n}&uploadId={upload}");
                let part = self.send("PUT", &target, sse_headers(&sse), chunk.to_vec()).await;
                status = part.status;
                if part.status != 200 {
                    break;
                }
                let etag = part.headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default();
                parts.push_str(&format!("<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"));
            }
            if status == 200 {
                let xml = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>").into_bytes();
                let headers = match sse {
                    Sse::SseC(_) => sse_headers(&sse),
                    _ => Vec::new(),
                };
                let done = self.send("POST", &format!("{path}?uploadId={upload}"), headers, xml).await;
                status = done.status;
                let etag = String::from_utf8_lossy(&done.body)
                    .split("<ETag>")
                    .nth(1)
                    .and_then(|r| r.split("</ETag>").next())
                    .unwrap_or_default()
                    .replace("&quot;", "\"");
                if status == 200 && done.code().is_empty() {
                    self.known.insert(key.into(), Some(Known { tag, len, etag, sse }));
                }
            }
        }
        let t1 = self.tick();
        self.oracle.end_write(id, status == 200, t1);
        self.trace.record(format!("multipart {key} v{tag} {len}B {sse:?} -> {status}"));
    }

    async fn copy(&mut self, from: &str, to: &str) {
        // The copy names the version it expects, so the oracle knows what `to` then holds; a source with no
        // acknowledged version is read instead.
        let Some(Some(src)) = self.known.get(from).cloned() else {
            self.read(from, None).await;
            return;
        };
        let t0 = self.tick();
        let id = self.oracle.begin_write(to, Some(src.tag), src.len, !matches!(src.sse, Sse::Plain), t0);
        let mut headers = sse_headers(&src.sse);
        headers.push(("x-amz-copy-source".into(), path_of(&self.bucket, from)));
        headers.push(("x-amz-copy-source-if-match".into(), src.etag.clone()));
        if let Sse::SseC(_) = src.sse {
            for (k, v) in sse_headers(&src.sse) {
                headers.push((k.replace("x-amz-server-side", "x-amz-copy-source-server-side"), v));
            }
        }
        let a = self.send("PUT", &path_of(&self.bucket, to), headers, Vec::new()).await;
        let t1 = self.tick();
        let ok = a.status == 200 && a.code().is_empty();
        self.oracle.end_write(id, ok, t1);
        if ok {
            let text = String::from_utf8_lossy(&a.body).into_owned();
            let etag = text.split("<ETag>").nth(1).and_then(|r| r.split("</ETag>").next()).unwrap_or_default();
            let etag = etag.replace("&quot;", "\"");
            self.known.insert(to.into(), Some(Known { etag, ..src.clone() }));
        }
        self.trace.record(format!("copy {from} v{} -> {to}: {} {}", src.tag, a.status, a.code()));
    }

    /// A read of `key` (whole, or `len` bytes at `start`), offering the customer key when the object asks.
    pub async fn read(&mut self, key: &str, range: Option<(usize, usize)>) {
        let t0 = self.tick();
        let path = path_of(&self.bucket, key);
        let mut headers = Vec::new();
        if let Some((start, len)) = range {
            headers.push(("range".to_string(), format!("bytes={start}-{}", start + len - 1)));
        }
        let mut a = self.send("GET", &path, headers.clone(), Vec::new()).await;
        if a.status == 400 && a.code() == "InvalidRequest" {
            if let Some(key) = self.customer {
                headers.extend(sse_headers(&Sse::SseC(key)));
                a = self.send("GET", &path, headers, Vec::new()).await;
            }
        }
        let t1 = self.tick();
        let result = match (a.status, range) {
            (200, _) => ReadResult::Object(a.body.clone()),
            (206, Some((start, _))) => ReadResult::Range { start, bytes: a.body.clone() },
            (404, _) if a.code() == "NoSuchKey" => ReadResult::NotFound,
            (status, _) => ReadResult::Error(format!("{status} {}", a.code())),
        };
        self.oracle.observe_read(key, t0, t1, &result);
        let got = match &result {
            ReadResult::Object(b) | ReadResult::Range { bytes: b, .. } => format!("{:?}", body::tags_in(b)),
            other => format!("{other:?}"),
        };
        self.trace.record(format!("get {key} {range:?} -> {} {got}", a.status));
    }

    fn remember_customer(&mut self, sse: Sse) {
        if let Sse::SseC(key) = sse {
            self.customer = Some(key);
        }
    }
}
