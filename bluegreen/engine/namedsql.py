"""Named read-only queries, from a companion file or from the config.

A companion (`{stem}_benchmark.sql`, `{stem}_check.sql`) holds one or more queries, each after a
line `-- benchmark: NAME` (or `-- check: NAME`). A benchmark may add, after its query, a line
`-- on blue:` and the query's form for a file that does not have the migration yet (the old
schema): blue is then timed with that form. Names are what reports and refusals show, so they
must be unique in a file.

Every query file, like every migration and companion, is also checked for references to
bluegreen's own objects (`references_internal`, hazard 15).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import apsw
import apsw.ext

from bluegreen.engine.db import INTERNAL_PREFIX
from bluegreen.engine.sqltext import TOKEN
from bluegreen.errors import MigrationInvalid

_INTERNAL = re.compile(re.escape(INTERNAL_PREFIX), re.IGNORECASE | re.ASCII)  # SQLite folds ASCII case only
_ON_BLUE = re.compile(r"^\s*--\s*on blue\s*:\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class NamedQuery:
    source: str  # the companion's file name, or "config [section.queries]"
    name: str
    sql: str
    blue_sql: str | None = None  # the old-schema form (`-- on blue:`), if any


def parse(path: Path, marker: str) -> list[NamedQuery]:
    """Queries of a companion file; a malformed file is refused naming the file and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MigrationInvalid(f"{path}: not UTF-8 text; save it as UTF-8") from None
    refuse_internal(path, text)
    header = re.compile(rf"^\s*--\s*{marker}\s*:\s*(.*?)\s*$", re.IGNORECASE)
    found: list[dict] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = header.match(line)
        if match:
            if not match.group(1):
                raise MigrationInvalid(
                    f"{path}:{number}: `-- {marker}:` needs a name, e.g. `-- {marker}: content_by_url`"
                )
            found.append({"name": match.group(1), "line": number, "sql": [], "blue": None})
        elif found and marker == "benchmark" and _ON_BLUE.match(line):
            if found[-1]["blue"] is not None:
                raise MigrationInvalid(f"{path}:{number}: a second `-- on blue:` for {found[-1]['name']}; give one")
            found[-1]["blue"] = []
        elif found:
            (found[-1]["sql"] if found[-1]["blue"] is None else found[-1]["blue"]).append(line)
        elif _code(line):
            raise MigrationInvalid(
                f"{path}:{number}: SQL before the first `-- {marker}: NAME` line; name each query with such a line"
            )
    if not found:
        raise MigrationInvalid(f"{path}: no queries; put `-- {marker}: NAME` on the line before each query")
    queries, names = [], set()
    for item in found:
        sql, blue = "\n".join(item["sql"]).strip(), item["blue"]
        if item["name"] in names:
            raise MigrationInvalid(
                f"{path}:{item['line']}: query name {item['name']!r} is used twice; give each its own"
            )
        names.add(item["name"])
        if not _code(sql):
            raise MigrationInvalid(
                f"{path}:{item['line']}: query {item['name']!r} is empty; write the SELECT after its name"
            )
        blue_sql = "\n".join(blue).strip() if blue is not None else None
        if blue is not None and not _code(blue_sql):
            raise MigrationInvalid(f"{path}:{item['line']}: the `-- on blue:` form of {item['name']!r} is empty")
        queries.append(NamedQuery(path.name, item["name"], sql, blue_sql))
    return queries


@dataclass(frozen=True)
class Identifier:
    line: int  # 1-based line of the file where the name starts
    name: str  # the name SQLite sees (quotes removed)
    written: str  # as it is written in the file


def identifiers(text: str) -> Iterator[Identifier]:
    """Every identifier of an SQL text, outside comments and literals, with its line."""
    line = 1
    for match in TOKEN.finditer(text):
        kind, token = match.lastgroup, match.group()
        name = None
        if kind == "word":
            name = token
        elif kind in ("double", "backtick"):
            quote = token[0]
            name = token[1 : -1 if token.endswith(quote) and len(token) > 1 else None].replace(quote * 2, quote)
        elif kind == "bracket":
            name = token[1 : -1 if token.endswith("]") else None]
        if name is not None:
            yield Identifier(line, name, token)
        line += token.count("\n")


def references_internal(text: str) -> Identifier | None:
    """The first name in text that reaches one of bluegreen's own objects (`_bluegreen_*`
    tables, triggers, indexes: capture, fences, replay positions), or None."""
    return next((i for i in identifiers(text) if _INTERNAL.match(i.name)), None)


def refuse_internal(path: Path, text: str) -> None:
    """MigrationInvalid naming the file and line of a reference to bluegreen's own objects (hazard 15)."""
    found = references_internal(text)
    if found is not None:
        raise MigrationInvalid(
            f"{path}:{found.line}: refers to {found.written}, one of bluegreen's own objects ({INTERNAL_PREFIX}* "
            "tables, triggers and indexes hold change capture, fences and replay positions); a migration or "
            "companion must not read or write them: remove that reference"
        )


def from_config(section: str, pairs: tuple[tuple[str, str], ...]) -> list[NamedQuery]:
    return [NamedQuery(f"config [{section}.queries]", name, sql) for name, sql in pairs]


def statement_problem(conn: apsw.Connection, sql: str) -> str:
    """'' when sql is exactly one read-only statement that compiles on conn, else what is wrong."""
    try:
        info = apsw.ext.query_info(conn, sql)
    except apsw.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    if info.query_remaining and _code(info.query_remaining.replace(";", "")):  # trailing comments are fine
        return "holds more than one statement; give each its own name"
    if not info.is_readonly:
        return "not a read-only query; these queries must only read"
    return ""


def _code(text: str) -> bool:
    """Anything besides comments and blank space?"""
    return bool(re.sub(r"--[^\n]*|/\*.*?\*/|\s", "", text, flags=re.DOTALL))
