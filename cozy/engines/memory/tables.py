"""Old home of the memory tables, kept importable for code not yet moved over
(bench/bench_memory.py). New code imports `cozy.storage.tables.memory` and
`cozy.engines.memory.texthash`.
"""

from __future__ import annotations

from cozy.engines.memory.texthash import normalise, text_hash
from cozy.storage.tables.memory import TABLES, memories, memory_history, memory_versions

__all__ = ["TABLES", "memories", "memory_history", "memory_versions", "normalise", "text_hash"]
