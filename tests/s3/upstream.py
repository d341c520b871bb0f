"""Looks at and prepares the upstream S3 store of the `--storage-backend`
tests (SeaweedFS), through boto3, as an operator's tool would.

    upstream.py ready BUCKET          create the bucket, wait until writes work
    upstream.py inventory BUCKET PFX  print {"keys": {key: size}, "uploads": [key]}
    upstream.py put BUCKET KEY TEXT   write one object

Endpoint and keys come from UPSTREAM_ENDPOINT, UPSTREAM_KEY, UPSTREAM_SECRET.
"""

import json
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["UPSTREAM_ENDPOINT"],
    aws_access_key_id=os.environ["UPSTREAM_KEY"],
    aws_secret_access_key=os.environ["UPSTREAM_SECRET"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)


def ready(bucket):
    # SeaweedFS answers before its volume servers have registered, and
    # allocates volumes on the first write: retry until a write and a read
    # of it succeed, within a deadline.
    deadline = time.monotonic() + 90
    last = None
    while time.monotonic() < deadline:
        try:
            try:
                s3.create_bucket(Bucket=bucket)
            except ClientError as err:
                if err.response["Error"]["Code"] not in ("BucketAlreadyExists", "BucketAlreadyOwnedByYou"):
                    raise
            s3.put_object(Bucket=bucket, Key="warm-up", Body=b"x" * 1024)
            if s3.get_object(Bucket=bucket, Key="warm-up")["Body"].read() == b"x" * 1024:
                s3.delete_object(Bucket=bucket, Key="warm-up")
                return
        except (BotoCoreError, ClientError) as err:
            last = err
        time.sleep(0.2)
    sys.exit(f"SeaweedFS did not take writes within 90 s: {last}")


def inventory(bucket, prefix):
    keys = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            keys[item["Key"]] = item["Size"]
    listed = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    uploads = [u["Key"] for u in listed.get("Uploads", [])]
    print(json.dumps({"keys": keys, "uploads": uploads}))


def main():
    command = sys.argv[1]
    if command == "ready":
        ready(sys.argv[2])
    elif command == "inventory":
        inventory(sys.argv[2], sys.argv[3])
    elif command == "put":
        s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.argv[4].encode())
    else:
        sys.exit(f"unknown command {command}")


main()
