"""Create the S3 bucket when it is missing: the local stack's one-shot ``minio-setup`` (docker-compose.yml).

Reads AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL (an S3-compatible server such as MinIO; empty for
AWS), AWS_DEFAULT_REGION and the AWS credentials. Waits up to a minute for the endpoint to answer.
A bucket that exists is left alone, so it can run on every start.
"""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

WAIT_SECONDS = 60


def main() -> int:
    bucket = os.environ.get("AWS_STORAGE_BUCKET_NAME", "").strip()
    if not bucket:
        print("create_bucket: set AWS_STORAGE_BUCKET_NAME", file=sys.stderr)
        return 2
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        print(
            "create_bucket: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(for the local MinIO: any name of 3+ characters and a secret of 8+; MinIO takes them as its root login)",
            file=sys.stderr,
        )
        return 2
    endpoint = os.environ.get("AWS_S3_ENDPOINT_URL", "").strip() or None
    region = os.environ.get("AWS_DEFAULT_REGION", "").strip() or "us-east-1"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}),
    )
    where = f"s3://{bucket}" + (f" at {endpoint}" if endpoint else "")
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            return _ensure_bucket(s3, bucket, region, where, on_aws=endpoint is None)
        except (EndpointConnectionError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                print(f"create_bucket: {where}: {exc}", file=sys.stderr)
                return 1
            time.sleep(1)
        except (ClientError, BotoCoreError) as exc:
            print(f"create_bucket: {where}: {exc}", file=sys.stderr)
            return 1


def _ensure_bucket(s3, bucket: str, region: str, where: str, *, on_aws: bool) -> int:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    else:
        print(f"create_bucket: {where} exists")
        return 0
    kwargs = {}
    if on_aws and region != "us-east-1":  # AWS wants the region named, except for its default one
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(Bucket=bucket, **kwargs)
    print(f"create_bucket: {where} created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
