"""Rows through the SDK (`/tables/{id}/data`): inserting (defaults filled,
bad rows refused), fetching with pages, search and sort (also with the SDK's
query builder), updating and deleting by `id` or another key column, who may
read and write rows of private and public tables (owner, another user, the
anon key, the service key), and the same rows seen through `psql` and
`/rest/v1`."""

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
from selfdb.models import TableCreate

from conftest import eventually, psql, rest_headers, signed_in, unique_table

SCHEMA = {"title": {"type": "TEXT", "nullable": False}, "score": {"type": "INTEGER", "default": 0}}


async def new_table(sdk, schema=None, public=False):
    return await sdk.tables.create(TableCreate(name=unique_table(), table_schema=schema or SCHEMA, public=public))


async def rest_rows(raw, headers, name):
    """GET /rest/v1/<name>, once the schema cache serves it: the rows, or None."""

    async def served():
        response = await raw.get(f"/rest/v1/{name}", headers=headers)
        return response if response.status_code == 200 else None

    response = await eventually(served)
    assert response is not None, f"/rest/v1/{name} did not answer 200"
    return response.json()


async def test_insert_fills_defaults_and_fetch_pages():
    sdk, _ = await signed_in("pager")
    try:
        table = await new_table(sdk)
        first = await sdk.tables.data.insert(table.id, {"title": "e"})
        assert first["title"] == "e" and first["score"] == 0, "defaults filled"
        uuid.UUID(first["id"])  # the added key, filled
        for title, score in [("c", 3), ("a", 1), ("d", 4), ("b", 2)]:
            row = await sdk.tables.data.insert(table.id, {"title": title, "score": score})
            assert row["score"] == score and row["id"]

        everything = await sdk.tables.data.fetch(table.id)
        assert everything.total == 5 and len(everything.data) == 5
        assert everything.page == 1 and everything.page_size == 100

        page = await sdk.tables.data.fetch(table.id, page=1, page_size=2, sort_by="title", sort_order="asc")
        assert [r["title"] for r in page.data] == ["a", "b"]
        assert page.total == 5 and page.page == 1 and page.page_size == 2
        page = await sdk.tables.data.fetch(table.id, page=2, page_size=2, sort_by="title", sort_order="asc")
        assert [r["title"] for r in page.data] == ["c", "d"]
        page = await sdk.tables.data.fetch(table.id, page=3, page_size=2, sort_by="title", sort_order="asc")
        assert [r["title"] for r in page.data] == ["e"] and page.total == 5 and page.page == 3
        page = await sdk.tables.data.fetch(table.id, page=4, page_size=2)
        assert page.data == [] and page.total == 5, "past the end: no rows"
        page = await sdk.tables.data.fetch(table.id, sort_by="score", sort_order="desc")
        assert [r["score"] for r in page.data] == [4, 3, 2, 1, 0]
    finally:
        await sdk.close()


async def test_fetch_searches_text_and_checks_its_parameters():
    sdk, _ = await signed_in("seeker")
    try:
        table = await new_table(sdk, {"title": {"type": "TEXT"}, "body": {"type": "TEXT"}, "n": {"type": "INTEGER"}})
        await sdk.tables.data.insert(table.id, {"title": "Apple pie", "body": "sweet", "n": 1})
        await sdk.tables.data.insert(table.id, {"title": "Bread", "body": "crab apple jam", "n": 2})
        await sdk.tables.data.insert(table.id, {"title": "Cheese", "body": "salty", "n": 3})

        found = await sdk.tables.data.fetch(table.id, search="APPLE", sort_by="n", sort_order="asc")
        assert [r["title"] for r in found.data] == ["Apple pie", "Bread"], "ILIKE over every text column"
        assert found.total == 2, "the total counts matching rows only"
        assert (await sdk.tables.data.fetch(table.id, search="nowhere")).total == 0
        # Characters the data API's filter grammar reserves are searched for as themselves.
        odd = 'a,(b)"c\\d_%'
        await sdk.tables.data.insert(table.id, {"title": f"x {odd} y", "n": 4})
        # `_` and `%` are no wildcards: this decoy does not match.
        await sdk.tables.data.insert(table.id, {"title": 'a,(b)"c\\dXY', "n": 5})
        found = await sdk.tables.data.fetch(table.id, search=odd)
        assert [r["title"] for r in found.data] == [f"x {odd} y"]

        with pytest.raises(BadRequestError):
            await sdk.tables.data.fetch(table.id, sort_by="no_such_column")
        for params in [{"page": 0}, {"page_size": 0}, {"page_size": 1001}]:
            with pytest.raises(SelfDBError) as refused:
                await sdk.tables.data.fetch(table.id, **params)
            assert refused.value.status_code == 422, f"{params}: {refused.value}"
    finally:
        await sdk.close()


async def test_the_query_builder_searches_sorts_and_pages():
    sdk, _ = await signed_in("builder")
    try:
        table = await new_table(sdk)
        for i in range(1, 6):
            await sdk.tables.data.insert(table.id, {"title": f"item {i}", "score": i * 10})
        await sdk.tables.data.insert(table.id, {"title": "other", "score": 99})

        base = sdk.tables.data.query(table.id).search("item")
        result = await base.sort("score", "asc").page_size(2).page(2).execute()
        assert [r["score"] for r in result.data] == [30, 40]
        assert result.total == 5 and result.page == 2 and result.page_size == 2
        # `sort` orders descending unless told otherwise; each step is a new builder.
        result = await base.sort("score").page_size(3).execute()
        assert [r["score"] for r in result.data] == [50, 40, 30]
        everything = await sdk.tables.data.query(table.id).execute()
        assert everything.total == 6
    finally:
        await sdk.close()


async def test_insert_refuses_bad_rows():
    sdk, _ = await signed_in("picky")
    try:
        table = await new_table(sdk, {"code": {"type": "TEXT", "unique": True}, "n": {"type": "INTEGER"}})
        await sdk.tables.data.insert(table.id, {"code": "one", "n": 1})
        with pytest.raises(BadRequestError):
            await sdk.tables.data.insert(table.id, {})
        with pytest.raises(BadRequestError):
            await sdk.tables.data.insert(table.id, {"code": "two", "no_such_column": 1})
        with pytest.raises(BadRequestError):
            await sdk.tables.data.insert(table.id, {"code": "three", "n": "abc"})
        with pytest.raises(ConflictError):
            await sdk.tables.data.insert(table.id, {"code": "one", "n": 2})
        rows = await sdk.tables.data.fetch(table.id)
        assert [(r["code"], r["n"]) for r in rows.data] == [("one", 1)], "refused rows left nothing behind"
        assert psql(f"select count(*) from public.{table.name}") == "1"
    finally:
        await sdk.close()


async def test_update_and_delete_rows_by_id_or_another_key():
    sdk, _ = await signed_in("editor")
    try:
        table = await new_table(sdk, {"code": {"type": "TEXT", "unique": True}, "label": {"type": "TEXT"}})
        row = await sdk.tables.data.insert(table.id, {"code": "a1", "label": "first"})
        other = await sdk.tables.data.insert(table.id, {"code": "b2", "label": "second"})

        updated = await sdk.tables.data.update_row(table.id, row["id"], {"label": "changed"})
        assert updated["id"] == row["id"] and updated["label"] == "changed" and updated["code"] == "a1"
        by_code = await sdk.tables.data.update_row(table.id, "b2", {"label": "by code"}, id_column="code")
        assert by_code["id"] == other["id"] and by_code["label"] == "by code"
        assert psql(f"select label from public.{table.name} where code = 'b2'") == "by code"

        with pytest.raises(NotFoundError):
            await sdk.tables.data.update_row(table.id, str(uuid.uuid4()), {"label": "ghost"})
        with pytest.raises(NotFoundError):
            await sdk.tables.data.update_row(table.id, "zz", {"label": "ghost"}, id_column="code")
        with pytest.raises(BadRequestError):
            await sdk.tables.data.update_row(table.id, "a1", {"label": "x"}, id_column="no_such_column")

        deleted = await sdk.tables.data.delete_row(table.id, row["id"])
        assert str(deleted.deleted_id) == row["id"]
        deleted = await sdk.tables.data.delete_row(table.id, "b2", id_column="code")
        assert str(deleted.deleted_id) in ("b2", other["id"])
        with pytest.raises(NotFoundError):
            await sdk.tables.data.delete_row(table.id, row["id"])
        assert (await sdk.tables.data.fetch(table.id)).total == 0
        assert psql(f"select count(*) from public.{table.name}") == "0"
    finally:
        await sdk.close()


async def test_a_private_tables_rows_are_the_owners_alone(client, raw, anon_key):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        table = await new_table(alice)
        row = await alice.tables.data.insert(table.id, {"title": "secret"})

        with pytest.raises(PermissionDeniedError):
            await bob.tables.get(table.id)
        with pytest.raises(PermissionDeniedError):
            await bob.tables.data.fetch(table.id)
        with pytest.raises(PermissionDeniedError):
            await bob.tables.data.insert(table.id, {"title": "bob was here"})
        with pytest.raises(PermissionDeniedError):
            await bob.tables.data.update_row(table.id, row["id"], {"title": "bob was here"})
        with pytest.raises(PermissionDeniedError):
            await bob.tables.data.delete_row(table.id, row["id"])
        with pytest.raises(AuthenticationError):
            await client.tables.data.fetch(table.id)

        # Alice's token sees the row at /rest/v1; Bob's sees an empty table (RLS).
        mine = await rest_rows(raw, rest_headers(anon_key, alice.access_token), table.name)
        assert [r["id"] for r in mine] == [row["id"]]
        response = await raw.get(f"/rest/v1/{table.name}", headers=rest_headers(anon_key, bob.access_token))
        assert response.status_code == 200, response.text
        assert response.json() == [], "RLS hides Alice's rows from Bob"
        assert psql(f"select title from public.{table.name}") == "secret", "Bob changed nothing"
    finally:
        await alice.close()
        await bob.close()


async def test_a_public_tables_rows_are_readable_by_all_and_writable_by_the_owner(client, raw, anon_key):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        table = await new_table(alice, public=True)
        row = await alice.tables.data.insert(table.id, {"title": "hello", "score": 1})
        await alice.tables.data.insert(table.id, {"title": "world", "score": 2})

        for reader in (bob, client):
            rows = await reader.tables.data.fetch(table.id, sort_by="score", sort_order="asc")
            assert [r["title"] for r in rows.data] == ["hello", "world"] and rows.total == 2

        with pytest.raises(PermissionDeniedError):
            await bob.tables.data.insert(table.id, {"title": "bob was here"})
        with pytest.raises(PermissionDeniedError):
            await bob.tables.data.update_row(table.id, row["id"], {"title": "bob was here"})
        with pytest.raises(PermissionDeniedError):
            await bob.tables.data.delete_row(table.id, row["id"])
        assert psql(f"select string_agg(title, ',' order by score) from public.{table.name}") == "hello,world"

        anon_rows = await rest_rows(raw, rest_headers(anon_key), table.name)
        assert sorted(r["title"] for r in anon_rows) == ["hello", "world"], "the anon key reads a public table at /rest/v1"
    finally:
        await alice.close()
        await bob.close()


async def test_rows_are_shared_with_psql_and_rest_v1(raw, anon_key):
    sdk, _ = await signed_in("crosser")
    try:
        table = await new_table(sdk)
        headers = rest_headers(anon_key, sdk.access_token)
        assert await rest_rows(raw, headers, table.name) == [], "served, empty"

        psql(f"insert into public.{table.name} (title, score) values ('from sql', 1)")
        response = await raw.post(
            f"/rest/v1/{table.name}",
            headers={**headers, "Prefer": "return=representation"},
            json={"title": "from rest", "score": 2},
        )
        assert response.status_code == 201, response.text
        posted = response.json()
        assert posted[0]["title"] == "from rest" and posted[0]["id"]
        via_sdk = await sdk.tables.data.insert(table.id, {"title": "from sdk", "score": 3})

        fetched = await sdk.tables.data.fetch(table.id, sort_by="score", sort_order="asc")
        assert [r["title"] for r in fetched.data] == ["from sql", "from rest", "from sdk"]
        assert fetched.data[1]["id"] == posted[0]["id"]

        response = await raw.get(f"/rest/v1/{table.name}", headers=headers)
        assert response.status_code == 200, response.text
        seen = {r["id"]: r["title"] for r in response.json()}
        assert seen.get(via_sdk["id"]) == "from sdk", "the SDK's row is served at /rest/v1"
        assert seen.get(posted[0]["id"]) == "from rest"
    finally:
        await sdk.close()


async def test_the_service_key_reads_and_writes_every_table(service):
    alice, _ = await signed_in("alice")
    try:
        private = await new_table(alice)
        await alice.tables.data.insert(private.id, {"title": "alice's"})
        rows = await service.tables.data.fetch(private.id)
        assert [r["title"] for r in rows.data] == ["alice's"]
        row = await service.tables.data.insert(private.id, {"title": "service's", "score": 7})
        assert row["score"] == 7
        updated = await service.tables.data.update_row(private.id, row["id"], {"score": 8})
        assert updated["score"] == 8
        # The owner sees what the service key wrote.
        assert (await alice.tables.data.fetch(private.id)).total == 2
        assert str((await service.tables.data.delete_row(private.id, row["id"])).deleted_id) == row["id"]
        assert (await alice.tables.data.fetch(private.id)).total == 1
    finally:
        await alice.close()

    # A table made with SQL (no owner): the service key works on it too.
    name = unique_table("sql")
    psql(f"create table public.{name} (id serial primary key, v text)")
    psql(f"insert into public.{name} (v) values ('from sql')")

    async def registered():
        return [t for t in await service.tables.list(search=name) if t.name == name]

    found = await eventually(registered)
    assert found, "the service key lists a table made with SQL"
    table_id = found[0].id
    row = await service.tables.data.insert(table_id, {"v": "from the service key"})
    assert isinstance(row["id"], int), "the serial key is filled"
    rows = await service.tables.data.fetch(table_id, sort_by="id", sort_order="asc")
    assert [r["v"] for r in rows.data] == ["from sql", "from the service key"]
    updated = await service.tables.data.update_row(table_id, str(row["id"]), {"v": "changed"})
    assert updated["v"] == "changed"
