"""Fixtures for driving SelfDB's own API with SelfDB's Python SDK (PyPI
`selfdb`, pinned in requirements.txt) against a host that
tests/tests/all/selfdb_sdk.rs started. Every wait has a deadline."""

import asyncio
import os
import subprocess
import time
import uuid

import httpx
import pytest
from selfdb import SelfDB
from selfdb.models import UserCreate

URL = os.environ["SELFDB_URL"]
ANON_KEY = os.environ["SELFDB_ANON_KEY"]
SERVICE_KEY = os.environ["SELFDB_SERVICE_KEY"]
# The database owner's URL, for checking what the API did with plain SQL.
DATABASE_URL = os.environ.get("DATABASE_URL")
PASSWORD = "correct horse 1"


@pytest.fixture
def url():
    return URL


@pytest.fixture
def anon_key():
    return ANON_KEY


@pytest.fixture
def service_key():
    return SERVICE_KEY


@pytest.fixture
async def client():
    """The SDK as an app holds it: the anon key, no user yet."""
    sdk = SelfDB(URL, ANON_KEY)
    yield sdk
    await sdk.close()


@pytest.fixture
async def service():
    """The SDK with the service key (an admin's tools)."""
    sdk = SelfDB(URL, SERVICE_KEY)
    yield sdk
    await sdk.close()


@pytest.fixture
async def raw():
    """Plain HTTP, for what the SDK cannot send (a missing key, bad JSON)."""
    async with httpx.AsyncClient(base_url=URL, timeout=30) as http:
        yield http


def unique_email(name="user"):
    return f"{name}-{uuid.uuid4().hex[:12]}@example.com"


async def signed_in(name="user"):
    """A new user, signed up and logged in through the SDK; the caller closes it."""
    sdk = SelfDB(URL, ANON_KEY)
    email = unique_email(name)
    await sdk.auth.users.create(UserCreate(email=email, password=PASSWORD, firstName=name.title(), lastName="Tester"))
    await sdk.auth.login(email=email, password=PASSWORD)
    return sdk, email


async def eventually(check, timeout=30.0, interval=0.1):
    """Awaits `check()` until it is truthy or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(interval)


def unique_table(prefix="t"):
    """A table name no other test uses (the tests share one database)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def psql(sql, timeout=30):
    """Runs `sql` as the database owner; returns psql's unaligned, tuples-only
    output, stripped. Fails the test when psql does."""
    assert DATABASE_URL, "DATABASE_URL is not set"
    done = subprocess.run(
        ["/usr/bin/psql", DATABASE_URL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"psql failed ({done.returncode}): {done.stderr.strip()}\n{sql}"
    return done.stdout.strip()


def table_exists(name, schema="public"):
    """Whether PostgreSQL has the table `schema.name` (names are plain identifiers here)."""
    return psql(f"select to_regclass('{schema}.{name}') is not null") == "t"


def rest_headers(anon_key, token=None, **extra):
    """Headers for `/rest/v1` (PostgREST's dialect): the anon key, and a user's
    access token when given."""
    headers = {"apikey": anon_key}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra)
    return headers


def unique_bucket(prefix="b"):
    """A bucket name no other test uses (letters, digits and '-')."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def storage_headers(key, **extra):
    """Headers for `/storage/v1` (Supabase's dialect): `key` as the apikey and
    as the bearer."""
    headers = {"apikey": key, "Authorization": f"Bearer {key}"}
    headers.update(extra)
    return headers
