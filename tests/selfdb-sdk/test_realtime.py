"""Realtime through the SDK (`/realtime/socket`): changes to a table made
through `/tables` reach a subscribed socket as SelfDB's frames, whether the
write came through the SDK, `/rest/v1` or psql; another user's private
table sends nothing to anyone else while a public one reaches every socket;
unsubscribing and `realtime_enabled=False` stop delivery; bad credentials
are refused before the upgrade.

The SDK's `subscribe()` does not wait for the server's reply, so each test
first writes probe rows until one arrives (with a deadline); after that,
changes arrive in commit order, so a change to a second table works as a
barrier: once it has arrived, an earlier change that was due has too."""

import asyncio

import pytest
import websockets
from selfdb import SelfDB
from selfdb.models import TableCreate, TableUpdate

from conftest import ANON_KEY, URL, eventually, psql, rest_headers, signed_in, unique_table

SCHEMA = {"title": {"type": "TEXT"}, "n": {"type": "INTEGER", "default": 0}}


class Inbox:
    """Everything one channel received, in order."""

    def __init__(self):
        self.events = []

    def __call__(self, payload):
        self.events.append(payload)

    def of(self, kind, title=None):
        return [
            p
            for p in self.events
            if p.event == kind and (title is None or (p.new or p.old or {}).get("title") == title)
        ]


async def subscribe(sdk, table_name):
    """A channel on `table:<name>` with an inbox for every event."""
    if not sdk.realtime.connected:
        await sdk.realtime.connect()
    inbox = Inbox()
    channel = sdk.realtime.channel(f"table:{table_name}")
    channel.on("*", inbox)
    await channel.subscribe()
    return channel, inbox


async def probe_until_heard(writer, table_id, inbox, timeout=30.0):
    """Inserts probe rows until `inbox` has one: the join has taken effect."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    attempt = 0
    while loop.time() < deadline:
        attempt += 1
        title = f"probe-{attempt}"
        await writer.tables.data.insert(table_id, {"title": title})
        if await eventually(lambda: _async(bool(inbox.of("INSERT", title))), timeout=1.0, interval=0.05):
            return
    pytest.fail(f"no probe row arrived within {timeout} s")


async def _async(value):
    return value


async def heard(inbox, kind, title, timeout=15.0):
    """Waits for one `kind` event of the row titled `title`."""
    found = await eventually(lambda: _async(inbox.of(kind, title)), timeout=timeout, interval=0.05)
    assert found, f"no {kind} of {title!r} arrived; got {[(p.event, p.new, p.old) for p in inbox.events]}"
    return found[0]


async def test_changes_from_every_api_reach_the_owner(raw):
    sdk, _ = await signed_in("rt")
    try:
        table = await sdk.tables.create(TableCreate(name=unique_table(), table_schema=SCHEMA))
        assert table.realtime
        _, inbox = await subscribe(sdk, table.name)
        await probe_until_heard(sdk, table.id, inbox)

        row = await sdk.tables.data.insert(table.id, {"title": "sdk", "n": 1})
        inserted = await heard(inbox, "INSERT", "sdk")
        assert inserted.table == table.name and inserted.new["id"] == row["id"] and inserted.old is None
        await sdk.tables.data.update_row(table.id, row["id"], {"n": 2})
        updated = await eventually(lambda: _async([p for p in inbox.events if p.event == "UPDATE"]), timeout=15)
        assert updated, "no UPDATE arrived"
        assert updated[0].new["n"] == 2 and updated[0].old["n"] == 1, "whole old rows (replica identity full)"
        await sdk.tables.data.delete_row(table.id, row["id"])
        deleted = await heard(inbox, "DELETE", "sdk")
        assert deleted.old["id"] == row["id"] and deleted.new is None

        response = await raw.post(
            f"/rest/v1/{table.name}",
            headers=rest_headers(ANON_KEY, sdk.access_token, Prefer="return=minimal"),
            json={"title": "rest"},
        )
        assert response.status_code == 201, response.text
        await heard(inbox, "INSERT", "rest")
        psql(f"insert into public.{table.name} (title) values ('psql')")
        await heard(inbox, "INSERT", "psql")
        kinds = {p.event for p in inbox.events}
        assert kinds <= {"INSERT", "UPDATE", "DELETE"}, f"only changes reach the app: {kinds}"
    finally:
        await sdk.close()


async def test_private_tables_stay_private_and_public_ones_are_shared():
    owner, _ = await signed_in("rtowner")
    other, _ = await signed_in("rtother")
    anon = SelfDB(URL, ANON_KEY)
    try:
        private = await owner.tables.create(TableCreate(name=unique_table(), table_schema=SCHEMA))
        shared = await owner.tables.create(TableCreate(name=unique_table(), table_schema=SCHEMA, public=True))
        _, owner_private = await subscribe(owner, private.name)
        _, other_private = await subscribe(other, private.name)
        _, other_shared = await subscribe(other, shared.name)
        _, anon_private = await subscribe(anon, private.name)
        _, anon_shared = await subscribe(anon, shared.name)
        # A socket handles its frames in order: once the shared table's
        # probe reaches a socket, its join of the private table (sent
        # first) has been handled too.
        await probe_until_heard(owner, private.id, owner_private)
        await probe_until_heard(owner, shared.id, other_shared)
        await probe_until_heard(owner, shared.id, anon_shared)

        # Changes arrive in commit order: once the public row has reached
        # the others, the private one before it would have too.
        await owner.tables.data.insert(private.id, {"title": "secret"})
        await owner.tables.data.insert(shared.id, {"title": "news"})
        await heard(other_shared, "INSERT", "news")
        await heard(anon_shared, "INSERT", "news")
        await heard(owner_private, "INSERT", "secret")
        assert other_private.events == [], "another user hears nothing of a private table"
        assert anon_private.events == [], "the anon key hears nothing of a private table"
    finally:
        for sdk in (owner, other, anon):
            await sdk.close()


async def test_unsubscribing_and_disabling_realtime_stop_delivery():
    sdk, _ = await signed_in("rtstop")
    try:
        quiet = await sdk.tables.create(TableCreate(name=unique_table(), table_schema=SCHEMA))
        barrier = await sdk.tables.create(TableCreate(name=unique_table(), table_schema=SCHEMA))
        channel, quiet_inbox = await subscribe(sdk, quiet.name)
        _, barrier_inbox = await subscribe(sdk, barrier.name)
        await probe_until_heard(sdk, quiet.id, quiet_inbox)
        await probe_until_heard(sdk, barrier.id, barrier_inbox)

        await channel.unsubscribe()
        seen = len(quiet_inbox.events)
        await sdk.tables.data.insert(quiet.id, {"title": "unheard"})
        await sdk.tables.data.insert(barrier.id, {"title": "after-leave"})
        await heard(barrier_inbox, "INSERT", "after-leave")
        assert len(quiet_inbox.events) == seen, "no change after unsubscribe"

        # Subscribed again, then taken out of realtime: nothing more.
        _, again = await subscribe(sdk, quiet.name)
        await probe_until_heard(sdk, quiet.id, again)
        updated = await sdk.tables.update(quiet.id, TableUpdate(realtime_enabled=False))
        assert updated.realtime is False
        heard_before = len(again.events)
        await sdk.tables.data.insert(quiet.id, {"title": "not published"})
        await sdk.tables.data.insert(barrier.id, {"title": "after-disable"})
        await heard(barrier_inbox, "INSERT", "after-disable")
        assert len(again.events) == heard_before, "a table out of realtime sends nothing"
    finally:
        await sdk.close()


@pytest.mark.parametrize(
    "query, status",
    [
        ("", 406),
        ("?X-API-Key=not-a-key", 401),
        (f"?X-API-Key={ANON_KEY}&token=not-a-token", 401),
    ],
)
async def test_bad_credentials_are_refused_before_the_upgrade(query, status):
    url = URL.replace("http://", "ws://") + "/realtime/socket" + query
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == status


async def test_an_unknown_topic_sends_nothing_and_the_socket_stays_up():
    sdk, _ = await signed_in("rtodd")
    try:
        table = await sdk.tables.create(TableCreate(name=unique_table(), table_schema=SCHEMA))
        _, nowhere = await subscribe(sdk, "no_such_table_at_all")
        _, inbox = await subscribe(sdk, table.name)
        await probe_until_heard(sdk, table.id, inbox)
        assert nowhere.events == [] and sdk.realtime.connected
    finally:
        await sdk.close()
