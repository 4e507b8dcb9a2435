"""OAuth 2.1 for MCP servers over HTTP, through the MCP SDK's client auth.

A server with `oauth: true` (or `oauth: {scope: "..."}`) in engines.yaml gets the SDK's
`OAuthClientProvider` as its HTTP auth: discovery, dynamic client registration, PKCE,
the resource indicator and refresh are the SDK's. What is cozy's:

- tokens and the registered client are kept per server in
  `COZY_HOME/mcp-auth/<server>.json` (the directory 0700, the file 0600);
- `cozy tools login SERVER` runs the browser step: a listener on a loopback port
  (the redirect URI), the authorization URL printed (and opened in a browser when
  there is one), and the code taken from the redirect, within a deadline;
- any other command only uses and refreshes stored tokens: a server that needs a
  person to log in fails with a message naming `cozy tools login SERVER`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOGIN_TIMEOUT = 300.0  # seconds a person has to finish the browser step


class LoginNeeded(Exception):
    """The server wants a person to authorize cozy (no usable token is stored)."""

    says_it_all = True  # shown as is (mcp_common.describe), without the class name


class _QuietLoginNeeded(logging.Filter):
    """The SDK logs every failed flow with a traceback; a missing login is not a crash,
    and the connection reports it once, with the command to run."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, LoginNeeded)


logging.getLogger("mcp.client.auth.oauth2").addFilter(_QuietLoginNeeded())


def auth_dir(home: Path | str | None) -> Path | None:
    return Path(home) / "mcp-auth" if home else None


class FileTokenStorage:
    """The SDK's TokenStorage over one JSON file per server."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, key: str, value: dict[str, Any] | None) -> None:
        data = self._read()
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)

    async def get_tokens(self) -> Any:
        from mcp.shared.auth import OAuthToken

        raw = self._read().get("tokens")
        if not raw:
            return None
        return OAuthToken.model_validate({k: v for k, v in raw.items() if k != "expires_at"})

    async def set_tokens(self, tokens: Any) -> None:
        data = tokens.model_dump(mode="json", exclude_none=True)
        if tokens.expires_in is not None:  # `expires_in` alone means nothing next week
            # refreshed a little early: a token sent in its last moment reaches the server
            # expired, and the SDK answers that 401 with a browser login, not a refresh
            life = float(tokens.expires_in)
            data["expires_at"] = time.time() + life - min(life * 0.1, 60.0)
        self._write("tokens", data)

    def expires_at(self) -> float | None:
        raw = self._read().get("tokens") or {}
        value = raw.get("expires_at")
        return float(value) if isinstance(value, int | float) else None

    async def get_client_info(self) -> Any:
        from mcp.shared.auth import OAuthClientInformationFull

        raw = self._read().get("client")
        return OAuthClientInformationFull.model_validate(raw) if raw else None

    async def set_client_info(self, client_info: Any) -> None:
        self._write("client", client_info.model_dump(mode="json", exclude_none=True))

    def forget_client(self) -> None:
        """A new login registers again (its redirect URI has a new loopback port)."""
        self._write("client", None)

    def has_tokens(self) -> bool:
        return bool(self._read().get("tokens"))


class LoopbackRedirect:
    """The redirect URI of one login: a listener on 127.0.0.1 that takes one
    `GET /callback?code=...&state=...` and answers the browser with a short page."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._got: asyncio.Future[dict[str, str]] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    async def start(self) -> None:
        self._got = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = (await reader.readline()).decode("latin-1")
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            target = line.split(" ")[1] if line.count(" ") >= 2 else ""
            parts = urlsplit(target)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            ok = parts.path == "/callback" and ("code" in query or "error" in query)
            body = (
                b"cozy: logged in, you can close this tab"
                if ok and "code" in query
                else b"cozy: not a login answer"
            )
            status = b"200 OK" if ok else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            with contextlib.suppress(Exception):
                await writer.drain()
            if ok and self._got is not None and not self._got.done():
                self._got.set_result(query)
        except (TimeoutError, OSError, IndexError):
            pass
        finally:
            writer.close()

    async def wait(self, timeout: float) -> Any:  # noqa: ASYNC109
        """The SDK's AuthorizationCodeResult from the browser's redirect."""
        from mcp.shared.auth import AuthorizationCodeResult

        assert self._got is not None
        try:
            async with asyncio.timeout(timeout):
                query = await self._got
        except TimeoutError:
            raise LoginNeeded(
                f"no answer from the browser within {timeout:g} s; run the login again"
            ) from None
        if "error" in query:
            why = query.get("error_description") or query["error"]
            raise LoginNeeded(f"the authorization server said no: {why}")
        return AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None


def provider(
    server: str,
    url: str,
    storage: FileTokenStorage,
    *,
    scope: str | None,
    login: LoopbackRedirect | None = None,
    show_url: Callable[[str], Awaitable[None]] | None = None,
    login_timeout: float = LOGIN_TIMEOUT,
) -> Any:
    """The SDK's OAuthClientProvider for one server. With `login` (and `show_url`) it
    can run the browser step; without, needing it raises LoginNeeded."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientMetadata

    redirect = login.uri if login is not None else "http://127.0.0.1/callback"
    metadata = OAuthClientMetadata.model_validate(
        {
            "client_name": "cozy",
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": scope,
        }
    )

    async def to_browser(authorization_url: str) -> None:
        if login is None or show_url is None:
            raise LoginNeeded(f"needs you to log in: run `cozy tools login {server}`")
        await show_url(authorization_url)

    async def from_browser() -> Any:
        if login is None:
            raise LoginNeeded(f"run `cozy tools login {server}`")
        return await login.wait(login_timeout)

    class StoredExpiry(OAuthClientProvider):
        """The SDK loads stored tokens without their expiry, so an expired access token
        would be sent, refused, and a browser login started; with the expiry we keep, it
        refreshes instead (the SDK's own refresh path)."""

        async def _initialize(self) -> None:
            await super()._initialize()
            self.context.token_expiry_time = storage.expires_at()

    return StoredExpiry(
        server_url=url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=to_browser,
        callback_handler=from_browser,
    )


async def login(conn: Any, show_url: Callable[[str], Awaitable[None]]) -> dict[str, Any]:
    """Run the browser step for one connection (an MCPServerConnection): a new client
    registration with this login's redirect URI, the server's consent page, the tokens
    stored; then the server's tools are listed with them."""
    from cozy.core.errors import ConfigError

    cfg = conn.cfg
    if not cfg.oauth:
        raise ConfigError(
            f"MCP server '{cfg.name}' does not use OAuth",
            hint=f"add `oauth: true` to servers.{cfg.name} in engines.yaml if it needs a login",
        )
    storage = conn.process.token_storage()
    storage.forget_client()
    redirect = LoopbackRedirect()
    await redirect.start()
    startup = cfg.startup_timeout
    try:
        await conn.stop()
        conn.process.login = (redirect, show_url)
        cfg.startup_timeout = max(startup, LOGIN_TIMEOUT + 30)  # a person is in the loop
        tools = await conn.list_tools()
    finally:
        cfg.startup_timeout = startup
        conn.process.login = None
        await redirect.close()
    if not storage.has_tokens():  # the server let us in without a login
        return {"server": cfg.name, "logged_in": False, "tools": len(tools)}
    return {"server": cfg.name, "logged_in": True, "tools": len(tools), "tokens": str(storage.path)}
