"""Access control as a Python application meets it: two access keys made with `hoard key create`, explicit ACL
grants to key ids (XML bodies and x-amz-grant-* headers), presigned URLs and form uploads signed by keys, a bucket
policy over TLS (aws:SecureTransport), and the refusals S3 gives for grants hoard cannot resolve."""

import json
import os
import subprocess

import boto3
import botocore.config
import requests

from common import client, fails

endpoint = os.environ["HOARD_ENDPOINT"]
ca = os.environ.get("AWS_CA_BUNDLE", True)
root = client()


def hoard(*args):
    env = dict(os.environ, HOARD_ROOT_ACCESS_KEY=os.environ["AWS_ACCESS_KEY_ID"],
               HOARD_ROOT_SECRET_KEY=os.environ["AWS_SECRET_ACCESS_KEY"])
    out = subprocess.run([os.environ["HOARD_BIN"], "key", "--endpoint", endpoint, *args], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def new_key(name):
    text = hoard("create", name)
    field = lambda var: next(l.strip()[len(var):] for l in text.splitlines() if l.strip().startswith(var))
    key_id, secret = field("AWS_ACCESS_KEY_ID="), field("AWS_SECRET_ACCESS_KEY=")
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret,
                      region_name="us-east-1", verify=ca,
                      config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                                    signature_version="s3v4"))
    return key_id, s3


a_id, a = new_key("app-a")
b_id, b = new_key("app-b")
root.create_bucket(Bucket="shared")
root.put_object(Bucket="shared", Key="doc", Body=b"the document")

# An explicit grant in an AccessControlPolicy body: A may list, B may not.
root.put_bucket_acl(Bucket="shared", AccessControlPolicy={
    "Owner": {"ID": "hoard"},
    "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": a_id}, "Permission": "READ"}],
})
acl = root.get_bucket_acl(Bucket="shared")
assert acl["Owner"]["ID"] == "hoard", acl
assert [(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]] == [(a_id, "READ")], acl["Grants"]
assert [o["Key"] for o in a.list_objects_v2(Bucket="shared")["Contents"]] == ["doc"]
fails("AccessDenied", 403, b.list_objects_v2, Bucket="shared")
# Listing the bucket is not reading its objects.
fails("AccessDenied", 403, a.get_object, Bucket="shared", Key="doc")

# A header grant on the object: B may read it (and only it).
root.put_object_acl(Bucket="shared", Key="doc", GrantRead='id="%s"' % b_id)
assert b.get_object(Bucket="shared", Key="doc")["Body"].read() == b"the document"
grants = root.get_object_acl(Bucket="shared", Key="doc")["Grants"]
assert [(g["Grantee"].get("ID"), g["Permission"]) for g in grants] == [(b_id, "READ")], grants
fails("AccessDenied", 403, b.put_object, Bucket="shared", Key="doc", Body=b"overwrite")

# A presigned URL signed by a key carries that key's rights, no more.
url = b.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": "doc"}, ExpiresIn=60)
assert requests.get(url, verify=ca).content == b"the document"
url = a.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": "doc"}, ExpiresIn=60)
assert requests.get(url, verify=ca).status_code == 403

# Grants hoard cannot resolve are refused, and the ACL stays as it was.
fails("InvalidArgument", 400, root.put_object_acl, Bucket="shared", Key="doc", GrantRead='id="HKNOSUCHKEY"')
fails("UnresolvableGrantByEmailAddress", 400, root.put_bucket_acl, Bucket="shared",
      GrantRead='emailAddress="someone@example.com"')
fails("InvalidRequest", 400, root.put_bucket_acl, Bucket="shared", ACL="public-read", GrantRead='id="%s"' % a_id)
assert root.get_bucket_acl(Bucket="shared")["Grants"] == acl["Grants"]

# A form upload is a PUT by the form's signer: B holds no write grant, A gets one.
form = b.generate_presigned_post("shared", "by-form")
r = requests.post(form["url"], data=form["fields"], files={"file": ("f", b"form body")}, verify=ca)
assert r.status_code == 403 and b"AccessDenied" in r.content, (r.status_code, r.text)
fails("404", 404, root.head_object, Bucket="shared", Key="by-form")
hoard("allow", "--write", a_id, "shared")
form = a.generate_presigned_post("shared", "by-form")
r = requests.post(form["url"], data=form["fields"], files={"file": ("f", b"form body")}, verify=ca)
assert r.status_code == 204, (r.status_code, r.text)
assert root.get_object(Bucket="shared", Key="by-form")["Body"].read() == b"form body"

# A policy that allows reads only over TLS: this node serves HTTPS, so B reads everything in the bucket.
policy = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": [b_id]}, "Action": ["s3:GetObject"],
    "Resource": ["arn:aws:s3:::shared/*"], "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}
root.put_bucket_policy(Bucket="shared", Policy=json.dumps(policy))
assert b.get_object(Bucket="shared", Key="by-form")["Body"].read() == b"form body"
assert root.get_bucket_policy_status(Bucket="shared")["PolicyStatus"]["IsPublic"] is False

# Deleting a key refuses it at once.
hoard("delete", b_id)
fails("InvalidAccessKeyId", 403, b.get_object, Bucket="shared", Key="doc")
print("ok")
