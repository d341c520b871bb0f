"""Tables through the SDK (`/tables`), as real PostgreSQL tables in `public`:
creating them in both `table_schema` forms (type aliases, the added `id`
key), refusing bad input without ever running it as SQL, listing, counting
and reading with each caller's visibility (service key, owner, other user,
anon key), updating, deleting, changing columns, tables made with plain SQL,
and a new table being served at `/rest/v1` too."""

import uuid
from dataclasses import asdict

import pytest
from selfdb import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SelfDBError,
)
from selfdb.models import ColumnDefinition, ColumnUpdate, TableCreate, TableUpdate

from conftest import eventually, psql, rest_headers, signed_in, table_exists, unique_table

COLUMN_KEYS = {"name", "type", "nullable", "default", "primary_key", "unique"}


def by_name(table):
    """The table's columns, by name."""
    return {column["name"]: column for column in table.columns}


def column_type_in_db(table, column):
    return psql(
        "select format_type(atttypid, atttypmod) from pg_attribute "
        f"where attrelid = 'public.{table}'::regclass and attname = '{column}' and not attisdropped"
    )


async def test_create_with_a_column_map_adds_an_id_key_and_a_real_table():
    sdk, _ = await signed_in("maker")
    try:
        me = await sdk.auth.me()
        name = unique_table()
        table = await sdk.tables.create(
            TableCreate(
                name=name,
                table_schema={"title": {"type": "TEXT", "nullable": False}, "score": {"type": "INTEGER", "default": 0}},
                description="things to score",
            )
        )
        uuid.UUID(table.id)  # a uuid
        assert table.name == name and table.schema_name == "public"
        assert table.owner_id == me.id, "the caller owns it"
        assert table.public is False and table.realtime is True
        assert table.description == "things to score"
        assert table.created_at is not None
        columns = by_name(table)
        assert set(columns) == {"id", "title", "score"}
        for column in table.columns:
            assert COLUMN_KEYS <= set(column), column
        assert columns["id"]["type"] == "uuid" and columns["id"]["primary_key"] is True, "an id key is added"
        assert columns["title"]["type"] == "text" and columns["title"]["nullable"] is False
        assert columns["score"]["type"] == "integer" and columns["score"]["primary_key"] is False
        assert table_exists(name), "a real table in public"
        assert psql(f"insert into public.{name} (title) values ('a') returning score") == "0", "the default holds"
        # Read back as created.
        again = await sdk.tables.get(table.id)
        assert again.name == name and again.owner_id == me.id and by_name(again).keys() == columns.keys()
    finally:
        await sdk.close()


async def test_create_with_a_column_list_and_every_type_alias(service):
    aliases = {
        "TEXT": "text",
        "STRING": "character varying(255)",
        "VARCHAR": "character varying(255)",
        "INTEGER": "integer",
        "INT": "integer",
        "BIGINT": "bigint",
        "DECIMAL": "numeric(10,2)",
        "FLOAT": "double precision",
        "BOOLEAN": "boolean",
        "BOOL": "boolean",
        "DATE": "date",
        "TIMESTAMP": "timestamp with time zone",
        "DATETIME": "timestamp with time zone",
        "JSON": "jsonb",
        "JSONB": "jsonb",
        "UUID": "uuid",
    }
    columns = [asdict(ColumnDefinition(name="code", type="TEXT", nullable=False, primary_key=True))]
    columns += [asdict(ColumnDefinition(name=f"c_{alias.lower()}", type=alias)) for alias in aliases]
    columns.append(asdict(ColumnDefinition(name="slug", type="TEXT", unique=True)))
    name = unique_table()
    table = await service.tables.create(TableCreate(name=name, table_schema={"columns": columns}))
    assert table.owner_id is None, "made with the service key: no user owns it"
    got = by_name(table)
    assert "id" not in got, "a key was given: no id is added"
    assert got["code"]["primary_key"] is True and got["code"]["nullable"] is False
    assert got["slug"]["unique"] is True and got["slug"]["primary_key"] is False
    for alias, expected in aliases.items():
        column = f"c_{alias.lower()}"
        assert got[column]["type"] == expected, f"{alias} → {got[column]['type']}"
        assert got[column]["nullable"] is True
    assert column_type_in_db(name, "c_string") == "character varying(255)"
    assert column_type_in_db(name, "c_datetime") == "timestamp with time zone"


async def test_create_needs_a_user_and_refuses_bad_input(client):
    schema = {"title": {"type": "TEXT"}}
    name = unique_table()
    with pytest.raises(AuthenticationError):
        await client.tables.create(TableCreate(name=name, table_schema=schema))
    assert not table_exists(name), "nothing made for the anon key"

    sdk, _ = await signed_in("strict")
    try:
        suffix = uuid.uuid4().hex[:8]
        for bad in [f"1abc_{suffix}", f"Has_Upper_{suffix}", f"has-dash-{suffix}", f"x_{suffix}; drop table y", "a" * 64, ""]:
            with pytest.raises(SelfDBError) as refused:
                await sdk.tables.create(TableCreate(name=bad, table_schema=schema))
            assert refused.value.status_code == 422, f"{bad!r}: {refused.value}"

        for bad_type in ["text); drop table x; --", "notatype"]:
            name = unique_table()
            with pytest.raises(BadRequestError):
                await sdk.tables.create(TableCreate(name=name, table_schema={"v": {"type": bad_type}}))
            assert not table_exists(name), f"no table after the refused type {bad_type!r}"

        name = unique_table()
        await sdk.tables.create(TableCreate(name=name, table_schema=schema))
        with pytest.raises(ConflictError):
            await sdk.tables.create(TableCreate(name=name, table_schema={"other": {"type": "INTEGER"}}))
        assert column_type_in_db(name, "title") == "text", "the first table is untouched"
    finally:
        await sdk.close()


async def test_an_injection_shaped_default_is_only_a_text_literal():
    canary = unique_table("canary")
    psql(f"create table public.{canary} (id int)")
    sdk, _ = await signed_in("sly")
    try:
        name = unique_table()
        sneaky = f"now()); drop table public.{canary}; --"
        table = await sdk.tables.create(
            TableCreate(name=name, table_schema={"note": {"type": "TEXT", "default": sneaky}})
        )
        assert "note" in by_name(table)
        assert table_exists(canary), "the default was not run as SQL"
        assert psql(f"insert into public.{name} default values returning note") == sneaky, "the default is that text"
    finally:
        await sdk.close()


async def test_list_and_count_show_what_each_caller_may_see(client, service):
    marker = unique_table("vis")
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        private = await alice.tables.create(TableCreate(name=f"{marker}_a_private", table_schema={"v": {"type": "TEXT"}}))
        public = await alice.tables.create(
            TableCreate(name=f"{marker}_a_public", table_schema={"v": {"type": "TEXT"}}, public=True)
        )
        bobs = await bob.tables.create(TableCreate(name=f"{marker}_b_private", table_schema={"v": {"type": "TEXT"}}))
        assert public.public is True

        async def names(sdk):
            return sorted(t.name for t in await sdk.tables.list(search=marker))

        assert await names(service) == sorted([private.name, public.name, bobs.name]), "the service key sees all"
        assert await names(alice) == sorted([private.name, public.name]), "own tables and public ones"
        assert await names(bob) == sorted([public.name, bobs.name]), "own tables and public ones"
        assert await names(client) == [public.name], "the anon key sees public tables"
        assert await service.tables.count(search=marker) == 3
        assert await alice.tables.count(search=marker) == 2
        assert await bob.tables.count(search=marker) == 2
        assert await client.tables.count(search=marker) == 1
    finally:
        await alice.close()
        await bob.close()


async def test_list_searches_sorts_pages_and_checks_its_parameters():
    marker = unique_table("lst")
    word = uuid.uuid4().hex[:12]
    sdk, _ = await signed_in("lister")
    try:
        made = []
        for suffix, description in [("b", None), ("c", f"about {word}"), ("a", None)]:
            made.append(
                await sdk.tables.create(
                    TableCreate(name=f"{marker}_{suffix}", table_schema={"v": {"type": "TEXT"}}, description=description)
                )
            )
        names = [t.name for t in made]

        listed = await sdk.tables.list(search=marker, sort_by="name", sort_order="asc")
        assert [t.name for t in listed] == sorted(names)
        listed = await sdk.tables.list(search=marker, sort_by="name", sort_order="desc")
        assert [t.name for t in listed] == sorted(names, reverse=True)
        listed = await sdk.tables.list(search=marker, sort_by="created_at", sort_order="asc")
        assert [t.name for t in listed] == names, "creation order"
        listed = await sdk.tables.list(search=marker, sort_by="updated_at", sort_order="desc")
        assert sorted(t.name for t in listed) == sorted(names)
        page = await sdk.tables.list(search=marker, sort_by="name", sort_order="asc", skip=1, limit=1)
        assert [t.name for t in page] == [sorted(names)[1]], "skip and limit"

        # The search matches descriptions (case-insensitively) as well as names.
        assert [t.name for t in await sdk.tables.list(search=word.upper())] == [f"{marker}_c"]
        assert await sdk.tables.count(search=word) == 1
        assert await sdk.tables.count(search=marker.upper()) == 3

        for params in [
            {"sort_by": "owner_id"},
            {"sort_by": "name", "sort_order": "sideways"},
            {"limit": 0},
            {"limit": 1001},
        ]:
            with pytest.raises(SelfDBError) as refused:
                await sdk.tables.list(search=marker, **params)
            assert refused.value.status_code == 422, f"{params}: {refused.value}"
    finally:
        await sdk.close()


async def test_get_by_the_owner_other_users_and_the_anon_key(client):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        private = await alice.tables.create(TableCreate(name=unique_table(), table_schema={"v": {"type": "TEXT"}}))
        public = await alice.tables.create(
            TableCreate(name=unique_table(), table_schema={"v": {"type": "TEXT"}}, public=True)
        )
        assert (await alice.tables.get(private.id)).name == private.name
        for missing in [str(uuid.uuid4()), "not-a-uuid"]:
            with pytest.raises(NotFoundError):
                await alice.tables.get(missing)
        with pytest.raises(PermissionDeniedError):
            await bob.tables.get(private.id)
        with pytest.raises(AuthenticationError):
            await client.tables.get(private.id)
        seen_by_bob = await bob.tables.get(public.id)
        assert seen_by_bob.name == public.name and seen_by_bob.owner_id == public.owner_id
        assert (await client.tables.get(public.id)).name == public.name
    finally:
        await alice.close()
        await bob.close()


async def test_update_renames_describes_and_switches_realtime_for_the_owner_only(service):
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        schema = {"v": {"type": "TEXT"}}
        table = await alice.tables.create(TableCreate(name=unique_table(), table_schema=schema))
        taken = await alice.tables.create(TableCreate(name=unique_table(), table_schema=schema))
        old_name, new_name = table.name, unique_table()

        updated = await alice.tables.update(
            table.id,
            TableUpdate(name=new_name, description="renamed", public=True, metadata={"k": "v"}, realtime_enabled=False),
        )
        assert updated.id == table.id and updated.name == new_name
        assert updated.description == "renamed" and updated.public is True
        assert updated.realtime is False
        assert table_exists(new_name) and not table_exists(old_name), "PostgreSQL has the new name"
        again = await alice.tables.get(table.id)
        assert again.name == new_name and again.realtime is False

        # Others may read it now (public), never change it.
        assert (await bob.tables.get(table.id)).name == new_name
        with pytest.raises(PermissionDeniedError):
            await bob.tables.update(table.id, TableUpdate(description="mine now"))
        with pytest.raises(PermissionDeniedError):
            await bob.tables.update(taken.id, TableUpdate(description="mine now"))
        with pytest.raises(BadRequestError):
            await alice.tables.update(table.id, TableUpdate(table_schema={"w": {"type": "TEXT"}}))
        with pytest.raises(ConflictError):
            await alice.tables.update(table.id, TableUpdate(name=taken.name))
        assert table_exists(new_name) and table_exists(taken.name), "refused renames change nothing"

        # The service key may change any table.
        by_service = await service.tables.update(table.id, TableUpdate(realtime_enabled=True))
        assert by_service.realtime is True and by_service.description == "renamed"
    finally:
        await alice.close()
        await bob.close()


async def test_delete_drops_the_table_for_the_owner_only():
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        table = await alice.tables.create(
            TableCreate(name=unique_table(), table_schema={"v": {"type": "TEXT"}}, public=True)
        )
        with pytest.raises(PermissionDeniedError):
            await bob.tables.delete(table.id)
        assert table_exists(table.name), "a refused delete drops nothing"
        deleted = await alice.tables.delete(table.id)
        assert deleted.deleted_id == table.id
        with pytest.raises(NotFoundError):
            await alice.tables.get(table.id)
        assert not table_exists(table.name), "PostgreSQL dropped it"
        with pytest.raises(NotFoundError):
            await alice.tables.delete(table.id)
    finally:
        await alice.close()
        await bob.close()


async def test_columns_are_added_changed_and_removed_by_the_owner_only():
    alice, _ = await signed_in("alice")
    bob, _ = await signed_in("bob")
    try:
        name = unique_table()
        table = await alice.tables.create(
            TableCreate(name=name, table_schema={"title": {"type": "TEXT"}}, public=True)
        )
        added = await alice.tables.columns.add(table.id, ColumnDefinition(name="rating", type="INTEGER", default="5"))
        assert by_name(added)["rating"]["type"] == "integer"
        assert psql(f"insert into public.{name} (title) values ('x') returning rating") == "5"
        with pytest.raises(ConflictError):
            await alice.tables.columns.add(table.id, ColumnDefinition(name="rating", type="TEXT"))

        renamed = await alice.tables.columns.update(table.id, "rating", ColumnUpdate(new_name="stars"))
        assert "stars" in by_name(renamed) and "rating" not in by_name(renamed)
        wider = await alice.tables.columns.update(table.id, "stars", ColumnUpdate(type="BIGINT"))
        assert by_name(wider)["stars"]["type"] == "bigint"
        assert psql(f"select stars from public.{name}") == "5", "the data is converted"
        texty = await alice.tables.columns.update(table.id, "stars", ColumnUpdate(type="TEXT", nullable=False))
        assert by_name(texty)["stars"]["type"] == "text" and by_name(texty)["stars"]["nullable"] is False
        assert column_type_in_db(name, "stars") == "text"
        assert psql(f"select stars from public.{name}") == "5"
        with pytest.raises(NotFoundError):
            await alice.tables.columns.update(table.id, "nothing_here", ColumnUpdate(new_name="x"))

        with pytest.raises(PermissionDeniedError):
            await bob.tables.columns.add(table.id, ColumnDefinition(name="bobs", type="TEXT"))
        with pytest.raises(PermissionDeniedError):
            await bob.tables.columns.update(table.id, "stars", ColumnUpdate(new_name="bobs"))
        with pytest.raises(PermissionDeniedError):
            await bob.tables.columns.remove(table.id, "stars")
        assert column_type_in_db(name, "stars") == "text", "refused changes change nothing"

        removed = await alice.tables.columns.remove(table.id, "stars")
        assert "stars" not in by_name(removed) and "title" in by_name(removed)
        assert column_type_in_db(name, "stars") == "", "PostgreSQL dropped the column"
    finally:
        await alice.close()
        await bob.close()


async def test_a_table_made_with_sql_is_listed_for_the_service_key_and_no_users_to_change(service):
    name = unique_table("sql")
    psql(f"create table public.{name} (id serial primary key, v text)")

    async def listed():
        return [t for t in await service.tables.list(search=name) if t.name == name]

    found = await eventually(listed)
    assert found, "the service key lists a table made with SQL"
    table = found[0]
    assert table.owner_id is None and table.schema_name == "public"
    assert {"id", "v"} <= set(by_name(table))

    sdk, _ = await signed_in("intruder")
    try:
        with pytest.raises(PermissionDeniedError):
            await sdk.tables.update(table.id, TableUpdate(description="mine now"))
        with pytest.raises(PermissionDeniedError):
            await sdk.tables.delete(table.id)
        assert table_exists(name), "still there"
    finally:
        await sdk.close()


async def test_a_new_table_is_served_at_rest_v1_for_its_owner(raw, anon_key):
    sdk, _ = await signed_in("rester")
    try:
        table = await sdk.tables.create(TableCreate(name=unique_table(), table_schema={"v": {"type": "TEXT"}}))
        headers = rest_headers(anon_key, sdk.access_token)

        async def served():
            response = await raw.get(f"/rest/v1/{table.name}", headers=headers)
            return response if response.status_code == 200 else None

        response = await eventually(served)
        assert response is not None, "GET /rest/v1/<table> answers 200 with the owner's token"
        assert response.json() == []
    finally:
        await sdk.close()
