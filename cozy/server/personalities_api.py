"""Personality routes: everyone lists and reads; admins create, replace and delete."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.params import JSONBody

from cozy.core.errors import UsageError
from cozy.core.personalities import Personality
from cozy.core.personality_files import delete_personality, save_personality
from cozy.server.auth import require_admin
from cozy.server.deps import PathStr, PrincipalDep, services
from cozy.server.schemas import PersonalityIn


def personality_dict(p: Personality, full: bool = False) -> dict[str, Any]:
    out = {"object": "personality", "model_id": f"cozy/{p.id}", **p.summary()}
    out.pop("source", None)
    if full:
        out["system_prompt"] = p.system_prompt
        out["token_budget"] = p.token_budget
    return out


class PersonalitiesController(Controller):
    path = "/v1/personalities"
    tags = ("personalities",)

    @get("/", summary="List personalities")
    async def list_personalities(
        self, request: Request[Any, Any, Any], principal: PrincipalDep
    ) -> dict[str, Any]:
        catalog = services(request).runtime.personalities
        items = [personality_dict(p) for _, p in sorted(catalog.all().items())]
        return {"object": "list", "data": items}

    @get("/{pid:str}", summary="Get a personality")
    async def get_personality(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, pid: PathStr
    ) -> dict[str, Any]:
        catalog = services(request).runtime.personalities
        return personality_dict(catalog.get(pid), full=True)

    @post("/", status_code=201, summary="Create a personality (admin)")
    async def create_personality(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        data: JSONBody[PersonalityIn],
    ) -> dict[str, Any]:
        require_admin(principal)
        rt = services(request).runtime
        if data.id in rt.personalities.all():
            raise UsageError(
                f"personality '{data.id}' already exists",
                hint=f"replace it with PUT /v1/personalities/{data.id}",
            )
        p = save_personality(rt.personalities, rt.settings.user_profiles_dir, _plain(data))
        return personality_dict(p, full=True)

    @put("/{pid:str}", summary="Create or replace a personality (admin)")
    async def put_personality(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        pid: PathStr,
        data: JSONBody[PersonalityIn],
    ) -> dict[str, Any]:
        require_admin(principal)
        if data.id != pid:
            raise UsageError(f"the body's id '{data.id}' does not match the path '{pid}'")
        rt = services(request).runtime
        p = save_personality(rt.personalities, rt.settings.user_profiles_dir, _plain(data))
        return personality_dict(p, full=True)

    @delete("/{pid:str}", status_code=200, summary="Delete a user personality (admin)")
    async def delete_personality(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, pid: PathStr
    ) -> dict[str, Any]:
        require_admin(principal)
        rt = services(request).runtime
        delete_personality(rt.personalities, rt.settings.user_profiles_dir, pid)
        return {"id": pid, "object": "personality.deleted", "deleted": True}


def _plain(data: JSONBody[PersonalityIn]) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(data)
    return {k: v for k, v in out.items() if v is not None}
