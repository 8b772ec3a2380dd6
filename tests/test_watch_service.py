"""After the swap, shown on the example service under load (issue 16): real processes, real HTTP.

The service (examples/sdm_service.py) runs on v1.2.1 with an index on downloads_v1(content_id),
which its deletes use (`DELETE FROM downloads_v1 WHERE content_id = ?`). Three deploys while the
load tool writes and reads:

1. a healthy release (1.2.1 recorded, nothing changed): watched, not reverted;
2. a slow release 1.2.2 that drops that index: the watch sees the delete's p95 grow, reverts on
   its own within the watch window (exit 7), and the report names the query shape;
3. a release 1.2.3 that drops the index and adds a column a trigger fills on every insert, with
   no _rollback.sql: the watch sees the same regression, but reverting would lose the rows
   written since, so revert refuses
   (exit 5), the on-failure hook pages, and the release is left standing.

Every write the load tool was told succeeded reads back at the end. Built on migrations of its
own (not the shipped v2.0), so it holds whatever shape v2 takes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import apsw
from conftest import Project, write_config
from helpers import bluegreen, pointer_of, until

from bluegreen.files import samples
from bluegreen.tools import demo_data

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DELETE = "DELETE FROM downloads_v1 WHERE content_id = ?"
# ... and the delete of the item itself: with foreign keys on, SQLite looks for its downloads too
DELETE_ITEM = "DELETE FROM content_v1 WHERE id = ?"
INDEX = "CREATE INDEX IF NOT EXISTS downloads_v1_content ON downloads_v1(content_id);\n"
PADDING_ROWS = 300_000  # archived downloads: without the index, every delete scans them all

# min_samples: this test's traffic is small (a few deletes a second). max_p95_ratio 3: the slow
# release is over ten times slower; the margin keeps this shared machine's noise from the verdict.
WATCH = """\
[watch]
min_samples = 15
max_p95_ratio = 3.0
[hooks]
on-failure = "echo \\"$BLUEGREEN_COMMAND $BLUEGREEN_EXIT_CODE\\" >> {pages}"
post-watch = "echo \\"$BLUEGREEN_WATCH $BLUEGREEN_EXIT_CODE\\" >> {watched}"
"""

# A trigger changes content_v1's definition: replay leaves the table to this script (design.md,
# "Sync and rollback scripts"), which carries blue's changed rows and fills the new column.
CHANGED = "SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'content_v1'"
COLUMNS = "id, url, title, author, platform, metadata, download_info, created_at"
SYNC = f"""\
DELETE FROM content_v1 WHERE id IN ({CHANGED});
INSERT INTO content_v1({COLUMNS}, title_key) SELECT {COLUMNS}, lower(title) FROM source.content_v1
WHERE id IN ({CHANGED} AND present = 1);
"""


def service_project(root: Path) -> Project:
    project = Project(root)
    write_config(root, WATCH.format(pages=root / "pages.log", watched=root / "watched.log"))
    project.schemas.mkdir()
    project.data.mkdir()
    demo_data.create_v1_database(str(project.blue), rows=2000)
    conn = project.connect()
    conn.execute(INDEX)
    conn.execute(
        "INSERT INTO downloads_v1(content_id, status) SELECT NULL, 'archived' FROM "
        f"(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {PADDING_ROWS}) SELECT i FROM n)"
    )
    conn.close()
    (project.schemas / "001_v1.2.1_baseline.sql").write_text(INDEX)
    assert project.cli("init").code == 0
    return project


def deletes_sampled(project: Project, generation: int) -> int:
    found = 0
    for span in samples.read_spans(project.pointer):
        stats = span.shapes.get(generation, {}).get(DELETE)
        found += stats.timed if stats else 0
    return found


def watched_deploy(project: Project, seconds: int) -> tuple[int, dict, str]:
    done = bluegreen(project, "deploy", "--watch", f"{seconds}s", "--auto-revert", "--json", timeout=seconds + 120)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_the_service_under_load_healthy_slow_and_unrevertable_releases(tmp_path):
    project = service_project(tmp_path)
    service = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "sdm_service.py"), str(project.pointer), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    stop = tmp_path / "load.stop"
    try:
        base = service.stdout.readline().split(" on ")[1].strip()
        load = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "load.py"), base, "--seconds", "300", "--json", "--stop-file", str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        until(lambda: deletes_sampled(project, 1) >= 20, "deletes sampled on generation 1", timeout=90, interval=0.5)

        # 1. healthy: same schema, same index; watched for its whole window, not reverted
        code, healthy, err = watched_deploy(project, 6)
        assert code == 0, err
        assert healthy["reverted"] is False and healthy["watch"]["verdict"] in ("healthy", "no verdict"), healthy
        assert healthy["watch"]["regressions"] == [] and pointer_of(project)["generation"] == 2
        until(lambda: bluegreen(project, "finalize").returncode == 0, "finalize", timeout=30, interval=0.5)
        until(lambda: deletes_sampled(project, 2) >= 20, "deletes sampled on generation 2", timeout=90, interval=0.5)

        # 2. slow: the index the deletes use is dropped; reverted on its own, the shape named
        (project.schemas / "002_v1.2.2_drop_download_index.sql").write_text("DROP INDEX downloads_v1_content;\n")
        code, slow, err = watched_deploy(project, 90)
        assert code == 7, (code, err)
        assert slow["reverted"] is True and pointer_of(project)["generation"] == 2  # generation 3 reverted
        assert slow["watch"]["watched_s"] < 90  # within the window: it ended on the crossed threshold
        regressed = [s for s in slow["watch"]["post_migration_performance"] if s["verdict"] == "regressed"]
        assert {s["shape"] for s in regressed} <= {DELETE, DELETE_ITEM} and DELETE in err, slow["watch"]
        assert all(s["p95_ratio"] > 3.0 and s["new"]["queries"] >= 15 for s in regressed)
        assert "regressed and was reverted" in err

        # 3. unrevertable: the same slowdown, and a column green fills that blue has no place for
        (project.schemas / "002_v1.2.2_drop_download_index.sql").unlink()  # the slow release withdrawn
        (project.schemas / "003_v1.2.3_title_keys.sql").write_text(
            "DROP INDEX downloads_v1_content;\n"
            "ALTER TABLE content_v1 ADD COLUMN title_key TEXT;\n"
            "CREATE TRIGGER content_v1_title_key AFTER INSERT ON content_v1 BEGIN\n"
            "  UPDATE content_v1 SET title_key = lower(new.title) WHERE id = new.id;\nEND;\n"
        )
        (project.schemas / "003_v1.2.3_title_keys_sync.sql").write_text(SYNC)  # no _rollback.sql: no way back
        code, kept, err = watched_deploy(project, 90)
        assert code == 5, (code, err)
        assert "saw a regression" in kept["error"]  # the deletes, or the inserts the trigger slows
        assert "the new generation stands" in kept["error"] and "content_v1" in kept["error"]
        assert pointer_of(project)["generation"] == 4  # left standing, not forced
        pages = (tmp_path / "pages.log").read_text().splitlines()
        assert pages == ["revert 5"]  # the on-failure hook paged once, for the refused revert
        watched = (tmp_path / "watched.log").read_text().splitlines()
        assert watched[0] in ("healthy 0", "no verdict 0") and watched[1:] == ["regressed 7", "regressed 5"], watched

        stop.write_text("stop")
        out, _ = load.communicate(timeout=120)
        summary = json.loads(out.strip().splitlines()[-1])
    finally:
        stop.write_text("stop")
        service.send_signal(signal.SIGINT)
        service.wait(timeout=30)
    assert summary["failed"] == [] and summary["missing"] == [], summary
    assert summary["writes_checked"] > 0 and load.returncode == 0


def test_a_cutover_watch_that_sees_too_little_traffic_says_so_and_stands(tmp_path):
    """No client runs: nothing is sampled, so there is no verdict, and nothing is reverted."""
    project = service_project(tmp_path)
    (project.schemas / "002_v1.2.2_drop_download_index.sql").write_text("DROP INDEX downloads_v1_content;\n")
    code, found, err = watched_deploy(project, 2)
    assert code == 0, err
    assert found["watch"]["watched_s"] >= 2  # it watched the whole window before saying so
    assert found["reverted"] is False and found["watch"]["verdict"] == "no verdict"
    assert "no verdict: too few samples" in found["message"] and "run `bluegreen watch`" in found["message"]
    assert pointer_of(project)["generation"] == 2


# -- the README's "After the swap", as written ----------------------------------------------------
TRAFFIC = """\
import os, random, sys
from bluegreen import client
conn = client.connect(sys.argv[1])
rng = random.Random(1)
while not os.path.exists(sys.argv[2]):
    conn.execute("SELECT name FROM items WHERE code = ?", (f"c{rng.randrange(200_000)}",)).fetchall()
"""


def test_readme_after_the_swap_runs_as_written(tmp_path):
    from test_onramp import readme_section_blocks

    blocks = readme_section_blocks("After the swap")
    assert len(blocks) == 1
    folder = tmp_path / "shop"
    project = Project(folder)
    folder.mkdir()
    write_config(folder)
    project.schemas.mkdir()
    project.data.mkdir()
    items = "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT, code TEXT);\n"
    (project.schemas / "001_v1.0.0_items.sql").write_text(
        items + "CREATE INDEX IF NOT EXISTS items_code ON items(code);\n"
    )
    (project.schemas / "002_v1.1.0_drop_code_index.sql").write_text("DROP INDEX items_code;\n")
    conn = apsw.Connection(str(project.blue))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(items + "CREATE INDEX items_code ON items(code);")
    conn.execute(
        "INSERT INTO items(name, code) SELECT 'item ' || i, 'c' || i FROM "
        "(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199999) SELECT i FROM n)"
    )
    conn.close()
    assert project.cli("init").code == 0
    stop = tmp_path / "stop"
    traffic = subprocess.Popen([sys.executable, "-c", TRAFFIC, str(project.pointer), str(stop)])
    try:
        until(
            lambda: (
                sum(
                    s.shapes.get(1, {}).get("SELECT name FROM items WHERE code = ?", samples.ShapeStats()).timed
                    for s in samples.read_spans(project.pointer)
                )
                >= 200
            ),
            "samples on generation 1",
            60,
            0.2,
        )
        env = {k: v for k, v in os.environ.items() if k != "BLUEGREEN_CONFIG"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        done = subprocess.run(
            ["bash", "-c", blocks[0]], cwd=folder, env=env, capture_output=True, text=True, timeout=900
        )
    finally:
        stop.write_text("stop")
        traffic.wait(timeout=30)
    print(done.stdout, done.stderr)
    assert "deploy exited 7" in done.stdout, (done.stdout, done.stderr)
    assert "reverted on its own (--auto-revert)" in done.stdout
    assert "SELECT name FROM items WHERE code = ?" in done.stderr and "regressed" in done.stderr
    assert pointer_of(project)["generation"] == 1
    after = done.stdout.split("deploy exited 7\n", 1)[1]
    assert after.startswith("watch       ") and "generation 1" in after and "against generation 2" in after
