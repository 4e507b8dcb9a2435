"""Export a cozy database to one portable file, and import it elsewhere (SQLite → Postgres).

The file is JSON lines (gzip when the name ends in `.gz`): a header line, then one
line per row `{"t": table, "r": {column: value}}`. Binary columns (embeddings)
are base64; JSON columns stay JSON; floats round-trip exactly. Every table of the
source is exported except the migration record and SQLite's FTS5 index tables
(the target rebuilds its own keyword index: triggers on SQLite, GIN on Postgres).

Import runs in ONE transaction into a migrated target: all rows or none. A target
that already holds rows is refused unless `merge=True` (existing primary keys are
kept, the rest inserted). Integer id sequences are moved past the imported ids on
Postgres.
"""

from __future__ import annotations

import base64
import gzip
import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from cozy.core.errors import StorageError, UsageError
from cozy.storage import db, migrations
from cozy.storage.schema import metadata
from cozy.storage.store import Store

FORMAT = "cozy-export"
VERSION = 1
BATCH = 1000
# Modules whose tables join `schema.metadata` (imported so their column types are known).
TABLE_MODULES = (
    "cozy.storage.jobs",
    "cozy.storage.api_keys",
    "cozy.storage.tool_grants",
    "cozy.storage.fragments",
    "cozy.storage.summaries",
    "cozy.storage.users",
    "cozy.storage.tables.memory",
    "cozy.storage.tables.profile",
    "cozy.storage.tables.knowledge",
)
SKIP = {"schema_migrations", "sqlite_sequence"}


@dataclass
class TransferReport:
    path: str
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows, "tables": self.tables}


def _known_tables() -> None:
    for module in TABLE_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # a module another cozy version does not have
            continue


def _skipped(name: str) -> bool:
    return name in SKIP or "_fts" in name or name.startswith("sqlite_")


def _is_binary(col: sa.Column[Any]) -> bool:
    return isinstance(col.type, sa.LargeBinary | sa.types._Binary)


def _tables(conn: Connection) -> list[sa.Table]:
    """The source's tables in dependency order: known ones typed, others reflected."""
    present = [n for n in sa.inspect(conn).get_table_names() if not _skipped(n)]
    known = [t for t in metadata.sorted_tables if t.name in present]
    other = sa.MetaData()
    extra = [n for n in present if n not in metadata.tables]
    if extra:
        other.reflect(conn, only=extra)
    return known + [other.tables[n] for n in extra]


def _open(path: Path, mode: str, gz: bool | None = None) -> IO[str]:
    if path.suffix == ".gz" if gz is None else gz:
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def _encode(table: sa.Table, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in table.columns:
        value = row._mapping[col.name]
        if value is not None and _is_binary(col):
            value = base64.b64encode(bytes(value)).decode("ascii")
        out[col.name] = value
    return out


def _dump(conn: Connection, out: IO[str], report: TransferReport) -> None:
    tables = _tables(conn)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "dialect": conn.dialect.name,
        "migrations": migrations.applied(conn),
        "tables": [t.name for t in tables],
    }
    out.write(json.dumps(header) + "\n")
    for table in tables:
        count = 0
        pk = list(table.primary_key.columns) or list(table.columns)[:1]
        result = conn.execution_options(stream_results=True).execute(sa.select(table).order_by(*pk))
        for row in result:
            out.write(json.dumps({"t": table.name, "r": _encode(table, row)}, ensure_ascii=False))
            out.write("\n")
            count += 1
        report.tables[table.name] = count


async def export_db(url: str, path: Path) -> TransferReport:
    """Write every row of the database at `url` to `path`."""
    _known_tables()
    store = await Store.open(url)
    report = TransferReport(str(path))
    tmp = path.with_name(path.name + ".part")
    try:
        async with store.engine.connect() as conn:
            with _open(tmp, "w", gz=path.suffix == ".gz") as out:
                await conn.run_sync(lambda c: _dump(c, out, report))
        tmp.replace(path)  # a crash never leaves a half file under the real name
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(
            f"cannot write {path} ({exc.strerror})", hint="choose a writable path"
        ) from exc
    finally:
        await store.close()
    return report


def _read(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    if not path.is_file():
        raise UsageError(f"no export file at {path}", hint="create one with `cozy export FILE`")
    fh = _open(path, "r")
    try:
        header = json.loads(fh.readline() or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        fh.close()
        raise UsageError(
            f"{path} is not a cozy export ({exc})", hint="create one with `cozy export FILE`"
        ) from exc
    if header.get("format") != FORMAT:
        fh.close()
        raise UsageError(f"{path} is not a cozy export", hint="create one with `cozy export FILE`")

    def rows() -> Iterator[dict[str, Any]]:
        with fh:
            for lineno, line in enumerate(fh, start=2):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(
                        f"{path}:{lineno}: damaged line ({exc.msg}); nothing was imported",
                        hint="export again",
                    ) from exc

    return header, rows()


def _decode(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        col = table.columns.get(name)
        if col is None:
            raise UsageError(
                f"column {table.name}.{name} of the export is unknown to this database",
                hint="upgrade cozy here and run `cozy migrate` before importing",
            )
        if value is not None and _is_binary(col):
            value = base64.b64decode(value)
        out[name] = value
    return out


def _insert(conn: Connection, table: sa.Table, batch: list[dict[str, Any]], merge: bool) -> None:
    if not batch:
        return
    if merge:
        module = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
        ins = importlib.import_module(f"sqlalchemy.dialects.{module}").insert(table)
        conn.execute(ins.on_conflict_do_nothing(), batch)
    else:
        conn.execute(sa.insert(table), batch)


def _load(
    conn: Connection, header: dict[str, Any], rows: Iterator[dict[str, Any]], merge: bool
) -> TransferReport:
    report = TransferReport("")
    target = {t.name: t for t in _tables(conn)}
    missing = [n for n in header["tables"] if n not in target]
    if missing:
        raise UsageError(
            f"the target database has no table(s) {', '.join(missing)}",
            hint="upgrade cozy here (the export came from a newer one), then `cozy migrate`",
        )
    if not merge:
        busy = [n for n in header["tables"] if conn.execute(sa.select(target[n]).limit(1)).first()]
        if busy:
            raise UsageError(
                f"the target database already has data in {', '.join(busy)}; nothing imported",
                hint="import into an empty database, or pass --merge to keep existing rows",
            )
    batch: list[dict[str, Any]] = []
    current: str | None = None
    for item in rows:
        name = item["t"]
        if name != current:
            if current is not None:
                _insert(conn, target[current], batch, merge)
            batch, current = [], name
            report.tables.setdefault(name, 0)
        batch.append(_decode(target[name], item["r"]))
        report.tables[name] += 1
        if len(batch) >= BATCH:
            _insert(conn, target[name], batch, merge)
            batch = []
    if current is not None:
        _insert(conn, target[current], batch, merge)
    if conn.dialect.name == "postgresql":
        _bump_sequences(conn, [target[n] for n in report.tables])
    return report


def _bump_sequences(conn: Connection, tables: list[sa.Table]) -> None:
    for table in tables:
        for col in table.primary_key.columns:
            if isinstance(col.type, sa.Integer) and col.autoincrement in (True, "auto"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{col.name}'), "
                    f"COALESCE((SELECT MAX({col.name}) FROM {table.name}), 0) + 1, false)"
                )


async def import_db(url: str, path: Path, *, merge: bool = False) -> TransferReport:
    """Load an export into the database at `url` (migrated first), in one transaction."""
    _known_tables()
    header, rows = _read(path)
    unknown = sorted(set(header.get("migrations", [])) - set(migrations.known_names()))
    if unknown:
        raise UsageError(
            f"{path} comes from a newer cozy (migrations {', '.join(unknown)})",
            hint="upgrade cozy (`./install.sh`) before importing it",
        )
    store = await Store.open(url)
    try:
        async with store.engine.begin() as conn:
            report = await conn.run_sync(lambda c: _load(c, header, rows, merge))
    except DBAPIError as exc:
        raise db.translate(exc, url) from exc
    finally:
        await store.close()
    report.path = str(path)
    return report
