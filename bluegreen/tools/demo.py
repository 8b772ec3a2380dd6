"""`bluegreen demo`: the shipped example end to end, with a live writer, checked row by row.

Makes a Social Download Manager v1.2.1 database with generated rows, adopts it, deploys v2.0 while
a separate writer process keeps writing, then checks that every write the writer was told is
committed is in the active file, in the v2 shape.

The shipped example (its config.toml and schemas/) is package data under tools/example/: run
where no config is, the demo copies it into a project folder of its own (./bluegreen-demo) and
runs there, so an installed bluegreen needs no checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from bluegreen import config as config_file
from bluegreen.engine import generations, migrations
from bluegreen.engine.db import open_db
from bluegreen.errors import ConfigInvalid, FileInTheWay, WriterFailed
from bluegreen.lifecycle.controller import Controller
from bluegreen.results import Result
from bluegreen.tools import demo_data
from bluegreen.tools.writer_process import WriterExited, WriterProcess, WriterStalled, read_log

MARKER = ".bluegreen-demo"
EXAMPLE = Path(__file__).resolve().parent / "example"  # package data: config.toml, schemas/
PROJECT = "bluegreen-demo"  # the project folder the demo makes where no config is


def project_config(cli_config: str | None, cwd: Path | None = None) -> Path | None:
    """Where no config is named (no --config, no $BLUEGREEN_CONFIG) and ./config.toml is absent,
    make ./bluegreen-demo from the shipped example and return its config; else None (the demo
    runs on the config as it always did)."""
    if cli_config or os.environ.get(config_file.CONFIG_ENV) or Path(config_file.DEFAULT_CONFIG).exists():
        return None
    folder = (cwd or Path.cwd()).absolute() / PROJECT
    if folder.is_symlink() or folder.exists():
        if folder.is_symlink() or not (folder / MARKER).is_file():
            raise FileInTheWay.with_hint(
                f"{folder}: already there and not made by `bluegreen demo`; the demo will not touch it",
                "run the demo in another folder, or move that one away",
                sep=". ",
            )
        shutil.rmtree(folder)
    folder.mkdir()
    try:
        (folder / MARKER).write_text("made by bluegreen demo; `bluegreen demo` may delete this folder\n")
        shutil.copy(EXAMPLE / "config.toml", folder / "config.toml")
        shutil.copytree(EXAMPLE / "schemas", folder / "schemas")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / "config.toml"


def run(controller: Controller, rows: int, made_project: Path | None = None) -> Result:
    config = controller.config
    folder = config.data_dir
    initial = config.database.initial
    _check_folder(folder)
    if not migrations.discover(config.migrations.dir):  # a missing folder is refused here, before data/
        raise ConfigInvalid(f"{config.migrations.dir}: no migrations for the demo to deploy")
    _reset_folder(folder, initial, config.database.pointer)
    started = time.perf_counter()
    demo_data.create_v1_database(str(initial), rows=rows)
    generated_s = time.perf_counter() - started
    controller.init()

    log = folder / "demo-writer.log"
    writer = WriterProcess.start("demo", config.database.pointer, log, seconds=600, stdout=subprocess.DEVNULL)
    try:
        _wait_for_writes(writer, count=20)
        deployed = controller.deploy()
        writer.wait(timeout=60)  # it stops by itself at the fence
    finally:
        if writer.running():
            writer.kill()
    events = read_log(log)
    active = generations.active_path(config.database.pointer, controller.store)
    problems = verify_writes(events, active)
    committed = [e for e in events if e["event"] == "committed"]
    if problems:
        raise WriterFailed(f"demo: {len(problems)} committed write(s) missing or wrong in {active}: {problems[:3]}")
    counts = _counts(active)
    fenced = next((e for e in events if e["event"] == "fenced"), None)
    # The write that waited out the barrier met the fence: its wait counts too.
    longest = max([e["wait_ms"] for e in committed] + ([fenced["wait_ms"]] if fenced else []), default=0.0)
    lines = [
        *(
            [f"made the demo project {made_project} (config.toml, schemas/, data/); cd there to try status and revert"]
            if made_project
            else []
        ),
        f"generated {rows:,} v1.2.1 content rows in {generated_s:.1f} s: {initial}",
        deployed.message,
        *[f"  {p.name:<13} {p.duration_ms:>10.1f} ms" for p in deployed.timings],
        f"writer: {len(committed)} writes committed, all {len(committed)} present in {active.name} "
        f"(content: {counts['content']:,} rows, content_v1: {counts['content_v1']:,})",
        f"longest wait any write saw: {longest:.1f} ms (pause budget {config.cutover.max_write_pause_ms} ms; "
        f"the barrier was held {deployed.data['write_pause_ms']:.1f} ms)",
        "the writer's next write then met the fence (an application reopens the pointer's file): "
        + (fenced["error"] if fenced else "(stopped before the fence)"),
        f"blue is kept, fenced, at {deployed.data['previous']}; undo with: bluegreen revert --config {config.path}",
    ]
    data = dict(
        deployed.data,
        rows=rows,
        writes_committed=len(committed),
        longest_write_wait_ms=longest,
        counts=counts,
        writer_met_fence=bool(fenced),
        **({"project": str(made_project)} if made_project else {}),
    )
    return Result("demo", "\n".join(lines), [], data)


def _reset_folder(folder: Path, initial: Path, pointer_path: Path) -> None:
    """Start from nothing; only ever delete a folder an earlier demo made."""
    _check_folder(folder)
    if folder.exists() and any(folder.iterdir()):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by bluegreen demo; `bluegreen demo` may delete this folder\n")


def _check_folder(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise FileInTheWay.with_hint(
            f"{folder}: not empty and not made by `bluegreen demo`; the demo will not touch it",
            "Point the config at an empty folder",
            sep=". ",
        )


def _wait_for_writes(writer: WriterProcess, count: int, timeout: float = 30.0) -> None:
    try:
        writer.wait_for(count, timeout=timeout, poll=0.02)
    except WriterExited as exc:
        raise WriterFailed(f"demo: the writer process exited early (code {exc.returncode})") from None
    except WriterStalled:
        raise WriterFailed("demo: the writer process made no progress") from None


def verify_writes(events: list[dict], active: Path) -> list[str]:
    """Compare each row the writer touched with its last committed state; return what differs."""
    expected: dict[int, dict | None] = {}
    for event in events:
        if event["event"] != "committed":
            continue
        if event["op"] == "delete":
            expected[event["id"]] = None
            continue
        row = dict(expected.get(event["id"]) or {}, title=event["title"])
        if "url" in event:
            row["url"] = event["url"]
        expected[event["id"]] = row
    conn = open_db(active, query_only=True)
    try:
        v2 = bool(conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'content'").fetchall())
        query = (
            "SELECT title, original_url FROM content WHERE id = ?"
            if v2
            else "SELECT title, url FROM content_v1 WHERE id = ?"
        )
        problems = []
        for row_id, want in expected.items():
            got = conn.execute(query, (row_id,)).fetchall()
            if want is None:
                if got:
                    problems.append(f"id {row_id} was deleted but is present")
            elif not got:
                problems.append(f"id {row_id} is missing")
            elif got[0][0] != want["title"] or ("url" in want and got[0][1] != want["url"]):
                problems.append(f"id {row_id} is {got[0]}, expected {want}")
        return problems
    finally:
        conn.close()


def _counts(active: Path) -> dict[str, int]:
    conn = open_db(active, query_only=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").get for t in ("content", "content_v1")}
    finally:
        conn.close()
