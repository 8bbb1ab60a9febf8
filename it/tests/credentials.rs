//! The root credential hoard keeps: sealed under the master key in metadata (never on disk in clear),
//! rotated with `hoard cluster rotate-root-key` over HTTPS (the old pair stops working at once, the new one
//! survives restarts), carried through a master-key rotation, and sealed at the first start with a key when
//! it was kept in clear before. Access keys' secrets are kept the same way.

use std::path::Path;
use std::process::Command;
use std::process::Output;
use std::time::Duration;
use std::time::Instant;

use hoard_it::failure;
use hoard_it::get;
use hoard_it::hoard_bin;
use hoard_it::key_file;
use hoard_it::no_retry;
use hoard_it::put;
use hoard_it::HoardProcess;
use hoard_it::TestCert;

/// The credential a process printed at its first start (it prints it once, just after it is ready).
// A real `hoard` process takes real time: the wall clock bounds it.
#[allow(clippy::disallowed_methods)]
fn printed(node: &HoardProcess) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = node.printed_credential() {
            return c;
        }
        assert!(Instant::now() < deadline, "no credential printed: {}", node.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cli(endpoint: &str, (access, secret): (&str, &str), ca: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(hoard_bin());
    cmd.args(["cluster"]).args(args).env("HOARD_ENDPOINT", endpoint);
    cmd.env("HOARD_ROOT_ACCESS_KEY", access).env("HOARD_ROOT_SECRET_KEY", secret);
    if let Some(ca) = ca {
        cmd.env("AWS_CA_BUNDLE", ca);
    }
    cmd.output().expect("hoard runs")
}

/// Every byte of every file under `dir`.
fn everything_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.extend_from_slice(&bytes);
            }
        }
    }
    out
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_root_secret_is_sealed_on_disk_and_rotates_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new();
    let old_key = key_file(dir.path(), "old.key", 0x11);
    let new_key = key_file(dir.path(), "new.key", 0x22);
    let data = dir.path().join("data");
    let mut node = HoardProcess::start_tls_keeping_credential(&data, &cert, &["--master-key-file", &old_key]).unwrap();
    let (access, secret) = printed(&node);
    let c = no_retry(node.client_as(&access, &secret));
    c.create_bucket().bucket("creds").send().await.unwrap();
    put(&c, "creds", "k", b"kept through rotations").await;

    let disk = everything_under(&data);
    assert!(holds(&disk, &access), "the access key is stored in clear: the search can find what is there");
    assert!(!holds(&disk, &secret), "the root secret is on disk in clear");

    // Over plain HTTP the new secret would cross the wire in clear: refused.
    let plain = format!("http://{}", node.http_addr.unwrap());
    let out = cli(&plain, (&access, &secret), None, &["rotate-root-key"]);
    assert!(!out.status.success(), "rotate-root-key over plain HTTP must be refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTPS"), "{out:?}");

    let out = cli(&node.endpoint(), (&access, &secret), Some(&cert.cert), &["rotate-root-key"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| text.lines().find_map(|l| l.trim().strip_prefix(name)).expect(name).to_string();
    let (new_access, new_secret) = (field("AWS_ACCESS_KEY_ID="), field("AWS_SECRET_ACCESS_KEY="));
    assert!(text.contains("sealed under the master key"), "{text}");
    assert_ne!((&new_access, &new_secret), (&access, &secret));

    let (status, code) = failure(c.head_object().bucket("creds").key("k").send().await);
    assert_eq!(status, 403, "the old pair stops working at once: {code}");
    let fresh = no_retry(node.client_as(&new_access, &new_secret));
    assert_eq!(get(&fresh, "creds", "k").await, b"kept through rotations");

    // A key file the node cannot use gets one answer, whatever the path is: missing, a FIFO (which must not
    // block the node), a directory. Only the node's log says which.
    let fifo = dir.path().join("key.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let unusable = [dir.path().join("missing.key"), fifo, dir.path().to_path_buf()];
    let mut answers = Vec::new();
    for path in &unusable {
        let path = path.display().to_string();
        let args = ["rotate-key", "--new-master-key-file", &path, "--no-wait"];
        let out = cli(&node.endpoint(), (&new_access, &new_secret), Some(&cert.cert), &args);
        assert!(!out.status.success(), "{path} is not a key file");
        answers.push(String::from_utf8_lossy(&out.stderr).replace(&path, "PATH"));
    }
    assert!(answers[0].contains("cannot use PATH as a master key"), "{}", answers[0]);
    assert!(answers.iter().all(|a| *a == answers[0]), "the answers tell the paths apart: {answers:?}");
    assert!(!answers[0].contains("os error") && !answers[0].contains("No such file"), "{}", answers[0]);

    // An access key's secret is kept sealed like root's.
    let mut cmd = Command::new(hoard_bin());
    cmd.args(["key", "--endpoint", &node.endpoint(), "create", "app"]).env("AWS_CA_BUNDLE", &cert.cert);
    let out = cmd.env("HOARD_ROOT_ACCESS_KEY", &new_access).env("HOARD_ROOT_SECRET_KEY", &new_secret).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| text.lines().find_map(|l| l.trim().strip_prefix(name)).expect(name).to_string();
    let (app_access, app_secret) = (field("AWS_ACCESS_KEY_ID="), field("AWS_SECRET_ACCESS_KEY="));
    assert!(text.contains("sealed under the master key"), "{text}");
    let mut cmd = Command::new(hoard_bin());
    cmd.args(["key", "--endpoint", &node.endpoint(), "allow", "--read", &app_access, "creds"]);
    cmd.env("AWS_CA_BUNDLE", &cert.cert).env("HOARD_ROOT_ACCESS_KEY", &new_access);
    assert!(cmd.env("HOARD_ROOT_SECRET_KEY", &new_secret).status().unwrap().success());
    let app = no_retry(node.client_as(&app_access, &app_secret));
    assert_eq!(get(&app, "creds", "k").await, b"kept through rotations");
    assert!(!holds(&everything_under(&data), &app_secret), "an access key's secret is on disk in clear");

    // A master-key rotation carries the sealed credentials to the new key: the node starts with only the
    // new key and they still open.
    let out = cli(
        &node.endpoint(),
        (&new_access, &new_secret),
        Some(&cert.cert),
        &["rotate-key", "--new-master-key-file", &new_key],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    node.extra_args = vec!["--master-key-file".into(), new_key.clone()];
    node.restart().unwrap();
    let fresh = no_retry(node.client_as(&new_access, &new_secret));
    assert_eq!(get(&fresh, "creds", "k").await, b"kept through rotations");
    let (status, _) = failure(no_retry(node.client_as(&access, &secret)).list_buckets().send().await);
    assert_eq!(status, 403, "the old pair stays refused after a restart");
    let app = no_retry(node.client_as(&app_access, &app_secret));
    assert_eq!(get(&app, "creds", "k").await, b"kept through rotations", "the access key opens under the new key");
    assert!(!holds(&everything_under(&data), &new_secret), "the rotated secret is on disk in clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_kept_in_clear_is_sealed_once_the_node_has_a_key_and_still_signs() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new();
    let key = key_file(dir.path(), "master.key", 0x33);
    let data = dir.path().join("data");
    let mut node = HoardProcess::start_tls_keeping_credential(&data, &cert, &[]).unwrap();
    let (access, secret) = printed(&node);
    let c = no_retry(node.client_as(&access, &secret));
    c.create_bucket().bucket("later").send().await.unwrap();

    node.extra_args = vec!["--master-key-file".into(), key];
    node.restart().unwrap();
    let c = no_retry(node.client_as(&access, &secret));
    c.head_bucket().bucket("later").send().await.expect("the same pair signs after sealing");
    assert!(node.log_text().contains("now sealed under the master key"), "the node says it sealed the credential");

    // With the operator's own credential in the environment there is nothing hoard may rotate.
    let given = HoardProcess::start_tls(&dir.path().join("given"), &cert, "info", &[]).unwrap();
    let out =
        cli(&given.endpoint(), (hoard_it::ACCESS_KEY, hoard_it::SECRET_KEY), Some(&cert.cert), &["rotate-root-key"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOARD_ROOT_ACCESS_KEY"), "{out:?}");
}
