"""Versioning through boto3: versions by id, delete markers, the null version, paging through
list_object_versions, and each version's own SSE-C key."""

import os

from common import client, fails

s3 = client()
bucket = "boto-versions"
s3.create_bucket(Bucket=bucket)

before = s3.put_object(Bucket=bucket, Key="k", Body=b"before")
assert "VersionId" not in before, before
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

ids = [s3.put_object(Bucket=bucket, Key="k", Body=f"body {n}".encode())["VersionId"] for n in range(3)]
assert len(set(ids)) == 3 and "null" not in ids, ids
for n, version in enumerate(ids):
    got = s3.get_object(Bucket=bucket, Key="k", VersionId=version)
    assert got["Body"].read() == f"body {n}".encode() and got["VersionId"] == version
assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before"

marker = s3.delete_object(Bucket=bucket, Key="k")
assert marker["DeleteMarker"] is True, marker
err = fails("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="k")
assert err["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true", err
fails("MethodNotAllowed", 405, s3.get_object, Bucket=bucket, Key="k", VersionId=marker["VersionId"])

# Pages of two walk every version, newest first per key, markers included.
seen = []
paginator = s3.get_paginator("list_object_versions")
for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}):
    seen += [("version", v["VersionId"], v["IsLatest"]) for v in page.get("Versions", [])]
    seen += [("marker", m["VersionId"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])]
assert ("marker", marker["VersionId"], True) in seen, seen
assert sorted(v for kind, v, _ in seen if kind == "version") == sorted(ids + ["null"]), seen
assert all(not latest for kind, _, latest in seen if kind == "version"), seen

s3.delete_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"])
assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"body 2"

# Each version keeps its own customer key (the node serves HTTPS).
keys = [os.urandom(32), os.urandom(32)]
sse = [s3.put_object(Bucket=bucket, Key="secret", Body=f"secret {n}".encode(),
                     SSECustomerAlgorithm="AES256", SSECustomerKey=key)["VersionId"]
       for n, key in enumerate(keys)]
for n, version in enumerate(sse):
    got = s3.get_object(Bucket=bucket, Key="secret", VersionId=version,
                        SSECustomerAlgorithm="AES256", SSECustomerKey=keys[n])
    assert got["Body"].read() == f"secret {n}".encode()
    fails("AccessDenied", 403, s3.get_object, Bucket=bucket, Key="secret", VersionId=version,
          SSECustomerAlgorithm="AES256", SSECustomerKey=keys[1 - n])

# Deleting versions for good through delete_objects.
out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "secret", "VersionId": v} for v in sse]})
assert sorted(d["VersionId"] for d in out["Deleted"]) == sorted(sse), out
assert "Versions" not in s3.list_object_versions(Bucket=bucket, Prefix="secret")
print("ok")
