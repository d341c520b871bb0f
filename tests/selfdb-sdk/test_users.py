"""Users and sessions through the SDK, on the same users and tokens as
`/auth/v1`. WIP (issue 25, chunk 2): sign-up, login, refresh, me."""

import pytest
from selfdb import AuthenticationError, ConflictError, SelfDB
from selfdb.models import UserCreate, UserRole

from conftest import PASSWORD, unique_email


async def test_sign_up_login_me_and_refresh(client):
    email = unique_email("ada")
    user = await client.auth.users.create(UserCreate(email=email, password=PASSWORD, firstName="Ada", lastName="Lovelace"))
    assert user.email == email and user.firstName == "Ada" and user.lastName == "Lovelace"
    assert user.role == UserRole.USER
    assert user.created_at is not None, "timestamps parse"
    tokens = await client.auth.login(email=email, password=PASSWORD)
    assert tokens.access_token and tokens.refresh_token and tokens.token_type == "bearer"
    me = await client.auth.me()
    assert me.id == user.id and me.email == email
    old_refresh = tokens.refresh_token
    rotated = await client.auth.refresh()
    assert rotated.refresh_token != old_refresh
    assert (await client.auth.me()).id == user.id
    with pytest.raises(AuthenticationError):
        await client.auth.refresh(refresh_token=old_refresh)


async def test_duplicates_and_wrong_passwords_are_refused(client):
    email = unique_email("bob")
    await client.auth.users.create(UserCreate(email=email, password=PASSWORD, firstName="Bob", lastName="B"))
    with pytest.raises(ConflictError):
        await client.auth.users.create(UserCreate(email=email, password=PASSWORD, firstName="Bob", lastName="B"))
    with pytest.raises(AuthenticationError) as refused:
        await client.auth.login(email=email, password="not the password")
    assert "Incorrect email or password" in str(refused.value)


async def test_one_user_two_apis(client, raw, anon_key):
    """A user made here signs in at /auth/v1, and one made there logs in here."""
    email = unique_email("cross")
    await client.auth.users.create(UserCreate(email=email, password=PASSWORD, firstName="C", lastName="X"))
    response = await raw.post(
        "/auth/v1/token?grant_type=password",
        headers={"apikey": anon_key},
        json={"email": email, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    other = unique_email("gotrue")
    response = await raw.post("/auth/v1/signup", headers={"apikey": anon_key}, json={"email": other, "password": PASSWORD})
    assert response.status_code == 200, response.text
    tokens = await client.auth.login(email=other, password=PASSWORD)
    # The SelfDB token works on the Supabase APIs too.
    response = await raw.get("/auth/v1/user", headers={"apikey": anon_key, "Authorization": f"Bearer {tokens.access_token}"})
    assert response.status_code == 200 and response.json()["email"] == other
