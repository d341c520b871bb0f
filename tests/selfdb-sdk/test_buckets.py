"""Buckets through the SDK (`/storage/buckets`): creating them (a signed-in
user owns theirs, the service key's belong to no user, the anon key may not;
bad and taken names refused), listing, counting, searching and sorting with
each caller's visibility (service key, owner, other user, anon key), reading
one (invisible buckets are 404), updating and deleting by the owner only
(deleting empties the bucket first), the file count and total size following
uploads, and the same buckets on `/storage/v1`."""

import uuid

import pytest
from selfdb import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SelfDBError,
)
from selfdb.models import BucketCreate, BucketUpdate

from conftest import signed_in, storage_headers, unique_bucket


async def test_create_answers_a_bucket_the_user_owns(service):
    sdk, _ = await signed_in("maker")
    try:
        me = await sdk.auth.me()
        name = unique_bucket()
        bucket = await sdk.storage.buckets.create(
            BucketCreate(
                name=name,
                description="pictures of things",
                public=False,
                file_size_limit=1024,
                allowed_mime_types=["image/png", "text/plain"],
            )
        )
        uuid.UUID(bucket.id)  # SelfDB's id: a uuid, not the name
        assert bucket.id != name
        assert bucket.name == name
        assert bucket.owner_id == me.id, "the caller owns it"
        assert bucket.public is False
        assert bucket.description == "pictures of things"
        assert bucket.file_size_limit == 1024
        assert sorted(bucket.allowed_mime_types) == ["image/png", "text/plain"]
        assert bucket.file_count == 0 and bucket.total_size == 0
        assert bucket.created_at is not None

        again = await sdk.storage.buckets.get(bucket.id)
        assert again.id == bucket.id and again.name == name and again.owner_id == me.id
        assert again.description == "pictures of things" and again.file_size_limit == 1024

        # With the defaults: private, no limits.
        plain = await sdk.storage.buckets.create(BucketCreate(name=unique_bucket()))
        assert plain.public is False and plain.file_size_limit is None and plain.owner_id == me.id
        assert plain.id != bucket.id

        # The service key's buckets belong to no user.
        by_service = await service.storage.buckets.create(BucketCreate(name=unique_bucket(), public=True))
        uuid.UUID(by_service.id)
        assert by_service.owner_id is None and by_service.public is True
    finally:
        await sdk.close()


async def test_create_needs_a_user_and_refuses_bad_and_taken_names(client, service):
    name = unique_bucket()
    with pytest.raises(AuthenticationError):
        await client.storage.buckets.create(BucketCreate(name=name, public=True))
    assert await service.storage.buckets.list(search=name) == [], "nothing made for the anon key"

    sdk, _ = await signed_in("strict")
    try:
        suffix = uuid.uuid4().hex[:8]
        for bad in [f"has space {suffix}", f"a/b-{suffix}", f"x{suffix}".ljust(64, "y")]:
            with pytest.raises(BadRequestError):
                await sdk.storage.buckets.create(BucketCreate(name=bad))
            assert await service.storage.buckets.list(search=suffix) == [], f"nothing made for {bad!r}"

        for good in [f"dots.and_under-{suffix}", f"x{suffix}".ljust(63, "y")]:
            assert (await sdk.storage.buckets.create(BucketCreate(name=good))).name == good

        taken = await sdk.storage.buckets.create(BucketCreate(name=unique_bucket(), description="first"))
        with pytest.raises(ConflictError):
            await sdk.storage.buckets.create(BucketCreate(name=taken.name, description="second"))
        other, _ = await signed_in("other")
        try:
            with pytest.raises(ConflictError):
                await other.storage.buckets.create(BucketCreate(name=taken.name))
        finally:
            await other.close()
        with pytest.raises(ConflictError):
            await service.storage.buckets.create(BucketCreate(name=taken.name))
        again = await sdk.storage.buckets.get(taken.id)
        assert again.description == "first", "the first bucket is untouched"
        assert [b.id for b in await service.storage.buckets.list(search=taken.name)] == [taken.id]
    finally:
        await sdk.close()


async def test_list_and_count_show_what_each_caller_may_see(client, service):
    marker = unique_bucket("vis")
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        private = await alice.storage.buckets.create(BucketCreate(name=f"{marker}-a-private"))
        public = await alice.storage.buckets.create(BucketCreate(name=f"{marker}-a-public", public=True))
        bobs = await bob.storage.buckets.create(BucketCreate(name=f"{marker}-b-private"))
        services = await service.storage.buckets.create(BucketCreate(name=f"{marker}-s-private"))

        async def names(sdk):
            return sorted(b.name for b in await sdk.storage.buckets.list(search=marker))

        everything = [private.name, public.name, bobs.name, services.name]
        assert await names(service) == sorted(everything), "the service key sees all"
        assert await names(alice) == sorted([private.name, public.name]), "own buckets and public ones"
        assert await names(bob) == sorted([public.name, bobs.name]), "own buckets and public ones"
        assert await names(client) == [public.name], "the anon key sees public buckets"
        assert await service.storage.buckets.count(search=marker) == 4
        assert await alice.storage.buckets.count(search=marker) == 2
        assert await bob.storage.buckets.count(search=marker) == 2
        assert await client.storage.buckets.count(search=marker) == 1

        listed = {b.name: b for b in await service.storage.buckets.list(search=marker)}
        for made in [private, public, bobs, services]:
            assert listed[made.name].id == made.id, "listed with SelfDB's id"
            assert listed[made.name].owner_id == made.owner_id and listed[made.name].public == made.public
    finally:
        await alice.close()
        await bob.close()


async def test_list_searches_sorts_pages_and_checks_its_parameters():
    marker = unique_bucket("lst")
    word = uuid.uuid4().hex[:12]
    sdk, _ = await signed_in("lister")
    try:
        made = []
        for suffix, description in [("b", None), ("c", f"all about {word}"), ("a", None)]:
            made.append(
                await sdk.storage.buckets.create(BucketCreate(name=f"{marker}-{suffix}", description=description))
            )
        names = [b.name for b in made]

        listed = await sdk.storage.buckets.list(search=marker, sort_by="name", sort_order="asc")
        assert [b.name for b in listed] == sorted(names)
        listed = await sdk.storage.buckets.list(search=marker, sort_by="name", sort_order="desc")
        assert [b.name for b in listed] == sorted(names, reverse=True)
        listed = await sdk.storage.buckets.list(search=marker, sort_by="created_at", sort_order="asc")
        assert [b.name for b in listed] == names, "creation order"
        listed = await sdk.storage.buckets.list(search=marker, sort_by="updated_at", sort_order="desc")
        assert sorted(b.name for b in listed) == sorted(names)
        page = await sdk.storage.buckets.list(search=marker, sort_by="name", sort_order="asc", skip=1, limit=1)
        assert [b.name for b in page] == [sorted(names)[1]], "skip and limit"

        # The search matches descriptions as well as names, case-insensitively.
        assert [b.name for b in await sdk.storage.buckets.list(search=word.upper())] == [f"{marker}-c"]
        assert await sdk.storage.buckets.count(search=word) == 1
        assert await sdk.storage.buckets.count(search=marker.upper()) == 3
        assert await sdk.storage.buckets.list(search=uuid.uuid4().hex) == []
        assert await sdk.storage.buckets.count(search=uuid.uuid4().hex) == 0

        for sort_by in ["owner_id", "size", "nonsense"]:
            with pytest.raises(SelfDBError) as refused:
                await sdk.storage.buckets.list(search=marker, sort_by=sort_by)
            assert refused.value.status_code == 422, f"{sort_by}: {refused.value}"
    finally:
        await sdk.close()


async def test_get_shows_visible_buckets_and_404s_the_rest(client):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        private = await alice.storage.buckets.create(BucketCreate(name=unique_bucket()))
        public = await alice.storage.buckets.create(BucketCreate(name=unique_bucket(), public=True))
        assert (await alice.storage.buckets.get(private.id)).name == private.name

        for missing in [str(uuid.uuid4()), unique_bucket("missing")]:
            with pytest.raises(NotFoundError):
                await alice.storage.buckets.get(missing)
        # Another user's private bucket is invisible: 404, not 403.
        with pytest.raises(NotFoundError):
            await bob.storage.buckets.get(private.id)
        with pytest.raises(NotFoundError):
            await client.storage.buckets.get(private.id)

        seen_by_bob = await bob.storage.buckets.get(public.id)
        assert seen_by_bob.id == public.id and seen_by_bob.name == public.name
        assert seen_by_bob.owner_id == public.owner_id and seen_by_bob.public is True
        seen_by_anon = await client.storage.buckets.get(public.id)
        assert seen_by_anon.id == public.id and seen_by_anon.name == public.name
    finally:
        await alice.close()
        await bob.close()


async def test_update_changes_a_bucket_for_the_owner_and_the_service_key_only(client, service):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        bucket = await alice.storage.buckets.create(BucketCreate(name=unique_bucket(), description="before"))
        taken = await alice.storage.buckets.create(BucketCreate(name=unique_bucket()))
        new_name = unique_bucket("renamed")

        updated = await alice.storage.buckets.update(
            bucket.id,
            BucketUpdate(
                name=new_name,
                description="after",
                public=True,
                file_size_limit=2048,
                allowed_mime_types=["image/png"],
            ),
        )
        assert updated.id == bucket.id, "the id stays"
        assert updated.name == new_name and updated.description == "after"
        assert updated.public is True and updated.file_size_limit == 2048
        assert updated.allowed_mime_types == ["image/png"]
        assert updated.owner_id == bucket.owner_id
        again = await alice.storage.buckets.get(bucket.id)
        assert again.name == new_name and again.public is True and again.description == "after"

        # Only the fields given change.
        partial = await alice.storage.buckets.update(bucket.id, BucketUpdate(description="once more"))
        assert partial.description == "once more" and partial.name == new_name
        assert partial.public is True and partial.file_size_limit == 2048

        # Others may read it now (public), never change it.
        assert (await bob.storage.buckets.get(bucket.id)).name == new_name
        with pytest.raises(PermissionDeniedError):
            await bob.storage.buckets.update(bucket.id, BucketUpdate(description="mine now"))
        with pytest.raises(NotFoundError):
            await bob.storage.buckets.update(taken.id, BucketUpdate(description="mine now"))
        with pytest.raises(SelfDBError) as refused:
            await client.storage.buckets.update(bucket.id, BucketUpdate(description="anyone's"))
        assert refused.value.status_code in (401, 403), str(refused.value)

        with pytest.raises(ConflictError):
            await alice.storage.buckets.update(bucket.id, BucketUpdate(name=taken.name))
        with pytest.raises(BadRequestError):
            await alice.storage.buckets.update(bucket.id, BucketUpdate(name="has space"))
        unchanged = await alice.storage.buckets.get(bucket.id)
        assert unchanged.name == new_name and unchanged.description == "once more", "refused updates change nothing"
        assert (await alice.storage.buckets.get(taken.id)).name == taken.name

        # The service key may change any bucket.
        by_service = await service.storage.buckets.update(taken.id, BucketUpdate(description="by service"))
        assert by_service.description == "by service" and by_service.owner_id == taken.owner_id
    finally:
        await alice.close()
        await bob.close()


async def test_file_count_and_total_size_follow_uploads(service):
    sdk, _ = await signed_in("counter")
    try:
        bucket = await sdk.storage.buckets.create(BucketCreate(name=unique_bucket()))
        await sdk.storage.files.upload(bucket.id, "three.txt", b"abc", content_type="text/plain")
        await sdk.storage.files.upload(bucket.id, "five.bin", b"12345", path="nested/five.bin")

        got = await sdk.storage.buckets.get(bucket.id)
        assert got.file_count == 2 and got.total_size == 8
        listed = [b for b in await sdk.storage.buckets.list(search=bucket.name) if b.id == bucket.id]
        assert len(listed) == 1 and listed[0].file_count == 2 and listed[0].total_size == 8
        by_service = await service.storage.buckets.get(bucket.id)
        assert by_service.file_count == 2 and by_service.total_size == 8
    finally:
        await sdk.close()


async def test_delete_empties_and_removes_a_bucket_for_the_owner_only(service):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        bucket = await alice.storage.buckets.create(BucketCreate(name=unique_bucket(), public=True))
        await alice.storage.files.upload(bucket.id, "a.txt", b"a")
        await alice.storage.files.upload(bucket.id, "b.txt", b"bb", path="deep/b.txt")

        with pytest.raises(PermissionDeniedError):
            await bob.storage.buckets.delete(bucket.id)
        still = await alice.storage.buckets.get(bucket.id)
        assert still.file_count == 2, "a refused delete removes nothing"
        assert await alice.storage.files.download(bucket.name, "a.txt") == b"a"

        deleted = await alice.storage.buckets.delete(bucket.id)
        assert deleted["deleted_id"] == bucket.id
        for sdk in [alice, bob, service]:
            with pytest.raises(NotFoundError):
                await sdk.storage.buckets.get(bucket.id)
        with pytest.raises(NotFoundError):
            await alice.storage.files.download(bucket.name, "a.txt")
        assert await service.storage.buckets.list(search=bucket.name) == []
        with pytest.raises(NotFoundError):
            await alice.storage.buckets.delete(bucket.id)

        # The name is free again; the new bucket is a new one, empty.
        again = await alice.storage.buckets.create(BucketCreate(name=bucket.name))
        assert again.id != bucket.id and again.file_count == 0
        with pytest.raises(NotFoundError):
            await alice.storage.files.download(bucket.name, "deep/b.txt")
    finally:
        await alice.close()
        await bob.close()


async def test_the_same_buckets_are_served_at_storage_v1(raw, service, service_key):
    sdk, _ = await signed_in("crosser")
    headers = storage_headers(service_key)
    try:
        # Made through the SDK: /storage/v1 knows it by its name.
        for public in [True, False]:
            bucket = await sdk.storage.buckets.create(BucketCreate(name=unique_bucket(), public=public))
            response = await raw.get(f"/storage/v1/bucket/{bucket.name}", headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["name"] == bucket.name and body["public"] is public

        # Made through /storage/v1: the SDK lists it with a uuid of its own.
        name = unique_bucket("v1")
        response = await raw.post("/storage/v1/bucket", headers=headers, json={"name": name, "public": True})
        assert response.status_code in (200, 201), response.text
        listed = await service.storage.buckets.list(search=name)
        assert [b.name for b in listed] == [name]
        made = listed[0]
        uuid.UUID(made.id)
        assert made.id != name and made.public is True
        assert made.file_count == 0 and made.total_size == 0
        assert (await service.storage.buckets.get(made.id)).name == name
        assert (await sdk.storage.buckets.get(made.id)).name == name, "public: users see it too"
    finally:
        await sdk.close()


async def test_a_renamed_buckets_old_name_can_be_used_again(raw, service_key):
    """A rename keeps the bucket's `/storage/v1` id (its first name); a new
    bucket may still take the old name, and both keep their files."""
    sdk, _ = await signed_in("renamer")
    try:
        first_name, second_name = unique_bucket("old"), unique_bucket("new")
        first = await sdk.storage.buckets.create(BucketCreate(name=first_name))
        await sdk.storage.files.upload(first.id, "a.txt", b"first")
        renamed = await sdk.storage.buckets.update(first.id, BucketUpdate(name=second_name))
        assert renamed.id == first.id and renamed.name == second_name
        again = await sdk.storage.buckets.create(BucketCreate(name=first_name))
        assert again.id != first.id and again.name == first_name
        await sdk.storage.files.upload(again.id, "a.txt", b"second")
        assert await sdk.storage.files.download(second_name, "a.txt") == b"first"
        assert await sdk.storage.files.download(first_name, "a.txt") == b"second"
        # The renamed bucket is still at its first id on /storage/v1.
        response = await raw.get(f"/storage/v1/object/{first_name}/a.txt", headers=storage_headers(service_key))
        assert response.status_code == 200 and response.content == b"first"
    finally:
        await sdk.close()
