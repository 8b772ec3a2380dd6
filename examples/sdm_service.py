"""A small Social Download Manager catalogue service that keeps serving through a deploy and a revert.

    python examples/sdm_service.py data/current.toml --port 8080

Standard library HTTP server; the database is reached only through `bluegreen.client`, so the
service follows the pointer by itself: it reads and writes the v1.2.1 schema (`content_v1`)
while the pointer names a 1.x file and the v2.0 schema (`content` + `platforms` +
`content_metadata`) once it names a 2.x file, choosing per connection from the schema version
the pointer carries. Every request runs in one transaction (`conn.transaction`): it follows the
pointer first, then holds one file to the end, so the schema the code picked is the schema its
statements meet; a write that meets the fence of a retired file is rolled back and run again on
the new file. (Picking queries by `conn.schema_version` and then running them outside a
transaction races with a swap: the statement may already run on the other file.)

    GET    /health                      which file, generation and schema this process is on
    GET    /content/<id>                one item (reads may be routed to a prepared green:
                                        --read-percentage-new, or header X-Read: new | old)
    GET    /content?limit=N             the newest items
    POST   /content                     {"url", "title", "author", "platform"} -> {"id"}
    PUT    /content/<id>                {"title"}
    DELETE /content/<id>

Every answer carries "served_by": the file, generation and schema that answered it.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import apsw

from bluegreen import client

SCHEMAS = ["unversioned", "1.2.*", "2.0.*"]  # what this code knows how to read and write
ITEM = re.compile(r"^/content/(\d+)$")


def setup(conn: apsw.Connection) -> None:
    """Per-connection setup; bluegreen runs it again on every file it moves to."""
    conn.execute("PRAGMA foreign_keys = ON")  # v2 deletes cascade to content_metadata


def is_v2(conn: client.Connection) -> bool:
    return conn.schema_version.startswith("2.")


# -- the queries, per schema ----------------------------------------------------------------------
def get_item(conn: client.Connection, item_id: int) -> dict | None:
    if is_v2(conn):
        sql = (
            "SELECT c.id, c.original_url, c.title, c.author_name, p.name FROM content c "
            "JOIN platforms p ON p.id = c.platform_id WHERE c.id = ?"
        )
    else:
        sql = "SELECT id, url, title, author, platform FROM content_v1 WHERE id = ?"
    rows = conn.execute(sql, (item_id,)).fetchall()
    return dict(zip(("id", "url", "title", "author", "platform"), rows[0])) if rows else None


def list_items(conn: client.Connection, limit: int) -> list[dict]:
    table, url = ("content", "original_url") if is_v2(conn) else ("content_v1", "url")
    rows = conn.execute(f"SELECT id, {url}, title FROM {table} ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(zip(("id", "url", "title"), r)) for r in rows]


def create_item(conn: client.Connection, body: dict) -> int:
    url, title, author, platform = body["url"], body.get("title"), body.get("author"), body.get("platform")
    if is_v2(conn):
        found = conn.execute(
            "SELECT id FROM platforms WHERE name = lower(trim(?)) UNION ALL "
            "SELECT id FROM platforms WHERE name = 'unknown'",
            (platform or "",),
        ).fetchall()
        conn.execute(
            "INSERT INTO content(platform_id, original_url, title, author_name, v1_platform) VALUES (?, ?, ?, ?, ?)",
            (found[0][0], url, title, author, platform),
        )
        item_id = conn.last_insert_rowid()
        # v1 writes metadata '{}': the same empty object, kept as the plan's raw row
        conn.execute(
            "INSERT INTO content_metadata(content_id, metadata_type, metadata_key, metadata_value, data_type) "
            "VALUES (?, 'raw', 'metadata', '{}', 'json')",
            (item_id,),
        )
        return item_id
    conn.execute(
        "INSERT INTO content_v1(url, title, author, platform, metadata) VALUES (?, ?, ?, ?, '{}')",
        (url, title, author, platform),
    )
    return conn.last_insert_rowid()


def rename_item(conn: client.Connection, item_id: int, title: str) -> bool:
    if is_v2(conn):
        conn.execute("UPDATE content SET title = ? WHERE id = ?", (title, item_id))  # a trigger keeps updated_at
    else:
        conn.execute("UPDATE content_v1 SET title = ? WHERE id = ?", (title, item_id))
    return conn.changes() > 0


def delete_item(conn: client.Connection, item_id: int) -> bool:
    if is_v2(conn):
        conn.execute("DELETE FROM downloads WHERE content_id = ?", (item_id,))
        conn.execute("DELETE FROM content WHERE id = ?", (item_id,))
    else:
        conn.execute("DELETE FROM downloads_v1 WHERE content_id = ?", (item_id,))
        conn.execute("DELETE FROM content_v1 WHERE id = ?", (item_id,))
    return conn.changes() > 0


# -- the service ----------------------------------------------------------------------------------
class Service:
    """A pool of following connections for writes and plain reads; routed reads get their own.

    A connection moves only when it runs a statement, so an idle one would keep the old file
    open (and `bluegreen finalize` waiting): a background thread takes idle connections out of
    the pool in turn and lets them follow the pointer."""

    def __init__(self, pointer: Path, read_percentage_new: float = 0.0, pool_size: int = 8):
        self.pointer = pointer
        self.read_percentage_new = read_percentage_new
        self.pool: queue.Queue[client.Connection] = queue.Queue()
        for _ in range(pool_size):
            self.pool.put(client.connect(pointer, compatible=SCHEMAS, on_connect=setup))
        threading.Thread(target=self.follow_idle, args=(pool_size,), daemon=True).start()

    def follow_idle(self, pool_size: int, every_s: float = 0.5) -> None:
        while True:
            time.sleep(every_s)
            for _ in range(pool_size):
                try:
                    conn = self.pool.get_nowait()
                except queue.Empty:
                    break
                try:
                    conn.refresh()
                except client.ClientError as exc:  # e.g. a schema this code cannot handle: keep serving
                    print(f"sdm_service: {exc.message}", file=sys.stderr, flush=True)
                finally:
                    self.pool.put(conn)

    @contextmanager
    def connection(self) -> Iterator[client.Connection]:
        conn = self.pool.get()
        try:
            yield conn
        finally:
            self.pool.put(conn)

    @contextmanager
    def reader(self, key: int, header: str) -> Iterator[client.Connection]:
        """Reads keyed by item id: the same item is read from the same file while a green is prepared."""
        if header not in ("new", "old") and not self.read_percentage_new:
            with self.connection() as conn:
                yield conn
            return
        conn = client.connect(
            self.pointer,
            compatible=SCHEMAS,
            on_connect=setup,
            read_only=True,
            read_percentage_new=self.read_percentage_new,
            route_key=key,
            force_new=header == "new",
            force_old=header == "old",
        )
        try:
            yield conn
        finally:
            conn.close()


def served_by(conn: client.Connection) -> dict:
    return {
        "file": conn.path.name,
        "generation": conn.generation,
        "schema": conn.schema_version,
        "green": conn.reads_green,
    }


def make_handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: the load tool reports
            pass

        def reply(self, status: int, document: dict) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def handle_one(self, method: str) -> None:
            try:
                self.route(method)
            except client.ClientError as exc:  # e.g. a generation this code cannot handle
                self.reply(503, {"error": exc.message})
            except (apsw.Error, KeyError, ValueError) as exc:
                self.reply(500, {"error": f"{type(exc).__name__}: {exc}"})

        def route(self, method: str) -> None:
            path, _, query = self.path.partition("?")
            item = ITEM.match(path)
            if method == "GET" and path == "/health":
                with service.connection() as conn:
                    conn.refresh()  # follow the pointer if it moved
                    return self.reply(200, {"served_by": served_by(conn)})
            if method == "GET" and item:
                item_id = int(item.group(1))
                with service.reader(item_id, self.headers.get("X-Read", "")) as conn:
                    found = conn.transaction(lambda c: get_item(c, item_id), mode="DEFERRED")
                    return self.reply(200 if found else 404, {"item": found, "served_by": served_by(conn)})
            if method == "GET" and path == "/content":
                limit = int(dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("limit", 20))
                with service.connection() as conn:
                    items = conn.transaction(lambda c: list_items(c, limit), mode="DEFERRED")
                    return self.reply(200, {"items": items, "served_by": served_by(conn)})
            if method == "POST" and path == "/content":
                body = self.body()
                with service.connection() as conn:
                    item_id = conn.transaction(lambda c: create_item(c, body))
                    return self.reply(201, {"id": item_id, "served_by": served_by(conn)})
            if method == "PUT" and item:
                title = self.body()["title"]
                with service.connection() as conn:
                    found = conn.transaction(lambda c: rename_item(c, int(item.group(1)), title))
                    return self.reply(200 if found else 404, {"served_by": served_by(conn)})
            if method == "DELETE" and item:
                with service.connection() as conn:
                    found = conn.transaction(lambda c: delete_item(c, int(item.group(1))))
                    return self.reply(200 if found else 404, {"served_by": served_by(conn)})
            self.reply(404, {"error": f"no route {method} {path}"})

        def do_GET(self) -> None:
            self.handle_one("GET")

        def do_POST(self) -> None:
            self.handle_one("POST")

        def do_PUT(self) -> None:
            self.handle_one("PUT")

        def do_DELETE(self) -> None:
            self.handle_one("DELETE")

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pointer", type=Path, help="the bluegreen pointer file (data/current.toml)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--read-percentage-new",
        type=float,
        default=0.0,
        help="share of item reads served from a prepared green (0-100)",
    )
    args = parser.parse_args(argv)
    service = Service(args.pointer, args.read_percentage_new)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(service))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it cleanly (its heartbeat file goes too)
    print(f"serving {args.pointer} on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
