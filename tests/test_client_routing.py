"""Gradual read cutover: a share of read-only connections reads a prepared green, consistently
per key and in every process; force flags override; writes always go to the active file."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import until

from bluegreen import client
from bluegreen.client import routing


def reads_green(project, **options) -> bool:
    conn = client.connect(project.pointer, read_only=True, **options)
    try:
        return conn.reads_green
    finally:
        conn.close()


def test_share_is_consistent_per_key_and_forced_by_flags(toy_ready):
    project = toy_ready
    assert not reads_green(project, read_percentage_new=100)  # nothing prepared: the active file
    assert project.cli("prepare").code == 0

    first = {key: reads_green(project, read_percentage_new=30, route_key=key) for key in range(100)}
    again = {key: reads_green(project, read_percentage_new=30, route_key=key) for key in range(100)}
    assert first == again == {key: routing.bucket(key) < 30 for key in range(100)}
    assert 15 <= sum(first.values()) <= 45  # about the share asked for
    assert reads_green(project, read_percentage_new=30, route_key="42") == first[42]  # id 42 as text too

    assert all(reads_green(project, read_percentage_new=100, route_key=k) for k in range(10))
    assert reads_green(project, force_new=True)
    assert not reads_green(project, force_old=True, read_percentage_new=100)
    never = next(k for k in range(100) if not first[k])
    assert reads_green(project, force_new=True, read_percentage_new=30, route_key=never)


def test_same_decisions_in_another_process(toy_ready):
    assert toy_ready.cli("prepare").code == 0
    code = (
        "import sys; from bluegreen import client\n"
        "for k in range(40):\n"
        "    c = client.connect(sys.argv[1], read_only=True, read_percentage_new=50, route_key=k)\n"
        "    print(int(c.reads_green), end=''); c.close()\n"
    )
    there = subprocess.run(
        [sys.executable, "-c", code, str(toy_ready.pointer)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    here = "".join(str(int(reads_green(toy_ready, read_percentage_new=50, route_key=k))) for k in range(40))
    assert there == here and "0" in here and "1" in here


def test_writes_always_go_to_the_active_file(toy_ready):
    assert toy_ready.cli("prepare").code == 0
    with pytest.raises(ValueError, match="read_only"):
        client.connect(toy_ready.pointer, force_new=True)
    writer = client.connect(toy_ready.pointer)
    assert writer.path == toy_ready.blue and not writer.reads_green
    reader = client.connect(toy_ready.pointer, read_only=True, force_new=True)
    with pytest.raises(Exception, match="readonly|read-only|query_only|attempt to write"):
        reader.execute("INSERT INTO items(name) VALUES ('no')")
    writer.close()
    reader.close()


def test_green_reads_are_as_fresh_as_the_last_catch_up(toy_ready):
    """Prepare catches up once: a write to blue after it is not on green until cutover."""
    assert toy_ready.cli("prepare").code == 0
    writer = client.connect(toy_ready.pointer)
    writer.execute("INSERT INTO items(name) VALUES ('after prepare')")
    green = client.connect(toy_ready.pointer, read_only=True, force_new=True)
    assert green.reads_green and green.generation == 2
    assert green.execute("SELECT count(*) FROM items WHERE name = 'after prepare'").get == 0
    assert green.execute("SELECT count(*) FROM names").get == 50  # the new schema's read path works
    writer.close()
    green.close()


def test_routed_reader_follows_abort_prepare_and_cutover(toy_ready):
    project = toy_ready
    assert project.cli("prepare").code == 0
    reader = client.connect(project.pointer, read_only=True, force_new=True)
    assert (reader.reads_green, reader.generation) == (True, 2)

    assert project.cli("abort").code == 0  # green is deleted: back to the active file
    until(lambda: reader.execute("SELECT 1").fetchall() and not reader.reads_green, what="back to blue")
    assert reader.path == project.blue

    assert project.cli("prepare").code == 0  # a new green (generation 3)
    until(lambda: reader.execute("SELECT 1").fetchall() and reader.reads_green, what="onto the new green")
    assert reader.generation == 3

    assert project.cli("cutover").code == 0  # green becomes the active file: same file, no longer "green"
    until(
        lambda: reader.execute("SELECT 1").fetchall() and not reader.reads_green and reader.generation == 3,
        what="green to become active",
    )
    reader.close()


def test_bad_routing_options_are_refused():
    with pytest.raises(ValueError, match="between 0 and 100"):
        routing.ReadRouting(read_percentage_new=150)
    with pytest.raises(ValueError, match="both"):
        routing.ReadRouting(force_new=True, force_old=True)
    assert 0 <= routing.bucket("anything") < 100 and routing.bucket(7) == routing.bucket("7")
