"""Realistic Social Download Manager v1.2.1 data for the shipped v1.2.1 → v2.0 example.

Why: the migration in schemas/ must survive what real v1 files hold (oddly cased or missing
platforms, malformed or empty JSON, odd values, orphan downloads), and benchmarks need many rows
fast. Everything is drawn from random.Random(seed), so one seed always gives the same file.
"""

from __future__ import annotations

import json
import random
import string
import time

import apsw

# The v1.2.1 schema. schemas/001_v1.2.1_baseline.sql is this text with IF NOT EXISTS added.
V1_SCHEMA = """\
CREATE TABLE content_v1 (
  id INTEGER PRIMARY KEY,
  url TEXT NOT NULL,
  title TEXT, author TEXT,
  platform TEXT,              -- 'youtube', 'YouTube', 'tiktok', 'instagram', others, or NULL
  metadata TEXT,              -- JSON object; may be NULL, '{}', or in old rows not valid JSON
  download_info TEXT,         -- JSON object or NULL
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE downloads_v1 (
  id INTEGER PRIMARY KEY,
  content_id INTEGER REFERENCES content_v1(id),
  status TEXT, progress REAL, file_path TEXT, error_message TEXT,
  started_at TIMESTAMP, finished_at TIMESTAMP);
"""

_PLATFORMS = ["youtube", "tiktok", "instagram", "YouTube", " tiktok ", None, "vimeo", "twitter"]
_PLATFORM_WEIGHTS = [44, 25, 20, 3, 1, 3, 2, 2]
_STATUSES = ["completed", "failed", "pending", "downloading", "Completed", "cancelled", "error"]
_STATUS_WEIGHTS = [68, 14, 8, 6, 2, 1, 1]
_ERRORS = [
    "HTTP Error 403: Forbidden",
    "HTTP Error 429: Too Many Requests",
    "Unable to extract video data",
    "Connection reset by peer",
    "Video unavailable: this video is private",
    "Read timed out",
]
_WORDS = (
    "how to make the best easy quick review vlog day in my life tutorial funny cat dog recipe "
    "travel music live cover dance challenge unboxing tips 2024 shorts reel trip city"
).split()
_NAMES = [
    "Ana Lima",
    "Bao Tran",
    "Chloe Martin",
    "Dev Patel",
    "Emeka Obi",
    "Fatima Zahra",
    "Gus Berg",
    "Hana Sato",
    "Ivan Petrov",
    "Jade Wong",
    "Kofi Mensah",
    "Lena Vogel",
    "Mateo Ruiz",
]
_ID_CHARS = string.ascii_letters + string.digits + "-_"
_EPOCH_2023 = 1_672_531_200
_TWO_YEARS = 63_072_000


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(low, high))).capitalize()


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _metadata(rng: random.Random, platform: str | None, created: int) -> tuple[str | None, str]:
    """(metadata text, url) as each extractor wrote them, with the oddities old rows really have."""
    name = (platform or "").strip().lower()
    day = time.strftime("%Y%m%d", time.gmtime(created - rng.randrange(0, 400 * 86400)))
    meta: dict = {}
    if name == "youtube":
        vid = "".join(rng.choices(_ID_CHARS, k=11))
        url = f"https://www.youtube.com/watch?v={vid}"
        short = rng.random() < 0.2
        meta = {
            "id": vid,
            "content_type": "short" if short else "video",
            "uploader_id": "@" + rng.choice(_NAMES).split()[0].lower() + str(rng.randrange(100)),
            "duration": rng.randrange(10, 60) if short else rng.randrange(60, 7200),
            "view_count": int(rng.paretovariate(1.2) * 1000),
            "like_count": rng.randrange(0, 50_000),
            "comment_count": rng.randrange(0, 5_000),
            "upload_date": day,
            "width": 1080 if short else 1920,
            "height": 1920 if short else 1080,
            "fps": rng.choice([24, 25, 30, 60]),
            "vcodec": "avc1.640028",
            "acodec": "mp4a.40.2",
        }
        if rng.random() < 0.1:
            meta["tags"] = rng.sample(_WORDS, 3)  # a key v2 has no column for: an "extra" content_metadata row
    elif name == "tiktok":
        aweme = str(rng.randrange(7_000_000_000_000_000_000, 7_400_000_000_000_000_000))
        user = rng.choice(_NAMES).split()[0].lower()
        url = f"https://www.tiktok.com/@{user}/video/{aweme}"
        meta = {
            "aweme_id": aweme,
            "content_type": "video",
            "uploader_id": str(rng.randrange(10**17, 10**18)),
            "duration": rng.randrange(5, 180),
            "view_count": rng.randrange(0, 10**7),
            "like_count": rng.randrange(0, 10**6),
            "comment_count": rng.randrange(0, 10**4),
            "upload_date": day,
            "width": 1080,
            "height": 1920,
            "fps": 30,
            "vcodec": "h264",
            "acodec": "aac",
        }
    elif name == "instagram":
        code = "".join(rng.choices(_ID_CHARS, k=11))
        kind = rng.choice(["reel", "reel", "image", "carousel"])
        url = f"https://www.instagram.com/{'reel' if kind == 'reel' else 'p'}/{code}/"
        meta = {
            "pk": rng.randrange(3_000_000_000_000_000_000, 3_400_000_000_000_000_000),  # a number, as the API sends it
            "content_type": kind,
            "uploader_id": rng.randrange(10**9, 10**11),
            "like_count": rng.randrange(0, 10**5),
            "comment_count": rng.randrange(0, 10**3),
            "upload_date": day,
            "width": 1080,
            "height": 1350 if kind != "reel" else 1920,
        }
        if kind == "reel":
            meta.update(duration=round(rng.uniform(3, 90), 3), view_count=rng.randrange(0, 10**6), fps=30)
    else:
        vid = str(rng.randrange(10**8, 10**9))
        url = f"https://{'vimeo.com' if name == 'vimeo' else 'x.com/i/status'}/{vid}"
        meta = {"id": vid, "duration": rng.randrange(10, 3600), "upload_date": day}
    meta["description"] = _words(rng, 3, 25)
    roll = rng.random()
    if roll < 0.02:
        return None, url
    if roll < 0.04:
        return "{}", url
    if roll < 0.05:  # ~1% not valid JSON: truncated writes, Python repr, placeholders
        text = json.dumps(meta)
        return rng.choice([text[: len(text) // 2], repr(meta), "N/A", "", "[object Object]"]), url
    if roll < 0.08:  # odd values inside valid JSON
        key, value = rng.choice(
            [
                ("duration", "3:45"),
                ("duration", "N/A"),
                ("duration", None),
                ("duration", 212.0),
                ("view_count", "1.2K"),
                ("view_count", "12345"),
                ("like_count", -1),
                ("upload_date", "2023-04-05"),
                ("upload_date", 20230405),
                ("width", "1920"),
            ]
        )
        meta[key] = value
    return json.dumps(meta), url


def _download_info(rng: random.Random, title: str | None) -> str | None:
    """What v1 showed for the content's last download: NULL for about 40% of rows."""
    if rng.random() < 0.4:
        return None
    stem = (title or "untitled").replace(" ", "_")[:40]
    info = {
        "status": "completed" if rng.random() < 0.9 else "failed",
        "file_size": rng.randrange(10**5, 10**9),
        "file_path": f"/home/user/Downloads/SDM/{stem}.mp4",
        "thumbnail_path": f"/home/user/.sdm/thumbs/{stem}.jpg",
    }
    roll = rng.random()
    if roll < 0.01:
        info["file_size"] = "12.5 MB"
    elif roll < 0.015:
        return '{"status": "completed", "file_size": '
    return json.dumps(info)


def content_row(rng: random.Random, created: int | None = None) -> tuple:
    """(url, title, author, platform, metadata, download_info, created_at) for one content_v1 row."""
    created = created if created is not None else int(time.time())
    platform = rng.choices(_PLATFORMS, _PLATFORM_WEIGHTS)[0]
    metadata, url = _metadata(rng, platform, created)
    title = None if rng.random() < 0.02 else _words(rng, 2, 9)
    author = None if rng.random() < 0.01 else rng.choice(_NAMES)
    return url, title, author, platform, metadata, _download_info(rng, title), _stamp(created)


def download_row(rng: random.Random, content_id: int | None, created: int) -> tuple:
    """(content_id, status, progress, file_path, error_message, started_at, finished_at)."""
    status = rng.choices(_STATUSES, _STATUS_WEIGHTS)[0]
    start = created + rng.randrange(5, 86400)
    done = status.lower() in ("completed", "failed", "error", "cancelled")
    progress = {"completed": 100.0, "pending": None}.get(status.lower(), round(rng.uniform(0, 99), 1))
    error = rng.choice(_ERRORS) if status in ("failed", "error") else None
    path = f"/home/user/Downloads/SDM/{rng.randrange(10**8)}.mp4" if status != "pending" else None
    return (
        content_id,
        status,
        progress,
        path,
        error,
        _stamp(start) if status != "pending" else None,
        _stamp(start + rng.randrange(2, 900)) if done else None,
    )


def _content_rows(rng: random.Random, rows: int):
    step = max(1, _TWO_YEARS // max(rows, 1))
    for i in range(1, rows + 1):
        yield (i, *content_row(rng, _EPOCH_2023 + i * step + rng.randrange(step)))


def _download_rows(rng: random.Random, rows: int):
    """About 0.6 downloads per content row, plus an orphan (missing or NULL content) every 499 rows."""
    step = max(1, _TWO_YEARS // max(rows, 1))
    for i in range(1, rows + 1):
        for _ in range(rng.choices((0, 1, 2, 3), (50, 40, 8, 2))[0]):
            yield download_row(rng, i, _EPOCH_2023 + i * step)
        if i % 499 == 0:
            orphan = None if i % 998 == 0 else rows + i
            yield download_row(rng, orphan, _EPOCH_2023 + i * step)


def create_v1_database(path: str, rows: int = 100_000, seed: int = 1) -> None:
    """Create a WAL-mode v1.2.1 database at path with `rows` content rows (one transaction)."""
    rng = random.Random(seed)
    conn = apsw.Connection(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        with conn:
            conn.execute(V1_SCHEMA)
            conn.executemany(
                "INSERT INTO content_v1 (id, url, title, author, platform, metadata, download_info,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _content_rows(rng, rows),
            )
            conn.executemany(
                "INSERT INTO downloads_v1 (content_id, status, progress, file_path, error_message,"
                " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                _download_rows(rng, rows),
            )
    finally:
        conn.close()


# -- single writes, for a writer process standing in for the v1 application ---------------------


def _some_id(conn: apsw.Connection, rng: random.Random, table: str) -> int | None:
    top = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    if top is None:
        return None
    row = conn.execute(f"SELECT id FROM {table} WHERE id >= ? ORDER BY id LIMIT 1", (rng.randint(1, top),)).fetchone()
    return row[0] if row else None


def insert_v1_row(conn: apsw.Connection, rng: random.Random) -> int:
    """Insert one realistic content_v1 row (and, 60% of the time, a download for it); return its id."""
    with conn:
        url, title, author, platform, metadata, info, _ = content_row(rng)
        conn.execute(
            "INSERT INTO content_v1 (url, title, author, platform, metadata, download_info) VALUES (?, ?, ?, ?, ?, ?)",
            (url, title, author, platform, metadata, info),
        )
        new_id = conn.last_insert_rowid()
        if rng.random() < 0.6:
            conn.execute(
                "INSERT INTO downloads_v1 (content_id, status, progress, file_path, error_message,"
                " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                download_row(rng, new_id, int(time.time())),
            )
    return new_id


def update_v1_row(conn: apsw.Connection, rng: random.Random) -> int | None:
    """Rewrite title, platform and metadata of one existing row, as a re-fetch does; return its id."""
    row_id = _some_id(conn, rng, "content_v1")
    if row_id is not None:
        _, title, _, platform, metadata, info, _ = content_row(rng)
        conn.execute(
            "UPDATE content_v1 SET title = ?, platform = ?, metadata = ?, download_info = ? WHERE id = ?",
            (title, platform, metadata, info, row_id),
        )
    return row_id


def delete_v1_row(conn: apsw.Connection, rng: random.Random) -> int | None:
    """Delete one content row; half the time its downloads too (v1 did not always, hence orphans)."""
    row_id = _some_id(conn, rng, "content_v1")
    if row_id is not None:
        with conn:
            if rng.random() < 0.5:
                conn.execute("DELETE FROM downloads_v1 WHERE content_id = ?", (row_id,))
            conn.execute("DELETE FROM content_v1 WHERE id = ?", (row_id,))
    return row_id


def random_v1_write(conn: apsw.Connection, rng: random.Random) -> tuple[str, int | None]:
    """One application write: 60% insert, 30% update, 10% delete. Returns (operation, content id)."""
    roll = rng.random()
    if roll < 0.6:
        return "insert", insert_v1_row(conn, rng)
    if roll < 0.9:
        return "update", update_v1_row(conn, rng)
    return "delete", delete_v1_row(conn, rng)


# -- the demo application's own writes, each logged so `bluegreen demo` can check it row by row --
def demo_write(conn: apsw.Connection, rng: random.Random, own_ids: list[int]) -> dict:
    """One application write in its own transaction: mostly inserts, some updates and deletes."""
    roll = rng.random()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if roll < 0.15 and own_ids:
            row_id = rng.choice(own_ids)
            title = f"edited {rng.randrange(10**9)}"
            conn.execute("UPDATE content_v1 SET title = ? WHERE id = ?", (title, row_id))
            change = {"op": "update", "id": row_id, "title": title}
        elif roll < 0.20 and own_ids:
            row_id = own_ids.pop(rng.randrange(len(own_ids)))
            conn.execute("DELETE FROM downloads_v1 WHERE content_id = ?", (row_id,))
            conn.execute("DELETE FROM content_v1 WHERE id = ?", (row_id,))
            change = {"op": "delete", "id": row_id}
        else:
            video = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(11))
            url = f"https://www.youtube.com/watch?v={video}"
            metadata = json.dumps(
                {
                    "id": video,
                    "duration": rng.randrange(30, 3600),
                    "view_count": rng.randrange(10**6),
                    "description": "written during the deploy",
                    "upload_date": "20261123",
                }
            )
            conn.execute(
                "INSERT INTO content_v1(url, title, author, platform, metadata, download_info) VALUES (?, ?, ?, ?, ?, ?)",
                (url, f"live write {video}", "demo writer", "youtube", metadata, None),
            )
            row_id = conn.last_insert_rowid()
            own_ids.append(row_id)
            change = {"op": "insert", "id": row_id, "title": f"live write {video}", "url": url}
        conn.execute("COMMIT")
    except BaseException:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        raise
    return change
