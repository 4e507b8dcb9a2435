"""A protocol fake of the Memobase server's documented `/api/v1` HTTP API.

The real server (Postgres + Redis + an LLM) cannot run here. This fake speaks the
same endpoints and envelope (`{"data": ..., "errno": 0, "errmsg": ""}`) the official
`memobase` client uses, keeps users, blobs, buffers and profiles in memory, and
turns a flushed chat buffer into profile entries with `extract` (tests script it:
the real server would ask its LLM). It checks the Bearer key and can fail on demand.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Extract = Callable[[list[dict[str, Any]]], list[tuple[str, str, str]]]


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class FakeUser:
    data: dict[str, Any] | None
    blobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    buffer: list[str] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


class MemobaseFake:
    def __init__(self, api_key: str = "secret") -> None:
        self.api_key = api_key
        self.users: dict[str, FakeUser] = {}
        self.requests: list[tuple[str, str]] = []
        self.extract: Extract = lambda messages: []
        self.failures: list[int] = []
        self.flushes = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- control ---------------------------------------------------------------
    def start(self) -> MemobaseFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = fake.handle(
                    self.command, self.path, self.headers.get("authorization", ""), raw
                )
                out = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        self.failures.extend([status] * times)

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p in self.requests if method is None or m == method]

    # --- the API ---------------------------------------------------------------
    def handle(self, method: str, target: str, auth: str, raw: bytes) -> tuple[int, Any]:
        url = urlparse(target)
        path, query = url.path, parse_qs(url.query)
        with self._lock:
            self.requests.append((method, url.path))
            if self.failures:
                status = self.failures.pop(0)
                return status, _err(status, "injected failure")
            if not path.startswith("/api/v1/"):
                return 404, _err(404, "not found")
            if auth != f"Bearer {self.api_key}":
                return 401, _err(401, "Unauthorized")
            body = json.loads(raw) if raw else {}
            return self._route(method, path[len("/api/v1") :], query, body)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        for pattern, verb, fn in self._routes():
            m = re.fullmatch(pattern, path)
            if m and verb == method:
                return fn(*m.groups(), query=query, body=body)
        return 404, _err(404, f"no route {method} {path}")

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]]]]:
        return [
            (r"/healthcheck", "GET", lambda **_: (200, _ok(None))),
            (r"/users", "POST", self._add_user),
            (r"/users/([^/]+)", "GET", self._get_user),
            (r"/users/([^/]+)", "DELETE", self._delete_user),
            (r"/blobs/insert/([^/]+)", "POST", self._insert),
            (r"/users/buffer/([^/]+)/([^/]+)", "POST", self._flush),
            (r"/users/buffer/capacity/([^/]+)/([^/]+)", "GET", self._capacity),
            (r"/users/profile/([^/]+)", "GET", self._profile),
            (r"/users/profile/([^/]+)", "POST", self._add_profile),
            (r"/users/profile/([^/]+)/([^/]+)", "PUT", self._update_profile),
            (r"/users/profile/([^/]+)/([^/]+)", "DELETE", self._delete_profile),
        ]

    def _user(self, uid: str) -> FakeUser | None:
        return self.users.get(uid)

    def _add_user(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        uid = body.get("id") or str(uuid.uuid4())
        uuid.UUID(uid)  # the real server insists on UUIDs
        if uid in self.users:
            return 200, _err(409, f"user {uid} already exists")
        self.users[uid] = FakeUser(body.get("data"))
        return 200, _ok({"id": uid})

    def _get_user(self, uid: str, **_: Any) -> tuple[int, Any]:
        user = self._user(uid)
        if user is None:
            return 200, _err(404, f"user {uid} not found")
        return 200, _ok({"data": user.data, "id": uid})

    def _delete_user(self, uid: str, **_: Any) -> tuple[int, Any]:
        self.users.pop(uid, None)
        return 200, _ok(None)

    def _insert(self, uid: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        user = self._user(uid)
        if user is None:
            return 200, _err(404, f"user {uid} not found")
        if body.get("blob_type") != "chat" or not body.get("blob_data", {}).get("messages"):
            return 422, _err(422, "blob_data.messages is required for chat blobs")
        bid = str(uuid.uuid4())
        user.blobs[bid] = body
        user.buffer.append(bid)
        return 200, _ok({"id": bid})

    def _capacity(self, uid: str, blob_type: str, **_: Any) -> tuple[int, Any]:
        user = self._user(uid)
        return 200, _ok({"ids": list(user.buffer) if user else []})

    def _flush(self, uid: str, blob_type: str, **_: Any) -> tuple[int, Any]:
        user = self._user(uid)
        if user is None:
            return 200, _err(404, f"user {uid} not found")
        self.flushes += 1
        messages = [m for bid in user.buffer for m in user.blobs[bid]["blob_data"]["messages"]]
        user.buffer.clear()
        for topic, sub, content in self.extract(messages) if messages else []:
            existing = next(
                (
                    p
                    for p in user.profiles.values()
                    if p["attributes"] == {"topic": topic, "sub_topic": sub}
                ),
                None,
            )
            if existing is not None:
                existing.update(content=content, updated_at=_now())
            else:
                self._new_profile(user, content, topic, sub)
        return 200, _ok(None)

    def _new_profile(self, user: FakeUser, content: str, topic: str, sub: str) -> str:
        pid = str(uuid.uuid4())
        user.profiles[pid] = {
            "id": pid,
            "content": content,
            "attributes": {"topic": topic, "sub_topic": sub},
            "created_at": _now(),
            "updated_at": _now(),
        }
        return pid

    def _profile(self, uid: str, *, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        user = self._user(uid)
        if user is None:
            return 200, _err(404, f"user {uid} not found")
        budget = int(query.get("max_token_size", ["1000"])[0])
        out, used = [], 0
        for p in user.profiles.values():
            cost = len(p["content"].split()) + 2
            if used + cost > budget:
                break
            out.append(p)
            used += cost
        return 200, _ok({"profiles": out})

    def _add_profile(self, uid: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        user = self._user(uid)
        if user is None:
            return 200, _err(404, f"user {uid} not found")
        attrs = body.get("attributes") or {}
        pid = self._new_profile(user, body["content"], attrs["topic"], attrs["sub_topic"])
        return 200, _ok({"id": pid})

    def _update_profile(self, uid: str, pid: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        user = self._user(uid)
        if user is None or pid not in user.profiles:
            return 200, _err(404, f"profile {pid} not found")
        user.profiles[pid].update(
            content=body["content"], attributes=body["attributes"], updated_at=_now()
        )
        return 200, _ok({"id": pid})

    def _delete_profile(self, uid: str, pid: str, **_: Any) -> tuple[int, Any]:
        user = self._user(uid)
        if user is not None:
            user.profiles.pop(pid, None)
        return 200, _ok(None)


def _ok(data: Any) -> dict[str, Any]:
    return {"data": data, "errno": 0, "errmsg": ""}


def _err(errno: int, msg: str) -> dict[str, Any]:
    return {"data": None, "errno": errno, "errmsg": msg}
