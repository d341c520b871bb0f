"""boto3 against the S3 port over HTTPS (tests/tests/all/edge.rs starts the
host with a certificate of a test CA, named by AWS_CA_BUNDLE): a bucket, a
put, a ranged get, a multipart upload, a listing and a presigned URL."""

import hashlib
import os
import ssl
import unittest
import urllib.request

import boto3
from botocore.config import Config

ENDPOINT = os.environ["S3_ENDPOINT"]
CA = os.environ["AWS_CA_BUNDLE"]

S3 = boto3.client(
    "s3",
    endpoint_url=ENDPOINT,
    aws_access_key_id=os.environ["S3_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["S3_SECRET_ACCESS_KEY"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
)


class OverHttps(unittest.TestCase):
    def test_objects_over_https(self):
        self.assertTrue(ENDPOINT.startswith("https://"), ENDPOINT)
        S3.create_bucket(Bucket="tls-bucket")
        body = bytes(range(256)) * 400
        S3.put_object(Bucket="tls-bucket", Key="one.bin", Body=body)
        got = S3.get_object(Bucket="tls-bucket", Key="one.bin", Range="bytes=10-19")
        self.assertEqual(got["Body"].read(), body[10:20])

        part = os.urandom(5 * 1024 * 1024)
        upload = S3.create_multipart_upload(Bucket="tls-bucket", Key="big.bin")
        parts = []
        for number, chunk in enumerate([part, b"tail"], start=1):
            answer = S3.upload_part(
                Bucket="tls-bucket",
                Key="big.bin",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=chunk,
            )
            parts.append({"ETag": answer["ETag"], "PartNumber": number})
        S3.complete_multipart_upload(
            Bucket="tls-bucket",
            Key="big.bin",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        whole = S3.get_object(Bucket="tls-bucket", Key="big.bin")["Body"].read()
        self.assertEqual(hashlib.sha256(whole).digest(), hashlib.sha256(part + b"tail").digest())

        keys = [o["Key"] for o in S3.list_objects_v2(Bucket="tls-bucket")["Contents"]]
        self.assertEqual(keys, ["big.bin", "one.bin"])

        url = S3.generate_presigned_url(
            "get_object", Params={"Bucket": "tls-bucket", "Key": "one.bin"}, ExpiresIn=60
        )
        context = ssl.create_default_context(cafile=CA)
        with urllib.request.urlopen(url, context=context) as answer:
            self.assertEqual(answer.read(), body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
