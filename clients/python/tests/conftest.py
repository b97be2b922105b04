"""Starts the real worker against REDIS_URL under a prefix of its own, with a ledger in a temporary
folder. Needs REDIS_URL and TOKENLEDGER_BIN (clients/test.sh sets both)."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import pytest
import redis

from tokenledger import LedgerClient, uuid7

REDIS_URL = os.environ.get("REDIS_URL", "")
TOKENLEDGER_BIN = os.environ.get("TOKENLEDGER_BIN", "")


def new_user(name: str) -> str:
    return f"{name}-{uuid7()[-12:]}"


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.025)
    raise AssertionError("timed out waiting for a condition")


class Worker:
    def __init__(self, folder: Path, redis_url: str = REDIS_URL):
        self.redis_url, self.folder = redis_url, folder
        self.prefix = f"clients-py-{uuid.uuid4().hex[:12]}"
        self.database = folder / "ledger.sqlite"
        self.config = folder / "config.json"
        # The scheduler's cron is one no test run meets, so that only the tests renew.
        self.config.write_text(json.dumps({"renewal": {"cron": "0 2 29 2 *"}}))
        self.process: Optional[subprocess.Popen] = None
        self.clients: list = []

    def start(self) -> "Worker":
        env = {**os.environ, "TOKENLEDGER_REDIS_URL": self.redis_url, "TOKENLEDGER_DATABASE": str(self.database),
               "TOKENLEDGER_PREFIX": self.prefix, "TOKENLEDGER_HTTP": "off", "TOKENLEDGER_CONFIG": str(self.config)}
        with open(self.folder / "worker.log", "a") as log:
            self.process = subprocess.Popen([TOKENLEDGER_BIN, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def client(self, **options) -> LedgerClient:
        client = LedgerClient(self.redis_url, **{"prefix": self.prefix, **options})
        self.clients.append(client)
        return client

    def age(self, user_ids: list, days: int) -> None:
        """Moves the accounts' renewal clocks `days` back (the worker stopped meanwhile), so that
        they are due: the ledger keeps real time, and a month cannot be waited for."""
        self.stop()
        ms = days * 86_400_000
        with sqlite3.connect(self.database) as db:
            db.executemany("UPDATE accounts SET anchor_ms = anchor_ms - ?, last_renewal_ms = last_renewal_ms - ?, "
                           "next_renewal_ms = next_renewal_ms - ? WHERE user_id = ?",
                           [(ms, ms, ms, user) for user in user_ids])
        db.close()
        self.start()

    def close(self) -> None:
        self.stop()
        for client in self.clients:
            client.close()
        cleaner = redis.Redis.from_url(self.redis_url, password=os.environ.get("TOKENLEDGER_REDIS_PASSWORD"))
        keys = list(cleaner.scan_iter(match=f"{self.prefix}*"))
        if keys:
            cleaner.delete(*keys)
        cleaner.close()


@pytest.fixture(scope="module")
def metrics():
    """The metrics a module's `service` reported, in order."""
    return []


@pytest.fixture(scope="module")
def service(worker, metrics):
    from tokenledger import TokenService
    return TokenService(worker.client(), metrics_callback=metrics.append)


def opened(service, name):
    """A new user with an open account (100 tokens, the Gift allocation)."""
    user_id = new_user(name)
    assert service.ensure_account(user_id) is True
    return user_id


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    if not (REDIS_URL and TOKENLEDGER_BIN):
        pytest.fail("set REDIS_URL and TOKENLEDGER_BIN (clients/test.sh does)")
    w = Worker(tmp_path_factory.mktemp("worker")).start()
    yield w
    w.close()


class PrivateRedis:
    """A private redis-server (for restarts), on a free port, with a password."""

    def __init__(self, password: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url, self.password = f"redis://127.0.0.1:{self.port}/0", password
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [os.environ.get("REDIS_SERVER", "redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--requirepass", self.password], stdout=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port, password=self.password)
        eventually(lambda: _pings(probe))
        probe.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
