"""`verify`, `backup`, `migrate` and `repartition`: progress on a terminal, one summary line and nothing else off one.

Makes a ledger with the real worker (TOKENLEDGER_BIN) on a private redis-server, then runs each
command twice: with its output captured (no terminal: exactly its summary line on stdout, nothing on
stderr) and under a pseudo-terminal (the progress line, with counts, drawn and cleared, then the same
summary).

    TOKENLEDGER_BIN=.build/debug/tokenledger python3 -m pytest -q deploy/tests/test_progress.py
"""
from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest

redis = pytest.importorskip("redis")

TOKENLEDGER_BIN = os.environ.get("TOKENLEDGER_BIN")
REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
REDIS_URL: list[str] = []  # the fixture's server, for the commands that need Redis
JOBS = 3000  # enough entries for several progress reports (every 4096 ids is one; first and last always)


def run_plain(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([TOKENLEDGER_BIN, *args], capture_output=True, text=True, timeout=120, env=env)


def run_on_terminal(*args: str, env: dict | None = None) -> tuple[int, str]:
    """Runs the command with stdout and stderr on a pseudo-terminal; returns its status and output."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([TOKENLEDGER_BIN, *args], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                               env=env, close_fds=True)
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal closed with the process
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(timeout=30), output.decode(errors="replace")


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    if not TOKENLEDGER_BIN:
        pytest.skip("TOKENLEDGER_BIN is not set (path to the built tokenledger executable)")
    if not REDIS_SERVER:
        pytest.skip("redis-server is not on the PATH")
    folder = tmp_path_factory.mktemp("progress")
    socket_path = folder / "redis.sock"
    server = subprocess.Popen([REDIS_SERVER, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
                               "--dir", str(folder), "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=60)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        database = folder / "ledger.sqlite"
        REDIS_URL.append(f"unix://{socket_path}")
        prefix = f"pr-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "TOKENLEDGER_REDIS_URL": f"unix://{socket_path}", "TOKENLEDGER_DATABASE": str(database),
               "TOKENLEDGER_PREFIX": prefix, "TOKENLEDGER_HTTP": "off"}
        env.pop("TOKENLEDGER_CONFIG", None)
        worker = subprocess.Popen([TOKENLEDGER_BIN, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        reply_to = f"{prefix}:reply:last"
        jobs = [{"type": "open", "id": "open", "userId": "pat"}]
        jobs += [{"type": "credit", "id": f"c{n}", "userId": "pat", "operationType": "bonus", "amount": 1}
                 for n in range(JOBS)]
        jobs[-1]["replyTo"] = reply_to
        client.lpush(f"{prefix}:jobs", *[json.dumps(job) for job in jobs])
        assert client.brpop([reply_to], timeout=120) is not None, "the worker did not apply the jobs"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        client.close()
        yield database
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        server.kill()
        server.wait()


PROGRESS = "\r\x1b[K"


def test_verify_states_one_line_off_a_terminal(ledger):
    done = run_plain("verify", "--database", str(ledger))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "", "no progress noise off a terminal"
    assert re.fullmatch(rf"ledger {re.escape(str(ledger))}: no violation \({JOBS + 1} entries checked in \d+\.\d s\)\n",
                        done.stdout), done.stdout


def test_verify_shows_progress_on_a_terminal(ledger):
    status, output = run_on_terminal("verify", "--database", str(ledger))
    assert status == 0, output
    assert f"verify {ledger}: 0 of {JOBS + 1} entries (0%)" in output, output
    assert re.search(rf"verify {re.escape(str(ledger))}: {JOBS + 1} of {JOBS + 1} entries \(100%\), \d+ entries/s", output), output
    assert output.count(PROGRESS) >= 3, "drawn, redrawn and cleared"
    summary = output.rsplit(PROGRESS, 1)[1]
    assert re.fullmatch(rf"ledger {re.escape(str(ledger))}: no violation \({JOBS + 1} entries checked in \d+\.\d s\)\r?\n", summary), summary


def test_backup_states_one_line_off_a_terminal_and_shows_progress_on_one(ledger, tmp_path):
    copy = tmp_path / "copy.sqlite"
    done = run_plain("backup", "--database", str(ledger), str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    match = re.fullmatch(rf"backup of {re.escape(str(ledger))} written to {re.escape(str(copy))} \((\d+) pages in \d+\.\d s\)\n",
                         done.stdout)
    assert match, done.stdout
    pages = int(match.group(1))
    with sqlite3.connect(copy) as db:
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    assert pages * page_size == copy.stat().st_size, "every page of the copy is counted"
    verified = run_plain("verify", "--database", str(copy))
    assert verified.returncode == 0 and "no violation" in verified.stdout, verified.stdout

    second = tmp_path / "second.sqlite"
    status, output = run_on_terminal("backup", "--database", str(ledger), str(second))
    assert status == 0, output
    assert re.search(rf"backup {re.escape(str(ledger))}: {pages} of {pages} pages \(100%\)", output), output
    assert output.count(PROGRESS) >= 2, output
    summary = output.rsplit(PROGRESS, 1)[1]
    assert summary.startswith(f"backup of {ledger} written to {second} ({pages} pages in "), summary


def test_migrate_states_what_it_did_per_file(tmp_path):
    if not TOKENLEDGER_BIN:
        pytest.skip("TOKENLEDGER_BIN is not set")
    env = {**os.environ, "TOKENLEDGER_DATABASE": str(tmp_path / "split.sqlite"), "TOKENLEDGER_PARTITION_COUNT": "2"}
    env.pop("TOKENLEDGER_CONFIG", None)
    created = run_plain("migrate", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stderr == ""
    lines = created.stdout.splitlines()
    assert [re.sub(r"\(\d+\.\d s\)", "(T)", line) for line in lines] == [
        f"ledger {tmp_path / 'split-p0.sqlite'}: created (T)", f"ledger {tmp_path / 'split-p1.sqlite'}: created (T)"], lines

    status, output = run_on_terminal("migrate", env=env)
    assert status == 0, output
    assert "migrate: 1 of 2 ledger files (50%)" in output, output
    assert f"ledger {tmp_path / 'split-p1.sqlite'}: schema up to date (" in output.rsplit(PROGRESS, 1)[1], output


def test_repartition_states_one_line_off_a_terminal_and_shows_progress_on_one(ledger, tmp_path):
    for on_terminal in (False, True):
        folder = tmp_path / ("terminal" if on_terminal else "plain")
        folder.mkdir()
        database = folder / "ledger.sqlite"
        for suffix in ("", "-wal"):
            if Path(f"{ledger}{suffix}").exists():
                shutil.copy(f"{ledger}{suffix}", f"{database}{suffix}")
        env = {**os.environ, "TOKENLEDGER_REDIS_URL": REDIS_URL[0], "TOKENLEDGER_DATABASE": str(database),
               "TOKENLEDGER_PREFIX": f"rp-{uuid.uuid4().hex[:8]}"}
        env.pop("TOKENLEDGER_CONFIG", None)
        summary = rf"repartitioned 1 -> 2 partitions: moved 1 accounts, {JOBS + 1} entries, .* \(\d+\.\d s\)\r?\n"
        if not on_terminal:
            done = run_plain("repartition", "--to", "2", env=env)
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stderr == "", "no progress noise off a terminal"
            assert re.fullmatch(summary, done.stdout), done.stdout
        else:
            status, output = run_on_terminal("repartition", "--to", "2", env=env)
            assert status == 0, output
            assert f"repartition: building 2 files: {JOBS + 1} of {JOBS + 1} entries (100%)" in output, output
            assert output.count(PROGRESS) >= 3, output
            assert re.fullmatch(summary, output.rsplit(PROGRESS, 1)[1]), output
        assert sorted(p.name for p in folder.glob("*.sqlite")) == ["ledger-p0.sqlite", "ledger-p1.sqlite"]
