"""Writes Tests/Golden/transcript.json: every kind of job the worker takes (and bytes it must refuse),
pushed one at a time into a real worker, each with everything that came out of it: the reply, the
invalidations on `P:balance`, the entries of `P:events`, the messages on `P:alerts` and the dead
letters. The Swift test (Tests/WorkerTests/GoldenTranscriptTests.swift) replays the transcript and
compares every message; the clients' tests parse every reply and message with their own readers.
Tests/Golden/README.md says how values that change per run are normalised.

    REDIS_URL=redis://127.0.0.1:6379/0 TOKENLEDGER_BIN=.build/debug/tokenledger python3 clients/tools/capture_golden.py

Re-runnable: each run uses a fresh ledger and a key prefix of its own, and writes the same file
when the worker's answers are the same.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import redis

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Golden" / "transcript.json"
WORKER_ID = "golden"
PREFIX_PLACEHOLDER = "<P>"
# A time the run made, not one a job named: within this window of the run it becomes "<time>".
WINDOW_BEFORE, WINDOW_AFTER = timedelta(days=1), timedelta(days=400)
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
PAD = re.compile(r"x{1000,}")
PAD_PLACEHOLDER = re.compile(r"<x\*(\d+)>")
# Keys whose values follow the calendar of the run (a month has 28 to 31 days).
RUN_DEPENDENT_KEYS = {"daysUntilRenewal": "<int>"}

NORMALISATION = [
    "<P> stands for the run's key prefix, in jobs and in every string that came out.",
    "<x*N> stands for a run of N letters x (N >= 1000), in jobs and in what came out.",
    "<time> replaces an ISO time (YYYY-MM-DDTHH:MM:SS.mmmZ, also inside a longer string) that lies within "
    "1 day before the run's start and 400 days after it: a time the run made. Times outside that "
    "window (those the jobs name, such as 2100-01-01T00:00:00.000Z) are compared exactly.",
    "<int> replaces the integer value of daysUntilRenewal, which follows the calendar of the run.",
    "Stream entries are recorded as their fields, in stream order; stream ids are not recorded.",
    "Everything else is exact: compared as JSON, key order free; a live message may carry fields "
    "the transcript lacks, never lack or change one.",
]


def expand(text: str, prefix: str) -> str:
    """A job text of the transcript as it is pushed."""
    return PAD_PLACEHOLDER.sub(lambda m: "x" * int(m.group(1)), text.replace(PREFIX_PLACEHOLDER, prefix))


class Normaliser:
    def __init__(self, prefix: str, start: datetime):
        self.prefix, self.start = prefix, start

    def time(self, m: "re.Match[str]") -> str:
        try:
            at = datetime.strptime(m.group(0), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return m.group(0)
        return "<time>" if self.start - WINDOW_BEFORE <= at <= self.start + WINDOW_AFTER else m.group(0)

    def string(self, s: str) -> str:
        s = s.replace(self.prefix, PREFIX_PLACEHOLDER)
        s = PAD.sub(lambda m: f"<x*{len(m.group(0))}>", s)
        return TIME.sub(self.time, s)

    def value(self, v: Any, key: Optional[str] = None) -> Any:
        if key in RUN_DEPENDENT_KEYS and isinstance(v, int) and not isinstance(v, bool):
            return RUN_DEPENDENT_KEYS[key]
        if isinstance(v, str):
            return self.string(v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x, k) for k, x in v.items()}
        return v


class Run:
    """One worker on a fresh ledger, with a subscriber on both channels."""

    def __init__(self, url: str, binary: str, name: str, config: Dict[str, Any], partitions: int):
        self.name, self.config, self.partitions = name, config, partitions
        self.prefix = f"golden-{uuid.uuid4().hex[:10]}"
        self.folder = Path(tempfile.mkdtemp(prefix="tokenledger-golden-"))
        config_path = self.folder / "config.json"
        config_path.write_text(json.dumps(config))
        self.r = redis.Redis.from_url(url)
        self.sub = self.r.pubsub(ignore_subscribe_messages=True)
        self.sub.subscribe(self.balance, self.alerts)
        self.normaliser = Normaliser(self.prefix, datetime.now(timezone.utc))
        self.steps: List[Dict[str, Any]] = []
        self.stream_ids = {k: "0-0" for k in self.partition_keys()}
        self.dead_seen = {k: 0 for k in self.partition_keys()}
        self.log = open(self.folder / "worker.log", "wb")
        self.worker = subprocess.Popen(
            [binary, "worker", "--redis-url", url, "--database", str(self.folder / "ledger.sqlite"),
             "--prefix", self.prefix, "--http", "off", "--worker-id", WORKER_ID, "--config", str(config_path)],
            stdout=subprocess.DEVNULL, stderr=self.log)

    @property
    def balance(self) -> str:
        return f"{self.prefix}:balance"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:alerts"

    def partition_keys(self) -> List[Optional[int]]:
        return [None] if self.partitions == 1 else list(range(self.partitions))

    def base(self, partition: Optional[int]) -> str:
        return self.prefix if partition is None else f"{self.prefix}:{{{partition}}}"

    def partition_of(self, user: str) -> Optional[int]:
        return None if self.partitions == 1 else zlib.crc32(user.encode()) % self.partitions

    # -- the steps ---------------------------------------------------------------------------

    def start(self, name: str, events: int) -> None:
        """The worker's own output at start-up (the scheduler's catch-up run): waits for `events`."""
        self.collect({"name": name, "start": True}, None, wait_events=events)

    def job(self, name: str, job: Dict[str, Any], partition: Any = "user", reply: bool = True) -> Dict[str, Any]:
        """Pushes one job (with a replyTo unless `reply` is false) and records what came out."""
        part = self.partition_of(job.get("userId", "")) if partition == "user" else partition
        step: Dict[str, Any] = {"name": name, "job": job}
        if part is not None:
            step["partition"] = part
        if not reply:
            step["noReply"] = True
        key = f"{self.prefix}:reply:{len(self.steps)}"
        body = {**job, "replyTo": key} if reply else job
        self.r.lpush(f"{self.base(part)}:jobs", json.dumps(body).encode())
        return self.collect(step, key if reply else None, wait_dead=0)

    def raw(self, name: str, text: Optional[str] = None, data: Optional[bytes] = None, partition: Optional[int] = None,
            reply_key: Optional[str] = None) -> Dict[str, Any]:
        """Pushes bytes that are not a valid job: a dead letter, and a failure reply on `reply_key`."""
        step: Dict[str, Any] = {"name": name}
        if text is not None:
            step["raw"] = text
            data = expand(text, self.prefix).encode()
        else:
            assert data is not None
            step["rawBase64"] = base64.b64encode(data).decode()
        if partition is not None:
            step["partition"] = partition
        if reply_key is not None:
            step["replyTo"] = reply_key
        self.r.lpush(f"{self.base(partition)}:jobs", data)
        return self.collect(step, expand(reply_key, self.prefix) if reply_key else None, wait_dead=1)

    def wait_for(self, name: str, event: str, partition: Optional[int] = None) -> None:
        """No input: waits for the worker's own `event` (an expiry it writes within seconds)."""
        step: Dict[str, Any] = {"name": name, "await": event}
        self.collect(step, None, wait_event=(event, partition))

    def collect(self, step: Dict[str, Any], reply_key: Optional[str], wait_dead: int = 0, wait_events: int = 0,
                wait_event: Optional[tuple] = None) -> Dict[str, Any]:
        deadline = time.monotonic() + 60
        if reply_key is not None:
            got = self.r.brpop([reply_key], timeout=60)
            if got is None:
                raise SystemExit(f"{self.name}: no reply to {step['name']}")
            step["reply"] = self.normaliser.value(json.loads(got[1]))
        part = step.get("partition")
        if wait_dead:
            while self.r.llen(f"{self.base(part)}:dead") < self.dead_seen[part] + wait_dead:
                self.until(deadline, step)
        if wait_events:
            while any(self.r.xlen(f"{self.base(k)}:events") < wait_events for k in self.partition_keys()):
                self.until(deadline, step)
        if wait_event:
            event, p = wait_event
            # The whole stream: on a slow machine the expiry may already have come with the step before.
            while not any(f.get(b"event") == event.encode() for _, f in self.r.xrange(f"{self.base(p)}:events")):
                self.until(deadline, step)
        self.settled(deadline, step)
        # A marker on each channel, published after everything the worker sent: the subscriber
        # has every message once it has read both markers.
        marker = f"golden-marker-{uuid.uuid4().hex}"
        self.r.publish(self.balance, marker)
        self.r.publish(self.alerts, marker)
        invalidations, alerts, markers = [], [], 0
        while markers < 2:
            m = self.sub.get_message(timeout=1)
            if m is None:
                self.until(deadline, step)
                continue
            if m["data"] == marker.encode():
                markers += 1
                continue
            (invalidations if m["channel"].decode() == self.balance else alerts).append(json.loads(m["data"]))
        events = []
        for k in self.partition_keys():
            for sid, fields in self.r.xrange(f"{self.base(k)}:events", f"({self.stream_ids[k]}", "+"):
                self.stream_ids[k] = sid.decode()
                events.append({a.decode(): b.decode() for a, b in fields.items()})
        dead = []
        for k in self.partition_keys():
            length = self.r.llen(f"{self.base(k)}:dead")
            if length == self.dead_seen[k]:
                continue
            for letter in reversed(self.r.lrange(f"{self.base(k)}:dead", 0, length - self.dead_seen[k] - 1)):
                dead.append(json.loads(letter))
            self.dead_seen[k] = length
        step["invalidations"] = self.normaliser.value(invalidations)
        step["events"] = self.normaliser.value(events)
        step["alerts"] = self.normaliser.value(alerts)
        step["deadLetters"] = self.normaliser.value(dead)
        self.steps.append(step)
        return step

    def settled(self, deadline: float, step: Dict[str, Any]) -> None:
        """Until every queue is empty and every taken batch acknowledged."""
        while True:
            busy = 0
            for k in self.partition_keys():
                busy += self.r.llen(f"{self.base(k)}:jobs")
                for w in self.r.smembers(f"{self.base(k)}:workers"):
                    busy += self.r.llen(f"{self.base(k)}:processing:{w.decode()}")
            if busy == 0:
                return
            self.until(deadline, step)

    def until(self, deadline: float, step: Dict[str, Any]) -> None:
        if time.monotonic() > deadline or self.worker.poll() is not None:
            self.log.flush()
            tail = (self.folder / "worker.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"{self.name}: timed out at {step['name']}\n{tail}")
        time.sleep(0.02)

    def resent(self) -> bool:
        """Whether the worker lost its lease on the way or sent anything twice."""
        log = (self.folder / "worker.log").read_text(errors="replace")
        return "sent again" in log or "standing by" in log.split("graceful shutdown requested")[0]

    def close(self) -> Dict[str, Any]:
        self.worker.terminate()
        self.worker.wait(30)
        self.sub.close()
        for key in self.r.scan_iter(f"{self.prefix}*"):
            self.r.delete(key)
        self.log.close()
        return {"name": self.name, "partitionCount": self.partitions, "config": self.config, "steps": self.steps}


def one_partition(run: Run) -> None:
    u, nobody = "golden-alice", "golden-nobody"
    run.start("start: the scheduler's catch-up run", events=1)
    run.job("open", {"type": "open", "id": "g-open", "userId": u})
    run.job("open account_exists", {"type": "open", "id": "g-open-2", "userId": u})
    run.job("open duplicate", {"type": "open", "id": "g-open", "userId": u})
    run.job("charge", {"type": "charge", "id": "g-charge", "userId": u, "operation": "image_generation",
                       "metadata": {"prompt": "a red fox"}})
    run.job("charge duplicate", {"type": "charge", "id": "g-charge", "userId": u, "operation": "image_generation",
                                 "metadata": {"prompt": "a red fox"}})
    run.job("charge metadata with quotes, unicode and markup",
            {"type": "charge", "id": "g-charge-meta", "userId": u, "operation": "chatgpt_message",
             "metadata": {"quote": "she said \"hi\" \\ and left", "unicode": "na\u00efve \u2603 \U0001F600 \u4e2d\u6587",
                          "html": "<script>alert('x')</script>", "nested": {"list": [1, "two", None, True], "n": -7},
                          "empty": {}}})
    run.job("charge unknown_operation", {"type": "charge", "id": "g-charge-x", "userId": u, "operation": "teleport"})
    run.job("charge user_not_found", {"type": "charge", "id": "g-charge-nobody", "userId": nobody,
                                      "operation": "chatgpt_message"})
    run.job("debit", {"type": "debit", "id": "g-debit", "userId": u, "operationType": "api_call", "amount": 3})
    run.job("debit insufficient_tokens", {"type": "debit", "id": "g-debit-big", "userId": u,
                                          "operationType": "api_call", "amount": 1000000})
    run.job("debit insufficient_tokens duplicate", {"type": "debit", "id": "g-debit-big", "userId": u,
                                                    "operationType": "api_call", "amount": 1000000})
    run.job("debit invalid_amount", {"type": "debit", "id": "g-debit-0", "userId": u, "operationType": "api_call",
                                     "amount": 0})
    run.job("debit reserved_operation_type", {"type": "debit", "id": "g-debit-expiry", "userId": u,
                                              "operationType": "expiry", "amount": 1})
    run.job("credit", {"type": "credit", "id": "g-credit", "userId": u, "operationType": "bonus", "amount": 25})
    run.job("credit expiring", {"type": "credit", "id": "g-credit-exp", "userId": u, "operationType": "bonus",
                                "amount": 5, "expiresIn": 86400})
    run.job("credit expiresAt", {"type": "credit", "id": "g-credit-at", "userId": u, "operationType": "bonus",
                                 "amount": 4, "expiresAt": "2100-01-01T00:00:00.000Z"})
    run.job("credit invalid_expiry", {"type": "credit", "id": "g-credit-past", "userId": u, "operationType": "bonus",
                                      "amount": 4, "expiresAt": "2001-01-01T00:00:00.000Z"})
    run.job("credit invalid_amount overflow", {"type": "credit", "id": "g-credit-ovf", "userId": u,
                                               "operationType": "bonus", "amount": 9223372036854775807})
    run.job("refund of a charge", {"type": "refund", "id": "g-refund", "userId": u, "refundOf": "g-charge"})
    run.job("refund refund_exceeds_charge", {"type": "refund", "id": "g-refund-2", "userId": u,
                                             "refundOf": "g-charge"})
    run.job("refund charge_not_found", {"type": "refund", "id": "g-refund-3", "userId": u, "refundOf": "nothing"})
    run.job("refund with an amount, without refundOf", {"type": "refund", "id": "g-refund-4", "userId": u,
                                                        "amount": 2, "metadata": {"reason": "goodwill"}})
    run.job("purchase", {"type": "purchase", "id": "g-purchase", "userId": "golden-bob", "tier": "Professional",
                         "paymentId": "pi_golden", "months": 1})
    run.job("purchase duplicate_payment", {"type": "purchase", "id": "g-purchase-again", "userId": "golden-bob",
                                           "tier": "Professional", "paymentId": "pi_golden"})
    run.job("purchase unknown_tier", {"type": "purchase", "id": "g-purchase-x", "userId": "golden-bob",
                                      "tier": "Platinum", "paymentId": "pi_golden_x"})
    run.job("purchase invalid_months", {"type": "purchase", "id": "g-purchase-m", "userId": "golden-bob",
                                        "tier": "Business", "paymentId": "pi_golden_m", "months": 0})
    run.job("renew not_eligible", {"type": "renew", "id": "g-renew", "userId": u})
    run.job("renew user_not_found", {"type": "renew", "id": "g-renew-nobody", "userId": nobody})
    run.job("renewAll dryRun", {"type": "renewAll", "dryRun": True})
    run.job("renewAll", {"type": "renewAll", "id": "g-renew-all"})
    run.job("balance", {"type": "balance", "userId": u})
    run.job("balance with an id", {"type": "balance", "id": "g-balance", "userId": u})
    run.job("balance user_not_found", {"type": "balance", "userId": nobody})
    run.job("canAfford", {"type": "canAfford", "userId": u, "operation": "chatgpt_message"})
    run.job("canAfford unknown_operation", {"type": "canAfford", "userId": u, "operation": "teleport"})
    run.job("history", {"type": "history", "userId": u, "limit": 3, "offset": 0})
    run.job("history of the metadata", {"type": "history", "userId": u, "limit": 1, "offset": 0,
                                        "operationType": "chatgpt_message"})
    run.job("history invalid_limit", {"type": "history", "userId": u, "limit": 5000})
    run.job("statistics", {"type": "statistics", "userId": u, "startDate": "2020-01-01T00:00:00.000Z",
                           "endDate": "2100-01-01T00:00:00.000Z"})
    run.job("statistics invalid_date_range", {"type": "statistics", "userId": u,
                                              "startDate": "2100-01-01T00:00:00.000Z",
                                              "endDate": "2020-01-01T00:00:00.000Z"})
    run.job("eligibility", {"type": "eligibility", "userId": u})
    run.job("hold", {"type": "hold", "id": "g-hold", "userId": u, "amount": 20, "expiresIn": 600})
    run.job("hold operation", {"type": "hold", "id": "g-hold-op", "userId": u, "operation": "chatgpt_message"})
    run.job("hold insufficient_tokens", {"type": "hold", "id": "g-hold-big", "userId": u, "amount": 1000000})
    run.job("hold invalid_expiry", {"type": "hold", "id": "g-hold-long", "userId": u, "amount": 1,
                                    "expiresIn": 700000})
    run.job("holds", {"type": "holds", "userId": u})
    run.job("capture", {"type": "capture", "id": "g-capture", "userId": u, "holdId": "g-hold", "amount": 12})
    run.job("capture hold_closed", {"type": "capture", "id": "g-capture-2", "userId": u, "holdId": "g-hold"})
    run.job("capture hold_not_found", {"type": "capture", "id": "g-capture-3", "userId": u, "holdId": "nothing"})
    run.job("release", {"type": "release", "id": "g-release", "userId": u, "holdId": "g-hold-op"})
    run.job("release hold_closed", {"type": "release", "id": "g-release-2", "userId": u, "holdId": "g-hold-op"})
    run.job("hold capture_exceeds_hold (the hold)", {"type": "hold", "id": "g-hold-3", "userId": u, "amount": 2})
    run.job("capture capture_exceeds_hold", {"type": "capture", "id": "g-capture-4", "userId": u,
                                             "holdId": "g-hold-3", "amount": 3})
    run.job("hold that expires", {"type": "hold", "id": "g-hold-short", "userId": u, "amount": 1, "expiresIn": 1})
    run.wait_for("the worker expires the hold", "hold.expired")
    run.job("capture hold_expired", {"type": "capture", "id": "g-capture-5", "userId": u, "holdId": "g-hold-short"})
    run.job("credit that lapses", {"type": "credit", "id": "g-credit-lapse", "userId": u, "operationType": "bonus",
                                   "amount": 3, "expiresIn": 1})
    run.wait_for("the worker lapses the grant", "grant.expired")
    run.job("monitor", {"type": "monitor", "id": "g-monitor", "userId": u, "threshold": 50, "monitorId": "low"})
    run.job("monitor invalid_threshold", {"type": "monitor", "id": "g-monitor-2", "userId": u, "threshold": -1})
    run.job("debit that crosses the monitor", {"type": "debit", "id": "g-debit-low", "userId": u,
                                               "operationType": "api_call", "amount": 80})
    run.job("credit back above the monitor", {"type": "credit", "id": "g-credit-up", "userId": u,
                                              "operationType": "bonus", "amount": 80})
    run.job("hold that crosses the monitor", {"type": "hold", "id": "g-hold-low", "userId": u, "amount": 80})
    run.job("unmonitor", {"type": "unmonitor", "id": "g-unmonitor", "userId": u, "monitorId": "low"})
    run.job("unmonitor monitor_not_found", {"type": "unmonitor", "id": "g-unmonitor-2", "userId": u,
                                            "monitorId": "low"})
    run.job("setTier", {"type": "setTier", "id": "g-set-tier", "userId": u, "tier": "Professional",
                        "subscriptionExpiresAt": "2100-01-01T00:00:00.000Z"})
    run.job("setTier duplicate", {"type": "setTier", "id": "g-set-tier", "userId": u, "tier": "Professional",
                                  "subscriptionExpiresAt": "2100-01-01T00:00:00.000Z"})
    run.job("setTier expiry cleared", {"type": "setTier", "id": "g-set-tier-2", "userId": u, "tier": "Gift",
                                       "subscriptionExpiresAt": None})
    run.job("setTier unknown_tier", {"type": "setTier", "id": "g-set-tier-x", "userId": u, "tier": "Platinum"})
    run.job("setTier invalid_expiry", {"type": "setTier", "id": "g-set-tier-past", "userId": u, "tier": "Business",
                                       "subscriptionExpiresAt": "2001-01-01T00:00:00.000Z"})
    run.job("setTier user_not_found", {"type": "setTier", "id": "g-set-tier-nobody", "userId": nobody,
                                       "tier": "Business"})
    run.job("balanceAt", {"type": "balanceAt", "userId": u, "at": "2100-01-01T00:00:00.000Z"})
    run.job("balanceAt before the first entry", {"type": "balanceAt", "userId": u, "at": "2001-01-01T00:00:00.000Z"})
    run.job("balanceAt user_not_found", {"type": "balanceAt", "userId": nobody, "at": "2100-01-01T00:00:00.000Z"})
    # Identity is bytes: the composed and the decomposed e-acute are two users.
    nfc, nfd = "golden-caf\u00e9", "golden-cafe\u0301"
    run.job("open NFC user", {"type": "open", "id": "g-open-nfc", "userId": nfc})
    run.job("open NFD user", {"type": "open", "id": "g-open-nfd", "userId": nfd})
    run.job("charge NFC user", {"type": "charge", "id": "g-charge-nfc", "userId": nfc, "operation": "chatgpt_message"})
    run.job("balance NFC user", {"type": "balance", "userId": nfc})
    run.job("balance NFD user", {"type": "balance", "userId": nfd})
    run.job("charge NFD user with the NFC user's job id", {"type": "charge", "id": "g-charge-nfc", "userId": nfd,
                                                           "operation": "chatgpt_message"})
    run.job("a job without replyTo", {"type": "credit", "id": "g-credit-silent", "userId": u,
                                      "operationType": "bonus", "amount": 1}, reply=False)
    # Dead letters: bytes that are no valid job, each with its failure reply where a replyTo reads.
    run.raw("dead letter: not JSON", text="this is not json")
    run.raw("dead letter: truncated JSON", text='{"type":"charge","id":')
    run.raw("dead letter: not an object", text="[1,2,3]")
    run.raw("dead letter: unknown type", text='{"type":"teleport","id":"g-teleport","userId":"golden-alice",'
                                              '"replyTo":"<P>:reply:teleport"}', reply_key="<P>:reply:teleport")
    run.raw("dead letter: missing type", text='{"id":"g-no-type","userId":"golden-alice","replyTo":"<P>:reply:no-type"}',
            reply_key="<P>:reply:no-type")
    run.raw("dead letter: missing id on a change", text='{"type":"charge","userId":"golden-alice",'
                                                        '"operation":"chatgpt_message","replyTo":"<P>:reply:no-id"}',
            reply_key="<P>:reply:no-id")
    run.raw("dead letter: missing field", text='{"type":"debit","id":"g-no-amount","userId":"golden-alice",'
                                               '"operationType":"api_call","replyTo":"<P>:reply:no-amount"}',
            reply_key="<P>:reply:no-amount")
    run.raw("dead letter: amount a fraction", text='{"type":"debit","id":"g-frac","userId":"golden-alice",'
                                                   '"operationType":"api_call","amount":2.5,"replyTo":"<P>:reply:frac"}',
            reply_key="<P>:reply:frac")
    run.raw("dead letter: bad id", text='{"type":"charge","id":"has space","userId":"golden-alice",'
                                        '"operation":"chatgpt_message","replyTo":"<P>:reply:bad-id"}',
            reply_key="<P>:reply:bad-id")
    run.raw("dead letter: control character in userId", text='{"type":"open","id":"g-ctl","userId":"a\\u0007b",'
                                                             '"replyTo":"<P>:reply:ctl"}', reply_key="<P>:reply:ctl")
    run.raw("dead letter: metadata not an object", text='{"type":"charge","id":"g-meta-list","userId":"golden-alice",'
                                                        '"operation":"chatgpt_message","metadata":[1],'
                                                        '"replyTo":"<P>:reply:meta-list"}',
            reply_key="<P>:reply:meta-list")
    # Too large to be read at all: its replyTo is not looked for (and names no key of the run, so
    # that the size in the message is the same whatever the prefix).
    run.raw("dead letter: too large", text='{"type":"open","id":"g-big","userId":"golden-alice",'
                                           '"replyTo":"golden:reply:big","pad":"<x*66560>"}')
    run.raw("dead letter: not UTF-8", data=bytes([0xFF, 0xFE, 0x00, 0x7B]))
    run.job("after the dead letters, a job still applies", {"type": "balance", "userId": u})


def two_partitions(run: Run) -> None:
    # crc32("alice") = 663665735: partition 1 of 2; crc32("bob") = 4123767104: partition 0 of 2.
    run.start("start: the scheduler's catch-up run in each partition", events=1)
    run.job("open in partition 1", {"type": "open", "id": "p-open-alice", "userId": "alice"})
    run.job("open in partition 0", {"type": "open", "id": "p-open-bob", "userId": "bob"})
    run.job("charge in partition 1", {"type": "charge", "id": "p-charge-alice", "userId": "alice",
                                      "operation": "chatgpt_message"})
    run.job("setTier in partition 0", {"type": "setTier", "id": "p-tier-bob", "userId": "bob", "tier": "Business"})
    run.job("monitor in partition 0", {"type": "monitor", "id": "p-monitor-bob", "userId": "bob", "threshold": 90})
    run.job("debit that crosses the monitor in partition 0", {"type": "debit", "id": "p-debit-bob", "userId": "bob",
                                                              "operationType": "api_call", "amount": 20})
    run.raw("dead letter: wrong_partition", partition=0,
            text='{"type":"charge","id":"p-wrong","userId":"alice","operation":"chatgpt_message",'
                 '"replyTo":"<P>:reply:wrong"}', reply_key="<P>:reply:wrong")
    run.job("balance in partition 1 after it", {"type": "balance", "userId": "alice"})


def main() -> None:
    url, binary = os.environ["REDIS_URL"], os.environ["TOKENLEDGER_BIN"]
    # A cron slot no run meets but the catch-up at start, and a lease that a loaded machine renews in time.
    cron = {"renewal": {"cron": "0 2 29 2 *"}, "leaseSeconds": 30}
    scenarios = []
    for name, config, partitions, script in [
        ("one partition", cron, 1, one_partition),
        ("two partitions", {**cron, "partitionCount": 2}, 2, two_partitions),
    ]:
        for attempt in range(1, 4):
            run = Run(url, binary, name, config, partitions)
            try:
                script(run)
            finally:
                scenario = run.close()
            if not run.resent():
                break
            # At least once: a lease renewal that came late on a loaded machine sends messages
            # again, which belong in no transcript. Capture the scenario once more.
            print(f"{name}: the worker sent messages again (attempt {attempt}); capturing again", file=sys.stderr)
        else:
            raise SystemExit(f"{name}: the worker sent messages again in every attempt; try on a quieter machine")
        shutil.rmtree(run.folder, ignore_errors=True)
        scenarios.append(scenario)
        print(f"{name}: {len(scenario['steps'])} steps", file=sys.stderr)
    OUT.write_text(json.dumps({
        "about": "Jobs pushed one at a time into a real worker, and everything that came out of each: "
                 "written by clients/tools/capture_golden.py, replayed by Tests/WorkerTests/GoldenTranscriptTests.swift "
                 "and read by both clients' golden tests. See README.md in this folder.",
        "normalisation": NORMALISATION,
        "workerId": WORKER_ID,
        "scenarios": scenarios,
    }, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
