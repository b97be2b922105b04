"""Runs the Python examples against a real worker.

Needs REDIS_URL (a Redis the test may write to; it uses a prefix of its own) and TOKENLEDGER_BIN
(the built `tokenledger` executable); skips itself when either is missing.

    REDIS_URL=redis://127.0.0.1:6379/0 TOKENLEDGER_BIN=.build/release/tokenledger \\
        python3 -m pytest docs/examples
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("REDIS_URL")
TOKENLEDGER_BIN = os.environ.get("TOKENLEDGER_BIN")


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def wait_for_text(path: Path, needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def worker(tmp_path):
    if not TOKENLEDGER_BIN:
        pytest.skip("TOKENLEDGER_BIN is not set (path to the built tokenledger executable)")
    if not REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    import redis

    prefix = f"examples-{uuid.uuid4().hex[:12]}"
    log = open(tmp_path / "worker.log", "w+")
    process = subprocess.Popen(
        [TOKENLEDGER_BIN, "worker", "--redis-url", REDIS_URL, "--database", str(tmp_path / "l.sqlite"),
         "--prefix", prefix, "--http", "off"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        yield process, prefix, tmp_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.seek(0)
        sys.stderr.write(f"--- worker log ---\n{log.read()}")
        log.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_producer_and_subscriber_against_worker(worker):
    process, prefix, tmp_path = worker
    user = f"user-{uuid.uuid4().hex[:8]}"

    subscriber_log = tmp_path / "subscriber.log"
    with open(subscriber_log, "w") as stderr:
        subscriber = subprocess.Popen(
            [sys.executable, str(HERE / "subscriber.py"), "--redis-url", REDIS_URL, "--prefix", prefix,
             "--count", "2", "--timeout", "60"],
            stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert wait_for_text(subscriber_log, "subscribed to", timeout=15), subscriber_log.read_text()

        producer = subprocess.run(
            [sys.executable, str(HERE / "producer.py"), "--redis-url", REDIS_URL, "--prefix", prefix,
             "--user", user, "--timeout", "30"],
            capture_output=True, text=True, timeout=90)
        assert producer.returncode == 0, (
            f"{producer.stderr}{producer.stdout}(worker exit status: {process.poll()})")
        results = json_lines(producer.stdout)
        assert [r["type"] for r in results] == ["open", "charge"], results
        assert all(r["success"] is True for r in results), results
        assert all(r["duplicate"] is False for r in results), results
        opened, charged = results
        assert opened["newBalance"] == 100 and opened["tier"] == "Gift", opened
        assert charged["newBalance"] == 95 and charged["tokensAmount"] == -5, charged
        assert isinstance(charged["ledgerEntryId"], int), charged
        assert charged["ledgerEntryId"] > opened["ledgerEntryId"], results

        out, _ = subscriber.communicate(timeout=60)
        assert subscriber.returncode == 0, out + subscriber_log.read_text()
        messages = [m for m in json_lines(out) if m.get("userId") == user]
        assert [m["tokensBalance"] for m in messages] == [100, 95], messages
        last = messages[-1]
        assert last["tokensSpent"] == 5 and last["tier"] == "Gift", last
        assert last["operationType"] == "chatgpt_message" and last["tokensAmount"] == -5, last
        assert last["ledgerEntryId"] == charged["ledgerEntryId"], last
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert (tmp_path / "l.sqlite").exists()
