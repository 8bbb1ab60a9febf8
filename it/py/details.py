"""Smaller parts of the S3 surface through boto3: GetObjectAttributes, CRC64NVME checksums (computed here:
botocore needs awscrt for them), listing details, and the object lock answers of a bucket without it."""

import base64
import hashlib

from common import client, fails


def crc64nvme(data):
    """CRC-64/NVME (reflected 0x9a6c9329ac4bc9b5, all-ones init and xorout), as S3 computes it."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x9A6C9329AC4BC9B5 if crc & 1 else 0)
    return base64.b64encode((crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")).decode()


assert crc64nvme(b"123456789") == base64.b64encode(bytes.fromhex("ae8b14860a799888")).decode()

s3 = client()
bucket = "details"
s3.create_bucket(Bucket=bucket)

# CRC64NVME given by the client: verified, stored, returned with checksum mode; a wrong one stores nothing.
body = bytes(range(256)) * 40
s3.put_object(Bucket=bucket, Key="crc", Body=body, ChecksumCRC64NVME=crc64nvme(body))
head = s3.head_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
assert head["ChecksumCRC64NVME"] == crc64nvme(body), head
fails("BadDigest", 400, s3.put_object, Bucket=bucket, Key="bad", Body=body, ChecksumCRC64NVME=crc64nvme(b"x"))
fails("404", 404, s3.head_object, Bucket=bucket, Key="bad")

# GetObjectAttributes.
attrs = s3.get_object_attributes(Bucket=bucket, Key="crc",
                                 ObjectAttributes=["ETag", "ObjectSize", "Checksum", "StorageClass", "ObjectParts"])
assert attrs["ObjectSize"] == len(body) and attrs["StorageClass"] == "STANDARD", attrs
assert attrs["ETag"].strip('"') == hashlib.md5(body).hexdigest(), attrs
assert attrs["Checksum"]["ChecksumCRC64NVME"] == crc64nvme(body), attrs
assert "ObjectParts" not in attrs, attrs

# Listings: v1 echoes an empty Marker, no empty Delimiter; v2 names owners only when asked.
v1 = s3.list_objects(Bucket=bucket, Delimiter="")
assert v1["Marker"] == "" and "Delimiter" not in v1, v1
v2 = s3.list_objects_v2(Bucket=bucket)
assert all("Owner" not in o for o in v2["Contents"]), v2
v2 = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
assert all("Owner" in o for o in v2["Contents"]), v2

# Object lock on a bucket created without it.
fails("ObjectLockConfigurationNotFoundError", 404, s3.get_object_lock_configuration, Bucket=bucket)
fails("InvalidRequest", 400, s3.get_object_retention, Bucket=bucket, Key="crc")
fails("InvalidRequest", 400, s3.get_object_legal_hold, Bucket=bucket, Key="crc")
print("ok")
