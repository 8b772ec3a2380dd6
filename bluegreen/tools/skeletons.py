"""The text `bluegreen init --database` and `bluegreen new` write: the commented config.toml, a
migration and its companion skeletons. Each one teaches its contract (docs/design.md,
"Migrations" and "Sync and rollback scripts: the changed keys") in comments; the only statement
a skeleton runs is the sync skeleton's tripwire, so an unwritten sync script can never pass for one
(an unwritten validate, benchmark or check file is refused by bluegreen itself; an empty rollback
declares nothing, so revert refuses what it cannot carry as it would without one).

Config convention: a commented setting is `# key = value` and a commented section `# [name]`;
explanations never take that shape, so uncommenting a section's lines gives a valid config
(tests/test_onramp.py uncomments each one and loads it).
"""

from __future__ import annotations

CONFIG = """\
# bluegreen configuration, written by `bluegreen init --database {database}`.
# Relative paths resolve against this file's folder. Every section below [migrations] is optional:
# uncomment a setting (or a whole section) to change it; the value shown is the default or an example.
# README: "Your own database"; `bluegreen COMMAND --help` for each command.

[database]
pointer = {pointer}   # the small TOML file your application reads to find the live file
initial = {initial}   # the file `bluegreen init` adopted as generation 1 (never moved or rewritten)
# Generations (app.gen2.db, ...) and the state folder .bluegreen/ live beside the pointer.
# Applications open the file the pointer names: `bluegreen path`, or bluegreen.client.

[migrations]
dir = {migrations}   # {{seq}}_{{version}}_{{description}}.sql and companions; `bluegreen new` adds them

# How blue is copied into green.
# [snapshot]
# pages_per_step = 4096   # pages copied between progress reports
# flush_mb = 8            # green is built without fsyncs and flushed every this many MB written

# Change capture on the live file while green is built.
# [capture]
# guard_blob_writes = true   # refuse incremental BLOB writes (they bypass triggers); an empty index, reads no table

# The cutover: how long writers may wait, how long to wait for locks.
# [cutover]
# max_write_pause_ms = 100    # the write-pause budget: cutover takes blue's lock only when the rest fits in it
# lock_timeout_ms = 10000     # how long to wait for a write lock (offline deploy, revert, abort)
# max_attempts = 20           # barrier tries before cutover gives up, blue still active
# wait_flag = "hold-cutover"  # while this file exists, cutover refuses (or waits with --wait)
# wait_timeout_s = 0          # how long `cutover --wait` waits for the flag to go; 0: no limit

# Shell commands run at lifecycle events, with BLUEGREEN_* variables saying what happens.
# A failing pre-* hook refuses the command (exit 3); a failing post-* hook gives exit 6.
# [hooks]
# pre-prepare = "./scripts/check-release.sh"
# post-cutover = "systemctl reload myapp"
# post-watch = "./scripts/report-release.sh"   # $BLUEGREEN_WATCH: healthy, no verdict or regressed
# on-failure = "./scripts/page-oncall.sh"
# timeout_s = 60              # each hook's time limit

# How long retired generations are kept before `bluegreen prune` may delete them.
# [retention]
# keep_days = 30

# The performance gate: named queries timed on blue and green before cutover (also
# _benchmark.sql companions); green slower than max_ratio times blue refuses the cutover.
# [performance]
# max_ratio = 2.0
# min_ms = 1.0                # blue's time counts as at least this (timer noise)
# runs = 5                    # timed runs per query and file; the median counts
# [performance.queries]
# recent_orders = "SELECT id FROM orders ORDER BY id DESC LIMIT 50"

# `bluegreen check`: named queries that return the rows breaking a rule of your data (also
# _check.sql companions); exit 3 when any returns rows.
# [check]
# sample_rows = 5             # offending rows shown per check
# [check.queries]
# orders_without_customer = "SELECT o.id FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL"

# Free space prepare and deploy keep on the data folder's disk beyond green's estimated size.
# [disk]
# min_free_mb = 64

# The build of green gives way to your application: it pauses while a probe write on the live
# file waits longer than max_write_wait_ms, or while the flag file exists (`bluegreen throttle on`).
# [throttle]
# max_write_wait_ms = 25      # 0 (the default): never by the probe
# max_throttled_s = 600       # then a probe's throttle is lifted, and a flag's fails the command
# flag_file = "throttle"      # default: .bluegreen/throttle beside the pointer

# After the swap: `bluegreen watch` and `deploy --watch 10m --auto-revert` compare the traffic
# bluegreen's clients sampled on the new generation with the old one's (README: "After the swap").
# [watch]
# max_error_rate = 0.01       # the error rate may rise by at most this (one point)
# max_p95_ratio = 2.0         # a query shape's p95 may grow to at most this times the old one's
# min_p95_ms = 1.0            # the old p95 counts as at least this (below it, noise decides)
# min_samples = 100           # statements a shape needs on both generations for a verdict
# min_statements = 200        # statements the new generation needs for an error-rate verdict
# window_s = 3600             # `bluegreen watch`: each generation's last hour of samples

# Beyond one machine: `bluegreen replicate` runs Litestream (pip install 'bluegreen[replication]')
# for every generation that may be active and the pointer; `bluegreen restore` rebuilds the project
# from the replica elsewhere (README: "Replication").
# [replication]
# replica = "file:///srv/replicas/app"   # or s3://bucket/app, gs://, abs://, sftp://
# sync_interval_ms = 1000     # how often Litestream ships new WAL frames
# retention_h = 24            # Litestream's snapshot retention
# wait_timeout_s = 30         # cutover and revert wait this long for the replica; 0: no wait

# Environments: release rules chosen with --env NAME or $BLUEGREEN_ENV; with none, none apply.
# [environments.staging]
# approvals = 1               # distinct approvers of the target version (`bluegreen approve`)
# [environments.production]
# approvals = 2
# backup = true               # a verified backup of blue before prepare
# backup_dir = "backups"
# window = "02:00-04:00"      # required for production; may wrap past midnight
# timezone = "UTC"
"""

MIGRATION = """\
-- {file}: {description} (version {version}).
--
-- Runs once on green (the copy of the live file), in its own transaction, during prepare; the
-- live file is never touched. Write plain SQL statements; no BEGIN/COMMIT, no VACUUM, nothing
-- named _bluegreen_*. Once deployed, this file is checksummed: change it and bluegreen refuses,
-- so fix a deployed mistake with a new migration (`bluegreen new ...`).
--
-- Writes the application makes on blue while green is built are replayed into green row by row.
-- When this migration reshapes or derives from a table the application keeps writing (ALTER
-- TABLE, a new table filled from another), replay alone cannot keep green exact: add a
-- {stem}_sync.sql companion (`bluegreen new ... --with sync`), or deploy with
-- `bluegreen deploy --offline` (writers wait from the copy to the swap). `bluegreen plan` says
-- what this file reads and writes.
--
-- Examples:
--   ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'new';
--   CREATE INDEX orders_by_status ON orders(status);
"""

SYNC = """\
-- {file}: keeps green exact while blue is still written, for {migration}.
--
-- Runs on green after every replay batch during prepare and cutover. Replay has already copied
-- the changed rows of tables green shares with blue; this script re-derives what {migration}
-- built from them, for exactly those rows. It must be idempotent (the same batch may run twice).
--
-- What it gets (docs/design.md, "Sync and rollback scripts: the changed keys"):
--   temp.bluegreen_changes(table_name TEXT, row_key, present INTEGER): one row per changed row of
--     blue in this batch; row_key is the rowid (WITHOUT ROWID tables: the primary key values,
--     quote()d and joined by ','); present is 1 if the row exists now, 0 if it was deleted.
--   main: green, whose copies of blue's tables already hold the current rows.
--   source: blue, attached read-only, if you need a value as blue has it (source.orders).
--
-- Example, for a migration that filled order_totals(order_id, total) from orders:
--   DELETE FROM order_totals WHERE order_id IN
--     (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'orders');
--   INSERT INTO order_totals (order_id, total)
--   SELECT id, price * quantity FROM orders WHERE id IN
--     (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'orders' AND present = 1);
--
-- Once {migration} has its SQL, `bluegreen new --for {migration}` replaces this untouched
-- skeleton (and the rollback one) with a draft of what bluegreen derives from that SQL.
--
-- Tripwire: until this script is written, plan, prepare and deploy refuse it before anything
-- is built (their dry run calls it; an empty sync script would let green drift silently).
-- Delete it when done.
SELECT replace_this_skeleton_with_your_sync_sql();
"""

ROLLBACK = """\
-- {file}: carries writes made on green after the cutover back into the old shape, for {migration}.
--
-- Runs on blue (the old file, as main) during `bluegreen revert`, after generic replay has carried
-- the rows of tables both shapes share. Green is attached read-only as `source`; its changed keys
-- are in temp.bluegreen_changes(table_name, row_key, present) as in a sync script. It must be
-- idempotent.
--
-- Declare the tables this script carries with one line of the form
--   "-- bluegreen: carries TABLE, TABLE"
-- written at the start of a line, without the quotes (the one below is indented, so it is not
-- read). Changes to green-only tables not declared there make revert refuse (exit 5) unless
-- `--accept-loss`. Rows the old shape has no place for go into temp.bluegreen_uncarried
-- (table_name, row_key): revert refuses them the same way.
--
-- Example, for a migration that added order_totals, derived from orders: replay carries orders
-- back itself (blue has that table), and blue needs no totals, so the script declares
-- order_totals carried; a total whose order blue does not have would be lost, so it is listed:
--    -- bluegreen: carries order_totals
--   INSERT INTO temp.bluegreen_uncarried (table_name, row_key)
--   SELECT table_name, row_key FROM temp.bluegreen_changes
--   WHERE table_name = 'order_totals' AND present = 1
--     AND CAST(row_key AS INTEGER) NOT IN (SELECT id FROM main.orders);
"""

VALIDATE = """\
-- {file}: checks green before the cutover, for {migration}.
--
-- Runs on green after prepare and again at cutover. Each row it returns is one check:
-- (check_name, expected, actual, status); any status but 'PASS' refuses the cutover (exit 3)
-- and blue stays active. Read-only: SELECT statements only. Until it returns a row, validation
-- fails ("validate script returns checks"): write a check, or delete this file.
--
-- Example:
--   SELECT 'no order without a status', 0,
--          (SELECT count(*) FROM orders WHERE status IS NULL),
--          CASE WHEN (SELECT count(*) FROM orders WHERE status IS NULL) = 0 THEN 'PASS' ELSE 'FAIL' END;
"""

BENCHMARK = """\
-- {file}: the performance gate's queries, for {migration}.
--
-- Each query after a "-- benchmark: NAME" line is timed on blue and on green before the cutover;
-- green slower than [performance] max_ratio times blue (or scanning a table blue searched by
-- index) refuses the cutover (exit 3). When blue cannot run the query yet (it names something
-- this migration adds), give blue's form of the same question after a line "-- on blue:".
-- Read-only queries; what the application runs most. bluegreen refuses this file until it names
-- a query ("no queries"): write one, or delete this file.
--
-- Example (uncomment both lines):
--   -- benchmark: orders_by_status
--   SELECT id FROM orders WHERE status = 'new' ORDER BY id DESC LIMIT 50;
"""

CHECK = """\
-- {file}: data-integrity checks for `bluegreen check`, once {migration} is live.
--
-- Each query after a "-- check: NAME" line returns the rows that break a rule of your data
-- (none when the data is sound); `bluegreen check` runs them on the active file, read-only, and
-- exits 3 when any returns rows. bluegreen refuses this file until it names a query ("no
-- queries"): write one, or delete this file.
--
-- Example (uncomment both lines):
--   -- check: orders_without_status
--   SELECT id FROM orders WHERE status IS NULL OR status = '';
"""

COMPANIONS = {"sync": SYNC, "rollback": ROLLBACK, "validate": VALIDATE, "benchmark": BENCHMARK, "check": CHECK}
