"""Users on the server: a JWT must name a known, active user; `cozy users disable/enable`;
the STT WebSocket refuses with the same 401 JSON as every route."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
import websockets
from server_fixtures import Served, served_fixture  # noqa: F401 - the fixture
from typer.testing import CliRunner

from cozy.cli.app import app

HI = [{"role": "user", "content": "hi"}]


def _chat(served: Served, bearer: str) -> httpx.Response:
    return httpx.post(
        served.base_url + "/chat/completions",
        json={"model": "cozy", "messages": HI},
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=60,
    )


def _refused(r: httpx.Response, words: str) -> None:
    assert r.status_code == 401, r.text
    err = r.json()["error"]
    assert err["type"] == "authentication_error" and words in err["message"], err


def test_jwt_for_an_unknown_user_is_refused(served: Served) -> None:
    _refused(_chat(served, served.token("ghost", known=False)), "does not know")
    assert _chat(served, served.token("carol")).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=served.base_url, api_key=served.token("nobody", known=False), max_retries=0
        ).models.list()


def test_disable_and_enable_a_user(served: Served) -> None:
    cli = CliRunner()
    env = {"COZY_HOME": str(served.home), "COZY_CONFIG": str(served.home / "engines.yaml")}
    jwt = served.token("alice")
    assert _chat(served, served.keys["alice"]).status_code == 200
    out = cli.invoke(app, ["users", "disable", "alice"], env=env)
    assert out.exit_code == 0, out.output
    _refused(_chat(served, served.keys["alice"]), "disabled")
    _refused(_chat(served, jwt), "cozy users enable alice")

    async def async_chat() -> str | None:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key=jwt, max_retries=0) as c:
            done = await c.chat.completions.create(model="cozy", messages=HI)  # type: ignore[arg-type]
            return done.choices[0].message.content

    with pytest.raises(openai.AuthenticationError):
        asyncio.run(async_chat())
    assert _chat(served, served.keys["bob"]).status_code == 200  # others unaffected
    listed = cli.invoke(app, ["users", "list", "--json"], env=env)
    assert '"status": "disabled"' in listed.output
    assert cli.invoke(app, ["users", "enable", "alice"], env=env).exit_code == 0
    assert _chat(served, served.keys["alice"]).status_code == 200
    assert asyncio.run(async_chat())
    missing = cli.invoke(app, ["users", "disable", "zed"], env=env)
    assert missing.exit_code == 2 and "cozy users list" in missing.output


async def test_stt_websocket_refuses_with_the_401_json(served: Served) -> None:
    url = served.url.replace("http://", "ws://") + "/v1/audio/stt"
    for headers in ({}, {"Authorization": "Bearer sk-cozy-wrong"}):
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(url, additional_headers=headers)
        response = info.value.response
        assert response.status_code == 401
        async with httpx.AsyncClient() as h:
            http = await h.post(served.base_url + "/chat/completions", json={}, headers=headers)
        assert http.status_code == 401
        ws_err = json.loads(response.body)["error"]
        assert set(ws_err) == set(http.json()["error"])
        assert ws_err["type"] == "authentication_error"
