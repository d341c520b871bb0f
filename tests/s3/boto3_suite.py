"""The S3 endpoint through boto3, unmodified, against a host that
tests/tests/storage.rs starts. Every operation the endpoint serves is driven
here by the client that most S3 code uses."""

import hashlib
import os
import unittest
import urllib.error
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]


def client(key_id, secret, **config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", **config),
    )


SERVICE = client(os.environ["S3_ACCESS_KEY_ID"], os.environ["S3_SECRET_ACCESS_KEY"])
ALICE = client(os.environ["ALICE_KEY_ID"], os.environ["ALICE_SECRET"])
BOB = client(os.environ["BOB_KEY_ID"], os.environ["BOB_SECRET"])


def error_code(call):
    try:
        call()
    except ClientError as err:
        return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("the call succeeded")


def fresh_bucket(s3=SERVICE):
    name = "b-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return name


class Buckets(unittest.TestCase):
    def test_create_list_head_locate_delete(self):
        name = fresh_bucket()
        names = [b["Name"] for b in SERVICE.list_buckets()["Buckets"]]
        self.assertIn(name, names)
        SERVICE.head_bucket(Bucket=name)
        self.assertIn("LocationConstraint", SERVICE.get_bucket_location(Bucket=name))
        # us-east-1's rule: creating your own bucket again succeeds and
        # changes nothing (another account's name is 409, in s3-tests).
        SERVICE.create_bucket(Bucket=name)
        SERVICE.put_object(Bucket=name, Key="k", Body=b"x")
        self.assertEqual(error_code(lambda: SERVICE.delete_bucket(Bucket=name)), ("BucketNotEmpty", 409))
        SERVICE.delete_object(Bucket=name, Key="k")
        SERVICE.delete_bucket(Bucket=name)
        self.assertEqual(error_code(lambda: SERVICE.head_bucket(Bucket=name))[1], 404)
        self.assertEqual(
            error_code(lambda: SERVICE.list_objects_v2(Bucket=name)), ("NoSuchBucket", 404)
        )

    def test_invalid_bucket_name(self):
        code, status = error_code(lambda: SERVICE.create_bucket(Bucket="no..dots"))
        self.assertEqual(status, 400)


class Objects(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = fresh_bucket()

    def test_put_get_head_with_metadata(self):
        body = b"hello, object store"
        put = SERVICE.put_object(
            Bucket=self.bucket, Key="docs/a.txt", Body=body, ContentType="text/plain",
            Metadata={"color": "blue"},
        )
        self.assertEqual(put["ETag"], '"%s"' % hashlib.md5(body).hexdigest())
        got = SERVICE.get_object(Bucket=self.bucket, Key="docs/a.txt")
        self.assertEqual(got["Body"].read(), body)
        self.assertEqual(got["ContentType"], "text/plain")
        self.assertEqual(got["Metadata"], {"color": "blue"})
        head = SERVICE.head_object(Bucket=self.bucket, Key="docs/a.txt")
        self.assertEqual(head["ContentLength"], len(body))
        self.assertEqual(head["ETag"], put["ETag"])

    def test_overwrite_replaces_whole_object(self):
        SERVICE.put_object(Bucket=self.bucket, Key="over", Body=b"first version")
        SERVICE.put_object(Bucket=self.bucket, Key="over", Body=b"2nd")
        self.assertEqual(SERVICE.get_object(Bucket=self.bucket, Key="over")["Body"].read(), b"2nd")

    def test_ranges(self):
        SERVICE.put_object(Bucket=self.bucket, Key="range", Body=b"0123456789")
        part = SERVICE.get_object(Bucket=self.bucket, Key="range", Range="bytes=2-5")
        self.assertEqual(part["Body"].read(), b"2345")
        self.assertEqual(part["ContentRange"], "bytes 2-5/10")
        self.assertEqual(part["ResponseMetadata"]["HTTPStatusCode"], 206)
        tail = SERVICE.get_object(Bucket=self.bucket, Key="range", Range="bytes=-3")
        self.assertEqual(tail["Body"].read(), b"789")
        code, status = error_code(
            lambda: SERVICE.get_object(Bucket=self.bucket, Key="range", Range="bytes=50-60")
        )
        self.assertEqual((code, status), ("InvalidRange", 416))

    def test_conditional_reads(self):
        put = SERVICE.put_object(Bucket=self.bucket, Key="cond", Body=b"v1")
        etag = put["ETag"]
        SERVICE.get_object(Bucket=self.bucket, Key="cond", IfMatch=etag)
        self.assertEqual(
            error_code(lambda: SERVICE.get_object(Bucket=self.bucket, Key="cond", IfMatch='"nope"'))[1],
            412,
        )
        self.assertEqual(
            error_code(lambda: SERVICE.get_object(Bucket=self.bucket, Key="cond", IfNoneMatch=etag))[1],
            304,
        )
        head = SERVICE.head_object(Bucket=self.bucket, Key="cond")
        self.assertEqual(
            error_code(
                lambda: SERVICE.get_object(
                    Bucket=self.bucket, Key="cond", IfModifiedSince=head["LastModified"]
                )
            )[1],
            304,
        )

    def test_missing_things(self):
        self.assertEqual(
            error_code(lambda: SERVICE.get_object(Bucket=self.bucket, Key="nope")), ("NoSuchKey", 404)
        )
        self.assertEqual(
            error_code(lambda: SERVICE.get_object(Bucket="no-such-bucket-x", Key="k")),
            ("NoSuchBucket", 404),
        )
        self.assertEqual(error_code(lambda: SERVICE.head_object(Bucket=self.bucket, Key="nope"))[1], 404)
        # Deleting a missing key is not an error in S3.
        SERVICE.delete_object(Bucket=self.bucket, Key="nope")

    def test_request_ids(self):
        # Every answer has one; an error's body names the same id.
        ids = {SERVICE.head_bucket(Bucket=self.bucket)["ResponseMetadata"]["RequestId"] for _ in range(2)}
        self.assertEqual(len(ids), 2)
        self.assertTrue(all(len(i) == 16 for i in ids), ids)
        try:
            SERVICE.get_object(Bucket=self.bucket, Key="nope")
        except ClientError as err:
            meta = err.response["ResponseMetadata"]
            self.assertEqual(meta["RequestId"], meta["HTTPHeaders"]["x-amz-request-id"])
            self.assertEqual(len(meta["RequestId"]), 16)
        else:
            raise AssertionError("the call succeeded")

    def test_copy_and_delete_many(self):
        SERVICE.put_object(Bucket=self.bucket, Key="src", Body=b"copy me", ContentType="text/x-src")
        SERVICE.copy_object(Bucket=self.bucket, Key="dst", CopySource={"Bucket": self.bucket, "Key": "src"})
        copied = SERVICE.get_object(Bucket=self.bucket, Key="dst")
        self.assertEqual(copied["Body"].read(), b"copy me")
        self.assertEqual(copied["ContentType"], "text/x-src")
        SERVICE.copy_object(
            Bucket=self.bucket, Key="dst2", CopySource={"Bucket": self.bucket, "Key": "src"},
            MetadataDirective="REPLACE", ContentType="text/plain", Metadata={"k": "v"},
        )
        head = SERVICE.head_object(Bucket=self.bucket, Key="dst2")
        self.assertEqual((head["ContentType"], head["Metadata"]), ("text/plain", {"k": "v"}))
        # Deleting the source leaves the copies whole.
        result = SERVICE.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": "src"}, {"Key": "never-existed"}]}
        )
        self.assertEqual(sorted(d["Key"] for d in result["Deleted"]), ["never-existed", "src"])
        self.assertEqual(SERVICE.get_object(Bucket=self.bucket, Key="dst")["Body"].read(), b"copy me")
        self.assertEqual(error_code(lambda: SERVICE.head_object(Bucket=self.bucket, Key="src"))[1], 404)

    def test_bucket_size_limit(self):
        limited = os.environ["LIMITED_BUCKET"]
        SERVICE.put_object(Bucket=limited, Key="fits", Body=b"x" * 1000)
        code, status = error_code(lambda: SERVICE.put_object(Bucket=limited, Key="too-big", Body=b"x" * 1001))
        self.assertEqual((code, status), ("EntityTooLarge", 400))
        self.assertEqual(error_code(lambda: SERVICE.head_object(Bucket=limited, Key="too-big"))[1], 404)

    def test_keys_are_arbitrary_utf8(self):
        for key in ["../../etc/passwd", "/abs/path", "back\\slash", "ünïcödé/日本語 🎉.txt", "a b+c%d", "x" * 1024]:
            SERVICE.put_object(Bucket=self.bucket, Key=key, Body=key.encode())
            self.assertEqual(SERVICE.get_object(Bucket=self.bucket, Key=key)["Body"].read(), key.encode())
        listed = [o["Key"] for o in SERVICE.list_objects_v2(Bucket=self.bucket, Prefix="ünï")["Contents"]]
        self.assertEqual(listed, ["ünïcödé/日本語 🎉.txt"])
        self.assertEqual(
            error_code(lambda: SERVICE.put_object(Bucket=self.bucket, Key="y" * 1025, Body=b"x"))[1], 400
        )
        self.assertEqual(
            error_code(lambda: SERVICE.put_object(Bucket=self.bucket, Key="nul\x00byte", Body=b"x"))[1], 400
        )


class Listing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = fresh_bucket()
        cls.keys = ["a.txt", "b/1", "b/2", "b/c/3", "d/4", "e.txt"]
        for key in cls.keys:
            SERVICE.put_object(Bucket=cls.bucket, Key=key, Body=b"x")

    def test_flat_and_prefix(self):
        out = SERVICE.list_objects_v2(Bucket=self.bucket)
        self.assertEqual([o["Key"] for o in out["Contents"]], self.keys)
        self.assertEqual(out["KeyCount"], 6)
        out = SERVICE.list_objects_v2(Bucket=self.bucket, Prefix="b/")
        self.assertEqual([o["Key"] for o in out["Contents"]], ["b/1", "b/2", "b/c/3"])

    def test_delimiter(self):
        out = SERVICE.list_objects_v2(Bucket=self.bucket, Delimiter="/")
        self.assertEqual([o["Key"] for o in out["Contents"]], ["a.txt", "e.txt"])
        self.assertEqual([p["Prefix"] for p in out["CommonPrefixes"]], ["b/", "d/"])
        out = SERVICE.list_objects_v2(Bucket=self.bucket, Delimiter="/", Prefix="b/")
        self.assertEqual([o["Key"] for o in out["Contents"]], ["b/1", "b/2"])
        self.assertEqual([p["Prefix"] for p in out["CommonPrefixes"]], ["b/c/"])

    def test_pages_with_continuation_and_start_after(self):
        seen, token = [], None
        while True:
            kwargs = {"Bucket": self.bucket, "MaxKeys": 2, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            out = SERVICE.list_objects_v2(**kwargs)
            seen += [o["Key"] for o in out.get("Contents", [])]
            seen += [p["Prefix"] for p in out.get("CommonPrefixes", [])]
            if not out["IsTruncated"]:
                break
            token = out["NextContinuationToken"]
        self.assertEqual(sorted(seen), ["a.txt", "b/", "d/", "e.txt"])
        out = SERVICE.list_objects_v2(Bucket=self.bucket, StartAfter="b/2")
        self.assertEqual([o["Key"] for o in out["Contents"]], ["b/c/3", "d/4", "e.txt"])

    def test_v1_with_marker(self):
        out = SERVICE.list_objects(Bucket=self.bucket, MaxKeys=3)
        self.assertTrue(out["IsTruncated"])
        self.assertEqual([o["Key"] for o in out["Contents"]], ["a.txt", "b/1", "b/2"])
        out = SERVICE.list_objects(Bucket=self.bucket, Marker="b/2")
        self.assertEqual([o["Key"] for o in out["Contents"]], ["b/c/3", "d/4", "e.txt"])

    def test_paginator(self):
        pages = SERVICE.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, PaginationConfig={"PageSize": 1})
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        self.assertEqual(keys, self.keys)

    def test_configurations_selfdb_has_not(self):
        # Answered as AWS answers for a bucket never given one.
        for call, code in [
            (SERVICE.get_bucket_cors, "NoSuchCORSConfiguration"),
            (SERVICE.get_bucket_tagging, "NoSuchTagSet"),
            (SERVICE.get_bucket_policy, "NoSuchBucketPolicy"),
            (SERVICE.get_bucket_website, "NoSuchWebsiteConfiguration"),
            (SERVICE.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration"),
            (SERVICE.get_bucket_encryption, "ServerSideEncryptionConfigurationNotFoundError"),
            (SERVICE.get_object_lock_configuration, "ObjectLockConfigurationNotFoundError"),
            (SERVICE.get_bucket_ownership_controls, "OwnershipControlsNotFoundError"),
        ]:
            self.assertEqual(error_code(lambda: call(Bucket=self.bucket)), (code, 404))
        self.assertEqual(
            error_code(lambda: SERVICE.get_bucket_cors(Bucket="no-such-bucket-x")), ("NoSuchBucket", 404)
        )

    def test_versions_of_a_bucket_never_versioned(self):
        # Each object once, as version "null", as AWS lists such a bucket.
        self.assertNotIn("Status", SERVICE.get_bucket_versioning(Bucket=self.bucket))
        pages = SERVICE.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, PaginationConfig={"PageSize": 2}
        )
        versions = [v for page in pages for v in page.get("Versions", [])]
        self.assertEqual([v["Key"] for v in versions], self.keys)
        self.assertTrue(all(v["VersionId"] == "null" and v["IsLatest"] for v in versions))
        out = SERVICE.list_object_versions(Bucket=self.bucket, Delimiter="/", KeyMarker="a.txt", VersionIdMarker="null")
        self.assertEqual([v["Key"] for v in out["Versions"]], ["e.txt"])
        self.assertEqual([p["Prefix"] for p in out["CommonPrefixes"]], ["b/", "d/"])
        self.assertEqual(
            error_code(lambda: SERVICE.list_object_versions(Bucket=self.bucket, VersionIdMarker="v1", KeyMarker="a.txt")),
            ("InvalidArgument", 400),
        )


class Multipart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = fresh_bucket()

    def test_upload_file_of_20_mib_goes_multipart(self):
        data = os.urandom(20 * 1024 * 1024)
        path = "/tmp/selfdb-boto3-%s.bin" % uuid.uuid4().hex
        with open(path, "wb") as f:
            f.write(data)
        try:
            SERVICE.upload_file(path, self.bucket, "big/file.bin")
        finally:
            os.remove(path)
        head = SERVICE.head_object(Bucket=self.bucket, Key="big/file.bin")
        self.assertEqual(head["ContentLength"], len(data))
        self.assertTrue(head["ETag"].strip('"').endswith("-3"), head["ETag"])
        parts = [data[i:i + 8 * 1024 * 1024] for i in range(0, len(data), 8 * 1024 * 1024)]
        digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
        self.assertEqual(head["ETag"], '"%s-3"' % digest)
        got = SERVICE.get_object(Bucket=self.bucket, Key="big/file.bin")["Body"].read()
        self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(data).digest())

    def test_manual_parts_copy_list_and_errors(self):
        part1 = b"a" * (5 * 1024 * 1024)
        SERVICE.put_object(Bucket=self.bucket, Key="copy-source", Body=b"0123456789")
        up = SERVICE.create_multipart_upload(Bucket=self.bucket, Key="manual", ContentType="text/x-mp")
        uid = up["UploadId"]
        listed = SERVICE.list_multipart_uploads(Bucket=self.bucket)
        self.assertIn(uid, [u["UploadId"] for u in listed.get("Uploads", [])])
        e1 = SERVICE.upload_part(Bucket=self.bucket, Key="manual", UploadId=uid, PartNumber=1, Body=part1)["ETag"]
        e2 = SERVICE.upload_part_copy(
            Bucket=self.bucket, Key="manual", UploadId=uid, PartNumber=2,
            CopySource={"Bucket": self.bucket, "Key": "copy-source"}, CopySourceRange="bytes=2-5",
        )["CopyPartResult"]["ETag"]
        parts = SERVICE.list_parts(Bucket=self.bucket, Key="manual", UploadId=uid)["Parts"]
        self.assertEqual([(p["PartNumber"], p["Size"]) for p in parts], [(1, len(part1)), (2, 4)])
        code, _ = error_code(lambda: SERVICE.complete_multipart_upload(
            Bucket=self.bucket, Key="manual", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"0000"'}]},
        ))
        self.assertEqual(code, "InvalidPart")
        code, _ = error_code(lambda: SERVICE.complete_multipart_upload(
            Bucket=self.bucket, Key="manual", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]},
        ))
        self.assertEqual(code, "InvalidPartOrder")
        SERVICE.complete_multipart_upload(
            Bucket=self.bucket, Key="manual", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        )
        got = SERVICE.get_object(Bucket=self.bucket, Key="manual")
        self.assertEqual(got["Body"].read(), part1 + b"2345")
        self.assertEqual(got["ContentType"], "text/x-mp")
        code, _ = error_code(lambda: SERVICE.list_parts(Bucket=self.bucket, Key="manual", UploadId=uid))
        self.assertEqual(code, "NoSuchUpload")

    def test_small_parts_and_abort(self):
        up = SERVICE.create_multipart_upload(Bucket=self.bucket, Key="small")
        uid = up["UploadId"]
        e1 = SERVICE.upload_part(Bucket=self.bucket, Key="small", UploadId=uid, PartNumber=1, Body=b"tiny")["ETag"]
        e2 = SERVICE.upload_part(Bucket=self.bucket, Key="small", UploadId=uid, PartNumber=2, Body=b"tiny")["ETag"]
        code, _ = error_code(lambda: SERVICE.complete_multipart_upload(
            Bucket=self.bucket, Key="small", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        ))
        self.assertEqual(code, "EntityTooSmall")
        SERVICE.abort_multipart_upload(Bucket=self.bucket, Key="small", UploadId=uid)
        self.assertEqual(
            error_code(lambda: SERVICE.abort_multipart_upload(Bucket=self.bucket, Key="small", UploadId=uid))[0],
            "NoSuchUpload",
        )
        self.assertEqual(error_code(lambda: SERVICE.head_object(Bucket=self.bucket, Key="small"))[1], 404)


class Access(unittest.TestCase):
    def test_wrong_secret_is_refused(self):
        bad = client(os.environ["S3_ACCESS_KEY_ID"], "not-the-secret")
        self.assertEqual(error_code(lambda: bad.list_buckets()), ("SignatureDoesNotMatch", 403))
        unknown = client("SDBKNOSUCHKEY0000000", "whatever")
        self.assertEqual(error_code(lambda: unknown.list_buckets())[1], 403)

    def test_presigned_get_with_plain_http(self):
        bucket = fresh_bucket()
        SERVICE.put_object(Bucket=bucket, Key="shared/file.txt", Body=b"presigned bytes")
        url = SERVICE.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "shared/file.txt"}, ExpiresIn=60
        )
        self.assertEqual(urllib.request.urlopen(url).read(), b"presigned bytes")
        tampered = url.replace("shared/file.txt", "shared/other.txt")
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(tampered)
        self.assertEqual(caught.exception.code, 403)

    def test_anonymous_reads_public_buckets_only(self):
        public, private = os.environ["PUBLIC_BUCKET"], fresh_bucket()
        SERVICE.put_object(Bucket=public, Key="pub.txt", Body=b"for everyone")
        SERVICE.put_object(Bucket=private, Key="secret.txt", Body=b"not for you")
        self.assertEqual(urllib.request.urlopen("%s/%s/pub.txt" % (ENDPOINT, public)).read(), b"for everyone")
        head = urllib.request.Request("%s/%s/pub.txt" % (ENDPOINT, public), method="HEAD")
        self.assertEqual(urllib.request.urlopen(head).headers["Content-Length"], "12")
        for url in ["%s/%s/secret.txt" % (ENDPOINT, private), "%s/%s" % (ENDPOINT, public)]:
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(url)
            self.assertEqual(caught.exception.code, 403)
        put = urllib.request.Request("%s/%s/new.txt" % (ENDPOINT, public), data=b"x", method="PUT")
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(put)
        self.assertEqual(caught.exception.code, 403)

    def test_canned_acls(self):
        """Canned ACLs open a bucket's listing and writes, or one object's
        reads, to anyone; Supabase's public flag stays apart from them, and
        /storage/v1's public URLs follow the same object ACL."""
        bucket = fresh_bucket()
        SERVICE.put_object(Bucket=bucket, Key="private.txt", Body=b"owner only")
        SERVICE.put_object(Bucket=bucket, Key="open.txt", Body=b"anyone", ACL="public-read")
        anonymous = "%s/%s" % (ENDPOINT, bucket)
        self.assertEqual(urllib.request.urlopen(anonymous + "/open.txt").read(), b"anyone")
        public_url = "%s/storage/v1/object/public/%s/open.txt" % (os.environ["API_URL"], bucket)
        self.assertEqual(urllib.request.urlopen(public_url).read(), b"anyone")
        for url in [anonymous + "/private.txt", anonymous, anonymous + "/missing.txt"]:
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(url)
            self.assertEqual(caught.exception.code, 403, url)
        for method in ["HEAD", "GET"]:
            # An anonymous HeadBucket of a bucket it may not list; an
            # anonymous GetObjectAcl of a public object.
            url = anonymous + "/open.txt?acl" if method == "GET" else anonymous
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(urllib.request.Request(url, method=method))
            self.assertEqual(caught.exception.code, 403, (method, url))
        grants = SERVICE.get_object_acl(Bucket=bucket, Key="open.txt")["Grants"]
        self.assertIn("READ", [g["Permission"] for g in grants])
        # A public-read bucket lists for anyone; its objects stay private,
        # and a missing key is then a 404.
        SERVICE.put_bucket_acl(Bucket=bucket, ACL="public-read")
        self.assertIn(b"<Key>private.txt</Key>", urllib.request.urlopen(anonymous).read())
        for url, status in [(anonymous + "/private.txt", 403), (anonymous + "/missing.txt", 404)]:
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(url)
            self.assertEqual(caught.exception.code, status, url)
        put = urllib.request.Request(anonymous + "/drop.txt", data=b"x", method="PUT")
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(put)
        self.assertEqual(caught.exception.code, 403)
        # public-read-write: anyone writes and deletes; private undoes it.
        SERVICE.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
        self.assertEqual(urllib.request.urlopen(put).status, 200)
        self.assertEqual(SERVICE.get_object(Bucket=bucket, Key="drop.txt")["Body"].read(), b"x")
        delete = urllib.request.Request(anonymous + "/drop.txt", method="DELETE")
        self.assertEqual(urllib.request.urlopen(delete).status, 204)
        self.assertEqual(error_code(lambda: SERVICE.head_object(Bucket=bucket, Key="drop.txt"))[1], 404)
        SERVICE.put_bucket_acl(Bucket=bucket, ACL="private")
        SERVICE.put_object_acl(Bucket=bucket, Key="open.txt", ACL="private")
        for url in [anonymous, anonymous + "/open.txt", public_url]:
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(url)
            self.assertIn(caught.exception.code, (400, 403, 404), url)
        # A grant to one user lets that user read, and no one else.
        bob = os.environ["BOB_USER_ID"]
        SERVICE.put_object_acl(Bucket=bucket, Key="private.txt", GrantRead='id="%s"' % bob)
        self.assertEqual(BOB.get_object(Bucket=bucket, Key="private.txt")["Body"].read(), b"owner only")
        # (Alice may list buckets without an owner under the policies, so
        # an object hidden from her is a 404, as if missing.)
        self.assertEqual(error_code(lambda: ALICE.get_object(Bucket=bucket, Key="private.txt"))[1], 404)
        grantees = [g["Grantee"].get("ID") for g in SERVICE.get_object_acl(Bucket=bucket, Key="private.txt")["Grants"]]
        self.assertIn(bob, grantees)
        # What SelfDB cannot express is refused, not ignored.
        for call in [
            lambda: SERVICE.put_bucket_acl(Bucket=bucket, ACL="authenticated-read"),
            lambda: SERVICE.put_object_acl(Bucket=bucket, Key="open.txt", GrantRead='emailAddress="a@b.c"'),
            lambda: SERVICE.put_object_acl(Bucket=bucket, Key="open.txt", GrantReadACP='id="%s"' % bob),
        ]:
            self.assertEqual(error_code(call), ("NotImplemented", 501))
        self.assertEqual(
            error_code(lambda: SERVICE.put_object_acl(Bucket=bucket, Key="open.txt", GrantRead='id="nobody"')),
            ("InvalidArgument", 400),
        )

    def test_conditional_writes(self):
        bucket = fresh_bucket()
        etag = SERVICE.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*")["ETag"]
        self.assertEqual(
            error_code(lambda: SERVICE.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch="*")),
            ("PreconditionFailed", 412),
        )
        self.assertEqual(
            error_code(lambda: SERVICE.put_object(Bucket=bucket, Key="k", Body=b"x", IfMatch='"0000"')),
            ("PreconditionFailed", 412),
        )
        # A refused small write leaves neither a row nor its inline bytes.
        self.assertEqual(SERVICE.get_object(Bucket=bucket, Key="k")["Body"].read(), b"one")
        SERVICE.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=etag)
        self.assertEqual(
            error_code(lambda: SERVICE.delete_object(Bucket=bucket, Key="k", IfMatch=etag)),
            ("PreconditionFailed", 412),
        )
        self.assertEqual(
            error_code(lambda: SERVICE.put_object(Bucket=bucket, Key="gone", Body=b"x", IfMatch="*")),
            ("NoSuchKey", 404),
        )
        SERVICE.delete_object(Bucket=bucket, Key="k", IfMatch="*")
        self.assertEqual(error_code(lambda: SERVICE.head_object(Bucket=bucket, Key="k"))[1], 404)

    def test_user_keys_obey_storage_policies(self):
        bucket = os.environ["SHARED_BUCKET"]
        ALICE.put_object(Bucket=bucket, Key="alice/notes.txt", Body=b"alice's")
        BOB.put_object(Bucket=bucket, Key="bob/notes.txt", Body=b"bob's")
        self.assertEqual(ALICE.get_object(Bucket=bucket, Key="alice/notes.txt")["Body"].read(), b"alice's")
        self.assertEqual(error_code(lambda: BOB.get_object(Bucket=bucket, Key="alice/notes.txt"))[1], 404)
        alice_sees = [o["Key"] for o in ALICE.list_objects_v2(Bucket=bucket).get("Contents", [])]
        self.assertEqual(alice_sees, ["alice/notes.txt"])
        # Bob's overwrite of Alice's object and his delete both leave it whole.
        self.assertEqual(
            error_code(lambda: BOB.put_object(Bucket=bucket, Key="alice/notes.txt", Body=b"mine"))[0],
            "AccessDenied",
        )
        BOB.delete_object(Bucket=bucket, Key="alice/notes.txt")
        BOB.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "alice/notes.txt"}]})
        self.assertEqual(ALICE.get_object(Bucket=bucket, Key="alice/notes.txt")["Body"].read(), b"alice's")
        # Only an object's owner changes its ACL, and a stranger cannot tell
        # whether the key exists by trying.
        for key in ["alice/notes.txt", "alice/none.txt"]:
            self.assertEqual(
                error_code(lambda: BOB.put_object_acl(Bucket=bucket, Key=key, ACL="public-read")),
                ("NoSuchKey", 404),
            )
        self.assertEqual(BOB.get_object_acl(Bucket=bucket, Key="bob/notes.txt")["Owner"]["ID"], os.environ["BOB_USER_ID"])
        self.assertEqual(error_code(lambda: ALICE.get_object_acl(Bucket=bucket, Key="bob/notes.txt"))[1], 404)
        ALICE.put_object_acl(Bucket=bucket, Key="alice/notes.txt", ACL="public-read")
        self.assertEqual(
            urllib.request.urlopen("%s/%s/alice/notes.txt" % (ENDPOINT, bucket)).read(), b"alice's"
        )
        # Nobody but the service role may create buckets (no policy allows it).
        self.assertEqual(error_code(lambda: ALICE.create_bucket(Bucket="alice-bucket"))[0], "AccessDenied")
        # A revoked key stops working.
        revoked = client(os.environ["REVOKED_KEY_ID"], os.environ["REVOKED_SECRET"])
        self.assertEqual(error_code(lambda: revoked.list_buckets())[1], 403)


if __name__ == "__main__":
    unittest.main(verbosity=2)
