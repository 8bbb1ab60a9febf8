//! Access control from outside: access keys made with `hoard key`, what each grant lets a key do (every
//! operation × owner, read, write, read+write, no grant, anonymous), bucket creation and ownership, ACLs and
//! public reads (curl), bucket policies, Block Public Access.

use std::process::Output;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketCannedAcl;
use aws_sdk_s3::types::BucketVersioningStatus;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use aws_sdk_s3::types::CorsConfiguration;
use aws_sdk_s3::types::CorsRule;
use aws_sdk_s3::types::Delete;
use aws_sdk_s3::types::ObjectCannedAcl;
use aws_sdk_s3::types::ObjectIdentifier;
use aws_sdk_s3::types::PublicAccessBlockConfiguration;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::types::ServerSideEncryptionByDefault;
use aws_sdk_s3::types::ServerSideEncryptionConfiguration;
use aws_sdk_s3::types::ServerSideEncryptionRule;
use aws_sdk_s3::types::Tag;
use aws_sdk_s3::types::Tagging;
use aws_sdk_s3::types::VersioningConfiguration;
use aws_sdk_s3::Client;
use hoard_it::anonymous_client;
use hoard_it::aws;
use hoard_it::aws_as;
use hoard_it::client;
use hoard_it::client_for;
use hoard_it::failure;
use hoard_it::get;
use hoard_it::hoard_cli;
use hoard_it::put;
use hoard_it::TestCluster;
use hoard_it::TestNode;

/// An access key made with `hoard key create`.
struct Key {
    id: String,
    secret: String,
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "hoard failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn key_cli(node: &TestNode, args: &[&str]) -> Output {
    let endpoint = node.endpoint();
    let mut all = vec!["key", "--endpoint", endpoint.as_str()];
    all.extend_from_slice(args);
    hoard_cli(&all)
}

fn create_key(node: &TestNode, name: &str, extra: &[&str]) -> Key {
    let mut args = vec!["create", name];
    args.extend_from_slice(extra);
    let text = stdout(&key_cli(node, &args));
    let value = |var: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(var)).unwrap_or_else(|| panic!("{var} in {text}")).to_string()
    };
    Key { id: value("AWS_ACCESS_KEY_ID="), secret: value("AWS_SECRET_ACCESS_KEY=") }
}

fn allow(node: &TestNode, key: &Key, bucket: &str, flags: &[&str]) {
    let mut args = vec!["allow"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[key.id.as_str(), bucket]);
    stdout(&key_cli(node, &args));
}

fn client_of(node: &TestNode, key: &Key) -> Client {
    hoard_it::no_retry(client_for(&node.endpoint(), &key.id, &key.secret))
}

/// The HTTP status a call got (200 for success).
fn status<T, E: ProvideErrorMetadata + std::fmt::Debug>(r: Result<T, SdkError<E>>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e.raw_response().map(|r| r.status().as_u16()).unwrap_or_else(|| panic!("no HTTP response: {e:?}")),
    }
}

/// What a grant must hold for each operation, in the order the matrix calls them (destructive ones last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Read,
    Write,
    /// Read and write (a copy reads its source and writes its target).
    ReadWrite,
    Owner,
}

const MATRIX: &[(&str, Level)] = &[
    ("HeadBucket", Level::Read),
    ("ListObjects", Level::Read),
    ("ListObjectsV2", Level::Read),
    ("ListObjectVersions", Level::Read),
    ("ListMultipartUploads", Level::Read),
    ("GetBucketLocation", Level::Read),
    ("GetBucketVersioning", Level::Read),
    ("GetObjectLockConfiguration", Level::Read),
    ("GetObject", Level::Read),
    ("HeadObject", Level::Read),
    ("GetObjectAttributes", Level::Read),
    ("GetObjectTagging", Level::Read),
    ("PutObject", Level::Write),
    ("CopyObject", Level::ReadWrite),
    ("CreateMultipartUpload", Level::Write),
    ("UploadPart", Level::Write),
    ("UploadPartCopy", Level::ReadWrite),
    ("ListParts", Level::Write),
    ("CompleteMultipartUpload", Level::Write),
    ("PutObjectTagging", Level::Write),
    ("DeleteObjectTagging", Level::Write),
    ("GetObjectAcl", Level::Owner),
    ("PutObjectAcl", Level::Owner),
    ("GetBucketAcl", Level::Owner),
    ("PutBucketAcl", Level::Owner),
    ("PutBucketPolicy", Level::Owner),
    ("GetBucketPolicy", Level::Owner),
    ("GetBucketPolicyStatus", Level::Owner),
    ("DeleteBucketPolicy", Level::Owner),
    ("PutPublicAccessBlock", Level::Owner),
    ("GetPublicAccessBlock", Level::Owner),
    ("DeletePublicAccessBlock", Level::Owner),
    ("PutBucketCors", Level::Owner),
    ("GetBucketCors", Level::Owner),
    ("DeleteBucketCors", Level::Owner),
    ("PutBucketVersioning", Level::Owner),
    ("PutBucketEncryption", Level::Owner),
    ("GetBucketEncryption", Level::Owner),
    ("DeleteBucketEncryption", Level::Owner),
    ("PutBucketTagging", Level::Owner),
    ("GetBucketTagging", Level::Owner),
    ("DeleteBucketTagging", Level::Owner),
    ("AbortMultipartUpload", Level::Write),
    ("DeleteObjects", Level::Write),
    ("DeleteObject", Level::Write),
    ("DeleteBucket", Level::Owner),
];

/// Calls one operation on bucket `b` (which holds `k`, `gone1`, `gone2` and the upload `upload`); the status.
async fn call(c: &Client, op: &str, b: &str, upload: &str, policy_principal: &str) -> u16 {
    let body = || ByteStream::from_static(b"matrix");
    match op {
        "HeadBucket" => status(c.head_bucket().bucket(b).send().await),
        "ListObjects" => status(c.list_objects().bucket(b).send().await),
        "ListObjectsV2" => status(c.list_objects_v2().bucket(b).send().await),
        "ListObjectVersions" => status(c.list_object_versions().bucket(b).send().await),
        "ListMultipartUploads" => status(c.list_multipart_uploads().bucket(b).send().await),
        "GetBucketLocation" => status(c.get_bucket_location().bucket(b).send().await),
        "GetBucketVersioning" => status(c.get_bucket_versioning().bucket(b).send().await),
        "GetObjectLockConfiguration" => status(c.get_object_lock_configuration().bucket(b).send().await),
        "GetObject" => status(c.get_object().bucket(b).key("k").send().await),
        "HeadObject" => status(c.head_object().bucket(b).key("k").send().await),
        "GetObjectAttributes" => status(
            c.get_object_attributes()
                .bucket(b)
                .key("k")
                .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
                .send()
                .await,
        ),
        "GetObjectTagging" => status(c.get_object_tagging().bucket(b).key("k").send().await),
        "PutObject" => status(c.put_object().bucket(b).key("new").body(body()).send().await),
        "CopyObject" => status(c.copy_object().bucket(b).key("copy").copy_source(format!("{b}/k")).send().await),
        "CreateMultipartUpload" => status(c.create_multipart_upload().bucket(b).key("mp").send().await),
        "UploadPart" => {
            status(c.upload_part().bucket(b).key("up").upload_id(upload).part_number(1).body(body()).send().await)
        }
        "UploadPartCopy" => status(
            c.upload_part_copy()
                .bucket(b)
                .key("up")
                .upload_id(upload)
                .part_number(2)
                .copy_source(format!("{b}/k"))
                .send()
                .await,
        ),
        "ListParts" => status(c.list_parts().bucket(b).key("up").upload_id(upload).send().await),
        "CompleteMultipartUpload" => {
            let part = CompletedPart::builder().part_number(9).e_tag("\"00000000000000000000000000000000\"").build();
            let parts = CompletedMultipartUpload::builder().parts(part).build();
            status(
                c.complete_multipart_upload()
                    .bucket(b)
                    .key("up")
                    .upload_id(upload)
                    .multipart_upload(parts)
                    .send()
                    .await,
            )
        }
        "PutObjectTagging" => {
            let tagging = Tagging::builder().tag_set(Tag::builder().key("t").value("v").build().unwrap()).build();
            status(c.put_object_tagging().bucket(b).key("k").tagging(tagging.unwrap()).send().await)
        }
        "DeleteObjectTagging" => status(c.delete_object_tagging().bucket(b).key("k").send().await),
        "GetObjectAcl" => status(c.get_object_acl().bucket(b).key("k").send().await),
        "PutObjectAcl" => status(c.put_object_acl().bucket(b).key("k").acl(ObjectCannedAcl::Private).send().await),
        "GetBucketAcl" => status(c.get_bucket_acl().bucket(b).send().await),
        "PutBucketAcl" => status(c.put_bucket_acl().bucket(b).acl(BucketCannedAcl::Private).send().await),
        "PutBucketPolicy" => {
            let policy = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{policy_principal}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}}]}}"#
            );
            status(c.put_bucket_policy().bucket(b).policy(policy).send().await)
        }
        "GetBucketPolicy" => status(c.get_bucket_policy().bucket(b).send().await),
        "GetBucketPolicyStatus" => status(c.get_bucket_policy_status().bucket(b).send().await),
        "DeleteBucketPolicy" => status(c.delete_bucket_policy().bucket(b).send().await),
        "PutPublicAccessBlock" => {
            let block = PublicAccessBlockConfiguration::builder().block_public_acls(false).build();
            status(c.put_public_access_block().bucket(b).public_access_block_configuration(block).send().await)
        }
        "GetPublicAccessBlock" => status(c.get_public_access_block().bucket(b).send().await),
        "DeletePublicAccessBlock" => status(c.delete_public_access_block().bucket(b).send().await),
        "PutBucketCors" => {
            let rule = CorsRule::builder().allowed_methods("GET").allowed_origins("https://example.com").build();
            let cors = CorsConfiguration::builder().cors_rules(rule.unwrap()).build().unwrap();
            status(c.put_bucket_cors().bucket(b).cors_configuration(cors).send().await)
        }
        "GetBucketCors" => status(c.get_bucket_cors().bucket(b).send().await),
        "DeleteBucketCors" => status(c.delete_bucket_cors().bucket(b).send().await),
        "PutBucketVersioning" => {
            let conf = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
            status(c.put_bucket_versioning().bucket(b).versioning_configuration(conf).send().await)
        }
        "PutBucketEncryption" => {
            let default = ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256);
            let rule =
                ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default.build().unwrap());
            let conf = ServerSideEncryptionConfiguration::builder().rules(rule.build()).build().unwrap();
            status(c.put_bucket_encryption().bucket(b).server_side_encryption_configuration(conf).send().await)
        }
        "GetBucketEncryption" => status(c.get_bucket_encryption().bucket(b).send().await),
        "DeleteBucketEncryption" => status(c.delete_bucket_encryption().bucket(b).send().await),
        "PutBucketTagging" => {
            let tagging = Tagging::builder().tag_set(Tag::builder().key("t").value("v").build().unwrap()).build();
            status(c.put_bucket_tagging().bucket(b).tagging(tagging.unwrap()).send().await)
        }
        "GetBucketTagging" => status(c.get_bucket_tagging().bucket(b).send().await),
        "DeleteBucketTagging" => status(c.delete_bucket_tagging().bucket(b).send().await),
        "AbortMultipartUpload" => status(c.abort_multipart_upload().bucket(b).key("up").upload_id(upload).send().await),
        "DeleteObjects" => {
            let delete = Delete::builder().objects(ObjectIdentifier::builder().key("gone1").build().unwrap()).build();
            // A denied DeleteObjects answers 403 for the request; an allowed one names each key's fate.
            match c.delete_objects().bucket(b).delete(delete.unwrap()).send().await {
                Ok(out) if !out.errors().is_empty() => 403,
                r => status(r),
            }
        }
        "DeleteObject" => status(c.delete_object().bucket(b).key("gone2").send().await),
        "DeleteBucket" => status(c.delete_bucket().bucket(b).send().await),
        other => panic!("no call for {other}"),
    }
}

/// Root makes bucket `b` holding `k`, `gone1`, `gone2` and an open upload of `up`; the upload id.
async fn matrix_bucket(root: &Client, b: &str) -> String {
    root.create_bucket().bucket(b).send().await.expect("create");
    for key in ["k", "gone1", "gone2"] {
        put(root, b, key, b"held").await;
    }
    let upload = root.create_multipart_upload().bucket(b).key("up").send().await.expect("upload");
    upload.upload_id().expect("an upload id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_is_allowed_exactly_by_the_grant_it_needs() {
    let node = TestNode::builder().start().await.expect("node");
    let root = client(&node);
    let principals: &[(&str, &[&str], &[Level])] = &[
        ("owner", &["--owner"], &[Level::Owner]),
        ("read", &["--read"], &[Level::Read]),
        ("write", &["--write"], &[Level::Write]),
        ("readwrite", &["--read", "--write"], &[Level::Read, Level::Write, Level::ReadWrite]),
        ("none", &[], &[]),
    ];
    let mut wrong = Vec::new();
    for (name, flags, levels) in principals {
        let b = format!("matrix-{name}");
        let upload = matrix_bucket(&root, &b).await;
        let key = create_key(&node, name, &[]);
        if !flags.is_empty() {
            allow(&node, &key, &b, flags);
        }
        let c = client_of(&node, &key);
        for (op, level) in MATRIX {
            let got = call(&c, op, &b, &upload, &key.id).await;
            let expect_allowed = levels.contains(level);
            if (got != 403) != expect_allowed {
                wrong.push(format!("{name} {op}: {got} (expected {})", if expect_allowed { "allowed" } else { "403" }));
            }
        }
        // A grant never reaches another bucket, nor lets a key make one.
        let other = format!("matrix-other-{name}");
        matrix_bucket(&root, &other).await;
        assert_eq!(call(&c, "GetObject", &other, "-", &key.id).await, 403, "{name}: other bucket");
        assert_eq!(status(c.create_bucket().bucket(format!("made-by-{name}")).send().await), 403, "{name}");
        let listed = c.list_buckets().send().await.expect("list buckets");
        let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
        let expected: Vec<&str> = if flags.is_empty() { vec![] } else { vec![b.as_str()] };
        assert_eq!(names, expected, "{name} sees only the buckets it holds a grant in");
    }
    // Anonymous: nothing at all on an existing bucket.
    let b = "matrix-anonymous";
    let upload = matrix_bucket(&root, b).await;
    let anon = anonymous_client(&node.endpoint());
    for (op, _) in MATRIX {
        let got = call(&anon, op, b, &upload, "nobody").await;
        if got != 403 {
            wrong.push(format!("anonymous {op}: {got} (expected 403)"));
        }
    }
    assert_eq!(status(anon.list_buckets().send().await), 403, "anonymous ListBuckets");
    // The same client is let in where an ACL lets anyone in: it is anonymous, not a bad signature.
    let public = root.put_object().bucket(b).key("pub").acl(ObjectCannedAcl::PublicRead);
    public.body(ByteStream::from_static(b"for all")).send().await.expect("put public");
    assert_eq!(get(&anon, b, "pub").await, b"for all");
    assert_eq!(status(anon.get_object().bucket("no-such-bucket").key("k").send().await), 404, "NoSuchBucket to all");
    assert!(wrong.is_empty(), "operations answered against their grant:\n{}", wrong.join("\n"));
    // Root still sees everything, and nothing denied above changed the buckets.
    assert_eq!(get(&root, "matrix-none", "k").await, b"held");
    assert_eq!(get(&root, "matrix-anonymous", "gone2").await, b"held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_made_listed_and_deleted_with_the_cli_and_a_deleted_key_is_refused_at_once() {
    let node = TestNode::builder().start().await.expect("node");
    let root = client(&node);
    root.create_bucket().bucket("app").send().await.expect("create");
    let key = create_key(&node, "backup job", &[]);
    assert!(key.id.starts_with("HK") && key.id.len() == 20 && key.secret.len() == 40, "{}", key.id);
    let listed = stdout(&key_cli(&node, &["list"]));
    assert!(listed.contains(&key.id) && listed.contains("backup job"), "{listed}");
    assert!(!listed.contains(&key.secret), "list never shows a secret");
    let c = client_of(&node, &key);
    assert_eq!(failure(c.put_object().bucket("app").key("x").body(ByteStream::from_static(b"1")).send().await).0, 403);
    allow(&node, &key, "app", &["--write"]);
    let info = stdout(&key_cli(&node, &["info", &key.id]));
    assert!(info.contains("app: write") && !info.contains(&key.secret), "{info}");
    put(&c, "app", "x", b"written by the key").await;
    assert_eq!(failure(c.get_object().bucket("app").key("x").send().await).0, 403, "write is not read");
    allow(&node, &key, "app", &["--read"]);
    assert_eq!(get(&c, "app", "x").await, b"written by the key");
    stdout(&key_cli(&node, &["deny", "--write", &key.id, "app"]));
    assert_eq!(failure(c.put_object().bucket("app").key("y").body(ByteStream::from_static(b"1")).send().await).0, 403);
    assert_eq!(get(&c, "app", "x").await, b"written by the key", "deny --write left read");
    stdout(&key_cli(&node, &["delete", &key.id]));
    let (code_status, code) = failure(c.get_object().bucket("app").key("x").send().await);
    assert_eq!((code_status, code.as_str()), (403, "InvalidAccessKeyId"));
    assert!(!stdout(&key_cli(&node, &["list"])).contains(&key.id));
    let missing = key_cli(&node, &["info", &key.id]);
    assert!(!missing.status.success(), "info of a deleted key fails");
    // Only root may call the admin API.
    let other = create_key(&node, "other", &[]);
    let out = hoard_it::hoard_cli_as(&other.id, &other.secret, &["key", "--endpoint", &node.endpoint(), "list"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("AccessDenied"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_allowed_to_create_buckets_owns_what_it_creates() {
    let node = TestNode::builder().start().await.expect("node");
    let root = client(&node);
    let maker = create_key(&node, "maker", &["--create-buckets"]);
    let other = create_key(&node, "other", &[]);
    let m = client_of(&node, &maker);
    m.create_bucket().bucket("makers").send().await.expect("a key allowed to create buckets creates one");
    put(&m, "makers", "k", b"mine").await;
    assert_eq!(get(&m, "makers", "k").await, b"mine");
    let acl = m.get_bucket_acl().bucket("makers").send().await.expect("the owner reads its ACL");
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(maker.id.as_str()), "the creator owns the bucket");
    let info = stdout(&key_cli(&node, &["info", &maker.id]));
    assert!(info.contains("makers: read, write, owner"), "{info}");
    // Another key's bucket name is taken; root's own buckets too.
    root.create_bucket().bucket("roots").send().await.expect("create");
    let o = client_of(&node, &other);
    assert_eq!(failure(o.create_bucket().bucket("makers").send().await).0, 403, "other may not create buckets");
    stdout(&key_cli(&node, &["allow", "--create-buckets", &other.id]));
    let (s, code) = failure(o.create_bucket().bucket("makers").send().await);
    assert_eq!((s, code.as_str()), (409, "BucketAlreadyExists"));
    let (s, code) = failure(m.create_bucket().bucket("makers").send().await);
    assert_eq!((s, code.as_str()), (409, "BucketAlreadyOwnedByYou"));
    assert_eq!(failure(o.get_object().bucket("makers").key("k").send().await).0, 403);
    // The owner deletes its bucket once empty; root can do anything.
    assert_eq!(get(&root, "makers", "k").await, b"mine");
    m.delete_object().bucket("makers").key("k").send().await.expect("delete");
    m.delete_bucket().bucket("makers").send().await.expect("the owner deletes its bucket");
}

/// `curl -s -o /dev/null -w %{http_code} url` (plus `-I` for HEAD).
fn curl_status(url: &str, head: bool) -> u16 {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
    if head {
        cmd.arg("-I");
    }
    let out = cmd.arg(url).output().expect("curl is installed");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a status")
}

fn curl_body(url: &str) -> Vec<u8> {
    let out = std::process::Command::new("curl").args(["-s", "-f", url]).output().expect("curl is installed");
    assert!(out.status.success(), "curl {url}: {out:?}");
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn public_read_objects_are_readable_with_curl_and_nothing_else_is() {
    let node = TestNode::builder().start().await.expect("node");
    let root = client(&node);
    let ep = node.endpoint();
    root.create_bucket().bucket("site").send().await.expect("create");
    root.put_object()
        .bucket("site")
        .key("index.html")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"<h1>hello</h1>"))
        .send()
        .await
        .expect("put public");
    put(&root, "site", "private.txt", b"secret").await;
    assert_eq!(curl_body(&format!("{ep}/site/index.html")), b"<h1>hello</h1>");
    assert_eq!(curl_status(&format!("{ep}/site/index.html"), true), 200, "HEAD too");
    assert_eq!(curl_status(&format!("{ep}/site/private.txt"), false), 403);
    assert_eq!(curl_status(&format!("{ep}/site?list-type=2"), false), 403, "the object is public, not the bucket");
    // Without the right to list, a missing key is 403 (its absence is not told); a missing bucket is 404.
    assert_eq!(curl_status(&format!("{ep}/site/missing"), false), 403);
    assert_eq!(curl_status(&format!("{ep}/no-such-bucket/k"), false), 404);
    assert_eq!(curl_status(&format!("{ep}/site/index.html?acl"), false), 403, "ACLs stay the owner's");
    // The object's ACL reads back as S3 writes it, and goes with an overwrite.
    let acl = root.get_object_acl().bucket("site").key("index.html").send().await.expect("acl");
    let all_users = acl.grants().iter().any(|g| {
        g.grantee().and_then(|e| e.uri()) == Some("http://acs.amazonaws.com/groups/global/AllUsers")
            && g.permission().map(|p| p.as_str()) == Some("READ")
    });
    assert!(all_users, "{acl:?}");
    put(&root, "site", "index.html", b"<h1>new</h1>").await;
    assert_eq!(curl_status(&format!("{ep}/site/index.html"), false), 403, "a new write is private again");
    // authenticated-read: any key may read it, with or without a grant; anonymous callers may not.
    let members = root.put_object().bucket("site").key("members.html").acl(ObjectCannedAcl::AuthenticatedRead);
    members.body(ByteStream::from_static(b"members")).send().await.expect("put");
    let stranger = create_key(&node, "stranger", &[]);
    assert_eq!(get(&client_of(&node, &stranger), "site", "members.html").await, b"members");
    assert_eq!(curl_status(&format!("{ep}/site/members.html"), false), 403);
    // A public-read bucket lets anyone list it (and then a missing key is 404), but not read private objects.
    root.put_bucket_acl().bucket("site").acl(BucketCannedAcl::PublicRead).send().await.expect("bucket acl");
    let listing = String::from_utf8(curl_body(&format!("{ep}/site?list-type=2"))).expect("xml");
    assert!(listing.contains("<Key>private.txt</Key>"), "{listing}");
    assert_eq!(curl_status(&format!("{ep}/site/missing"), false), 404);
    assert_eq!(curl_status(&format!("{ep}/site/private.txt"), false), 403);
    // Anonymous writes need public-read-write.
    let put_status = |key: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", "anon"])
            .arg(format!("{ep}/site/{key}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).trim().parse::<u16>().expect("a status")
    };
    assert_eq!(put_status("anon1"), 403);
    root.put_bucket_acl().bucket("site").acl(BucketCannedAcl::PublicReadWrite).send().await.expect("bucket acl");
    assert_eq!(put_status("anon2"), 200);
    assert_eq!(get(&root, "site", "anon2").await, b"anon");
    assert!(failure(root.get_object().bucket("site").key("anon1").send().await).0 == 404, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_explicit_deny_beats_every_allow_and_unsupported_policies_are_refused() {
    let node = TestNode::builder().start().await.expect("node");
    let root = client(&node);
    let ep = node.endpoint();
    let reader = create_key(&node, "reader", &[]);
    root.create_bucket().bucket("pol").send().await.expect("create");
    allow(&node, &reader, "pol", &["--read", "--write"]);
    for key in ["public/a", "secret/b"] {
        put(&root, "pol", key, b"data").await;
    }
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}},
            {{"Sid":"NoSecrets","Effect":"Deny","Principal":"*","Action":["s3:GetObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::pol/secret/*"}},
            {{"Effect":"Deny","Principal":{{"AWS":"{}"}},"Action":"s3:PutObject","Resource":"arn:aws:s3:::pol/public/*"}}
        ]}}"#,
        reader.id
    );
    root.put_bucket_policy().bucket("pol").policy(&policy).send().await.expect("put policy");
    let stored = root.get_bucket_policy().bucket("pol").send().await.expect("get policy");
    assert_eq!(stored.policy(), Some(policy.as_str()), "the policy reads back as it was put");
    let status = root.get_bucket_policy_status().bucket("pol").send().await.expect("status");
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(true));
    assert_eq!(curl_status(&format!("{ep}/pol/public/a"), false), 200, "allowed by the policy");
    assert_eq!(curl_status(&format!("{ep}/pol/secret/b"), false), 403, "denied by the policy");
    let r = client_of(&node, &reader);
    assert_eq!(get(&r, "pol", "public/a").await, b"data");
    assert_eq!(failure(r.get_object().bucket("pol").key("secret/b").send().await).0, 403, "Deny beats a grant");
    let (s, _) = failure(r.put_object().bucket("pol").key("public/x").body(ByteStream::from_static(b"1")).send().await);
    assert_eq!(s, 403, "a Deny naming the key beats its grant");
    put(&r, "pol", "other/x", b"allowed").await;
    // DeleteObjects is decided key by key.
    let ids = ["secret/b", "other/x"].map(|k| ObjectIdentifier::builder().key(k).build().unwrap());
    let out = r
        .delete_objects()
        .bucket("pol")
        .delete(Delete::builder().set_objects(Some(ids.to_vec())).build().unwrap())
        .send()
        .await
        .expect("delete objects");
    let refused: Vec<_> = out.errors().iter().map(|e| (e.key().unwrap_or(""), e.code().unwrap_or(""))).collect();
    assert_eq!(refused, [("secret/b", "AccessDenied")]);
    assert_eq!(out.deleted().len(), 1);
    assert_eq!(get(&root, "pol", "secret/b").await, b"data", "the denied key is still there");
    // What hoard does not evaluate is refused at Put, naming the element, and nothing changes.
    let unsupported = [
        (r#""NotPrincipal":{"AWS":"x"}"#, "NotPrincipal"),
        (r#""Principal":"*","Condition":{"StringEquals":{"aws:UserAgent":"x"}}"#, "aws:UserAgent"),
        (r#""Principal":{"AWS":"HKNOSUCHKEY000000000"}"#, "HKNOSUCHKEY000000000"),
    ];
    for (part, named) in unsupported {
        let bad = format!(
            r#"{{"Statement":[{{"Effect":"Allow",{part},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}}]}}"#
        );
        let err = root.put_bucket_policy().bucket("pol").policy(bad).send().await.expect_err("refused");
        assert_eq!(err.code(), Some("MalformedPolicy"), "{named}");
        assert!(err.message().unwrap_or("").contains(named), "{named}: {:?}", err.message());
    }
    let still = root.get_bucket_policy().bucket("pol").send().await.expect("get policy");
    assert_eq!(still.policy(), Some(policy.as_str()));
    root.delete_bucket_policy().bucket("pol").send().await.expect("delete policy");
    assert_eq!(curl_status(&format!("{ep}/pol/public/a"), false), 403, "without the policy, private again");
    assert_eq!(failure(root.get_bucket_policy().bucket("pol").send().await), (404, "NoSuchBucketPolicy".into()));
    // Conditions: aws:SecureTransport (this node serves plain HTTP) and s3:prefix.
    let conditional = r#"{"Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
        {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::pol","Condition":{"StringLike":{"s3:prefix":"public/*"}}}
    ]}"#;
    root.put_bucket_policy().bucket("pol").policy(conditional).send().await.expect("put policy");
    assert_eq!(curl_status(&format!("{ep}/pol/public/a"), false), 403, "not over TLS");
    assert_eq!(curl_status(&format!("{ep}/pol?list-type=2&prefix=public/"), false), 200);
    assert_eq!(curl_status(&format!("{ep}/pol?list-type=2&prefix=secret/"), false), 403);
    assert_eq!(curl_status(&format!("{ep}/pol?list-type=2"), false), 403);
    // aws:SourceIp: the test's client is 127.0.0.1.
    for (range, expect) in [("127.0.0.0/8", 200), ("10.0.0.0/8", 403), ("::1/128", 403)] {
        let by_ip = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*","Condition":{{"IpAddress":{{"aws:SourceIp":"{range}"}}}}}}]}}"#
        );
        root.put_bucket_policy().bucket("pol").policy(by_ip).send().await.expect("put policy");
        assert_eq!(curl_status(&format!("{ep}/pol/public/a"), false), expect, "{range}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_public_access_stops_public_acls_and_policies() {
    let node = TestNode::builder().start().await.expect("node");
    let root = client(&node);
    let ep = node.endpoint();
    root.create_bucket().bucket("bpa").send().await.expect("create");
    let (s, code) = failure(root.get_public_access_block().bucket("bpa").send().await);
    assert_eq!((s, code.as_str()), (404, "NoSuchPublicAccessBlockConfiguration"));
    root.put_object()
        .bucket("bpa")
        .key("was-public")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    assert_eq!(curl_status(&format!("{ep}/bpa/was-public"), false), 200);
    let block = |acls: bool, ignore: bool, policy: bool, restrict: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(acls)
            .ignore_public_acls(ignore)
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .build()
    };
    root.put_public_access_block()
        .bucket("bpa")
        .public_access_block_configuration(block(true, true, true, false))
        .send()
        .await
        .expect("put block");
    let got = root.get_public_access_block().bucket("bpa").send().await.expect("get block");
    let conf = got.public_access_block_configuration().expect("a configuration");
    assert_eq!(
        (
            conf.block_public_acls(),
            conf.ignore_public_acls(),
            conf.block_public_policy(),
            conf.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(false))
    );
    // BlockPublicAcls: no new public ACL, by header or by call; nothing is stored.
    let put_public = root
        .put_object()
        .bucket("bpa")
        .key("new")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(failure(put_public), (403, "AccessDenied".into()));
    assert_eq!(failure(root.head_object().bucket("bpa").key("new").send().await).0, 404, "nothing stored");
    let acl = root.put_bucket_acl().bucket("bpa").acl(BucketCannedAcl::PublicRead).send().await;
    assert_eq!(failure(acl).0, 403);
    // IgnorePublicAcls: the public object already there is not public any more.
    assert_eq!(curl_status(&format!("{ep}/bpa/was-public"), false), 403);
    // BlockPublicPolicy: no public policy; a policy for a key is fine.
    let public =
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bpa/*"}]}"#;
    assert_eq!(failure(root.put_bucket_policy().bucket("bpa").policy(public).send().await).0, 403);
    // RestrictPublicBuckets: a public policy put before still lets no anonymous caller in.
    root.put_public_access_block()
        .bucket("bpa")
        .public_access_block_configuration(block(false, false, false, false))
        .send()
        .await
        .expect("put block");
    assert_eq!(curl_status(&format!("{ep}/bpa/was-public"), false), 200, "public again once unblocked");
    root.put_bucket_policy().bucket("bpa").policy(public).send().await.expect("public policy");
    root.put_public_access_block()
        .bucket("bpa")
        .public_access_block_configuration(block(false, true, false, true))
        .send()
        .await
        .expect("put block");
    assert_eq!(curl_status(&format!("{ep}/bpa/was-public"), false), 403);
    root.delete_public_access_block().bucket("bpa").send().await.expect("delete block");
    assert_eq!(curl_status(&format!("{ep}/bpa/was-public"), false), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_cli_works_as_a_key_within_its_grants() {
    let node = TestNode::builder().start().await.expect("node");
    let ep = node.endpoint();
    let dir = tempfile::tempdir().expect("tempdir");
    let maker = create_key(&node, "cli", &["--create-buckets"]);
    let cli = |args: &[&str]| tokio::task::block_in_place(|| aws_as(&ep, &maker.id, &maker.secret, args));
    let ok = |out: Output| {
        assert!(out.status.success(), "aws failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(cli(&["s3", "mb", "s3://cli-bucket"]));
    tokio::task::block_in_place(|| ok(aws(&ep, &["s3", "mb", "s3://roots-only"])));
    let file = dir.path().join("page.html");
    std::fs::write(&file, b"<p>public page</p>").expect("write");
    let path = file.to_str().expect("utf-8");
    ok(cli(&["s3", "cp", path, "s3://cli-bucket/page.html", "--acl", "public-read"]));
    let listed = ok(cli(&["s3", "ls"]));
    assert!(listed.contains("cli-bucket") && !listed.contains("roots-only"), "{listed}");
    assert_eq!(curl_body(&format!("{ep}/cli-bucket/page.html")), b"<p>public page</p>");
    let denied = cli(&["s3", "ls", "s3://roots-only"]);
    assert!(!denied.status.success() && String::from_utf8_lossy(&denied.stderr).contains("AccessDenied"));
    // The owner sets its bucket's policy with s3api, and reads it back.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cli-bucket/page.html"}]}"#;
    ok(cli(&["s3api", "put-bucket-policy", "--bucket", "cli-bucket", "--policy", policy]));
    let got = ok(cli(&["s3api", "get-bucket-policy", "--bucket", "cli-bucket", "--output", "text"]));
    assert_eq!(got.trim(), policy);
    assert_eq!(curl_status(&format!("{ep}/cli-bucket/page.html"), false), 403, "the Deny beats the public ACL");
    let status = ok(cli(&["s3api", "get-bucket-policy-status", "--bucket", "cli-bucket", "--output", "json"]));
    assert!(status.contains("\"IsPublic\": false"), "{status}");
    let acl = ok(cli(&["s3api", "get-object-acl", "--bucket", "cli-bucket", "--key", "page.html", "--output", "json"]));
    assert!(acl.contains("AllUsers") && acl.contains(&maker.id), "{acl}");
}

/// Polls `check` until it holds (a node applies a committed entry shortly after the leader does; no event
/// tells a client when).
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_and_grants_made_through_one_node_hold_on_every_node() {
    let cluster = TestCluster::builder().nodes(3).disks_per_node(2).start().await.expect("cluster");
    let root = client(cluster.node(1));
    root.create_bucket().bucket("everywhere").send().await.expect("create");
    put(&root, "everywhere", "k", b"replicated").await;
    let key = create_key(cluster.node(1), "spread", &[]);
    allow(cluster.node(2), &key, "everywhere", &["--read"]);
    let on3 = client_of(cluster.node(3), &key);
    until("the grant reaches node 3", || async { on3.get_object().bucket("everywhere").key("k").send().await.is_ok() })
        .await;
    assert_eq!(get(&on3, "everywhere", "k").await, b"replicated");
    stdout(&key_cli(cluster.node(3), &["delete", &key.id]));
    let on1 = client_of(cluster.node(1), &key);
    until("the delete reaches node 1", || async {
        let got = on1.get_object().bucket("everywhere").key("k").send().await;
        got.err().and_then(|e| e.code().map(str::to_string)).as_deref() == Some("InvalidAccessKeyId")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_anonymous_body_is_refused_before_any_of_it_is_read() {
    let node = TestNode::builder().start().await.expect("node");
    client(&node).create_bucket().bucket("private").send().await.expect("create");
    // It says 10 GiB follow and sends none of them: the answer comes at once, from the headers alone.
    for (method, path) in
        [("PUT", "/private/big"), ("POST", "/private?delete"), ("PUT", "/private/k?partNumber=1&uploadId=x")]
    {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 10737418240\r\nConnection: close\r\n\r\n",
            node.addr()
        );
        let deadline = std::time::Duration::from_secs(5);
        let (status, body) = hoard_it::raw_exchange(node.addr(), &head, b"", deadline).await.expect("an answer");
        let body = String::from_utf8_lossy(&body);
        assert!(status == 403 || status == 400, "{method} {path}: {status} {body}");
        assert!(body.contains("AccessDenied") || body.contains("MaxMessageLengthExceeded"), "{body}");
    }
    let listed = client(&node).list_objects_v2().bucket("private").send().await.expect("list");
    assert_eq!(listed.key_count(), Some(0), "nothing was stored");
}

/// A raw HTTP/1.1 request with no signature; its status and body.
async fn anonymous_raw(node: &TestNode, method: &str, target: &str) -> (u16, String) {
    let head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", node.addr());
    let (status, body) =
        hoard_it::raw_exchange(node.addr(), &head, b"", std::time::Duration::from_secs(5)).await.expect("an answer");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_is_authorised_is_what_the_operation_acts_on() {
    let node = TestNode::builder().start().await.expect("node");
    let root = client(&node);
    root.create_bucket().bucket("victim").send().await.expect("create");
    put(&root, "victim", "secret.txt", b"TOP SECRET").await;
    let thief = create_key(&node, "thief", &["--create-buckets"]);
    let t = client_of(&node, &thief);
    t.create_bucket().bucket("mine").send().await.expect("create");
    // A copy source is read as the copy reads it, however it is encoded.
    for source in ["victim/secret.txt", "%2Fvictim/secret.txt", "/victim/secret.txt", "victim%2Fsecret.txt"] {
        let copied = t.copy_object().bucket("mine").key("stolen").copy_source(source).send().await;
        assert_eq!(status(copied), 403, "copy from {source}");
        let upload = t.create_multipart_upload().bucket("mine").key("stolen").send().await.expect("upload");
        let part = t
            .upload_part_copy()
            .bucket("mine")
            .key("stolen")
            .upload_id(upload.upload_id().unwrap_or_default())
            .part_number(1)
            .copy_source(source)
            .send()
            .await;
        assert_eq!(status(part), 403, "part copy from {source}");
    }
    assert_eq!(status(t.get_object().bucket("mine").key("stolen").send().await), 404, "nothing was copied");

    // Query names are read decoded, as the operation reads them: an encoded versionId is a versionId.
    root.create_bucket().bucket("vbk").send().await.expect("create");
    let on = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    root.put_bucket_versioning().bucket("vbk").versioning_configuration(on).send().await.expect("versioning");
    let draft = root.put_object().bucket("vbk").key("doc").body(ByteStream::from_static(b"PRIVATE DRAFT"));
    let draft = draft.send().await.expect("put").version_id().expect("a version").to_string();
    let public = root.put_object().bucket("vbk").key("doc").acl(ObjectCannedAcl::PublicRead);
    public.body(ByteStream::from_static(b"published")).send().await.expect("put");
    assert_eq!(anonymous_raw(&node, "GET", "/vbk/doc").await.0, 200);
    for name in ["versionId", "%76ersionId"] {
        let (s, body) = anonymous_raw(&node, "GET", &format!("/vbk/doc?{name}={draft}")).await;
        assert_eq!(s, 403, "{name}: {body}");
    }
    // And a listing's prefix too, encoded or with '+' for a space.
    root.put_object().bucket("vbk").key("secret files/a").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let policy = r#"{"Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::vbk"},
        {"Effect":"Deny","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::vbk","Condition":{"StringLike":{"s3:prefix":"secret*"}}}
    ]}"#;
    root.put_bucket_policy().bucket("vbk").policy(policy).send().await.expect("policy");
    assert_eq!(anonymous_raw(&node, "GET", "/vbk?list-type=2&prefix=public").await.0, 200);
    for query in ["prefix=secret", "%70refix=secret", "prefix=secret+files/"] {
        assert_eq!(anonymous_raw(&node, "GET", &format!("/vbk?list-type=2&{query}")).await.0, 403, "{query}");
    }
    // Anonymous GETs may not rename what they are served as (S3 refuses it too).
    let (s, body) = anonymous_raw(&node, "GET", "/vbk/doc?response-content-type=text/html").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("InvalidRequest"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_an_owner_grant_opens_objects_and_revoking_a_creator_takes_its_rights() {
    let node = TestNode::builder().start().await.expect("node");
    let root = client(&node);
    let ep = node.endpoint();
    root.create_bucket().bucket("wob").send().await.expect("create");
    let writer = create_key(&node, "writer", &[]);
    allow(&node, &writer, "wob", &["--read", "--write"]);
    let w = client_of(&node, &writer);
    // A writer's objects are the bucket owner's: it cannot open them, by header or afterwards.
    let private = w.put_object().bucket("wob").key("p").acl(ObjectCannedAcl::Private);
    private.body(ByteStream::from_static(b"x")).send().await.expect("a private write needs no more than write");
    let owned = w.put_object().bucket("wob").key("q").acl(ObjectCannedAcl::BucketOwnerFullControl);
    owned.body(ByteStream::from_static(b"x")).send().await.expect("bucket-owner-full-control too");
    let open = w.put_object_acl().bucket("wob").key("p").acl(ObjectCannedAcl::PublicRead).send().await;
    assert_eq!(status(open), 403);
    let fresh = w.put_object().bucket("wob").key("fresh").acl(ObjectCannedAcl::PublicRead);
    assert_eq!(status(fresh.body(ByteStream::from_static(b"x")).send().await), 403, "a new key is no exception");
    assert_eq!(status(w.get_object().bucket("wob").key("fresh").send().await), 404, "nothing was stored");
    for key in ["p", "q"] {
        assert_eq!(curl_status(&format!("{ep}/wob/{key}"), false), 403, "{key}");
        let acl = root.get_object_acl().bucket("wob").key(key).send().await.expect("acl");
        assert_eq!(acl.owner().and_then(|o| o.id()), Some("hoard"), "the bucket's owner owns {key}");
    }
    // A bucket's creator holds what its grant says, and no more once it is taken.
    let maker = create_key(&node, "maker", &["--create-buckets"]);
    let m = client_of(&node, &maker);
    m.create_bucket().bucket("made").send().await.expect("create");
    put(&m, "made", "own", b"mine").await;
    stdout(&key_cli(&node, &["deny", &maker.id, "made"]));
    assert_eq!(status(m.get_object().bucket("made").key("own").send().await), 403);
    assert_eq!(status(m.list_objects_v2().bucket("made").send().await), 403);
    let again = m.put_object().bucket("made").key("more").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(status(again), 403);
    let reopen = m.put_bucket_acl().bucket("made").acl(BucketCannedAcl::PublicReadWrite).send().await;
    assert_eq!(status(reopen), 403);
    // A policy that lets anyone read objects does not tell them which keys exist.
    let read_only = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::made/*"}]}"#;
    root.put_bucket_policy().bucket("made").policy(read_only).send().await.expect("policy");
    assert_eq!(curl_status(&format!("{ep}/made/own"), false), 200);
    assert_eq!(curl_status(&format!("{ep}/made/missing"), false), 403);
}
