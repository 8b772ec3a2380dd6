"""Command line: parse, call the controller, render text or one JSON object, map errors to exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

import apsw

from bluegreen import __version__, config
from bluegreen.controller import Controller
from bluegreen.progress import ProgressReporter
from bluegreen.results import Result
from bluegreen.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, BluegreenError

EXIT_CODES = """exit codes:
  0  done
  1  the operation failed (nothing committed was lost; the message says what to do)
  2  usage, configuration or input error (config, pointer, migration files, database); nothing changed
  3  a validation or performance gate refused; `check` found problems
  4  another controller holds the lock
  5  revert refused because writes would be lost"""

COMMANDS = {
    "init": "adopt database.initial as generation 1 and write the pointer",
    "status": "show the active generation, the phase, and pending migrations",
    "path": "print the active database's absolute path (for scripts: sqlite3 \"$(bluegreen path)\")",
    "plan": "list the migrations a deploy would apply, with estimates: the tables and rows each touches, "
            "the size of green, free disk space, the pause budget",
    "prepare": "build the next generation: check free disk space, capture on blue, snapshot, migrate, catch up, "
               "validate (integrity, foreign keys, _validate.sql, the performance gate)",
    "cutover": "make the prepared generation active: catch up, pause writes within the budget, fence blue, swap",
    "deploy": "prepare + cutover in one step, while the application keeps writing",
    "revert": "make the previous generation active again, carrying its writes back (refuses if any would be lost)",
    "abort": "abandon a prepared or interrupted generation; blue stays active and unchanged",
    "resume": "finish an operation a crash interrupted (see `bluegreen status`)",
    "finalize": "close the revert window: stop capture on the active generation",
    "history": "show the migration history of the active database",
    "check": "check the active database, read-only: integrity_check, foreign_key_check and the named data-integrity "
             "queries ([check.queries], _check.sql companions); exit 3 when anything is found",
    "demo": "build a Social Download Manager v1.2.1 database and deploy v2.0 while a writer writes",
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the command must survive the subcommand's own defaults.
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $BLUEGREEN_CONFIG or ./config.toml)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print exactly one JSON object on stdout")
    parser = _Parser(
        prog="bluegreen",
        description="Blue-green schema cutover for SQLite: copy the live (blue) file into a new (green) "
        "generation, migrate and validate it, then atomically swap the pointer file applications read. "
        "Blue is kept, fenced against writes, for an instant revert.",
        epilog="typical use: bluegreen init; bluegreen plan; bluegreen deploy; bluegreen revert if needed.\n\n"
        + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"bluegreen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text, parents=[common], epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        if name in ("deploy", "cutover"):
            command.add_argument("--offline", action="store_true",
                                 help="hold blue's write lock from the copy (deploy) or the final catch-up (cutover) "
                                 "until the swap, instead of the bounded pause; writers wait, nothing is lost")
        if name == "revert":
            command.add_argument("--accept-loss", action="store_true",
                                 help="revert even if some changed rows cannot be carried back; they are saved "
                                 "to a SQLite file beside the generations first")
        if name == "finalize":
            command.add_argument("--force", action="store_true",
                                 help="close the revert window even while client processes still have the old file open")
        if name == "demo":
            command.add_argument("--rows", type=_positive, default=100_000, help="content rows to generate (default 100000)")
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error under --json still prints one JSON object on stdout."""

    def error(self, message: str):
        if "--json" in _ARGV:
            print(json.dumps({"ok": False, "command": None, "error": message, "exit_code": EXIT_USAGE}))
        super().error(message)


_ARGV: list[str] = []


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    args.config = getattr(args, "config", None)
    try:
        cfg = config.load(config.config_path(args.config))
        controller = Controller(cfg, progress=ProgressReporter.for_cli(args.json))
        if args.command == "demo":
            from bluegreen import demo

            result = demo.run(controller, rows=args.rows)
        elif args.command in ("status", "plan", "history", "path", "check"):
            result = getattr(controller.inspector, args.command)()
        elif args.command in ("deploy", "cutover"):
            result = getattr(controller, args.command)(offline=args.offline)
        elif args.command == "revert":
            result = controller.revert(accept_loss=args.accept_loss)
        elif args.command == "finalize":
            result = controller.finalize(force=args.force)
        else:
            result = getattr(controller, args.command)()
    except BluegreenError as exc:
        return _fail(args, exc.message, exc.exit_code, exc.details)
    except apsw.Error as exc:  # a database problem no step anticipated: still one clean line
        return _fail(args, f"SQLite error: {exc}", EXIT_FAILED, None)
    except KeyboardInterrupt:
        return _fail(args, "interrupted; run `bluegreen status` to see what is left to do", EXIT_FAILED, None)
    try:
        _render(args, result)
    except BrokenPipeError:  # `bluegreen status | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if result.exit_code != EXIT_OK:  # the command ran and reports a finding (`check`)
        print(f"bluegreen: error: {result.error}", file=sys.stderr)
    return result.exit_code


def _render(args: argparse.Namespace, result: Result) -> None:
    if args.json:
        document = {"ok": result.exit_code == EXIT_OK, "command": result.command, "message": result.message,
                    "phases": [asdict(p) for p in result.phases], **result.data}
        if result.exit_code != EXIT_OK:
            document.update(error=result.error, exit_code=result.exit_code)
        print(json.dumps(document, default=str))
        return
    print(result.message)
    for phase in result.phases:
        print(f"  {phase.name:<10} {phase.duration_ms:>10.1f} ms")


def _fail(args: argparse.Namespace, message: str, code: int, details: object) -> int:
    print(f"bluegreen: error: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"ok": False, "command": args.command, "error": message, "exit_code": code,
                          "details": details}, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
