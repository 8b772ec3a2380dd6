"""Command line: parse, call the controller, render text or one JSON object, map errors to exit codes."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from dataclasses import asdict

import apsw

from bluegreen import config
from bluegreen.cli.parser import ARGV, build_parser
from bluegreen.errors import EXIT_FAILED, EXIT_OK, BluegreenError
from bluegreen.files import layout
from bluegreen.gates import environments
from bluegreen.lifecycle.controller import Controller
from bluegreen.reports.inspector import Inspector
from bluegreen.reports.progress import ProgressReporter
from bluegreen.results import Result


def main(argv: list[str] | None = None) -> int:
    ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = getattr(args, "json", False)
    args.config = getattr(args, "config", None)
    args.env = getattr(args, "env", None)
    if getattr(args, "force", False) and args.command in ("deploy", "cutover") and not (args.reason or "").strip():
        parser.error(f"{args.command} --force needs --reason TEXT (it is logged with who and when)")
    if args.command == "new" and (args.description is None) == (args.for_migration is None):
        parser.error("new takes a DESCRIPTION (a new migration) or --for MIGRATION (companions for one), not both")
    if args.command == "new" and args.for_migration is not None and args.version is not None:
        parser.error("--version goes with a new migration, not with --for")
    if getattr(args, "reason", None) and args.command != "throttle" and not args.force:
        parser.error("--reason goes with --force")
    if getattr(args, "auto_revert", False) and args.watch_s is None:
        parser.error("--auto-revert goes with --watch DURATION (it reverts on what the watch sees)")
    for name, value in vars(args).items():  # no path, name or note may smuggle a NUL byte to the OS
        if any("\x00" in v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)):
            shown = name if name in ("command", "files", "version") else "--" + name.replace("_", "-")
            parser.error(f"argument {shown} holds a NUL byte ({value!r}); remove it")
    scaffolded = made_project = None
    args.progress = ProgressReporter.for_cli(args.json)  # ended before the last words (_render, _fail)
    try:
        if args.command == "init" and args.database is not None:  # no config yet: write one for it
            from bluegreen.tools import scaffold

            scaffolded = scaffold.ensure_config(config.config_path(args.config), args.database)
        if args.command == "demo":  # no config here: the demo makes its own project folder
            from bluegreen.tools import demo

            made_project = demo.project_config(args.config)
            args.config = str(made_project) if made_project else args.config
        if args.command == "restore":  # another host: no config yet, the replica holds it
            from pathlib import Path

            from bluegreen.replication import restore

            litestream = Path(args.litestream) if args.litestream else None
            return _render_and_exit(args, restore.restore(args.source, Path(args.into), litestream))
        cfg = config.load(config.config_path(args.config))
        controller = Controller(cfg, progress=args.progress, environment=environments.chosen_name(args.env))
        inspector = Inspector(cfg, controller.gates.environment)  # the read-only commands
        inspector.require_files(args.command)
        if args.command == "demo":
            from bluegreen.tools import demo

            result = demo.run(controller, rows=args.rows, made_project=made_project and made_project.parent)
        elif args.command == "rehearse":
            from bluegreen.tools import rehearsal

            result = rehearsal.run(
                cfg, into=args.into, keep=args.keep, writer=args.writer, progress=controller.progress
            )
        elif args.command == "init" and scaffolded is not None:
            result = scaffolded.adopt(controller)
        elif args.command == "new" and args.for_migration is not None:
            from bluegreen.tools import drafting

            result = drafting.companions_for(cfg, args.for_migration, args.companions)
        elif args.command == "new":
            from bluegreen.tools import scaffold

            result = scaffold.new_migration(cfg, args.description, args.version, args.companions)
        elif args.command == "import":
            from bluegreen.tools import importers

            result = importers.run(
                cfg.migrations.dir,
                args.tool,
                args.source,
                app=getattr(args, "app", ""),
                name=getattr(args, "migration", ""),
            )
        elif args.command == "replicate":
            from bluegreen.replication import replicator

            result = Result("replicate", "replication stopped", data=replicator.run(cfg))
        elif args.command == "throttle":
            from bluegreen.lifecycle import throttle

            if args.reason and args.state != "on":
                parser.error("--reason goes with `throttle on`")
            result = throttle.command(cfg, controller.store, args.state, args.reason)
        elif args.command == "prune":
            result = controller.prune(args.files, dry_run=args.dry_run, force=args.force)
        elif args.command == "plan":
            result = inspector.plan(offline=args.offline)
        elif args.command in ("status", "history", "path", "generations", "check"):
            result = getattr(inspector, args.command)()
        elif args.command in ("deploy", "cutover"):
            result = getattr(controller, args.command)(
                offline=args.offline,
                wait=args.wait,
                force=args.force,
                reason=args.reason or "",
                watch_s=args.watch_s,
                auto_revert=args.auto_revert,
            )
        elif args.command == "watch":
            from bluegreen.reports import watch

            result = watch.watch_command(cfg, controller.gates.environment, args.window_s, args.previous)
        elif args.command == "approve":
            result = controller.gates.approve(args.version, args.by, args.note)
        elif args.command == "revert":
            result = controller.revert(accept_loss=args.accept_loss)
        elif args.command == "finalize":
            result = controller.finalize(force=args.force)
        else:
            result = getattr(controller, args.command)()
    except BluegreenError as exc:
        return _fail(args, exc.message, exc.exit_code, exc.details)
    except apsw.FullError as exc:  # SQLite could not grow a file: the disk (or a quota) is full
        return _fail(args, _disk_full(args, str(exc)), EXIT_FAILED, None)
    except apsw.Error as exc:  # a database problem no step anticipated: still one clean line
        if _disk_is_full(args):  # SQLite says "disk I/O error" when it cannot create a -shm file
            return _fail(args, _disk_full(args, str(exc)), EXIT_FAILED, None)
        return _fail(args, f"SQLite error: {exc}", EXIT_FAILED, None)
    except OSError as exc:  # a file operation no step anticipated: name the file, never a traceback
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return _fail(args, _disk_full(args, exc.strerror, exc.filename), EXIT_FAILED, None)
        return _fail(
            args,
            f"{exc.filename or 'a file'}: {exc.strerror or exc}; nothing committed was lost: fix it, "
            "then run `bluegreen status`",
            EXIT_FAILED,
            None,
        )
    except KeyboardInterrupt:
        return _fail(args, "interrupted; run `bluegreen status` to see what is left to do", EXIT_FAILED, None)
    return _render_and_exit(args, result)


def _render_and_exit(args: argparse.Namespace, result: Result) -> int:
    try:
        _render(args, result)
    except BrokenPipeError:  # `bluegreen status | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if result.exit_code != EXIT_OK:  # the command ran and reports a finding (`check`)
        print(f"bluegreen: error: {result.error}", file=sys.stderr)
    return result.exit_code


def _disk_is_full(args: argparse.Namespace) -> bool:
    try:
        return layout.disk_full(config.load(config.config_path(args.config)).data_dir)
    except BluegreenError:
        return False


def _disk_full(args: argparse.Namespace, detail: str, filename: str | None = None) -> str:
    """Where the space ran out, and what to do: every step is journaled, so after freeing space
    `status` says what is left and the command (or `resume`) carries on."""
    try:
        folder = str(config.load(config.config_path(args.config)).data_dir)
    except BluegreenError:
        folder = "the data folder"
    where = filename or folder
    return (
        f"{where}: no space left on the disk of {folder} ({detail}); nothing committed was lost (each step is "
        f"journaled): free space there, then run `bluegreen status` (it says what is left to do) and "
        f"`bluegreen {args.command}` again"
    )


def _render(args: argparse.Namespace, result: Result) -> None:
    args.progress.end()
    if args.json:
        document = {
            "ok": result.exit_code == EXIT_OK,
            "command": result.command,
            "message": result.message,
            "phases": [asdict(p) for p in result.timings],
            **result.data,
        }
        if result.exit_code != EXIT_OK:
            document.update(error=result.error, exit_code=result.exit_code)
        print(json.dumps(document, default=str))
        return
    print(result.message)
    for phase in result.timings:
        print(f"  {phase.name:<13} {phase.duration_ms:>10.1f} ms")


def _fail(args: argparse.Namespace, message: str, code: int, details: object) -> int:
    if getattr(args, "progress", None) is not None:
        args.progress.end()
    print(f"bluegreen: error: {message}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {"ok": False, "command": args.command, "error": message, "exit_code": code, "details": details},
                default=str,
            )
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
