"""The machine lost under load, and the ledger rebuilt past its Litestream replica.

The real worker serves producers that keep sending jobs, while the real `litestream replicate`
(deploy/litestream.yml, its paths pointed at a temporary folder) copies the ledger to a file
replica. Then the machine goes: the worker and Litestream are killed with SIGKILL, and the ledger
folder (the file, its -wal and -shm, Litestream's state) is deleted. `tokenledger restore
--litestream-config` restores the replica and applies the jobs of `P:applied` it lacks. Every job
whose reply arrived must then be in the ledger exactly once, and `verify` clean; a worker started on
the restored ledger settles what was in flight, after which every balance equals the model built
from the replies alone.

Needs TOKENLEDGER_BIN, `litestream` and `redis-server` on the PATH, and redis-py; skips itself
otherwise (see test_litestream.py). The seed of the job mix is printed.

    TOKENLEDGER_BIN=.build/debug/tokenledger python3 -m pytest -q deploy/tests/test_recovery.py
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from processes import Processes, eventually
from test_litestream import (LITESTREAM, TOKENLEDGER_BIN, cli, job_ids, ledger_state, redis_url,  # noqa: F401 (fixtures)
                             replicated_ledger, restore, tools)

redis = pytest.importorskip("redis")

PRODUCERS = 6
USERS_PER_PRODUCER = 5
BURST = 12


class Producer(threading.Thread):
    """Sends bursts of jobs for its own users and keeps every reply that arrives, until told to
    stop; a job whose reply never came is kept apart (in flight when the machine went)."""

    def __init__(self, url: str, prefix: str, index: int, seed: int):
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url, socket_timeout=30)
        self.prefix = prefix
        self.users = [f"p{index}-u{n}" for n in range(USERS_PER_PRODUCER)]
        self.random = random.Random(seed * 1000 + index)
        self.stop_sending = threading.Event()
        self.replies: dict[str, dict] = {}
        self.unanswered: dict[str, str] = {}  # job id -> reply key
        self.jobs: dict[str, dict] = {}
        self.error: BaseException | None = None
        self.count = 0

    def job(self) -> dict:
        self.count += 1
        user = self.random.choice(self.users)
        job_id = f"{user}-j{self.count}"
        kind = self.random.random()
        if kind < 0.45:
            return {"type": "charge", "id": job_id, "userId": user, "operation": "chatgpt_message"}
        if kind < 0.75:
            return {"type": "credit", "id": job_id, "userId": user, "operationType": "bonus",
                    "amount": self.random.randint(1, 20)}
        # Debits larger than a balance can hold are refused: refusals are applied jobs too.
        return {"type": "debit", "id": job_id, "userId": user, "operationType": "api",
                "amount": self.random.randint(1, 60)}

    def send(self, jobs: list[dict]) -> None:
        keys = {}
        pipe = self.client.pipeline(transaction=False)
        for job in jobs:
            key = f"{self.prefix}:reply:{uuid.uuid4()}"
            keys[job["id"]] = key
            self.jobs[job["id"]] = job
            pipe.lpush(f"{self.prefix}:jobs", json.dumps({**job, "replyTo": key}, separators=(",", ":")))
        pipe.execute()
        for job_id, key in keys.items():
            got = None
            while got is None:
                got = self.client.brpop([key], timeout=1)
                if got is None and self.stop_sending.is_set():
                    break
            if got is None:
                self.unanswered[job_id] = key
            else:
                self.replies[job_id] = json.loads(got[1])

    def run(self):
        try:
            self.send([{"type": "open", "id": f"open:{user}", "userId": user} for user in self.users])
            while not self.stop_sending.is_set() and not self.unanswered:
                self.send([self.job() for _ in range(BURST)])
        except BaseException as error:  # shown by the test
            self.error = error


def model(jobs: dict[str, dict], replies: dict[str, dict]) -> dict[str, int]:
    """Each user's balance from the replies alone: every successful job's signed amount, once."""
    balances: dict[str, int] = {}
    for job_id, reply in replies.items():
        user = jobs[job_id]["userId"]
        balances.setdefault(user, 0)
        if reply["success"]:
            balances[user] += reply["tokensAmount"]
    return balances


def test_machine_lost_under_load_then_restored_past_the_replica(redis_url, tmp_path):
    seed = int(os.environ.get("RECOVERY_TEST_SEED", random.randrange(1 << 30)))
    sys.stderr.write(f"recovery test: seed {seed} (RECOVERY_TEST_SEED={seed} repeats the job mix)\n")
    started = time.monotonic()
    ledger_dir, ledger, replica, config, prefix, env = replicated_ledger(redis_url, tmp_path, "rc")
    client = redis.Redis.from_url(redis_url, socket_timeout=30)
    processes = Processes(tmp_path)
    producers: list[Producer] = []
    try:
        migrated = subprocess.run([TOKENLEDGER_BIN, "migrate"], env=env, capture_output=True, text=True, timeout=60)
        assert migrated.returncode == 0, migrated.stderr
        litestream = processes.start("litestream", [LITESTREAM, "replicate", "-config", str(config)])
        worker = processes.start("worker", [TOKENLEDGER_BIN, "worker"], env=env)

        producers = [Producer(redis_url, prefix, n, seed) for n in range(PRODUCERS)]
        for producer in producers:
            producer.start()
        # Under load until the replica holds part of it, then a little longer: the last second or
        # so of acknowledged jobs is then on the ledger and in the stream, not in the replica.
        probe = tmp_path / "probe.sqlite"

        def replicated():
            for stale in tmp_path.glob("probe.sqlite*"):
                stale.unlink()
            restore(config, ledger, probe)
            return True

        eventually("the replica holds a first copy", replicated, timeout=60, every=0.5)
        time.sleep(3)
        assert all(p.error is None for p in producers), [p.error for p in producers]
        assert all(p.is_alive() for p in producers), "the producers kept sending until the machine went"

        # The machine goes: no process finishes anything, and the disk goes with it.
        worker.send_signal(signal.SIGKILL)
        litestream.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        litestream.wait(timeout=30)
        for producer in producers:
            producer.stop_sending.set()
        for producer in producers:
            producer.join(timeout=60)
            assert not producer.is_alive()
            assert producer.error is None, producer.error
        shutil.rmtree(ledger_dir)
        ledger_dir.mkdir()

        jobs = {k: v for p in producers for k, v in p.jobs.items()}
        acknowledged = {k: v for p in producers for k, v in p.replies.items()}
        in_flight = {k: v for p in producers for k, v in p.unanswered.items()}
        users = [u for p in producers for u in p.users]
        assert len(acknowledged) > 200, f"only {len(acknowledged)} jobs answered: not much of a load"

        # A job's reply leaves before its acknowledgement (which records it on P:applied and
        # removes it from its processing list): a job killed between the two was answered but is
        # not acknowledged. It is still in its list, so the next worker applies it, not restore.
        unacknowledged = set()
        for name in client.smembers(f"{prefix}:workers"):
            for raw in client.lrange(f"{prefix}:processing:{name.decode()}", 0, -1):
                unacknowledged.add(json.loads(raw)["id"])

        restored = subprocess.run([TOKENLEDGER_BIN, "restore", "--litestream-config", str(config), "--litestream", LITESTREAM],
                                  env=env, capture_output=True, text=True, timeout=300)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        summary = restored.stdout.strip().splitlines()[-1]
        found = re.search(r"(\d+) jobs read from \S+: (\d+) applied, (\d+) already in the ledger; verify: no violation", summary)
        assert found, summary
        read, applied, already = map(int, found.groups())
        assert applied > 0, f"the replica lacked no acknowledged job, so the hole was not exercised: {summary}"
        assert read >= len([j for j in acknowledged if not j.startswith("open:") and j not in unacknowledged]), summary

        # Every acknowledged job took effect exactly once: a success by its one entry, a refusal
        # by its stored result (checked by sending it again below).
        state = ledger_state(ledger, users)
        for user in users:
            assert state[user][1]["total"] <= 1000, f"{user}'s history is longer than one page"
        for job_id, reply in acknowledged.items():
            if job_id in unacknowledged:
                continue  # checked once the next worker has settled its list, below
            user = jobs[job_id]["userId"]
            ids = job_ids(state[user][1])
            expected = 1 if reply["success"] else 0
            assert ids.count(job_id) == expected, (job_id, reply, ids.count(job_id))
        verified = cli("verify", "--database", str(ledger))
        assert verified.returncode == 0, verified.stdout + verified.stderr

        # A worker on the restored ledger settles what was in flight (the processing lists and the
        # queue survived in Redis); then the ledger equals the model of every reply.
        worker = processes.start("worker-restored", [TOKENLEDGER_BIN, "worker"], env=env)
        for job_id, key in in_flight.items():
            got = client.brpop([key], timeout=60)
            assert got is not None, f"no reply to the in-flight job {job_id}"
            acknowledged[job_id] = json.loads(got[1])
        refused = [j for j, r in acknowledged.items() if not r["success"]][:20]
        for job_id in refused:
            key = f"{prefix}:reply:{uuid.uuid4()}"
            client.lpush(f"{prefix}:jobs", json.dumps({**jobs[job_id], "replyTo": key}))
            got = client.brpop([key], timeout=60)
            assert got is not None
            again = json.loads(got[1])
            assert again["duplicate"] is True and again["error"]["code"] == acknowledged[job_id]["error"]["code"], again
        eventually("the queue drained", lambda: client.llen(f"{prefix}:jobs") == 0)
        assert processes.stop(worker) == 0

        state = ledger_state(ledger, users)
        for job_id in unacknowledged & acknowledged.keys():
            ids = job_ids(state[jobs[job_id]["userId"]][1])
            assert ids.count(job_id) == (1 if acknowledged[job_id]["success"] else 0), (job_id, ids.count(job_id))
        expected = model(jobs, acknowledged)
        for user in users:
            assert state[user][0]["tokensBalance"] == expected[user], (user, state[user][0], expected[user])
            ids = job_ids(state[user][1])
            assert len(ids) == len(set(ids)), f"a job applied twice for {user}"
        verified = cli("verify", "--database", str(ledger))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        sys.stderr.write(f"recovery test: {len(acknowledged) - len(in_flight)} jobs answered before the loss, "
                         f"{len(in_flight)} in flight; restore read {read}, applied {applied} the replica lacked, "
                         f"{already} already in it; {time.monotonic() - started:.1f} s\n")
    finally:
        for producer in producers:
            producer.stop_sending.set()
        client.close()
        processes.close()
