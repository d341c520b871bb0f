"""Users and sessions through the SDK, on the same users and tokens as
`/auth/v1`: sign-up, login, refresh, logout, lists, counts, admin changes."""

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


async def test_logout_and_logout_all(url, anon_key):
    from conftest import signed_in

    first, email = await signed_in("lou")
    second = SelfDB(url, anon_key)
    try:
        await second.auth.login(email=email, password=PASSWORD)
        await first.auth.logout()
        with pytest.raises(AuthenticationError):
            await first.auth.me()
        # The second client's session is another one: still fine, until all end.
        assert (await second.auth.me()).email == email
        third = SelfDB(url, anon_key)
        try:
            await third.auth.login(email=email, password=PASSWORD)
            await third.auth.logout_all()
        finally:
            await third.close()
        with pytest.raises(AuthenticationError):
            await second.auth.me()
    finally:
        await first.close()
        await second.close()


async def test_lists_counts_and_admin_changes(service, url, anon_key):
    from conftest import signed_in

    marker = unique_email("zed").split("@")[0]
    mine, email = await signed_in(marker)
    other, other_email = await signed_in(marker + "x")
    try:
        assert await mine.auth.count(search=marker) == 2
        listed = await mine.auth.users.list(search=marker, sort_by="email", sort_order="asc")
        assert [u.email for u in listed] == sorted([email, other_email])
        assert len(await mine.auth.users.list(search=marker, limit=1, skip=1)) == 1
        me = await mine.auth.me()
        assert (await mine.auth.users.get(me.id)).email == email
        from selfdb import NotFoundError, PermissionDeniedError, SelfDBError
        from selfdb.models import UserUpdate

        with pytest.raises(NotFoundError):
            await mine.auth.users.get("not-a-uuid")
        with pytest.raises(SelfDBError) as bad:
            await mine.auth.users.list(sort_by="password")
        assert bad.value.status_code == 422
        # Own names and password; not another user, not a role.
        updated = await mine.auth.users.update(me.id, UserUpdate(firstName="Zed", password="another horse 2"))
        assert updated.firstName == "Zed"
        other_me = await other.auth.me()
        with pytest.raises(PermissionDeniedError):
            await mine.auth.users.update(other_me.id, UserUpdate(firstName="Nope"))
        with pytest.raises(PermissionDeniedError):
            await mine.auth.users.update(me.id, UserUpdate(role=UserRole.ADMIN))
        with pytest.raises(PermissionDeniedError):
            await mine.auth.users.delete(other_me.id)
        # The service key makes an admin, who may then change and delete others.
        promoted = await service.auth.users.update(me.id, UserUpdate(role=UserRole.ADMIN))
        assert promoted.role == UserRole.ADMIN
        renamed = await mine.auth.users.update(other_me.id, UserUpdate(lastName="Renamed"))
        assert renamed.lastName == "Renamed"
        deleted = await mine.auth.users.delete(other_me.id)
        assert deleted.deleted_id == other_me.id
        with pytest.raises(NotFoundError):
            await mine.auth.users.get(other_me.id)
    finally:
        await mine.close()
        await other.close()


async def test_a_new_password_ends_the_users_other_sessions(url, anon_key):
    from conftest import signed_in
    from selfdb.models import UserUpdate

    first, email = await signed_in("pat")
    second = SelfDB(url, anon_key)
    try:
        await second.auth.login(email=email, password=PASSWORD)
        me = await first.auth.me()
        await first.auth.users.update(me.id, UserUpdate(password="a new horse 3"))
        # The session that changed it goes on; the other one has ended.
        assert (await first.auth.me()).email == email
        with pytest.raises(AuthenticationError):
            await second.auth.me()
        await second.auth.login(email=email, password="a new horse 3")
        assert (await second.auth.me()).email == email
    finally:
        await first.close()
        await second.close()
