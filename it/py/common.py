"""What every boto3 check shares: a client for the hoard node the Rust test started (its endpoint, the test
credentials and, over HTTPS, the CA bundle come from the environment), and small assertion helpers."""

import os

import boto3
import botocore.config
import botocore.exceptions


def client(signature_version=None):
    return boto3.client(
        "s3",
        endpoint_url=os.environ["HOARD_ENDPOINT"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        verify=os.environ.get("AWS_CA_BUNDLE", True),
        config=botocore.config.Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version=signature_version
        ),
    )


def fails(code, status, call, *args, **kwargs):
    """Runs a call that must fail with this S3 error code and HTTP status; returns the error response."""
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = (e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), f"expected {(code, status)}, got {got}: {e}"
        return e.response
    raise AssertionError(f"{call.__name__} succeeded but must fail with {code}")
