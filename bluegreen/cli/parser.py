"""The command line's grammar: every command, its options and the help that teaches them."""

from __future__ import annotations

import argparse
import json

from bluegreen import __version__
from bluegreen.errors import EXIT_USAGE

EXIT_CODES = """exit codes:
  0  done
  1  the operation failed (nothing committed was lost; the message says what to do)
  2  usage, configuration or input error (config, pointer, migration files, database); nothing changed
  3  a gate refused (blue stays active): validation, performance, the environment's rule (approvals,
     maintenance window), a pre-* hook, the cutover hold flag, a missing sync companion; or `check`
     found problems (`plan`: prepare and deploy would refuse)
  4  another controller holds the lock
  5  revert refused because writes would be lost
  6  done, but a post-* hook failed: the operation stands, do not run it again
  7  the watch after the swap saw a regression (`watch`, `cutover`/`deploy --watch`): with
     --auto-revert the previous generation is active again, else the new one stands (revert it)"""

COMMANDS = {
    "init": "adopt database.initial as generation 1 and write the pointer; with --database PATH where no "
    "config.toml is yet, first write a commented one (and a migrations/ folder) for that database",
    "status": "show the active generation, the phase, and pending migrations; exit 2 when that includes a "
    "configuration or migration error",
    "path": "print the active database's absolute path, and nothing on stdout when that fails (for scripts: "
    'db=$(bluegreen path) && sqlite3 "$db")',
    "plan": "list the migrations a deploy would apply, with estimates: the tables and rows each touches, "
    "the size of green, free disk space, the pause budget; then dry-run them and their companions on a "
    "schema-only copy, and read each `-- bluegreen: not-before QUERY` date from the active file: exit 2 "
    "(file and line) or 3 for what prepare and deploy would refuse",
    "prepare": "build the next generation: check free disk space, capture on blue, snapshot, migrate, catch up, "
    "validate (integrity, foreign keys, _validate.sql, the performance gate)",
    "cutover": "make the prepared generation active: catch up, pause writes within the budget, fence blue, swap",
    "deploy": "prepare + cutover in one step, while the application keeps writing",
    "revert": "make the previous generation active again, carrying its writes back (refuses if any would be lost)",
    "abort": "abandon a prepared or interrupted generation; blue stays active and unchanged",
    "resume": "finish an operation a crash interrupted (see `bluegreen status`)",
    "finalize": "close the revert window: stop capture on the active generation",
    "history": "show the migration history of the active database",
    "approve": "record that someone approves a pending version; the environment's cutover counts distinct approvers",
    "generations": "list every generation file kept in the data folder with its role, size and age since retirement",
    "prune": "delete fenced generations retired [retention] keep_days (default 30) or more days ago; "
    "never the active one nor the revert target",
    "rehearse": "run deploy, validation and revert on a scratch copy of the active file; the real files stay untouched",
    "check": "check the active database, read-only: integrity_check, foreign_key_check and the named data-integrity "
    "queries ([check.queries], _check.sql companions); exit 3 when anything is found",
    "new": "create the next migration file {seq}_v{version}_{description}.sql (and --with companion skeletons) "
    "in the migrations folder; its path is the last line of stdout",
    "demo": "build a Social Download Manager v1.2.1 database and deploy v2.0 while a writer writes (where no "
    "config.toml is, in a project folder of its own: ./bluegreen-demo)",
    "throttle": "pause a running build of green (snapshot, migration, catch-up, gate queries) by a flag file, as "
    "gh-ost's: `throttle on` creates it, `throttle off` removes it, `throttle status` says which; a build also "
    "pauses by itself while a probe write on blue waits over [throttle] max_write_wait_ms",
    "watch": "compare the active generation's traffic with the previous one's, from the samples bluegreen's "
    "clients log: error rate, p50/p95/p99 per query shape, slow and very slow counts (the post_migration_"
    "performance report); exit 7 when a [watch] threshold is crossed",
    "replicate": "run Litestream for the active generation, a prepared green and the revert target, and the "
    "pointer (as .bluegreen/replication/pointer.db), following every swap, until SIGTERM or Ctrl-C "
    "([replication] in the config; pip install 'bluegreen[replication]')",
    "restore": "rebuild a working project (config, pointer, active generation, the revert target while the "
    "window is open, migrations) from a replica `bluegreen replicate` fed, into an empty folder",
    "import": "turn `alembic upgrade --sql` or `manage.py sqlmigrate` output into bluegreen migrations "
    "that keep alembic_version / django_migrations true",
}

IMPORT_RULES = """what the files hold: the tool's SQL without BEGIN/COMMIT (bluegreen runs each migration in its
own transaction) and the statement that records it in the tool's history table: Alembic's own
INSERT/UPDATE alembic_version (checked to be there), Django's INSERT INTO django_migrations (added,
with CREATE TABLE IF NOT EXISTS django_migrations). So `alembic current` / `showmigrations` pointed at
`bluegreen path` agree after a deploy, and after `bluegreen revert` (blue never ran it) too.
file names: {seq}_{version}_{description}.sql, seq the next free number in the migrations folder,
version {seq}+{id}: id the Alembic revision (002_2+fdf13821ccf1_add_email.sql) or Django's APP.NNNN
(003_3+shop.0002_shop_add_price.sql), keeping letters, digits and dots. Alembic's description is the
revision message when the input holds Alembic's log lines (`2>&1`), else alembic_revision.
Nothing is written unless every file can be, no file is overwritten, a migration already imported
is refused, and input that is not the tool's output is refused (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the command must survive the subcommand's own defaults.
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $BLUEGREEN_CONFIG or ./config.toml)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print exactly one JSON object on stdout"
    )
    common.add_argument(
        "--env",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="the environment whose rules apply ([environments.NAME] in the config; default: $BLUEGREEN_ENV)",
    )
    parser = _Parser(
        prog="bluegreen",
        description="Blue-green schema cutover for SQLite: copy the live (blue) file into a new (green) "
        "generation, migrate and validate it, then atomically swap the pointer file applications read. "
        "Blue is kept, fenced against writes, for an instant revert.",
        epilog="typical use: bluegreen init; bluegreen plan; bluegreen deploy; bluegreen revert if needed.\n"
        "with environments: bluegreen --env production approve 2.0.0 --by alice (and a second approver), then\n"
        "bluegreen --env production deploy inside the maintenance window.\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"bluegreen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from bluegreen.tools import scaffold

    examples = {"init": scaffold.INIT_EXAMPLES, "new": scaffold.NEW_EXAMPLES}
    for name, text in COMMANDS.items():
        command = sub.add_parser(
            name,
            help=text,
            description=text,
            parents=[common],
            epilog=(examples[name] + "\n\n" if name in examples else "") + EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == "init":
            command.add_argument(
                "--database",
                metavar="PATH",
                default=None,
                help="your SQLite file (WAL mode), inside the config's folder; without a config there, "
                "init writes a commented config.toml for it first (with one, it must name the same file)",
            )
        if name == "new":
            command.add_argument(
                "description",
                metavar="DESCRIPTION",
                nargs="?",
                help="what it does, as a name: add_status, split_names",
            )
            command.add_argument(
                "--for",
                dest="for_migration",
                metavar="MIGRATION",
                default=None,
                help="instead of a new migration, write companions for this pending one (its file name or "
                "number), with what bluegreen derives from its SQL drafted into the sync and rollback "
                "files, commented out (default --with sync,rollback); only absent or untouched skeleton "
                "files are written",
            )
            command.add_argument(
                "--version",
                metavar="V",
                default=None,
                help="its version, e.g. 1.1.0 (default: the last migration's with its last number raised by "
                "one, 1.0.0 -> 1.0.1; 1.0.0 for the first)",
            )
            command.add_argument(
                "--with",
                dest="companions",
                metavar="KINDS",
                type=_companions,
                action="extend",
                default=[],
                help="companion skeletons to add, comma-separated: sync, rollback, validate, benchmark, check",
            )
        if name == "plan":
            command.add_argument(
                "--offline",
                action="store_true",
                help="check for `deploy --offline`: blue is locked from the copy to the swap, so no "
                "migration needs a _sync.sql companion",
            )
        if name in ("deploy", "cutover"):
            command.add_argument(
                "--offline",
                action="store_true",
                help="hold blue's write lock from the copy (deploy) or the final catch-up (cutover) "
                "until the swap, instead of the bounded pause; writers wait, nothing is lost",
            )
            command.add_argument(
                "--force",
                action="store_true",
                help="cut over outside the environment's maintenance window (needs --reason, "
                "which is logged with who and when); approvals cannot be forced",
            )
            command.add_argument("--reason", metavar="TEXT", help="why the window is overridden (with --force)")
            command.add_argument(
                "--wait",
                action="store_true",
                help="while the [cutover] wait_flag file exists, keep green caught up and wait "
                "(at most [cutover] wait_timeout_s), then cut over once it is removed; without "
                "--wait a present flag refuses (exit 3)",
            )
        if name in ("deploy", "cutover"):
            command.add_argument(
                "--watch",
                dest="watch_s",
                metavar="DURATION",
                type=_duration,
                default=None,
                help="after the swap, compare the application's traffic on the new generation with the old "
                "one's for DURATION (90s, 10m, 1h) against the [watch] thresholds; a crossed one ends the "
                "watch with exit 7 and a report naming the query shapes",
            )
            command.add_argument(
                "--auto-revert",
                action="store_true",
                help="with --watch: on a crossed threshold, revert at once (its usual refusals stand: if writes "
                "would be lost it exits 5, runs the on-failure hook and leaves the new generation active)",
            )
        if name == "watch":
            command.add_argument(
                "--window",
                dest="window_s",
                metavar="DURATION",
                type=_duration,
                default=None,
                help="compare each generation's last DURATION of samples (default: [watch] window_s, 1h)",
            )
            command.add_argument(
                "--previous",
                metavar="N",
                type=_positive,
                default=None,
                help="the generation to compare with (default: the other one sampled most recently)",
            )
        if name == "approve":
            command.add_argument("version", metavar="VERSION", help="a pending version, e.g. 2.0.0 or v2.0.0")
            command.add_argument("--by", metavar="NAME", required=True, help="who approves (each name counts once)")
            command.add_argument("--note", metavar="TEXT", default="", help="why, a ticket, anything for the record")
        if name == "revert":
            command.add_argument(
                "--accept-loss",
                action="store_true",
                help="revert even if some changed rows cannot be carried back; they are saved "
                "to a SQLite file beside the generations first",
            )
        if name == "finalize":
            command.add_argument(
                "--force",
                action="store_true",
                help="close the revert window even while processes (bluegreen clients, or any other on "
                "Linux: a sqlite3 shell, Datasette) still have the old file open",
            )
        if name == "prune":
            command.add_argument(
                "files",
                nargs="*",
                metavar="FILE",
                help="prune these fenced generations now, whatever their age (default: every one "
                "retired keep_days or more days ago); the active file, the revert target and "
                "*.lost-*.db exports are refused",
            )
            command.add_argument(
                "--dry-run",
                action="store_true",
                help="list exactly what would be removed, with the same checks, and change nothing",
            )
            command.add_argument(
                "--force",
                action="store_true",
                help="remove the files even while processes (bluegreen clients, or any other on Linux: "
                "a sqlite3 shell, Datasette) still have them open; they keep reading a deleted file",
            )
        if name == "rehearse":
            command.add_argument(
                "--into",
                metavar="DIR",
                default=None,
                help="scratch folder for the copy (must be empty or absent; default: a new "
                "temporary folder). Put it on the data folder's disk for realistic timings",
            )
            command.add_argument(
                "--keep",
                action="store_true",
                help="keep the scratch folder afterwards (it has its own config.toml) instead of deleting it",
            )
            command.add_argument(
                "--writer",
                action="store_true",
                help="run a synthetic writer process against the copy during the deploy and "
                "report the longest wait any of its writes saw; after the cutover it writes on the new "
                "generation too, so the revert must carry those writes back (exit 5 if it could not)",
            )
        if name == "import":
            tools = command.add_subparsers(dest="tool", metavar="TOOL", required=True)
            for tool, text in (
                ("alembic", "one migration per revision of `alembic upgrade --sql FROM:TO` (offline mode) output"),
                ("django", "one migration from `python manage.py sqlmigrate APP NAME` output"),
            ):
                parsed = tools.add_parser(
                    tool,
                    help=text,
                    description=text,
                    parents=[common],
                    epilog=IMPORT_RULES + "\n\n" + EXIT_CODES,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                )
                if tool == "django":
                    parsed.add_argument("app", metavar="APP", help="the app label given to sqlmigrate, e.g. shop")
                    parsed.add_argument(
                        "migration", metavar="NAME", help="the migration's full name, e.g. 0002_add_price (no prefix)"
                    )
                parsed.add_argument("source", metavar="FILE", help="the exported SQL, or - to read stdin")
        if name == "restore":
            command.add_argument(
                "--from",
                dest="source",
                metavar="REPLICA",
                required=True,
                help="the replica URL ([replication] replica), e.g. file:///srv/replicas/app or s3://bucket/app",
            )
            command.add_argument(
                "--into", metavar="DIR", required=True, help="a new or empty folder: the project is rebuilt there"
            )
            command.add_argument(
                "--litestream", metavar="PATH", default=None, help="the Litestream binary (default: the installed one)"
            )
        if name == "throttle":
            command.add_argument(
                "state",
                choices=("on", "off", "status"),
                help="on: create the flag file (a running build pauses at its next pause point, at most "
                "[throttle] max_throttled_s); off: remove it (the build goes on); status: say which",
            )
            command.add_argument(
                "--reason", metavar="TEXT", default="", help="why (throttle on): kept in the flag file and shown"
            )
        if name == "demo":
            command.add_argument(
                "--rows", type=_positive, default=100_000, help="content rows to generate (default 100000)"
            )
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error under --json still prints one JSON object on stdout."""

    def error(self, message: str):
        if "--json" in ARGV:
            print(json.dumps({"ok": False, "command": None, "error": message, "exit_code": EXIT_USAGE}))
        super().error(message)


ARGV: list[str] = []


def _companions(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    known = ("sync", "rollback", "validate", "benchmark", "check")
    unknown = [k for k in kinds if k not in known]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(known)} (comma-separated), got {text!r}")
    return kinds


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600}


def _duration(text: str) -> float:
    """90, 90s, 10m, 1h: seconds, at most a day."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], None)
    try:
        seconds = float(value[:-1] if unit else value) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 10m or 1h, got {text!r}") from None
    if not 0 < seconds <= 86_400:
        raise argparse.ArgumentTypeError(f"expected a duration above 0 and at most 24h, got {text!r}")
    return seconds
