"""Old home of the knowledge tables, kept importable while cozy/engines/knowledge/
index.py and retrieval.py still import from here. New code imports
`cozy.storage.tables.knowledge`.
"""

from __future__ import annotations

from cozy.storage.tables.knowledge import chunks, documents, state

__all__ = ["chunks", "documents", "state"]
