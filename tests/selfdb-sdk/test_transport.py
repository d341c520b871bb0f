"""The API's dialect, as the SDK reads it: `X-API-Key` on every request
(406 without, 401 when wrong), errors as `{"detail": "..."}` mapped to the
SDK's exception classes, and both path forms (with and without the slash)."""

import pytest
from selfdb import AuthenticationError, NotFoundError, SelfDB, SelfDBError


async def test_a_missing_key_is_406_and_a_wrong_one_401(raw):
    response = await raw.get("/users/me")
    assert response.status_code == 406
    assert response.json() == {"detail": "Missing required header: X-API-Key"}
    response = await raw.get("/users/me", headers={"X-API-Key": "not-a-key"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key"}


async def test_the_sdk_maps_errors_to_its_classes(url):
    wrong = SelfDB(url, "not-a-key")
    try:
        with pytest.raises(AuthenticationError) as refused:
            await wrong.auth.me()
        assert refused.value.status_code == 401
        assert "Invalid API key" in str(refused.value)
    finally:
        await wrong.close()


async def test_a_garbage_bearer_is_401_not_the_anonymous_caller(raw, anon_key):
    response = await raw.get("/users/me", headers={"X-API-Key": anon_key, "Authorization": "Bearer garbage"})
    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


async def test_unknown_routes_are_404_with_a_detail(raw, anon_key, client):
    for path in ["/users/nothing/here", "/tables/x/y/z/w", "/storage/buckets/x/y/z"]:
        response = await raw.get(path, headers={"X-API-Key": anon_key})
        assert response.status_code == 404, path
        assert isinstance(response.json()["detail"], str), path
    with pytest.raises(NotFoundError):
        await client.tables.get("not-a-table-id")


async def test_the_anon_key_without_a_user_is_refused_where_a_user_is_needed(client):
    with pytest.raises(SelfDBError) as refused:
        await client.auth.me()
    assert refused.value.status_code == 401
