"""The auth matrix, RBAC, ownership (404 for another user's things), rate limits."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import openai
import pytest
from helpers import clear_of_minute_boundary
from server_fixtures import Served, served_fixture, start_server  # noqa: F401 - fixture

from cozy.storage.api_keys import ApiKeys
from cozy.storage.store import Store
from cozy.testing import FakeModelServer

CHAT = {"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]}


def post_chat(s: Served, headers: dict[str, str], **more: object) -> httpx.Response:
    # generous: a server's first turn opens its engines (seconds on a loaded machine)
    body = {**CHAT, **more}
    return httpx.post(s.base_url + "/chat/completions", json=body, headers=headers, timeout=60)


def _assert_openai_error(r: httpx.Response, status: int, type_: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == type_
    return err


def test_auth_matrix(served: Served) -> None:
    n_before = len(served.fake.chat_requests())
    # no key
    err = _assert_openai_error(post_chat(served, {}), 401, "authentication_error")
    assert "cozy keys create" in str(err["message"])
    # bad key, not-a-bearer, garbage token
    for h in (
        {"Authorization": "Bearer sk-cozy-not-a-real-key"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not.a.jwt"},
    ):
        _assert_openai_error(post_chat(served, h), 401, "authentication_error")
    # expired JWT
    expired = served.token("alice", ttl=-10)
    err = _assert_openai_error(
        post_chat(served, {"Authorization": f"Bearer {expired}"}), 401, "authentication_error"
    )
    assert "expired" in str(err["message"]) and "cozy token issue" in str(err["message"])
    # forged JWT: signed with another secret, or alg none
    forged = jwt.encode(
        {"sub": "root", "role": "admin", "exp": time.time() + 600, "iss": "cozy"},
        "another-secret-another-secret-another!",
        algorithm="HS256",
    )
    _assert_openai_error(
        post_chat(served, {"Authorization": f"Bearer {forged}"}), 401, "authentication_error"
    )
    unsigned = jwt.encode({"sub": "root", "exp": time.time() + 600}, None, algorithm="none")
    _assert_openai_error(
        post_chat(served, {"Authorization": f"Bearer {unsigned}"}), 401, "authentication_error"
    )
    assert len(served.fake.chat_requests()) == n_before  # nothing reached the model
    # valid key and valid JWT
    assert post_chat(served, served.headers("alice")).status_code == 200
    good = served.token("carol")
    r = post_chat(served, {"Authorization": f"Bearer {good}"})
    assert r.status_code == 200
    sid = r.headers["x-cozy-session"]

    async def owner(store: Store) -> str:
        return (await store.get_session(sid)).user_id

    assert served.store_call(owner) == "carol"


def test_revoked_key_stops_working(served: Served) -> None:
    assert post_chat(served, served.headers("bob")).status_code == 200

    async def revoke(store: Store) -> None:
        keys = await ApiKeys(store).list("bob")
        await ApiKeys(store).revoke(keys[0].id)

    served.store_call(revoke)
    _assert_openai_error(post_chat(served, served.headers("bob")), 401, "authentication_error")


def test_user_a_never_sees_user_b(served: Served) -> None:
    alice = openai.OpenAI(base_url=served.base_url, api_key=served.keys["alice"], max_retries=0)
    raw = alice.chat.completions.with_raw_response.create(
        model="cozy/assistant", messages=[{"role": "user", "content": "alice's secret"}]
    )
    sid = raw.headers["x-cozy-session"]
    base = served.base_url + f"/chat/sessions/{sid}"
    bob = served.headers("bob")
    with httpx.Client(headers=bob) as c:
        for method, url, body in (
            ("GET", base, None),
            ("GET", base + "/messages", None),
            ("PATCH", base, {"title": "pwned"}),
            ("DELETE", base, None),
        ):
            r = c.request(method, url, json=body)
            err = _assert_openai_error(r, 404, "invalid_request_error")
            assert "alice" not in str(err["message"]) and "secret" not in r.text
        assert sid not in c.get(served.base_url + "/chat/sessions").text
        # binding a chat to alice's session: 404 too, and nothing is written
        r = c.post(
            served.base_url + "/chat/completions",
            json={**CHAT, "messages": [{"role": "user", "content": "hijack"}]},
            headers={"X-Cozy-Session": sid},
        )
        _assert_openai_error(r, 404, "invalid_request_error")
    # alice still sees and owns it
    with httpx.Client(headers=served.headers("alice")) as c:
        assert c.get(base).json()["id"] == sid
        msgs = c.get(base + "/messages").json()["data"]
        assert msgs[0]["content"] == "alice's secret"
        assert all(m["content"] != "hijack" for m in msgs)
        assert c.patch(base, json={"title": "renamed"}).json()["title"] == "renamed"
        assert c.delete(base).json()["deleted"] is True
        assert c.get(base).status_code == 404


def test_sessions_api_create_list_paginate(served: Served) -> None:
    with httpx.Client(headers=served.headers("alice"), base_url=served.base_url) as c:
        made = [
            c.post("/chat/sessions", json={"personality": "coder", "title": f"s{i}"})
            for i in range(3)
        ]
        assert all(r.status_code == 201 for r in made)
        assert made[0].json()["personality_id"] == "coder"
        page = c.get("/chat/sessions", params={"limit": 2}).json()
        assert len(page["data"]) == 2 and page["has_more"] is True
        rest = c.get("/chat/sessions", params={"limit": 2, "offset": 2}).json()
        assert len(rest["data"]) == 1 and rest["has_more"] is False
        r = c.post("/chat/sessions", json={"personality": "nope"})
        _assert_openai_error(r, 404, "invalid_request_error")
        _assert_openai_error(
            c.get("/chat/sessions", params={"limit": 100000}), 400, "invalid_request_error"
        )


def test_roles_on_personalities(served: Served) -> None:
    body = {"id": "pirate", "name": "Pirate", "system_prompt": "Talk like a pirate."}
    with httpx.Client(base_url=served.base_url) as c:
        listed = c.get("/personalities", headers=served.headers("alice")).json()["data"]
        assert "assistant" in [p["id"] for p in listed]
        r = c.post("/personalities", json=body, headers=served.headers("alice"))
        _assert_openai_error(r, 403, "permission_error")
        admin_jwt = {"Authorization": f"Bearer {served.token('ops', role='admin')}"}
        r = c.post("/personalities", json=body, headers=admin_jwt)
        assert r.status_code == 201, r.text
        assert (served.home / "profiles" / "pirate.yaml").is_file()
        got = c.get("/personalities/pirate", headers=served.headers("alice")).json()
        assert got["system_prompt"] == "Talk like a pirate."
        r = c.delete("/personalities/pirate", headers=served.headers("bob"))
        _assert_openai_error(r, 403, "permission_error")
        r = c.delete("/personalities/assistant", headers=served.headers("root"))
        _assert_openai_error(r, 400, "invalid_request_error")
        assert c.delete("/personalities/pirate", headers=served.headers("root")).status_code == 200
        r = c.get("/personalities/pirate", headers=served.headers("alice"))
        _assert_openai_error(r, 404, "invalid_request_error")


def test_rate_limit_429_with_retry_after(cozy_home: Path, fake_model: FakeModelServer) -> None:
    thread, s = start_server(cozy_home, fake_model, rate_limit_rpm=2)
    try:
        clear_of_minute_boundary()  # all of alice's requests in one window
        assert post_chat(s, s.headers("alice")).status_code == 200
        assert post_chat(s, s.headers("alice")).status_code == 200
        r = post_chat(s, s.headers("alice"))
        err = _assert_openai_error(r, 429, "rate_limit_error")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "COZY_SERVER_RATE_LIMIT_RPM" in str(err["message"])
        assert post_chat(s, s.headers("bob")).status_code == 200  # per key
        # the official client surfaces it as RateLimitError
        c = openai.OpenAI(base_url=s.base_url, api_key=s.keys["alice"], max_retries=0)
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    finally:
        thread.stop()


def test_token_limit_and_ip_limit(cozy_home: Path, fake_model: FakeModelServer) -> None:
    thread, s = start_server(cozy_home, fake_model, rate_limit_tpm=100, ip_rate_limit_rpm=4)
    try:
        clear_of_minute_boundary()  # every counted request in one window
        fake_model.queue_reply("a fairly long answer that uses more than five tokens")
        # reserved: ~69 tokens (prompt + personality prompt + max_tokens); ~50 used
        assert post_chat(s, s.headers("alice"), max_tokens=10).status_code == 200
        r = post_chat(s, s.headers("alice"), max_tokens=10)  # 50 used + 69 > 100
        err = _assert_openai_error(r, 429, "rate_limit_error")
        assert "token limit" in str(err["message"])
        post_chat(s, s.headers("bob"))
        post_chat(s, {})  # unauthenticated requests count against the IP too
        r = post_chat(s, s.headers("bob"))
        _assert_openai_error(r, 429, "rate_limit_error")
        assert "from 127.0.0.1" in r.json()["error"]["message"]
    finally:
        thread.stop()


def test_no_auth_only_on_loopback(cozy_home: Path, fake_model: FakeModelServer) -> None:
    from cozy.core.errors import ConfigError
    from cozy.server.config import ServerSettings

    with pytest.raises(ConfigError, match="loopback"):
        ServerSettings(no_auth=True, host="0.0.0.0").check_bind()
    thread, s = start_server(cozy_home, fake_model, no_auth=True)
    try:
        assert post_chat(s, {}).status_code == 200
    finally:
        thread.stop()
