"""`bluegreen restore --from REPLICA --into DIR`: a working project rebuilt from a replica that
`bluegreen replicate` fed, on any host: pointer.db first (which generation is active, the journal,
the config, the migrations), then each generation it names with `litestream restore`.

Everything is built in a staging folder beside DIR and renamed into place at the end, so a
refusal or a failure leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tomllib
from pathlib import Path

import tomli_w

from bluegreen.config.sections import ReplicationConfig
from bluegreen.errors import ArgumentInvalid, FileInTheWay, ReplicationFailed
from bluegreen.files.journal import Phase
from bluegreen.replication import litestream, project
from bluegreen.results import Result

# The journal's phases whose in-flight generation `bluegreen replicate` replicates too.
_BOTH = (Phase.PREPARED, Phase.CUTTING_OVER, Phase.CUT_OVER, Phase.REVERTING)


def _check_into(into: Path) -> None:
    if into.is_symlink() or (into.exists() and not into.is_dir()):
        raise FileInTheWay(f"{into}: --into names a file, not a folder; nothing was written")
    if into.is_dir() and any(into.iterdir()):
        raise FileInTheWay.with_hint(
            f"{into}: --into is not empty; restore never writes over files, nothing was written",
            "name a new or empty folder",
        )
    if not into.parent.is_dir():
        raise ArgumentInvalid(f"{into.parent}: the folder --into goes in does not exist; nothing was written")


def restore(source: str, into: Path, litestream_path: Path | None = None) -> Result:
    into = Path(os.path.abspath(into))
    source = litestream.under(source)
    _check_into(into)
    settings = ReplicationConfig(replica=source, litestream=litestream_path)
    exe = litestream.binary(settings)
    staging = Path(tempfile.mkdtemp(prefix=f".{into.name}.restoring-", dir=into.parent))
    try:
        result = _restore(exe, settings, staging, into)
        if into.is_dir():
            into.rmdir()  # empty (checked); os.rename cannot replace it on every OS
        os.rename(staging, into)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _restore(exe: str, settings: ReplicationConfig, staging: Path, into: Path) -> Result:
    pointer_db = staging / litestream.POINTER_DB
    if not litestream.restore(exe, litestream.pointer_url(settings), pointer_db):
        raise ArgumentInvalid.with_hint(
            f"{litestream.shown(settings.replica)}: no bluegreen replica there (no pointer/ under it); nothing was written",
            "name the [replication] replica `bluegreen replicate` ran with",
        )
    snapshot = project.read(pointer_db)
    pointer_db.unlink()
    for side in ("-wal", "-shm"):
        Path(f"{pointer_db}{side}").unlink(missing_ok=True)
    if snapshot is None:
        raise ReplicationFailed(
            f"{litestream.shown(settings.replica)}: its pointer/ is not one `bluegreen replicate` wrote"
        )
    values = snapshot.values
    pointer_path = staging / values["pointer_path"]
    data = pointer_path.parent
    data.mkdir(parents=True, exist_ok=True)
    active = tomllib.loads(values["pointer"])["active"]
    names = [active]
    state = json.loads(values["state"]) if values["state"] else {}
    if state.get("phase") in _BOTH:
        names += [n for n in (state.get("green"), state.get("blue")) if n and n not in names]
    restored = []
    for name in names:
        if litestream.restore(exe, litestream.generation_url(settings, name), data / name):
            restored.append(name)
        elif name == active:
            raise ReplicationFailed(
                f"{litestream.shown(settings.replica)}: the active generation {name} has no replica; nothing was written"
            )
    absent = [n for n in names if n not in restored]  # the journal names them; the replica never had them
    (pointer_path).write_text(values["pointer"], encoding="utf-8")
    if state:
        (data / ".bluegreen").mkdir()
        (data / ".bluegreen" / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    for name, content in snapshot.files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    (staging / values["migrations_dir"]).mkdir(parents=True, exist_ok=True)
    (staging / "config.toml").write_text(_config(values), encoding="utf-8")
    window = state.get("phase") == Phase.CUT_OVER and len(restored) > 1
    text = f"restored {into}: {active} is active" + (f", {restored[1]} the revert target" if window else "")
    if absent:
        text += f"; the journal names {', '.join(absent)}, which the replica does not hold (`bluegreen status` says what to do)"
    return Result(
        "restore",
        text + f"; run `bluegreen --config {into / 'config.toml'} status`",
        data={
            "into": str(into),
            "config": str(into / "config.toml"),
            "active": str(into / values["pointer_path"].rsplit("/", 1)[0] / active)
            if "/" in values["pointer_path"]
            else str(into / active),
            "restored": restored,
            "revert_window": window,
            "absent": absent,
        },
    )


def _config(values: dict) -> str:
    """The replicated config with its database and migrations paths made relative to the restored
    folder (the other paths as they were: they name this host's folders, or nothing)."""
    raw = tomllib.loads(values["config"])
    pointer = values["pointer_path"]
    initial = raw.get("database", {}).get("initial", "")
    folder = pointer.rsplit("/", 1)[0] if "/" in pointer else "."
    raw.setdefault("database", {})
    raw["database"]["pointer"] = pointer
    raw["database"]["initial"] = f"{folder}/{Path(initial).name}" if initial else f"{folder}/app.db"
    raw.setdefault("migrations", {})["dir"] = values["migrations_dir"]
    head = "# restored by `bluegreen restore` from the replica; paths are relative to this file\n"
    return head + tomli_w.dumps(raw)
