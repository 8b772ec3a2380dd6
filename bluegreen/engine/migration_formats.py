"""Files written for goose, dbmate and Flyway, read as bluegreen migrations.

A team that already keeps its migrations for another tool points `[migrations] dir` at them.

**Names.** bluegreen's own `{seq}_{version}_{description}.sql` is tried first (migrations.py);
then, here:

- goose and dbmate, `{number}_{description}.sql`: a timestamp (`20240101120000_add_x.sql`, what
  `goose create` and `dbmate new` write) or goose's numbered form (`00001_add_x.sql`). The number
  is the sequence, and also the version recorded, without leading zeros: what goose records as
  `version_id` (1, 20240101120000) and dbmate as `version`.
- Flyway, `V{version}__{description}.sql`, version parts separated by `.` or `_` (`V2__x`,
  `V2.1__x`, `V2_1__x`): the version recorded is Flyway's, underscores read as dots (`2.1`); the
  sequence is its first number. Flyway's undo (`U2__x`), repeatable (`R__x`) and baseline
  (`B2__x`) files are refused: bluegreen never undoes by script (revert carries green's rows back;
  a `_rollback.sql` companion is bluegreen's way to reshape them), runs a file once, and adopts an
  existing database with `init`. Flyway replaces `${placeholders}` in the text; bluegreen does not,
  so a Flyway-named file holding `${` is refused (file and line).

**Order.** Every file has a place, a tuple of numbers compared part by part: `(seq,)` for
bluegreen, goose and dbmate names, the version's numbers for Flyway, trailing zeros dropped
(Flyway's own rule: 2.0 is 2). Files run in that order whatever naming scheme each uses, so a
folder may mix them (goose's numbered and timestamped files, a Flyway folder to which
`{seq}_...` files were added): V2.1 runs after 002 and before 003, timestamps after every small
number. Two files with one place (`V2.1__a` and `V2_1__b`, `002_v2_x` and `V2__y`, `00002_a` and
`2_v2_b`) are refused: which runs first would be a guess.

**Text.** A file holding goose (`-- +goose ...`) or dbmate (`-- migrate:...`) markers runs its Up
part only; the Down part is kept (`Read.down`) for the reader, never run: a bluegreen revert
makes the old generation active again and carries green's writes back, it never runs a down
script. A file with no marker is bluegreen's own, run whole. The Up part is returned padded: every
line that is not Up SQL (markers, comments before the Up marker) is blanked, and the Down part is
cut off, so line N of `Read.sql` is line N of the file and every error (SQLite's, the reach
check's, VACUUM's) names the line in the file as written; `Read.up_line` is where the Up part
starts. The checksum stays that of the whole file.

- goose: `Up`, `Down`, `StatementBegin`/`StatementEnd` (case-insensitive, as goose reads them).
  SQLite splits statements itself and knows that a trigger body's semicolons are inside it, so the
  block markers are checked for pairing and then blanked: what they enclose runs as written.
  `NO TRANSACTION` is accepted and changes nothing: every migration runs in one transaction on
  green, a private copy no application reads until cutover, so a failure leaves nothing
  half-done. What the marker exists for in SQLite is refused on its own merits whether or not it
  is there: `VACUUM` (it renumbers rowids) and `BEGIN`/`COMMIT` (bluegreen's transaction is the
  migration's); `PRAGMA foreign_keys = OFF` around a table rebuild is already the case, as
  migrations run with foreign keys off and the foreign-key gate compares green's violations with
  blue's afterwards. `ENVSUB ON` is refused: bluegreen substitutes nothing, the SQL that runs is
  the text that was checksummed and reviewed. `ENVSUB OFF` is accepted.
- dbmate: `-- migrate:up` and `-- migrate:down`, with options on the marker's line;
  `transaction:false` is accepted and changes nothing, for the reasons above; any other option is
  refused (bluegreen cannot honour what it does not know).

Refused, naming the file and line, before anything runs: a marker of either tool that is not one
of these (`-- +goose Sideways`, `-- migrate:left`: never run whole), a Down part without an Up
part, a second Up or Down, SQL before the Up marker, an unpaired StatementBegin/End, both tools'
markers in one file, and a marker in a companion (`_sync.sql` etc. are bluegreen's own format and
run whole, so a Down part there would run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bluegreen.errors import MigrationInvalid

README = "see README, Coming from Alembic / Django / goose / Flyway"

_NUMBERED = re.compile(r"^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*)\.sql$")
_FLYWAY = re.compile(r"^V(\d+(?:[._]\d+)*)__([A-Za-z0-9][A-Za-z0-9_-]*)\.sql$")
_FLYWAY_OTHER = re.compile(r"^([URB])(\d+(?:[._]\d+)*)?__\S*\.sql$")
_FLYWAY_OTHER_WHY = {
    "U": "a Flyway undo migration: bluegreen never runs undo scripts; `bluegreen revert` makes the previous "
    "generation active again and carries its writes back, and a `_rollback.sql` companion of the versioned "
    "migration reshapes them for the old schema. Remove the file (or keep it outside the migrations folder)",
    "R": "a Flyway repeatable migration: bluegreen runs each migration once, in order, and refuses a changed "
    "one; put the SQL in a new versioned migration each time it changes",
    "B": "a Flyway baseline migration: bluegreen adopts an existing database with `bluegreen init` and needs "
    "no baseline file; remove it",
}

_GOOSE = re.compile(r"^\s*--\s*\+goose(.*)$", re.IGNORECASE)
_GOOSE_NO_PLUS = re.compile(r"^\s*--\s*goose\s+(up|down|statementbegin|statementend)\s*$", re.IGNORECASE)
_GOOSE_KNOWN = ("up", "down", "statementbegin", "statementend", "no transaction", "envsub on", "envsub off")
_DBMATE = re.compile(r"^\s*--\s*migrate\s*:(\s*)([A-Za-z_]\w*)(.*)$", re.IGNORECASE)
_DBMATE_OPTIONS = {"transaction": ("true", "false")}


class Named(NamedTuple):
    """What a goose, dbmate or Flyway file name says."""

    seq: int
    version: str
    description: str


@dataclass(frozen=True)
class Read:
    """A migration file's text as bluegreen runs it."""

    tool: str  # "bluegreen" (no marker: run whole), "goose" or "dbmate"
    sql: str  # the Up part, padded with blank lines: line N here is line N of the file
    up_line: int  # the file's line where the Up part starts (1 for a file of bluegreen's own)
    down: str  # the Down part as written, for the reader; never run
    no_transaction: bool  # goose NO TRANSACTION / dbmate transaction:false (accepted, changes nothing)


# -- names ----------------------------------------------------------------------------------------
def parse_name(path: Path) -> Named | None:
    """A goose/dbmate or Flyway name as sequence, version and description; None when it is
    neither (the caller refuses it); Flyway's U, R and B files are refused here."""
    name = Path(path).name
    match = _NUMBERED.match(name)
    if match:
        number = int(match.group(1))
        return Named(number, str(number), match.group(2))
    match = _FLYWAY.match(name)
    if match:
        version = match.group(1).replace("_", ".")
        return Named(int(version.split(".")[0]), version, match.group(2))
    match = _FLYWAY_OTHER.match(name)
    if match:
        raise MigrationInvalid(f"{path}: {_FLYWAY_OTHER_WHY[match.group(1)]}")
    return None


def place(name: str, seq: int, version: str) -> tuple[int, ...]:
    """Where a file runs: Flyway names by their version's numbers, all others by their sequence."""
    parts = [int(p) for p in version.split(".")] if _FLYWAY.match(name) else [seq]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def in_order(mains: dict[str, dict]) -> list[str]:
    """The stems of `mains` (stem -> seq, version, path) in running order; refuses two files that
    would take one place."""
    taken: dict[tuple[int, ...], str] = {}
    for stem, info in mains.items():
        key = place(info["path"].name, info["seq"], info["version"])
        if key in taken:
            other = mains[taken[key]]
            if not (_FLYWAY.match(info["path"].name) or _FLYWAY.match(other["path"].name)):
                raise MigrationInvalid(
                    f"{info['path']}: sequence number {info['seq']} is also used by {taken[key]}.sql; "
                    "give each migration its own number"
                )
            raise MigrationInvalid(
                f"{info['path']}: runs at the same place as {taken[key]}.sql (version "
                f"{'.'.join(map(str, key))}; Flyway versions compare number by number, `_` reads as `.` and "
                "trailing zeros do not count); give each migration its own version"
            )
        taken[key] = stem
    return [taken[key] for key in sorted(taken)]


# -- text -----------------------------------------------------------------------------------------
def read(path: Path, text: str) -> Read:
    """The SQL to run from a migration file's text (its Up part), or MigrationInvalid with file and line."""
    lines = text.split("\n")
    goose = _markers(lines, _GOOSE)
    dbmate = [(n, m) for n, m in _markers(lines, _DBMATE) if _is_dbmate_marker(m)]
    for number, line in enumerate(lines, 1):
        if _GOOSE_NO_PLUS.match(line):
            raise MigrationInvalid(
                f"{path}:{number}: {line.strip()!r} looks like a goose marker without its '+': goose would read it "
                f"as a comment and run what follows with the part above it; write '-- +goose {line.split()[-1]}' ({README})"
            )
    placeholder = next((n for n, line in enumerate(lines, 1) if "${" in line), None)
    if placeholder is not None and _FLYWAY.match(Path(path).name):
        raise MigrationInvalid(
            f"{path}:{placeholder}: a Flyway placeholder (${{...}}): Flyway would replace it, bluegreen substitutes "
            f"nothing (the SQL that runs is the text that was checksummed); write the value into the file ({README})"
        )
    if goose and dbmate:
        raise MigrationInvalid(
            f"{path}:{dbmate[0][0]}: has dbmate markers and goose markers (line {goose[0][0]}); a file is written "
            f"for one tool: keep one kind ({README})"
        )
    if goose:
        return _goose(path, lines, goose)
    if dbmate:
        return _dbmate(path, lines, dbmate)
    return Read("bluegreen", text, 1, "", False)


def check(path: Path, *companions: Path | None) -> None:
    """Refuse, before anything runs, a migration whose markers do not read (see read()) and a
    companion holding any marker: companions run whole, so a Down part there would run."""
    read(path, _text(path))
    for companion in companions:
        if companion is None:
            continue
        lines = _text(companion).split("\n")
        found = [n for n, _ in _markers(lines, _GOOSE)] + [
            n for n, m in _markers(lines, _DBMATE) if _is_dbmate_marker(m)
        ]
        if found:
            raise MigrationInvalid(
                f"{companion}:{min(found)}: a goose or dbmate marker in a companion: companions are bluegreen's own "
                f"format and run whole, so nothing here would be left out; remove the marker ({README})"
            )


def _text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MigrationInvalid(f"{path}: not UTF-8 text; save the migration as UTF-8") from None


def _markers(lines: list[str], pattern: re.Pattern) -> list[tuple[int, re.Match]]:
    """(line number, match) of each line the pattern matches, ignoring a CR line end and a BOM."""
    return [(n, m) for n, line in enumerate(lines, 1) if (m := pattern.match(line.rstrip("\r").lstrip("\ufeff")))]


def _is_dbmate_marker(match: re.Match) -> bool:
    """`-- migrate:up`/`down` however spaced; any other `-- migrate:word` only when written like a
    marker (no space after the colon): `-- migrate: copies rows` stays a comment."""
    return match.group(2).lower() in ("up", "down") or not match.group(1)


def _sql_line(line: str) -> bool:
    stripped = line.lstrip("\ufeff").strip()
    return bool(stripped) and not stripped.startswith("--")


def _padded(lines: list[str], keep: set[int]) -> str:
    """The kept lines (numbered from 1) in place, every other line blank, nothing after the last kept one."""
    last = max(keep, default=0)
    return "\n".join(line if n in keep else "" for n, line in enumerate(lines[:last], 1))


def _goose(path: Path, lines: list[str], markers: list[tuple[int, re.Match]]) -> Read:
    where = {n: " ".join(m.group(1).split()).lower() for n, m in markers}
    for number, match in markers:
        rest = match.group(1)
        if where[number] not in _GOOSE_KNOWN or (rest and not rest[0].isspace()):
            raise MigrationInvalid(
                f"{path}:{number}: unknown goose marker {lines[number - 1].strip()!r}; goose knows -- +goose Up, "
                "Down, StatementBegin, StatementEnd, NO TRANSACTION, ENVSUB ON/OFF. bluegreen never runs such a "
                f"file whole (its Down part would undo its Up part): fix the marker ({README})"
            )
        if where[number] == "envsub on":
            raise MigrationInvalid(
                f"{path}:{number}: -- +goose ENVSUB ON: bluegreen does not substitute ${{VARIABLES}}; the SQL that "
                "runs is the text that was checksummed and reviewed. Write the values into the file and remove "
                f"the marker ({README})"
            )
    up = next((n for n in where if where[n] == "up"), None)
    down = next((n for n in where if where[n] == "down"), None)
    if up is None:
        if down is not None:
            raise MigrationInvalid(
                f"{path}:{down}: a -- +goose Down section and no -- +goose Up: nothing to run, and the Down part "
                f"never runs; add -- +goose Up above the SQL to apply ({README})"
            )
        raise MigrationInvalid(
            f"{path}:{min(where)}: goose markers but no -- +goose Up; put -- +goose Up above the SQL to apply "
            f"({README})"
        )
    for kind in ("up", "down"):
        repeated = [n for n in where if where[n] == kind][1:]
        if repeated:
            raise MigrationInvalid(
                f"{path}:{repeated[0]}: a second -- +goose {kind.capitalize()} (the first is on line "
                f"{up if kind == 'up' else down}); a file has one Up part and at most one Down part ({README})"
            )
    if down is not None and down < up:
        raise MigrationInvalid(
            f"{path}:{down}: -- +goose Down comes before -- +goose Up (line {up}); the Up part comes first ({README})"
        )
    first_sql = next((n for n, line in enumerate(lines[: up - 1], 1) if _sql_line(line)), None)
    if first_sql is not None:
        raise MigrationInvalid(
            f"{path}:{first_sql}: SQL before -- +goose Up (line {up}); goose refuses it too: move it below the "
            f"marker ({README})"
        )
    opened = 0
    for number in sorted(where):
        kind = where[number]
        if kind == "statementbegin":
            if opened:
                raise MigrationInvalid(
                    f"{path}:{number}: -- +goose StatementBegin inside the block opened on line {opened}; close "
                    f"it with -- +goose StatementEnd first ({README})"
                )
            opened = number
        elif kind == "statementend":
            if not opened:
                raise MigrationInvalid(
                    f"{path}:{number}: -- +goose StatementEnd without a StatementBegin above it ({README})"
                )
            opened = 0
        elif kind == "down" and opened:
            raise MigrationInvalid(
                f"{path}:{opened}: -- +goose StatementBegin is not closed before -- +goose Down (line {number}); "
                f"add -- +goose StatementEnd ({README})"
            )
    if opened:
        raise MigrationInvalid(
            f"{path}:{opened}: -- +goose StatementBegin is never closed; add -- +goose StatementEnd ({README})"
        )
    end = down if down is not None else len(lines) + 1
    keep = {n for n in range(up + 1, end) if n not in where}
    down_text = "\n".join(lines[down:]) if down is not None else ""
    return Read("goose", _padded(lines, keep), up + 1, down_text, "no transaction" in where.values())


def _dbmate(path: Path, lines: list[str], markers: list[tuple[int, re.Match]]) -> Read:
    up = down = None
    no_transaction = False
    for number, match in markers:
        kind = match.group(2).lower()
        if kind not in ("up", "down"):
            raise MigrationInvalid(
                f"{path}:{number}: unknown dbmate marker {lines[number - 1].strip()!r}; dbmate knows -- migrate:up "
                "and -- migrate:down. bluegreen never runs such a file whole (its down part would undo its up "
                f"part): fix the marker ({README})"
            )
        if (up if kind == "up" else down) is not None:
            raise MigrationInvalid(
                f"{path}:{number}: a second -- migrate:{kind} (the first is on line "
                f"{up if kind == 'up' else down}); a file has one up part and at most one down part ({README})"
            )
        for option in match.group(3).split():
            key, _, value = option.partition(":")
            if value.lower() not in _DBMATE_OPTIONS.get(key.lower(), ()):
                raise MigrationInvalid(
                    f"{path}:{number}: dbmate option {option!r} is not one bluegreen knows (transaction:false, "
                    f"transaction:true); remove it ({README})"
                )
            no_transaction = no_transaction or (kind == "up" and value.lower() == "false")
        if kind == "up":
            up = number
        else:
            down = number
    if up is None:
        raise MigrationInvalid(
            f"{path}:{down}: a -- migrate:down section and no -- migrate:up: nothing to run, and the down part "
            f"never runs; add -- migrate:up above the SQL to apply ({README})"
        )
    if down is not None and down < up:
        raise MigrationInvalid(
            f"{path}:{down}: -- migrate:down comes before -- migrate:up (line {up}); the up part comes first ({README})"
        )
    first_sql = next((n for n, line in enumerate(lines[: up - 1], 1) if _sql_line(line)), None)
    if first_sql is not None:
        raise MigrationInvalid(
            f"{path}:{first_sql}: SQL before -- migrate:up (line {up}); dbmate refuses it too: move it below "
            f"the marker ({README})"
        )
    end = down if down is not None else len(lines) + 1
    down_text = "\n".join(lines[down:]) if down is not None else ""
    return Read("dbmate", _padded(lines, set(range(up + 1, end))), up + 1, down_text, no_transaction)
