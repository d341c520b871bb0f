"""Files through the SDK (`/storage/files`): uploading raw bytes (the key
from `path` and `filename`, the answer's fields, replacing a key, binary
and nested keys with spaces downloading byte for byte), who may upload,
read and download (owner, other user, anon key, service key; invisible
buckets are 404), listing with pages, search and sort, counts and stats,
metadata, deleting, the bucket's size and type limits (413, 415, nothing
stored), and the same files on `/storage/v1`."""

import uuid

import pytest
from selfdb import (
    NotFoundError,
    PermissionDeniedError,
    SelfDBError,
)
from selfdb.models import BucketCreate

from conftest import eventually, signed_in, storage_headers, unique_bucket

BINARY = bytes(range(256)) * 100


async def new_bucket(sdk, **fields):
    return await sdk.storage.buckets.create(BucketCreate(name=unique_bucket(), **fields))


async def test_upload_answers_the_key_and_downloads_the_same_bytes():
    sdk, _ = await signed_in("uploader")
    try:
        me = await sdk.auth.me()
        bucket = await new_bucket(sdk)

        key = "docs/sub dir/a b.txt"
        text = b"hello, files"
        answer = await sdk.storage.files.upload(bucket.id, "a b.txt", text, path=key, content_type="text/plain")
        assert answer.success is True
        assert answer.bucket == bucket.name, "the bucket's name, not its id"
        assert answer.path == key and answer.size == len(text)
        uuid.UUID(answer.file_id)
        assert answer.url
        assert await sdk.storage.files.download(bucket.name, key) == text

        # Without a path the key is the file name; a path ending in '/' is a folder.
        plain = await sdk.storage.files.upload(bucket.id, "blob.bin", BINARY)
        assert plain.path == "blob.bin" and plain.size == len(BINARY)
        assert await sdk.storage.files.download(bucket.name, "blob.bin") == BINARY
        foldered = await sdk.storage.files.upload(bucket.id, "c.bin", b"\x00\xff", path="in/a/folder/")
        assert foldered.path == "in/a/folder/c.bin"
        assert await sdk.storage.files.download(bucket.name, "in/a/folder/c.bin") == b"\x00\xff"
        assert len({answer.file_id, plain.file_id, foldered.file_id}) == 3

        got = await sdk.storage.files.get(answer.file_id)
        assert got.id == answer.file_id
        assert got.name == "a b.txt", "the key's last segment"
        assert got.path == key
        assert got.bucket_id == bucket.id and got.bucket_name == bucket.name
        assert got.size == len(text)
        assert got.mime_type == "text/plain", "the content type given"
        assert got.owner_id == me.id
        assert not got.metadata
        assert got.created_at is not None
        binary = await sdk.storage.files.get(plain.file_id)
        assert binary.mime_type == "application/octet-stream", "the default type"
        assert binary.name == "blob.bin" and binary.size == len(BINARY)

        with pytest.raises(NotFoundError):
            await sdk.storage.files.download(bucket.name, "docs/sub dir/nothing.txt")
        with pytest.raises(NotFoundError):
            await sdk.storage.files.download(bucket.name, "docs/sub dir")
        with pytest.raises(NotFoundError):
            await sdk.storage.files.download(unique_bucket("missing"), key)
    finally:
        await sdk.close()


async def test_uploading_to_a_taken_key_replaces_the_file():
    sdk, _ = await signed_in("replacer")
    try:
        bucket = await new_bucket(sdk)
        first = await sdk.storage.files.upload(bucket.id, "v.txt", b"one", content_type="text/plain")
        second = await sdk.storage.files.upload(bucket.id, "v.txt", b"three!", content_type="text/markdown")
        assert first.path == second.path == "v.txt"
        assert second.size == 6
        assert await sdk.storage.files.download(bucket.name, "v.txt") == b"three!"
        assert await sdk.storage.files.count(bucket.id) == 1
        listed = await sdk.storage.files.list(bucket_id=bucket.id)
        assert listed.total == 1 and len(listed.data) == 1
        assert listed.data[0].path == "v.txt" and listed.data[0].size == 6
        assert listed.data[0].mime_type == "text/markdown"
        got = await sdk.storage.buckets.get(bucket.id)
        assert got.file_count == 1 and got.total_size == 6
    finally:
        await sdk.close()


async def test_only_the_bucket_owner_or_the_service_key_uploads(client, service):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        private = await new_bucket(alice)
        public = await new_bucket(alice, public=True)

        with pytest.raises(PermissionDeniedError):
            await bob.storage.files.upload(public.id, "bob.txt", b"bob was here")
        with pytest.raises(NotFoundError):
            await bob.storage.files.upload(private.id, "bob.txt", b"bob was here")
        with pytest.raises(SelfDBError) as refused:
            await client.storage.files.upload(public.id, "anon.txt", b"anyone")
        assert refused.value.status_code in (401, 403), str(refused.value)
        with pytest.raises(NotFoundError):
            await alice.storage.files.upload(str(uuid.uuid4()), "lost.txt", b"nowhere")
        assert await alice.storage.files.count(public.id) == 0, "refused uploads store nothing"
        assert await alice.storage.files.count(private.id) == 0

        by_service = await service.storage.files.upload(private.id, "service.txt", b"from the service")
        assert by_service.bucket == private.name and by_service.path == "service.txt"
        assert await alice.storage.files.download(private.name, "service.txt") == b"from the service"
        assert await alice.storage.files.count(private.id) == 1
    finally:
        await alice.close()
        await bob.close()


async def test_reads_follow_the_buckets_visibility(client, service):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        private = await new_bucket(alice)
        public = await new_bucket(alice, public=True)
        secret = await alice.storage.files.upload(private.id, "secret.txt", b"for alice")
        shared = await alice.storage.files.upload(public.id, "shared.bin", BINARY, path="pub/shared.bin")

        # A private bucket's files are invisible to others: 404, not 403.
        for sdk in [bob, client]:
            with pytest.raises(NotFoundError):
                await sdk.storage.files.download(private.name, "secret.txt")
            with pytest.raises(NotFoundError):
                await sdk.storage.files.get(secret.file_id)
        assert await service.storage.files.download(private.name, "secret.txt") == b"for alice"
        assert (await service.storage.files.get(secret.file_id)).path == "secret.txt"

        # A public bucket's files are anyone's to read.
        for sdk in [alice, bob, client, service]:
            assert await sdk.storage.files.download(public.name, "pub/shared.bin") == BINARY
            got = await sdk.storage.files.get(shared.file_id)
            assert got.path == "pub/shared.bin" and got.bucket_id == public.id and got.size == len(BINARY)

        # Listing without a bucket covers every visible bucket.
        marker = uuid.uuid4().hex[:12]
        await alice.storage.files.upload(private.id, f"{marker}-private.txt", b"p")
        await alice.storage.files.upload(public.id, f"{marker}-public.txt", b"q")

        async def paths(sdk):
            listed = await sdk.storage.files.list(search=marker, page_size=1000)
            return sorted(f.path for f in listed.data)

        both = sorted([f"{marker}-private.txt", f"{marker}-public.txt"])
        assert await paths(alice) == both
        assert await paths(service) == both
        assert await paths(bob) == [f"{marker}-public.txt"]
        assert await paths(client) == [f"{marker}-public.txt"]
        assert await alice.storage.files.total_count(search=marker) == 2
        assert await bob.storage.files.total_count(search=marker) == 1
        assert await client.storage.files.total_count(search=marker) == 1
    finally:
        await alice.close()
        await bob.close()


async def test_list_pages_searches_sorts_and_counts():
    marker = uuid.uuid4().hex[:12]
    sdk, _ = await signed_in("lister")
    try:
        me = await sdk.auth.me()
        bucket = await new_bucket(sdk)
        other = await new_bucket(sdk)
        # Uploaded in this order, with these sizes.
        made = [(f"{marker}-b.txt", b"x"), (f"{marker}-c.txt", b"xyz"), (f"{marker}-a.txt", b"xy"), ("unrelated.txt", b"")]
        for filename, data in made:
            await sdk.storage.files.upload(bucket.id, filename, data, content_type="text/plain")
        await sdk.storage.files.upload(other.id, "x.txt", b"elsewhere", path=f"deep/{marker}-d.txt")

        everything = await sdk.storage.files.list(bucket_id=bucket.id)
        assert everything.total == 4 and len(everything.data) == 4
        assert everything.page == 1 and everything.page_size == 100
        for file in everything.data:
            uuid.UUID(file.id)
            assert file.bucket_id == bucket.id and file.bucket_name == bucket.name
            assert file.name == file.path and file.mime_type == "text/plain"
            assert file.owner_id == me.id
        sizes = {f.path: f.size for f in everything.data}
        assert sizes == {filename: len(data) for filename, data in made}

        by_name = await sdk.storage.files.list(bucket_id=bucket.id, search=marker, sort_by="name", sort_order="asc")
        assert [f.path for f in by_name.data] == [f"{marker}-a.txt", f"{marker}-b.txt", f"{marker}-c.txt"]
        assert by_name.total == 3, "the total counts matching files only"
        by_name = await sdk.storage.files.list(bucket_id=bucket.id, search=marker, sort_by="name", sort_order="desc")
        assert [f.path for f in by_name.data] == [f"{marker}-c.txt", f"{marker}-b.txt", f"{marker}-a.txt"]
        by_size = await sdk.storage.files.list(bucket_id=bucket.id, sort_by="size", sort_order="desc")
        assert [f.size for f in by_size.data] == [3, 2, 1, 0]
        by_time = await sdk.storage.files.list(bucket_id=bucket.id, sort_by="created_at", sort_order="asc")
        assert [f.path for f in by_time.data] == [filename for filename, _ in made], "upload order"
        by_update = await sdk.storage.files.list(bucket_id=bucket.id, sort_by="updated_at", sort_order="desc")
        assert sorted(f.path for f in by_update.data) == sorted(sizes)

        pages = []
        for number in [1, 2, 3]:
            page = await sdk.storage.files.list(
                bucket_id=bucket.id, page=number, page_size=2, sort_by="name", sort_order="asc"
            )
            assert page.total == 4 and page.page == number and page.page_size == 2
            pages.append([f.path for f in page.data])
        assert pages == [[f"{marker}-a.txt", f"{marker}-b.txt"], [f"{marker}-c.txt", "unrelated.txt"], []]

        # Across buckets.
        across = await sdk.storage.files.list(search=marker, sort_by="name", sort_order="asc")
        assert across.total == 4
        assert {f.bucket_id for f in across.data} == {bucket.id, other.id}
        nested = [f for f in across.data if f.bucket_id == other.id]
        assert nested[0].path == f"deep/{marker}-d.txt" and nested[0].name == f"{marker}-d.txt"

        assert await sdk.storage.files.count(bucket.id) == 4
        assert await sdk.storage.files.count(bucket.id, search=marker) == 3
        assert await sdk.storage.files.count(other.id) == 1
        assert await sdk.storage.files.total_count(search=marker) == 4
        assert await sdk.storage.files.total_count(search=uuid.uuid4().hex) == 0

        for params in [{"page_size": 0}, {"page_size": 1001}, {"sort_by": "owner_id"}, {"sort_by": "nonsense"}]:
            with pytest.raises(SelfDBError) as refused:
                await sdk.storage.files.list(bucket_id=bucket.id, **params)
            assert refused.value.status_code == 422, f"{params}: {refused.value}"
    finally:
        await sdk.close()


async def test_stats_cover_the_visible_buckets():
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        bucket = await new_bucket(alice)
        await alice.storage.files.upload(bucket.id, "three.txt", b"abc")
        await alice.storage.files.upload(bucket.id, "five.txt", b"abcde")
        assert await alice.storage.files.count(bucket.id) == 2

        stats = await alice.storage.files.stats()
        assert stats.total_files >= 2 and stats.total_size >= 8 and stats.total_buckets >= 1

        # Alice sees what Bob (no buckets of his own) sees, plus her private bucket.
        seen = {}

        async def alice_sees_one_bucket_more():
            mine, his = await alice.storage.files.stats(), await bob.storage.files.stats()
            seen["difference"] = (
                mine.total_files - his.total_files,
                mine.total_size - his.total_size,
                mine.total_buckets - his.total_buckets,
            )
            return seen["difference"] == (2, 8, 1)

        assert await eventually(alice_sees_one_bucket_more, timeout=10), seen["difference"]
    finally:
        await alice.close()
        await bob.close()


async def test_metadata_is_replaced_by_the_owner_only():
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        public = await new_bucket(alice, public=True)
        private = await new_bucket(alice)
        file = await alice.storage.files.upload(public.id, "m.txt", b"meta")
        hidden = await alice.storage.files.upload(private.id, "h.txt", b"hidden")

        updated = await alice.storage.files.update_metadata(file.file_id, {"k": "v"})
        assert updated.id == file.file_id and updated.metadata == {"k": "v"}
        assert updated.path == "m.txt" and updated.size == 4
        replaced = await alice.storage.files.update_metadata(file.file_id, {"n": 1, "nested": {"x": [1, 2]}})
        assert replaced.metadata == {"n": 1, "nested": {"x": [1, 2]}}, "replaced, not merged"
        assert (await alice.storage.files.get(file.file_id)).metadata == {"n": 1, "nested": {"x": [1, 2]}}

        with pytest.raises(PermissionDeniedError):
            await bob.storage.files.update_metadata(file.file_id, {"bob": True})
        with pytest.raises(NotFoundError):
            await bob.storage.files.update_metadata(hidden.file_id, {"bob": True})
        assert (await bob.storage.files.get(file.file_id)).metadata == {"n": 1, "nested": {"x": [1, 2]}}
        assert not (await alice.storage.files.get(hidden.file_id)).metadata, "refused changes change nothing"
        assert await alice.storage.files.download(public.name, "m.txt") == b"meta", "the bytes stay"
    finally:
        await alice.close()
        await bob.close()


async def test_delete_removes_a_file_for_the_owner_only():
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        bucket = await new_bucket(alice, public=True)
        file = await alice.storage.files.upload(bucket.id, "gone.txt", b"soon gone", path="d/gone.txt")
        kept = await alice.storage.files.upload(bucket.id, "kept.txt", b"kept")

        with pytest.raises(PermissionDeniedError):
            await bob.storage.files.delete(file.file_id)
        assert await alice.storage.files.download(bucket.name, "d/gone.txt") == b"soon gone"

        deleted = await alice.storage.files.delete(file.file_id)
        assert deleted["deleted_id"] == file.file_id
        with pytest.raises(NotFoundError):
            await alice.storage.files.get(file.file_id)
        with pytest.raises(NotFoundError):
            await alice.storage.files.download(bucket.name, "d/gone.txt")
        with pytest.raises(NotFoundError):
            await alice.storage.files.delete(file.file_id)
        assert await alice.storage.files.count(bucket.id) == 1
        assert await alice.storage.files.download(bucket.name, "kept.txt") == b"kept"
        assert (await alice.storage.files.get(kept.file_id)).path == "kept.txt"

        for missing in [str(uuid.uuid4()), "not-a-uuid"]:
            with pytest.raises(NotFoundError):
                await alice.storage.files.get(missing)
    finally:
        await alice.close()
        await bob.close()


async def test_bucket_limits_refuse_oversize_and_wrong_type_files():
    sdk, _ = await signed_in("limited")
    try:
        small = await new_bucket(sdk, file_size_limit=10)
        with pytest.raises(SelfDBError) as refused:
            await sdk.storage.files.upload(small.id, "big.bin", b"x" * 11)
        assert refused.value.status_code == 413, str(refused.value)
        assert await sdk.storage.files.count(small.id) == 0, "nothing stored"
        with pytest.raises(NotFoundError):
            await sdk.storage.files.download(small.name, "big.bin")
        fits = await sdk.storage.files.upload(small.id, "fits.bin", b"x" * 10)
        assert fits.size == 10, "the limit itself is allowed"
        # A refused replacement keeps the stored file.
        with pytest.raises(SelfDBError) as refused:
            await sdk.storage.files.upload(small.id, "fits.bin", b"y" * 11)
        assert refused.value.status_code == 413
        assert await sdk.storage.files.download(small.name, "fits.bin") == b"x" * 10

        pictures = await new_bucket(sdk, allowed_mime_types=["image/png"])
        with pytest.raises(SelfDBError) as refused:
            await sdk.storage.files.upload(pictures.id, "note.txt", b"words", content_type="text/plain")
        assert refused.value.status_code == 415, str(refused.value)
        assert await sdk.storage.files.count(pictures.id) == 0, "nothing stored"
        png = await sdk.storage.files.upload(pictures.id, "pic.png", b"\x89PNG\r\n\x1a\n", content_type="image/png")
        assert png.size == 8
        assert (await sdk.storage.files.get(png.file_id)).mime_type == "image/png"
    finally:
        await sdk.close()


async def test_the_same_files_are_served_at_storage_v1(raw, service_key):
    sdk, _ = await signed_in("crosser")
    headers = storage_headers(service_key)
    try:
        bucket = await new_bucket(sdk)

        # Uploaded through the SDK, downloaded through /storage/v1 (bucket id = its name).
        await sdk.storage.files.upload(bucket.id, "blob.bin", BINARY, path="shared/blob.bin")
        response = await raw.get(f"/storage/v1/object/{bucket.name}/shared/blob.bin", headers=headers)
        assert response.status_code == 200, response.text
        assert response.content == BINARY

        # Uploaded through /storage/v1, listed and downloaded through the SDK.
        text = b"written through storage/v1"
        response = await raw.post(
            f"/storage/v1/object/{bucket.name}/from-v1/note.txt",
            headers=storage_headers(service_key, **{"content-type": "text/plain"}),
            content=text,
        )
        assert response.status_code in (200, 201), response.text
        listed = await sdk.storage.files.list(bucket_id=bucket.id)
        assert listed.total == 2
        found = {f.path: f for f in listed.data}
        assert set(found) == {"shared/blob.bin", "from-v1/note.txt"}
        note = found["from-v1/note.txt"]
        assert note.name == "note.txt" and note.size == len(text)
        assert note.bucket_id == bucket.id and note.bucket_name == bucket.name
        assert note.mime_type.startswith("text/plain")
        assert await sdk.storage.files.download(bucket.name, "from-v1/note.txt") == text
        assert (await sdk.storage.files.get(note.id)).path == "from-v1/note.txt"
        assert await sdk.storage.files.count(bucket.id) == 2
    finally:
        await sdk.close()


def s3_client():
    """boto3 on the host's S3 port with the service role's S3 key."""
    import os

    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        aws_access_key_id=os.environ["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["S3_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


async def test_the_same_files_are_objects_on_the_s3_port():
    """An SDK upload is an S3 object, and an S3 object is an SDK file."""
    import asyncio

    sdk, _ = await signed_in("s3cross")
    try:
        name = unique_bucket("s3x")
        bucket = await sdk.storage.buckets.create(BucketCreate(name=name))
        await sdk.storage.files.upload(bucket.id, "y.txt", b"through the SDK", path="x/y.txt", content_type="text/plain")
        s3 = s3_client()
        got = await asyncio.to_thread(s3.get_object, Bucket=name, Key="x/y.txt")
        assert got["Body"].read() == b"through the SDK" and got["ContentType"] == "text/plain"
        await asyncio.to_thread(s3.put_object, Bucket=name, Key="from/s3.bin", Body=BINARY, ContentType="application/x-test")
        listed = await sdk.storage.files.list(bucket_id=bucket.id, search="from/")
        assert [f.path for f in listed.data] == ["from/s3.bin"]
        assert listed.data[0].mime_type == "application/x-test" and listed.data[0].size == len(BINARY)
        assert await sdk.storage.files.download(name, "from/s3.bin") == BINARY
    finally:
        await sdk.close()
