"""`PUT/DELETE/GET /v1/users/{user_id}/budget` (admin): the HTTP face of `cozy users
set-budget`. The budget is stored in the database; every server applies it within its
auth cache time (COZY_SERVER_AUTH_CACHE_SECONDS), as for the CLI."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.params import JSONBody
from msgspec import Meta

from cozy.core.errors import NotFoundError
from cozy.server.auth import require_admin
from cozy.server.deps import PathStr, PrincipalDep, services
from cozy.storage.users import BudgetOverride, UserRow, Users

Tokens = Annotated[int, Meta(ge=0, le=2**53)]
Usd = Annotated[float, Meta(ge=0, le=1e12)]


class UserBudgetIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The user's whole stored budget: a field left out or null is the server's
    (COZY_SERVER_BUDGETS), 0 is no such budget for this user."""

    tokens_day: Tokens | None = None
    tokens_month: Tokens | None = None
    usd_day: Usd | None = None
    usd_month: Usd | None = None


class BudgetFields(msgspec.Struct, kw_only=True):
    tokens_day: int | None
    tokens_month: int | None
    usd_day: float | None
    usd_month: float | None


class UserBudget(msgspec.Struct, kw_only=True):
    object: Literal["user.budget"]
    user: str
    budget: BudgetFields | None  # null: the server's budgets apply unchanged


def _out(row: UserRow) -> UserBudget:
    fields = BudgetFields(**row.budget.as_dict()) if row.budget else None
    return UserBudget(object="user.budget", user=row.id, budget=fields)


class UsersController(Controller):
    path = "/v1/users"
    tags = ("users",)

    @get("/{user_id:str}/budget", summary="A user's stored budget (admin)")
    async def get_budget(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, user_id: PathStr
    ) -> UserBudget:
        require_admin(principal)
        row = await Users(services(request).runtime.store).get(user_id)
        if row is None:
            raise NotFoundError(f"no user '{user_id}'", hint="see `cozy users list`")
        return _out(row)

    @put("/{user_id:str}/budget", summary="Replace a user's stored budget (admin)")
    async def put_budget(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        user_id: PathStr,
        data: JSONBody[UserBudgetIn],
    ) -> UserBudget:
        require_admin(principal)
        users = Users(services(request).runtime.store)
        budget = BudgetOverride(data.tokens_day, data.tokens_month, data.usd_day, data.usd_month)
        return _out(await users.replace_budget(user_id, budget))

    @delete("/{user_id:str}/budget", status_code=200, summary="Drop a user's budget (admin)")
    async def delete_budget(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, user_id: PathStr
    ) -> UserBudget:
        require_admin(principal)
        return _out(await Users(services(request).runtime.store).clear_budget(user_id))
