"""The user's own view of memory.local (CLI, TUI, server): list, add, edit, forget…"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from cozy.engines.memory.local import LocalMemory
    from cozy.engines.memory.repo import MemoryRepo, MemoryRow
    from cozy.engines.memory.types import Hits


class UserView:
    """Mixed into LocalMemory; every change goes through reconcile (history kept)."""

    repo: MemoryRepo
    restorable: ClassVar[bool] = True  # forget is a soft delete

    def _me(self) -> LocalMemory:
        from cozy.engines.memory.local import LocalMemory

        assert isinstance(self, LocalMemory)
        return self

    async def list_memories(
        self, user_id: str, *, kinds: Sequence[str] = ("fact",), include_removed: bool = False
    ) -> list[MemoryRow]:
        statuses = ("active", "obsolete", "deleted") if include_removed else ("active",)
        return await self.repo.list_rows(user_id, kinds=kinds, statuses=statuses, limit=None)

    async def find_memories(self, query: str, *, user_id: str, limit: int) -> Hits:
        # no answer is waiting on this search: give the embedder time to load
        return await self._me().search(query, user_id=user_id, limit=limit, vector_wait=60.0)

    async def remember(self, user_id: str, text: str) -> tuple[str, bool]:
        from cozy.engines.memory import reconcile

        return await reconcile.add_text(self._me(), user_id, text)

    async def edit_memory(self, user_id: str, memory_id: str, text: str) -> MemoryRow:
        from cozy.engines.memory import reconcile

        return await reconcile.edit(self._me(), user_id, memory_id, text)

    async def forget(self, user_id: str, memory_id: str) -> MemoryRow:
        from cozy.engines.memory import reconcile

        return await reconcile.set_status(
            self._me(), user_id, memory_id, "deleted", reason="forgotten by the user"
        )

    async def restore(self, user_id: str, memory_id: str) -> MemoryRow:
        from cozy.engines.memory import reconcile

        return await reconcile.set_status(
            self._me(), user_id, memory_id, "active", reason="restored by the user"
        )

    async def history(self, user_id: str, memory_id: str) -> list[dict[str, Any]]:
        return await self.repo.history_of(memory_id, user_id)

    async def export(self, user_id: str) -> dict[str, Any]:
        from cozy.engines.memory import reconcile

        return await reconcile.export(self._me(), user_id)
