"""Browser form uploads (PostObject): forms made by boto3's generate_presigned_post, posted with requests and
with curl, as a browser would post them; then forms that must be refused, and what they leave behind."""

import base64
import hashlib
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import requests

from common import client, fails

endpoint = os.environ["HOARD_ENDPOINT"]
ca = os.environ.get("AWS_CA_BUNDLE", True)
s3 = client()
presigner = client(signature_version="s3v4")
bucket = "forms"
s3.create_bucket(Bucket=bucket)
s3.create_bucket(Bucket="other")


def form(key, fields=None, conditions=None, expires=300, on=bucket):
    return presigner.generate_presigned_post(on, key, Fields=fields, Conditions=conditions, ExpiresIn=expires)


def post(f, body, filename="photo.jpg", url=None):
    return requests.post(url or f["url"], data=f["fields"], files={"file": (filename, body)}, verify=ca,
                         allow_redirects=False)


def exists(key):
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError:
        return False


# The plain form: 204, the object stored with the form's content type and metadata; ${filename} in the key.
fields = {"Content-Type": "image/jpeg", "x-amz-meta-camera": "x100"}
conditions = [{"Content-Type": "image/jpeg"}, {"x-amz-meta-camera": "x100"}, ["starts-with", "$key", "uploads/"]]
f = form("uploads/${filename}", fields, conditions)
body = os.urandom(300_000)
r = post(f, body, filename="cat.jpg")
assert r.status_code == 204, (r.status_code, r.text)
assert r.headers["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), r.headers
got = s3.get_object(Bucket=bucket, Key="uploads/cat.jpg")
assert got["Body"].read() == body
assert got["ContentType"] == "image/jpeg" and got["Metadata"] == {"camera": "x100"}, got

# success_action_status 201: the PostResponse document.
f = form("created", {"success_action_status": "201"}, [{"success_action_status": "201"}])
r = post(f, b"hello")
assert r.status_code == 201, (r.status_code, r.text)
doc = ET.fromstring(r.content)
assert doc.tag == "PostResponse" and doc.find("Bucket").text == bucket and doc.find("Key").text == "created", r.text
assert doc.find("ETag").text == '"%s"' % hashlib.md5(b"hello").hexdigest()

# success_action_redirect: 303 to it, with bucket, key and ETag.
f = form("redirected", {"success_action_redirect": "https://example.com/done"},
         [{"success_action_redirect": "https://example.com/done"}])
r = post(f, b"there")
assert r.status_code == 303, (r.status_code, r.text)
assert r.headers["Location"].startswith("https://example.com/done?bucket=forms&key=redirected&etag="), r.headers

# SSE-C fields in the form (the node serves HTTPS): the object opens with that key only.
key = os.urandom(32)
sse = {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
    "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode(),
}
f = form("sealed", sse, [{k: v} for k, v in sse.items()])
r = post(f, b"secret form")
assert r.status_code == 204, (r.status_code, r.text)
got = s3.get_object(Bucket=bucket, Key="sealed", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
assert got["Body"].read() == b"secret form"
fails("InvalidRequest", 400, s3.get_object, Bucket=bucket, Key="sealed")

# A checksum field is verified like the header: right, stored and returned; wrong, nothing stored.
digest = base64.b64encode(hashlib.sha256(b"summed").digest()).decode()
f = form("summed", {"x-amz-checksum-sha256": digest}, [{"x-amz-checksum-sha256": digest}])
assert post(f, b"summed").status_code == 204
assert s3.head_object(Bucket=bucket, Key="summed", ChecksumMode="ENABLED")["ChecksumSHA256"] == digest
f = form("mis-summed", {"x-amz-checksum-sha256": digest}, [{"x-amz-checksum-sha256": digest}])
r = post(f, b"something else")
assert r.status_code == 400 and ET.fromstring(r.content).find("Code").text == "BadDigest", r.text
assert not exists("mis-summed")

# curl posts the same kind of form.
f = form("by-curl")
with tempfile.NamedTemporaryFile() as tmp:
    tmp.write(b"curl body")
    tmp.flush()
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
    if ca is not True:
        args += ["--cacert", ca]
    for name, value in f["fields"].items():
        args += ["--form-string", f"{name}={value}"]
    args += ["-F", f"file=@{tmp.name}", f["url"]]
    status = subprocess.run(args, check=True, capture_output=True, text=True).stdout
assert status == "204", status
assert s3.get_object(Bucket=bucket, Key="by-curl")["Body"].read() == b"curl body"


def refused(f, status, code, body=b"refused body", url=None, key=None):
    r = post(f, body, url=url)
    assert r.status_code == status, (r.status_code, r.text)
    assert ET.fromstring(r.content).find("Code").text == code, r.text
    if key is not None:
        assert not exists(key), f"{key} was stored by a refused form"


# content-length-range: a file over the range stops the upload and nothing is stored; one under it too.
f = form("ranged", conditions=[["content-length-range", 10, 1000]])
refused(f, 400, "EntityTooLarge", body=os.urandom(4 << 20), key="ranged")
refused(f, 400, "EntityTooSmall", body=b"tiny", key="ranged")
assert post(f, b"just right").status_code == 204

# Content-Type lists: each type must match a starts-with (browsers render the last one).
f = form("typed", {"Content-Type": "image/png,text/html"}, [["starts-with", "$Content-Type", "image/"]])
refused(f, 403, "AccessDenied", key="typed")
# ${filename} is expanded before the conditions: they see the key stored.
f = form("docs/${filename}", conditions=[{"key": "docs/a.pdf"}])
f["fields"]["key"] = "docs/${filename}"
r = requests.post(f["url"], data=f["fields"], files={"file": ("a.pdf", b"pdf")}, verify=ca, allow_redirects=False)
assert r.status_code == 204 and exists("docs/a.pdf"), (r.status_code, r.text)
r = requests.post(f["url"], data=f["fields"], files={"file": ("b.pdf", b"pdf")}, verify=ca, allow_redirects=False)
assert r.status_code == 403 and not exists("docs/b.pdf"), (r.status_code, r.text)
# Two ranges: the tightest holds.
f = form("two-ranges", conditions=[["content-length-range", 0, 10], ["content-length-range", 0, 1 << 30]])
refused(f, 400, "EntityTooLarge", body=b"x" * 11, key="two-ranges")

# Expired.
f = form("late", expires=-10)
refused(f, 403, "AccessDenied", key="late")
# A wrong signature.
f = form("forged")
f["fields"]["x-amz-signature"] = "0" * 64
refused(f, 403, "SignatureDoesNotMatch", key="forged")
# A field the policy does not name.
f = form("extra")
f["fields"]["x-amz-meta-sneaky"] = "1"
refused(f, 403, "AccessDenied", key="extra")
# A condition not met: the policy says uploads/, the form says elsewhere.
f = form("uploads/ok", conditions=[["starts-with", "$key", "uploads/"]])
f["fields"]["key"] = "elsewhere"
refused(f, 403, "AccessDenied", key="elsewhere")
# The policy names another bucket than the URL's.
f = form("wrong-bucket", on="other")
refused(f, 403, "AccessDenied", url=f"{endpoint}/{bucket}", key="wrong-bucket")
# No policy at all: an anonymous upload.
r = requests.post(f"{endpoint}/{bucket}", data={"key": "anon"}, files={"file": ("f", b"x")}, verify=ca)
assert r.status_code == 403, (r.status_code, r.text)
assert not exists("anon")
print("ok")
