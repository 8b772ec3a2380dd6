"""Load for sdm_service.py: creates, renames, reads and deletes items, then checks every write.

    python examples/load.py http://127.0.0.1:8080 --seconds 30

Prints one line per second (requests, failures, which files answered) and, at the end, reads
back every item it created: each must have the last title it was given, or be gone if it was
deleted. Exits 1 if any request failed or any write is missing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


class Api:
    def __init__(self, base: str):
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")


class Totals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.failed: list[str] = []
        self.files: Counter[str] = Counter()
        self.slowest_ms = 0.0
        self.expected: dict[int, str | None] = {}  # id -> last title (None: deleted)

    def record(self, status: int, document: dict, ms: float, what: str) -> None:
        with self.lock:
            self.requests += 1
            self.slowest_ms = max(self.slowest_ms, ms)
            if status >= 500:
                self.failed.append(f"{what}: {status} {document.get('error')}")
            served = document.get("served_by")
            if served:
                self.files[f"{served['file']} (schema {served['schema']})"] += 1


def client_loop(base: str, deadline: float, totals: Totals, seed: int, stop: str | None) -> None:
    rng = random.Random(seed)
    api = Api(base)
    mine: list[int] = []
    while time.monotonic() < deadline and not (stop and os.path.exists(stop)):
        roll = rng.random()
        started = time.perf_counter()
        if roll < 0.4 or not mine:
            title = f"load {seed}-{rng.randrange(10**9)}"
            body = {
                "url": f"https://www.youtube.com/watch?v={rng.randrange(10**11):011d}",
                "title": title,
                "author": "load",
                "platform": rng.choice(["youtube", "TikTok", " instagram", "vimeo"]),
            }
            status, doc = api.call("POST", "/content", body)
            if status == 201:
                mine.append(doc["id"])
                with totals.lock:
                    totals.expected[doc["id"]] = title
            what = "create"
        elif roll < 0.55:
            item, title = rng.choice(mine), f"renamed {seed}-{rng.randrange(10**9)}"
            status, doc = api.call("PUT", f"/content/{item}", {"title": title})
            if status == 200:
                with totals.lock:
                    totals.expected[item] = title
            what = "rename"
        elif roll < 0.6:
            item = mine.pop(rng.randrange(len(mine)))
            status, doc = api.call("DELETE", f"/content/{item}")
            if status == 200:
                with totals.lock:
                    totals.expected[item] = None
            what = "delete"
        else:
            status, doc = api.call("GET", f"/content/{rng.choice(mine)}")
            what = "read"
        totals.record(status, doc, (time.perf_counter() - started) * 1000, what)


def wait_for_service(base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            Api(base).call("GET", "/health")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"load: {base} does not answer") from None
            time.sleep(0.1)


def verify(base: str, totals: Totals) -> list[str]:
    api = Api(base)
    missing = []
    for item, title in sorted(totals.expected.items()):
        status, doc = api.call("GET", f"/content/{item}", None)
        got = doc.get("item", {}) or {}
        if (title is None and status != 404) or (title is not None and got.get("title") != title):
            missing.append(f"item {item}: expected {title!r}, got {status} {got.get('title')!r}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the service, e.g. http://127.0.0.1:8080")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--stop-file", help="stop early once this file exists")
    parser.add_argument("--json", action="store_true", help="print one JSON summary line instead of text")
    args = parser.parse_args(argv)
    wait_for_service(args.base)
    totals = Totals()
    deadline = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=client_loop, args=(args.base, deadline, totals, seed, args.stop_file), daemon=True)
        for seed in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    last = (0, Counter())
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        if not args.json:
            with totals.lock:
                files = totals.files - last[1]
                print(
                    f"{totals.requests - last[0]:6d} req/s  failed {len(totals.failed)}  "
                    + ", ".join(f"{name}: {n}" for name, n in sorted(files.items())),
                    flush=True,
                )
                last = (totals.requests, Counter(totals.files))
    missing = verify(args.base, totals)
    summary = {
        "requests": totals.requests,
        "failed": totals.failed[:20],
        "failed_count": len(totals.failed),
        "writes_checked": len(totals.expected),
        "missing": missing[:20],
        "missing_count": len(missing),
        "slowest_ms": round(totals.slowest_ms, 1),
        "files": dict(totals.files),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{totals.requests} requests, {len(totals.failed)} failed, slowest {totals.slowest_ms:.0f} ms; "
            f"{len(totals.expected)} written items read back, {len(missing)} missing or wrong"
        )
        for line in totals.failed[:10] + missing[:10]:
            print("  " + line)
    return 1 if totals.failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
