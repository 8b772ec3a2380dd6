"""The shipped v1.2.1 → v2.0 example (schemas/) on real files: every v1 row arrives, validate
catches a lost row, sync re-derives changed keys exactly like a fresh migration, rollback carries
v2 writes back into v1. Uses apsw directly, the way the controller runs the scripts: each file in
its own transaction, the source attached read-only, the changed keys in temp.bluegreen_changes."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import apsw
import pytest

from bluegreen.tools import demo_data

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
BASELINE = SCHEMAS / "001_v1.2.1_baseline.sql"
MIGRATIONS = ["001_v1.2.1_baseline.sql", "002_v2.0.0_normalized_schema.sql", "003_v2.0.0_migrate_content.sql"]
STEM = "003_v2.0.0_migrate_content"
FLAGS = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_URI
ROWS = 2000

# Hand-made rows on top of the generated ones, so every odd case is there whatever the seed draws.
EDGE_CONTENT = [
    # id, url, title, author, platform, metadata, download_info
    (
        9001,
        "https://www.tiktok.com/@x/video/7",
        None,
        None,
        " tiktok ",
        '{"aweme_id": 7, "duration": "3:45", "view_count": -1, "like_count": 1.5, "upload_date": "20230231",'
        ' "width": "1920", "fps": 29.97, "description": null, "extra": {"nested": [1, true, null]}}',
        '{"status": "completed", "file_size": "12.5 MB", "note": "kept"}',
    ),
    (9002, "https://example.com/a", "Blob metadata", "b", "https://weird.example/platform", b"\x00\x01", "not json"),
    (9003, "https://example.com/b", "Empty text", "c", "", "", "[]"),
    (
        9004,
        "https://www.youtube.com/watch?v=abcdefghijk",
        "Valid JSON, not an object",
        "d",
        "YouTube",
        '["id", "abcdefghijk"]',
        None,
    ),
    (
        9005,
        "https://www.youtube.com/watch?v=zzzzzzzzzzz",
        "Big numbers",
        "e",
        "youtube",
        '{"id": "zzzzzzzzzzz", "view_count": 123456789012345678901234, "duration": 212.0, "upload_date": 20230405}',
        "{}",
    ),
    (
        9006,
        "https://www.youtube.com/watch?v=keys",
        "Awkward keys",
        "f",
        "youtube",
        '{"id": "keys", "youtube_video_id": "literal", "width": 640, "resolution_width": "also literal",'
        ' "a.b": 1, "x\\"y": [], "": "empty key", "caf\\u00e9": "\\u00e9", "live": true, "premium": false,'
        ' "rate": 1.50, "big": 1e5, "neg": -0, "description": "", "upload_date": "20240229"}',
        '{"status": null, "file_path": "/x", "retries": 2, "mirrors": ["a", "b"]}',
    ),
    (9007, "https://example.com/dup", "Duplicate key", "g", "vimeo", '{"id": "1", "id": "2"}', '{"a": 1, "a": 1}'),
]
EDGE_DOWNLOADS = [
    # id, content_id, status, progress, file_path, error_message, started_at, finished_at
    (900001, "abc", None, "50%", None, "", None, None),
    (900002, 9002, " COMPLETED ", 100.0, "/tmp/x.mp4", None, "2024-01-01 00:00:00", "2024-01-01 00:01:00"),
    (900003, 424242, "failed", 12.5, None, "HTTP Error 403: Forbidden", "2024-01-01", None),
]


# -- helpers -----------------------------------------------------------------------------------


def connect(path: Path | str) -> apsw.Connection:
    return apsw.Connection(str(path), flags=FLAGS)


def copy_db(src: Path, dst: Path) -> Path:
    source, target = connect(src), connect(dst)
    with target.backup("main", source, "main") as backup:
        backup.step(-1)
    source.close()
    target.close()
    return dst


def run_file(conn: apsw.Connection, name: str) -> None:
    """One migration file in its own transaction, as the controller runs it."""
    conn.execute("BEGIN")
    try:
        conn.execute((SCHEMAS / name).read_text())
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(path: Path) -> Path:
    conn = connect(path)
    for name in MIGRATIONS:
        run_file(conn, name)
    conn.close()
    return path


def validate(conn: apsw.Connection) -> list[tuple]:
    return conn.execute((SCHEMAS / f"{STEM}_validate.sql").read_text()).fetchall()


def failing(rows: list[tuple]) -> list[tuple]:
    return [row for row in rows if row[3] != "PASS"]


def install_capture(conn: apsw.Connection, tables: list[str]) -> None:
    """Temp triggers recording (table, rowid) of every write on this connection, like the
    controller's capture (an update records the old and the new key)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS cap (seq INTEGER PRIMARY KEY, table_name TEXT, row_key)")
    for table in tables:
        for op, keys in (("INSERT", ["NEW"]), ("UPDATE", ["OLD", "NEW"]), ("DELETE", ["OLD"])):
            body = " ".join(
                f"INSERT INTO cap (table_name, row_key) VALUES ('{table}', {_key(table, k)});" for k in keys
            )
            conn.execute(f"CREATE TEMP TRIGGER cap_{table}_{op.lower()} AFTER {op} ON main.{table} BEGIN {body} END")


def _key(table: str, row: str) -> str:
    """The captured key, as the controller encodes it: the rowid, or for content_metadata (WITHOUT
    ROWID) its quote()d primary key values joined by ','."""
    if table == "content_metadata":
        return f"quote({row}.content_id) || ',' || quote({row}.metadata_type) || ',' || quote({row}.metadata_key)"
    return f"{row}.rowid"


def run_with_changes(target: Path, source: Path, captured: list[tuple], script: str) -> None:
    """Fill temp.bluegreen_changes from captured (table, key) pairs, attach source read-only and
    run script on target in one transaction, with triggers off like the controller's connections."""
    conn = connect(target)
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
    conn.execute(f"ATTACH 'file:{source}?mode=ro' AS source")
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS bluegreen_changes (table_name TEXT, row_key, present INTEGER)")
    conn.execute("DELETE FROM temp.bluegreen_changes")
    for table, key in sorted(set(captured)):
        conn.execute(
            f"INSERT INTO temp.bluegreen_changes VALUES (?, ?, EXISTS (SELECT 1 FROM source.{table} AS r"
            f" WHERE {_key(table, 'r')} = ?))",
            (table, key, key),
        )
    conn.execute((SCHEMAS / script).read_text())
    conn.execute("COMMIT")
    conn.close()


def replay_v1(green: Path, blue: Path, captured: list[tuple]) -> None:
    """What the controller's generic replay does before the sync: last state of each changed
    v1 row, copied from blue into green's v1 tables (triggers off)."""
    conn = connect(green)
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
    conn.execute(f"ATTACH 'file:{blue}?mode=ro' AS source")
    with conn:
        for table, key in sorted(set(captured)):
            conn.execute(f"DELETE FROM main.{table} WHERE rowid = ?", (key,))
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM source.{table} WHERE rowid = ?", (key,))
    conn.close()


def _canon(value: object) -> object:
    """Compare JSON objects by meaning (key order, spacing) but keep 1 and 1.0 apart."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value, parse_int=lambda s: ("int", int(s)), parse_float=lambda s: ("real", float(s)))
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return ("json object", parsed)
    return (type(value).__name__, value)


def v1_rows(conn: apsw.Connection, table: str, schema: str = "main") -> dict[int, tuple]:
    return {row[0]: tuple(_canon(v) for v in row) for row in conn.execute(f"SELECT * FROM {schema}.{table}")}


V2_QUERIES = {
    # platform by name: ids of platforms found during sync depend on arrival order
    "content": "SELECT c.id, p.name, c.original_url, c.title, c.description, c.content_type, c.status,"
    " c.author_name, c.author_id, c.duration_seconds, c.file_size_bytes, c.view_count, c.like_count,"
    " c.comment_count, c.published_at, c.local_file_path, c.thumbnail_path, c.created_at, c.updated_at,"
    " c.v1_platform FROM content c JOIN platforms p ON p.id = c.platform_id ORDER BY c.id",
    "content_metadata": "SELECT * FROM content_metadata ORDER BY content_id, metadata_type, metadata_key",
    "downloads": "SELECT * FROM downloads ORDER BY id",
    "download_errors": "SELECT * FROM download_errors ORDER BY id",
    "platforms": "SELECT name, display_name, base_url, is_active FROM platforms ORDER BY name",
    "migration_status": "SELECT migration_id, status, records_processed, total_records FROM migration_status"
    " ORDER BY migration_id",
    "content_history": "SELECT * FROM content_history",
}


def v2_state(path: Path) -> dict[str, list[tuple]]:
    conn = connect(path)
    state = {
        name: [tuple((type(v).__name__, v) for v in row) for row in conn.execute(sql)]
        for name, sql in V2_QUERIES.items()
    }
    conn.close()
    return state


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("v1") / "app.db"
    demo_data.create_v1_database(str(path), rows=ROWS, seed=7)
    conn = connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO content_v1 (id, url, title, author, platform, metadata, download_info)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            EDGE_CONTENT,
        )
        conn.executemany("INSERT INTO downloads_v1 VALUES (?, ?, ?, ?, ?, ?, ?, ?)", EDGE_DOWNLOADS)
    conn.close()
    return path


@pytest.fixture(scope="module")
def green_file(v1_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrate(copy_db(v1_file, tmp_path_factory.mktemp("green") / "app-2.db"))


@pytest.fixture
def green(green_file: Path, tmp_path: Path) -> Path:
    return copy_db(green_file, tmp_path / "green.db")


@pytest.fixture
def blue(v1_file: Path, tmp_path: Path) -> Path:
    return copy_db(v1_file, tmp_path / "blue.db")


# -- the generator -----------------------------------------------------------------------------


def test_baseline_is_the_v1_schema_and_changes_nothing_on_v1(v1_file: Path, tmp_path: Path) -> None:
    baseline = re.sub(r"^--.*\n", "", BASELINE.read_text(), flags=re.M)
    assert baseline == demo_data.V1_SCHEMA.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ")
    conn = connect(copy_db(v1_file, tmp_path / "v1.db"))
    before = conn.execute("PRAGMA schema_version").fetchone()
    run_file(conn, "001_v1.2.1_baseline.sql")
    assert conn.execute("PRAGMA schema_version").fetchone() == before
    expected = conn.execute("SELECT name, sql FROM sqlite_schema ORDER BY name").fetchall()
    empty = connect(tmp_path / "empty.db")
    run_file(empty, "001_v1.2.1_baseline.sql")
    assert empty.execute("SELECT name, sql FROM sqlite_schema ORDER BY name").fetchall() == expected


def test_demo_data_is_deterministic_and_has_the_odd_rows(tmp_path: Path) -> None:
    dumps = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        demo_data.create_v1_database(str(tmp_path / f"{name}.db"), rows=1500, seed=seed)
        conn = connect(tmp_path / f"{name}.db")
        dumps.append(
            (
                conn.execute("SELECT * FROM content_v1 ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM downloads_v1 ORDER BY id").fetchall(),
            )
        )
        if name == "a":
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            platforms = {row[0] for row in conn.execute("SELECT DISTINCT platform FROM content_v1")}
            assert {"youtube", "tiktok", "instagram", "YouTube", None, "vimeo"} <= platforms
            ((malformed, null, empty),) = conn.execute(
                "SELECT sum(NOT json_valid(metadata)), sum(metadata IS NULL), sum(metadata = '{}') FROM content_v1"
            )
            assert malformed > 0 and null > 0 and empty > 0
            ((downloads, orphans, failed_with_error),) = conn.execute(
                "SELECT count(*), sum(content_id IS NULL OR content_id NOT IN (SELECT id FROM content_v1)),"
                " sum(status = 'failed' AND error_message IS NOT NULL) FROM downloads_v1"
            )
            assert 0.5 < downloads / 1500 < 0.75 and orphans >= 2 and failed_with_error > 0
        conn.close()
    assert dumps[0] == dumps[1]
    assert dumps[0] != dumps[2]


def test_single_write_helpers(blue: Path) -> None:
    conn = connect(blue)
    rng = random.Random(5)
    before = conn.execute("SELECT count(*) FROM content_v1").fetchone()[0]
    new_id = demo_data.insert_v1_row(conn, rng)
    assert conn.execute("SELECT url FROM content_v1 WHERE id = ?", (new_id,)).fetchone()[0].startswith("https://")
    assert demo_data.update_v1_row(conn, rng) is not None
    gone = demo_data.delete_v1_row(conn, rng)
    assert conn.execute("SELECT count(*) FROM content_v1 WHERE id = ?", (gone,)).fetchone()[0] == 0
    ops = {demo_data.random_v1_write(conn, rng)[0] for _ in range(40)}
    assert ops == {"insert", "update", "delete"}
    assert conn.execute("SELECT count(*) FROM content_v1").fetchone()[0] > before
    conn.close()


# -- the migration -----------------------------------------------------------------------------


def test_every_v1_row_arrives(green_file: Path, v1_file: Path) -> None:
    conn = connect(green_file)
    q = lambda sql, *args: conn.execute(sql, args).fetchall()  # noqa: E731
    assert q("SELECT id, url FROM content_v1 ORDER BY id") == q("SELECT id, original_url FROM content ORDER BY id")
    assert len(q("SELECT id FROM content")) == ROWS + len(EDGE_CONTENT)
    assert q("SELECT id FROM downloads_v1 ORDER BY id") == q("SELECT id FROM downloads ORDER BY id")
    # v1's own orphans (downloads_v1 → content_v1) are still there, as in blue; v2 adds none
    v1 = connect(v1_file)
    assert set(q("PRAGMA foreign_key_check")) == set(v1.execute("PRAGMA foreign_key_check").fetchall())
    v1.close()
    assert {row[0] for row in q("PRAGMA foreign_key_check")} <= {"downloads_v1"}
    assert q("PRAGMA integrity_check") == [("ok",)]
    report = validate(conn)
    assert failing(report) == [] and len(report) >= 15
    assert [row[0] for row in report[:3]] == ["content_count", "metadata_extracted", "platform_relationships"]

    def kv(cid):
        return set(
            q(
                "SELECT metadata_type, metadata_key, metadata_value, data_type FROM content_metadata WHERE content_id = ?",
                cid,
            )
        )

    # malformed, blob, empty and non-object metadata are one raw row each, verbatim
    for content_id, metadata in q(
        "SELECT id, metadata FROM content_v1 WHERE metadata IS NOT NULL AND (typeof(metadata) <> 'text'"
        " OR NOT json_valid(metadata) OR json_type(metadata) <> 'object' OR metadata = '{}')"
    ):
        assert q(
            "SELECT metadata_value FROM content_metadata WHERE content_id = ? AND metadata_type = 'raw'"
            " AND metadata_key = 'metadata'",
            content_id,
        ) == [(metadata,)]
    assert kv(9002) == {("raw", "metadata", b"\x00\x01", "blob"), ("raw", "download_info", "not json", "string")}
    assert kv(9003) == {("raw", "metadata", "", "string"), ("raw", "download_info", "[]", "json")}
    assert kv(9004) == {("raw", "metadata", '["id", "abcdefghijk"]', "json")}

    # odd platforms: normalized, verbatim value kept, unusable ones on 'unknown'
    def platform_of(cid):
        return q(
            "SELECT p.name, c.v1_platform FROM content c JOIN platforms p ON p.id = c.platform_id WHERE c.id = ?", cid
        )[0]

    assert platform_of(9001) == ("tiktok", " tiktok ")
    assert platform_of(9002) == ("unknown", "https://weird.example/platform")
    assert platform_of(9003) == ("unknown", "")
    assert platform_of(9004) == ("youtube", "YouTube")
    null_id = q("SELECT id FROM content_v1 WHERE platform IS NULL LIMIT 1")[0][0]
    assert platform_of(null_id) == ("unknown", None)
    vimeo_id = q("SELECT id FROM content_v1 WHERE platform = 'vimeo' LIMIT 1")[0][0]
    assert platform_of(vimeo_id) == ("vimeo", "vimeo")

    # odd values are content_metadata rows of their own key and type; typed columns only get exact values
    assert q(
        "SELECT duration_seconds, view_count, like_count, published_at, description, status, file_size_bytes"
        " FROM content WHERE id = 9001"
    ) == [(None, None, None, None, None, "completed", None)]
    assert kv(9001) == {
        ("platform_specific", "tiktok_video_id", 7, "integer"),
        ("extra", "duration", "3:45", "string"),
        ("extra", "view_count", -1, "integer"),
        ("extra", "like_count", 1.5, "float"),
        ("extra", "upload_date", "20230231", "string"),
        ("video_specs", "resolution_width", "1920", "string"),
        ("video_specs", "fps", 29.97, "float"),
        ("extra", "description", None, "null"),
        ("extra", "extra", '{"nested":[1,true,null]}', "json"),
        ("download_info", "file_size", "12.5 MB", "string"),
        ("download_info", "note", "kept", "string"),
    }
    # numbers SQLite would not give back as written keep their JSON text
    assert kv(9005) == {
        ("platform_specific", "youtube_video_id", "zzzzzzzzzzz", "string"),
        ("extra", "view_count", "123456789012345678901234", "json"),
        ("extra", "duration", 212.0, "float"),
        ("extra", "upload_date", 20230405, "integer"),
        ("raw", "download_info", "{}", "json"),
    }

    # typed values where the JSON has them; yt-dlp's upload_date becomes a real date
    yt = q(
        "SELECT c.id, v.metadata FROM content c JOIN content_v1 v ON v.id = c.id WHERE v.platform = 'youtube'"
        " AND json_valid(v.metadata) AND json_type(v.metadata, '$.duration') = 'integer'"
        " AND json_type(v.metadata, '$.upload_date') = 'text' AND json_type(v.metadata, '$.width') = 'integer' LIMIT 1"
    )[0]
    meta = json.loads(yt[1])
    day = meta["upload_date"]
    assert q(
        "SELECT author_id, duration_seconds, view_count, published_at, content_type, date(published_at) FROM content"
        " WHERE id = ?",
        yt[0],
    ) == [
        (
            meta["uploader_id"],
            meta["duration"],
            meta["view_count"],
            f"{day[:4]}-{day[4:6]}-{day[6:]}",
            meta["content_type"],
            f"{day[:4]}-{day[4:6]}-{day[6:]}",
        )
    ]
    assert {
        ("platform_specific", "youtube_video_id", meta["id"], "string"),
        ("video_specs", "resolution_width", meta["width"], "integer"),
        ("video_specs", "video_codec", meta["vcodec"], "string"),
    } <= kv(yt[0])
    ig = q(
        "SELECT c.id, v.metadata FROM content c JOIN content_v1 v ON v.id = c.id"
        " WHERE v.platform = 'instagram' AND json_type(v.metadata, '$.pk') = 'integer' LIMIT 1"
    )[0]
    pk = json.loads(ig[1])["pk"]
    assert ("platform_specific", "instagram_media_id", pk, "integer") in kv(ig[0])
    # the plan's metadata_lookup: by key and value, on the index
    assert q(
        "SELECT content_id FROM content_metadata WHERE metadata_key = 'instagram_media_id' AND metadata_value = ?", pk
    ) == [(ig[0],)]

    # orphans keep their row and their dangling v1 content_id; statuses normalized, verbatim kept
    assert q("SELECT content_id, orphan_content_id, status, v1_status, progress FROM downloads WHERE id = 900001") == [
        (None, "abc", "unknown", None, "50%")
    ]
    assert q("SELECT content_id, orphan_content_id, status FROM downloads WHERE id = 900002") == [
        (9002, None, "completed")
    ]
    assert q("SELECT content_id, orphan_content_id FROM downloads WHERE id = 900003") == [(None, 424242)]
    assert q("SELECT error_type, error_message FROM download_errors WHERE download_id = 900003") == [
        ("http", "HTTP Error 403: Forbidden")
    ]
    assert q("SELECT count(*) FROM downloads WHERE orphan_content_id IS NOT NULL") == q(
        "SELECT count(*) FROM downloads_v1 WHERE content_id NOT IN (SELECT id FROM content_v1)"
    )
    conn.close()


def test_round_trip_through_v2_is_lossless(green_file: Path) -> None:
    """The legacy_* views rebuild every v1 row exactly (JSON compared by meaning, types kept)."""
    conn = connect(green_file)
    assert v1_rows(conn, "legacy_content_v1") == v1_rows(conn, "content_v1")
    assert v1_rows(conn, "legacy_downloads_v1") == v1_rows(conn, "downloads_v1")
    conn.close()


@pytest.mark.parametrize(
    "damage",
    [
        "DELETE FROM content WHERE id = (SELECT max(id) FROM content WHERE id < 9000)",
        "DELETE FROM downloads WHERE id = 17",
        "DELETE FROM content_metadata WHERE content_id = 3 AND metadata_key = 'resolution_width'",
        "UPDATE content_metadata SET metadata_value = 'x' WHERE content_id = 3 AND metadata_key = 'resolution_height'",
        "UPDATE content SET view_count = NULL WHERE id = (SELECT min(id) FROM content WHERE view_count IS NOT NULL)",
        "DELETE FROM download_errors WHERE id = (SELECT min(id) FROM download_errors)",
        "UPDATE content SET original_url = original_url || '#' WHERE id = 8",
        "UPDATE content_metadata SET metadata_value = NULL WHERE content_id = 9003 AND metadata_key = 'metadata'",
        "UPDATE migration_status SET records_processed = records_processed - 1 WHERE migration_id = '2.0.0:content_metadata'",
        "UPDATE downloads SET content_id = NULL WHERE id = (SELECT min(id) FROM downloads WHERE content_id IS NOT NULL)",
        "UPDATE migration_status SET status = 'running' WHERE migration_id = '2.0.0:downloads'",
    ],
)
def test_validate_fails_when_something_is_lost(green_file: Path, damage: str) -> None:
    conn = connect(green_file)
    conn.execute("BEGIN")
    try:
        conn.execute(damage)
        assert conn.changes() == 1, "the damage must hit a row"
        assert failing(validate(conn)), damage
    finally:
        conn.execute("ROLLBACK")
    assert failing(validate(conn)) == []
    conn.close()


# -- sync (before cutover) ---------------------------------------------------------------------


def _write_blue(conn: apsw.Connection, rng: random.Random) -> int:
    """A batch of v1 application writes of every kind; returns the content id whose downloads it
    left behind as orphans."""
    orphaned = conn.execute("SELECT min(content_id) FROM downloads_v1 WHERE content_id > 10").fetchone()[0]
    with conn:
        conn.execute("UPDATE content_v1 SET title = 'retitled' WHERE id = 5")
        conn.execute("UPDATE content_v1 SET metadata = 'oops{' WHERE id = 6")
        conn.execute(
            'UPDATE content_v1 SET platform = \'Reddit\', metadata = \'{"id": "r1", "duration": 12}\' WHERE id = 7'
        )
        conn.execute("UPDATE content_v1 SET platform = NULL, download_info = NULL WHERE id = 8")
        conn.execute(
            'UPDATE content_v1 SET metadata = \'{"id": "x", "width": 640, "height": "480"}\','
            ' download_info = \'{"status": "failed"}\' WHERE id = 9001'
        )
        conn.execute("DELETE FROM content_v1 WHERE id = ?", (orphaned,))  # its downloads stay: orphans now
        conn.execute("DELETE FROM downloads_v1 WHERE content_id = 10")
        conn.execute("DELETE FROM content_v1 WHERE id = 10")
        conn.execute(
            "UPDATE downloads_v1 SET status = 'Completed', error_message = NULL"
            " WHERE id = (SELECT min(id) FROM downloads_v1 WHERE status = 'failed')"
        )
        conn.execute("DELETE FROM downloads_v1 WHERE id = 12")
        conn.execute("UPDATE downloads_v1 SET content_id = 4 WHERE id = 900001")  # an orphan gets linked
        conn.execute("INSERT INTO downloads_v1 (id, content_id, status) VALUES (950000, 5000, 'pending')")
    for _ in range(6):
        demo_data.insert_v1_row(conn, rng)
    for _ in range(4):
        demo_data.update_v1_row(conn, rng)
    demo_data.delete_v1_row(conn, rng)
    return orphaned


def test_sync_re_derives_exactly_the_changed_keys(green: Path, blue: Path, tmp_path: Path) -> None:
    rng = random.Random(11)
    app = connect(blue)
    install_capture(app, ["content_v1", "downloads_v1"])
    orphaned = _write_blue(app, rng)
    batch1 = app.execute("SELECT table_name, row_key FROM cap").fetchall()
    assert len(set(batch1)) > 15

    replay_v1(green, blue, batch1)
    run_with_changes(green, blue, batch1, f"{STEM}_sync.sql")
    first = v2_state(green)
    run_with_changes(green, blue, batch1, f"{STEM}_sync.sql")  # idempotent: changes nothing
    assert v2_state(green) == first

    fresh = migrate(copy_db(blue, tmp_path / "fresh.db"))
    assert v2_state(green) == v2_state(fresh)

    # a second batch: the content row the orphan download 950000 points at appears
    app.execute("DELETE FROM cap")
    app.execute(
        "INSERT INTO content_v1 (id, url, platform, metadata) VALUES (5000, 'https://x.com/i/5000',"
        " 'twitter', '{\"id\": \"5000\"}')"
    )
    batch2 = app.execute("SELECT table_name, row_key FROM cap").fetchall()
    app.close()
    replay_v1(green, blue, batch2)
    run_with_changes(green, blue, batch2, f"{STEM}_sync.sql")
    fresh = migrate(copy_db(blue, tmp_path / "fresh2.db"))
    assert v2_state(green) == v2_state(fresh)

    conn = connect(green)
    assert conn.execute("SELECT content_id, orphan_content_id FROM downloads WHERE id = 950000").fetchall() == [
        (5000, None)
    ]
    assert conn.execute("SELECT count(*) FROM downloads WHERE orphan_content_id = ?", (orphaned,)).fetchone()[0] > 0
    assert conn.execute("SELECT name FROM platforms WHERE name = 'reddit'").fetchall() == [("reddit",)]
    assert failing(validate(conn)) == []
    assert {row[0] for row in conn.execute("PRAGMA foreign_key_check")} <= {"downloads_v1"}
    conn.close()


def test_sync_and_rollback_look_up_keys_instead_of_scanning(green: Path, blue: Path) -> None:
    """Each statement of the scripts reaches the big tables by key (so a small batch stays small
    on a million rows); only the small tables may be scanned."""
    small = {
        "bluegreen_changes",
        "bg003_content_keys",
        "bg003_download_keys",
        "bg003_rb_content",
        "bg003_rb_downloads",
        "platforms",
        "migration_status",
        "CONSTANT",  # SCAN CONSTANT ROW: a SELECT without FROM (one typed column of the JSON being rebuilt)
    }
    for target, source, script in ((green, blue, "sync"), (blue, green, "rollback")):
        conn = connect(target)
        conn.execute(f"ATTACH 'file:{source}?mode=ro' AS source")
        conn.execute("CREATE TEMP TABLE bluegreen_changes (table_name TEXT, row_key, present INTEGER)")
        conn.execute("BEGIN")
        buffer, coroutines = "", set()
        for line in (SCHEMAS / f"{STEM}_{script}.sql").read_text().splitlines(keepends=True):
            buffer += line
            if not apsw.complete(buffer):
                continue
            statement, buffer = buffer, ""
            body = re.sub(r"--[^\n]*", "", statement).strip()
            if body.startswith(("INSERT", "DELETE", "UPDATE")):
                for *_, detail in conn.execute("EXPLAIN QUERY PLAN " + body):
                    coroutines.update(re.findall(r"CO-ROUTINE (\w+)", detail))
                    scanned = re.match(r"SCAN (?:\w+\.)?(\w+)\b(?! VIRTUAL TABLE)", detail)
                    assert not scanned or scanned.group(1) in small | coroutines, f"{script}: {detail} in {body[:80]}"
            conn.execute(statement)
        conn.execute("ROLLBACK")
        conn.close()


# -- rollback (on revert) ----------------------------------------------------------------------

V2_TABLES = [
    "content",
    "content_metadata",
    "quality_options",
    "download_sessions",
    "downloads",
    "download_errors",
    "platforms",
    "tags",
    "content_tags",
    "content_history",
]


def test_rollback_carries_v2_writes_back_into_v1(green: Path, blue: Path) -> None:
    app = connect(green)  # the v2 application after cutover, foreign keys on
    app.execute("PRAGMA foreign_keys = ON")
    install_capture(app, V2_TABLES)
    q = lambda sql, *args: app.execute(sql, args).fetchall()  # noqa: E731
    youtube = [
        row[0]
        for row in q(
            "SELECT c.id FROM content c WHERE c.v1_platform = 'youtube' AND c.duration_seconds IS NOT NULL"
            " AND EXISTS (SELECT 1 FROM content_metadata m WHERE m.content_id = c.id AND m.metadata_type = 'video_specs')"
            " AND c.id < 9000 ORDER BY c.id LIMIT 5"
        )
    ]
    a, b, c, d, e = youtube
    failed = q("SELECT download_id FROM download_errors WHERE download_id <> 17 ORDER BY id LIMIT 2")
    with app:
        app.execute("UPDATE content SET title = 'edited in v2' WHERE id = ?", (a,))
        app.execute("UPDATE content SET view_count = 42, duration_seconds = NULL WHERE id = ?", (b,))
        app.execute(
            "UPDATE content_metadata SET metadata_value = 'hevc' WHERE content_id = ? AND metadata_key = 'video_codec'",
            (a,),
        )
        # seen through the touch trigger
        app.execute("DELETE FROM content_metadata WHERE content_id = ? AND metadata_type = 'video_specs'", (c,))
        app.execute(
            "UPDATE content SET platform_id = (SELECT id FROM platforms WHERE name = 'tiktok') WHERE id = ?", (d,)
        )
        app.execute("DELETE FROM content WHERE id = ?", (e,))  # cascades; its downloads keep no content
        app.execute("UPDATE content SET title = 'raw kept' WHERE id = 9003")
        app.execute("UPDATE downloads SET status = 'completed', progress = 100.0 WHERE id = ?", failed[0])
        app.execute("DELETE FROM download_errors WHERE download_id = ?", failed[0])
        app.execute(
            "INSERT INTO download_errors (download_id, error_type, error_message) VALUES (?, 'network', ?)",
            (failed[1][0], "Read timed out (retry)"),
        )
        app.execute("DELETE FROM downloads WHERE id = 17")
        app.execute("UPDATE platforms SET name = 'insta' WHERE name = 'instagram'")
        app.execute("INSERT INTO platforms (name, display_name) VALUES ('reddit', 'Reddit')")
        app.execute(
            "INSERT INTO content (platform_id, original_url, title, content_type, view_count, published_at, status,"
            " file_size_bytes) VALUES ((SELECT id FROM platforms WHERE name = 'reddit'), 'https://reddit.com/r/42',"
            " 'new in v2', 'video', 7, '2025-01-02', 'completed', 99)"
        )
        new_id = app.last_insert_rowid()
        app.executemany(
            "INSERT INTO content_metadata (content_id, metadata_type, metadata_key, metadata_value, data_type)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (new_id, "extra", "id", "r42", "string"),
                (new_id, "video_specs", "resolution_width", 1280, "integer"),
                (new_id, "video_specs", "resolution_height", 720, "integer"),
            ],
        )
        app.execute("INSERT INTO downloads (content_id, status) VALUES (?, 'failed')", (new_id,))
        new_download = app.last_insert_rowid()
        app.execute("INSERT INTO download_errors (download_id, error_message) VALUES (?, 'boom')", (new_download,))
        app.execute("INSERT INTO tags (name) VALUES ('v2 only')")
    captured = q("SELECT table_name, row_key FROM cap")
    app.close()

    for _ in range(2):  # idempotent
        run_with_changes(blue, green, captured, f"{STEM}_rollback.sql")
        v1 = connect(blue)
        v1.execute(f"ATTACH 'file:{green}?mode=ro' AS source")
        content, downloads = v1_rows(v1, "content_v1"), v1_rows(v1, "downloads_v1")
        # blue now holds exactly what green's v2 rows stand for, changed rows and untouched ones
        assert content == v1_rows(v1, "legacy_content_v1", "source")
        assert downloads == v1_rows(v1, "legacy_downloads_v1", "source")
        rows = {r[0]: r for r in v1.execute("SELECT id, title, platform, metadata, download_info FROM content_v1")}
        v1.close()
    assert rows[a][1] == "edited in v2" and json.loads(rows[a][3])["vcodec"] == "hevc"
    meta_b = json.loads(rows[b][3])
    assert meta_b["view_count"] == 42 and "duration" not in meta_b
    assert not {"width", "height", "fps", "vcodec", "acodec"} & set(json.loads(rows[c][3]))
    assert rows[d][2] == "tiktok"
    assert e not in rows
    assert rows[9003][1:4] == ("raw kept", "", "")
    assert rows[new_id][2] == "reddit" and json.loads(rows[new_id][3]) == {
        "id": "r42",
        "content_type": "video",
        "view_count": 7,
        "upload_date": "20250102",
        "width": 1280,
        "height": 720,
    }
    assert json.loads(rows[new_id][4]) == {"status": "completed", "file_size": 99}
    insta = [r for r in rows.values() if r[2] == "insta"]
    assert insta and not [r for r in rows.values() if r[2] == "instagram"]
    v1 = connect(blue)
    by_id = {r[0]: r for r in v1.execute("SELECT id, content_id, status, error_message FROM downloads_v1")}
    assert by_id[failed[0][0]][2:] == ("completed", None)
    assert by_id[failed[1][0]][3] == "Read timed out (retry)"
    assert 17 not in by_id
    assert by_id[new_download][1:] == (new_id, "failed", "boom")
    assert v1.execute("SELECT count(*) FROM downloads_v1 WHERE content_id = ?", (e,)).fetchone()[0] == 0
    assert v1.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    v1.close()


# -- every v1 key, walked one by one ---------------------------------------------------------------

# Where the plan puts each v1 key: a typed content column (when the JSON value has its type), or a
# content_metadata row (metadata_type, metadata_key). Written here independently of 003's views.
COLUMNS = {
    "metadata": {
        "description": "description",
        "content_type": "content_type",
        "uploader_id": "author_id",
        "duration": "duration_seconds",
        "view_count": "view_count",
        "like_count": "like_count",
        "comment_count": "comment_count",
        "upload_date": "published_at",
    },
    "download_info": {
        "status": "status",
        "file_size": "file_size_bytes",
        "file_path": "local_file_path",
        "thumbnail_path": "thumbnail_path",
    },
}
PLATFORM_IDS = {
    ("youtube", "id"): "youtube_video_id",
    ("tiktok", "aweme_id"): "tiktok_video_id",
    ("instagram", "pk"): "instagram_media_id",
}
VIDEO_SPECS = {
    "width": "resolution_width",
    "height": "resolution_height",
    "fps": "fps",
    "vcodec": "video_codec",
    "acodec": "audio_codec",
}


def _sqlite_value(raw: str) -> tuple[object, str]:
    """A JSON value as the (metadata_value, data_type) the plan's key-value row holds for it."""
    value = json.loads(raw)
    if isinstance(value, bool):
        return int(value), "boolean"
    if value is None:
        return None, "null"
    if isinstance(value, str):
        return value, "string"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False), "json"
    exact = json.dumps(value) == raw and (not isinstance(value, int) or -(2**63) <= value < 2**63)
    if not exact:
        return raw, "json"  # the number's JSON text, as written
    return value, "integer" if isinstance(value, int) else "float"


def _column_value(key: str, raw: str) -> object:
    value = json.loads(raw)
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if key == "upload_date" and isinstance(value, str) else value


def test_every_key_of_every_v1_object_is_found_in_v2(green_file: Path) -> None:
    """Generated and awkward rows: each key of each v1 metadata / download_info object is either
    its typed content column holding the value or a content_metadata row holding it; each v2
    home stands for exactly one v1 key (nothing extra, nothing twice); and what is not a JSON
    object with keys is one raw row, verbatim."""
    conn = connect(green_file)
    content = {row[0]: row for row in conn.execute("SELECT * FROM content")}
    names = [row[1] for row in conn.execute("PRAGMA table_info(content)")]
    homes: dict[int, set] = {}
    for cid, kind, key, value, data_type in conn.execute(
        "SELECT content_id, metadata_type, metadata_key, metadata_value, data_type FROM content_metadata"
    ):
        homes.setdefault(cid, set()).add((kind, key, value, data_type))
    walked = checked_in_columns = 0
    for cid, platform, metadata, download_info in conn.execute(
        "SELECT id, lower(trim(platform)), metadata, download_info FROM content_v1"
    ):
        found = homes.get(cid, set())
        row = dict(zip(names, content[cid]))
        used_columns = set()
        for source, text in (("metadata", metadata), ("download_info", download_info)):
            pairs = None
            if isinstance(text, str):
                try:
                    pairs = json.loads(text, object_pairs_hook=_Pairs, parse_float=str, parse_int=str)
                except ValueError:
                    pairs = None
            if not isinstance(pairs, _Pairs) or not pairs or len({k for k, _ in pairs}) < len(pairs):
                if text is not None:
                    assert ("raw", source, text, "blob" if isinstance(text, bytes) else _raw_type(text)) in found
                continue
            raw_values = _raw_values(text)
            for key, raw in raw_values:
                walked += 1
                column = COLUMNS[source].get(key)
                if column and row[column] is not None and row[column] == _column_value(key, raw):
                    used_columns.add(column)
                    checked_in_columns += 1
                    continue
                value, data_type = _sqlite_value(raw)
                if source == "download_info":
                    kind, name = "download_info", key
                elif (platform, key) in PLATFORM_IDS:
                    kind, name = "platform_specific", PLATFORM_IDS[(platform, key)]
                elif key in VIDEO_SPECS:
                    kind, name = "video_specs", VIDEO_SPECS[key]
                else:
                    kind, name = "extra", key
                assert (kind, name, value, data_type) in found, (cid, source, key, raw)
                found = found - {(kind, name, value, data_type)}
        leftover = {h for h in found if h[0] != "raw"}
        assert leftover == set(), (cid, leftover)  # no v2 home without its v1 key
        typed = {c for c in sum((list(m.values()) for m in COLUMNS.values()), []) if row[c] is not None}
        assert typed == used_columns, cid
    conn.close()
    assert walked > 20_000 and checked_in_columns > 5_000


class _Pairs(list):
    """A JSON object's (key, value) pairs, duplicates kept."""


def _raw_type(text: str) -> str:
    try:
        json.loads(text)
    except ValueError:
        return "string"
    return "json"


def _raw_values(text: str) -> list[tuple[str, str]]:
    """(key, the value's JSON text as written) for each key of a JSON object."""
    decoder = json.JSONDecoder()
    found, index = [], text.index("{") + 1
    whitespace = " \t\n\r"
    while True:
        while text[index] in whitespace + ",":
            index += 1
        if text[index] == "}":
            return found
        key, index = decoder.raw_decode(text, index)
        while text[index] in whitespace + ":":
            index += 1
        _, end = decoder.raw_decode(text, index)
        found.append((key, text[index:end]))
        index = end


def test_the_readme_key_value_queries_run_as_written(green_file: Path) -> None:
    """README, "The shipped example": its SQL block, statement by statement, on a migrated file."""
    readme = (SCHEMAS.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The shipped example") :]
    block = section[section.index("```sql\n") + 7 : section.index("```", section.index("```sql\n") + 7)]
    statements = [s for s in block.split(";") if re.sub(r"--[^\n]*", "", s).strip()]
    conn = connect(green_file)
    conn.execute("PRAGMA query_only = 1")
    high, by_id = (conn.execute(s).fetchall() for s in statements)
    assert len(high) > 100 and all(isinstance(title, (str, type(None))) for _, title in high)
    assert by_id == []  # no such video in the generated data; the query runs on the index
    plan = conn.execute("EXPLAIN QUERY PLAN " + statements[1]).fetchall()
    assert "content_metadata_lookup" in plan[0][3]
    conn.close()
