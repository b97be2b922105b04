"""Writes Tests/Golden/replies.json: one job of every kind the clients send and the reply a real
worker gave it. The clients' tests parse these replies with their own readers, so that a reply
shape the worker changes fails them.

    REDIS_URL=redis://127.0.0.1:6379/0 TOKENLEDGER_BIN=.build/debug/tokenledger python3 clients/tools/capture_golden.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import redis

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Golden" / "replies.json"


def main() -> None:
    url, binary = os.environ["REDIS_URL"], os.environ["TOKENLEDGER_BIN"]
    prefix = f"golden-{os.getpid()}"
    folder = tempfile.mkdtemp(prefix="tokenledger-golden-")
    config = Path(folder, "config.json")
    config.write_text(json.dumps({"renewal": {"cron": "0 2 29 2 *"}}))
    env = {**os.environ, "TOKENLEDGER_REDIS_URL": url, "TOKENLEDGER_DATABASE": str(Path(folder, "ledger.sqlite")),
           "TOKENLEDGER_PREFIX": prefix, "TOKENLEDGER_HTTP": "off", "TOKENLEDGER_CONFIG": str(config)}
    worker = subprocess.Popen([binary, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis.from_url(url, decode_responses=True)
    examples: List[Dict[str, Any]] = []

    def send(name: str, job: Dict[str, Any]) -> Dict[str, Any]:
        reply_to = f"{prefix}:reply:{len(examples)}"
        r.lpush(f"{prefix}:jobs", json.dumps({**job, "replyTo": reply_to}))
        got = r.brpop([reply_to], timeout=30)
        if got is None:
            raise SystemExit(f"no reply to {name}")
        reply: Dict[str, Any] = json.loads(got[1])
        examples.append({"name": name, "job": job, "reply": reply})
        return reply

    try:
        u = "golden-alice"
        send("open", {"type": "open", "id": "g-open", "userId": u})
        send("open account_exists", {"type": "open", "id": "g-open-2", "userId": u})
        send("charge", {"type": "charge", "id": "g-charge", "userId": u, "operation": "image_generation",
                        "metadata": {"prompt": "a red fox"}})
        send("charge duplicate", {"type": "charge", "id": "g-charge", "userId": u, "operation": "image_generation",
                                  "metadata": {"prompt": "a red fox"}})
        send("charge unknown_operation", {"type": "charge", "id": "g-charge-x", "userId": u, "operation": "teleport"})
        send("charge user_not_found", {"type": "charge", "id": "g-charge-nobody", "userId": "golden-nobody",
                                       "operation": "chatgpt_message"})
        send("debit", {"type": "debit", "id": "g-debit", "userId": u, "operationType": "api_call", "amount": 3})
        send("debit insufficient_tokens", {"type": "debit", "id": "g-debit-big", "userId": u,
                                           "operationType": "api_call", "amount": 1000000})
        send("debit invalid_amount", {"type": "debit", "id": "g-debit-0", "userId": u, "operationType": "api_call",
                                      "amount": 0})
        send("debit invalid_job", {"type": "debit", "id": "g-debit-frac", "userId": u, "operationType": "api_call",
                                   "amount": 2.5})
        send("credit", {"type": "credit", "id": "g-credit", "userId": u, "operationType": "bonus", "amount": 25})
        send("credit expiring", {"type": "credit", "id": "g-credit-exp", "userId": u, "operationType": "bonus",
                                 "amount": 5, "expiresIn": 86400})
        send("refund", {"type": "refund", "id": "g-refund", "userId": u, "refundOf": "g-charge"})
        send("refund refund_exceeds_charge", {"type": "refund", "id": "g-refund-2", "userId": u,
                                              "refundOf": "g-charge"})
        send("refund charge_not_found", {"type": "refund", "id": "g-refund-3", "userId": u, "refundOf": "nothing"})
        send("purchase", {"type": "purchase", "id": "g-purchase", "userId": "golden-bob", "tier": "Professional",
                          "paymentId": "pi_golden", "months": 1})
        send("purchase unknown_tier", {"type": "purchase", "id": "g-purchase-x", "userId": "golden-bob",
                                       "tier": "Platinum", "paymentId": "pi_golden_x"})
        send("renew not_eligible", {"type": "renew", "id": "g-renew", "userId": u})
        send("renewAll dryRun", {"type": "renewAll", "dryRun": True})
        send("renewAll", {"type": "renewAll", "id": "g-renew-all"})
        send("balance", {"type": "balance", "userId": u})
        send("balance user_not_found", {"type": "balance", "userId": "golden-nobody"})
        send("canAfford", {"type": "canAfford", "userId": u, "operation": "chatgpt_message"})
        send("history", {"type": "history", "userId": u, "limit": 3, "offset": 0})
        send("history invalid_limit", {"type": "history", "userId": u, "limit": 5000})
        send("statistics", {"type": "statistics", "userId": u, "startDate": "2020-01-01T00:00:00.000Z",
                            "endDate": "2100-01-01T00:00:00.000Z"})
        send("eligibility", {"type": "eligibility", "userId": u})
        send("hold", {"type": "hold", "id": "g-hold", "userId": u, "amount": 20, "expiresIn": 600})
        send("hold operation", {"type": "hold", "id": "g-hold-op", "userId": u, "operation": "chatgpt_message"})
        send("holds", {"type": "holds", "userId": u})
        send("capture", {"type": "capture", "id": "g-capture", "userId": u, "holdId": "g-hold", "amount": 12})
        send("capture hold_closed", {"type": "capture", "id": "g-capture-2", "userId": u, "holdId": "g-hold"})
        send("capture hold_not_found", {"type": "capture", "id": "g-capture-3", "userId": u, "holdId": "nothing"})
        send("release", {"type": "release", "id": "g-release", "userId": u, "holdId": "g-hold-op"})
        send("monitor", {"type": "monitor", "id": "g-monitor", "userId": u, "threshold": 50, "monitorId": "low"})
        send("monitor invalid_threshold", {"type": "monitor", "id": "g-monitor-2", "userId": u, "threshold": -1})
        send("unmonitor", {"type": "unmonitor", "id": "g-unmonitor", "userId": u, "monitorId": "low"})
        send("unmonitor monitor_not_found", {"type": "unmonitor", "id": "g-unmonitor-2", "userId": u,
                                             "monitorId": "low"})
        send("setTier", {"type": "setTier", "id": "g-set-tier", "userId": u, "tier": "Professional",
                         "subscriptionExpiresAt": "2100-01-01T00:00:00.000Z"})
        send("setTier duplicate", {"type": "setTier", "id": "g-set-tier", "userId": u, "tier": "Professional",
                                   "subscriptionExpiresAt": "2100-01-01T00:00:00.000Z"})
        send("setTier expiry cleared", {"type": "setTier", "id": "g-set-tier-2", "userId": u, "tier": "Gift",
                                        "subscriptionExpiresAt": None})
        send("setTier unknown_tier", {"type": "setTier", "id": "g-set-tier-x", "userId": u, "tier": "Platinum"})
        send("setTier invalid_expiry", {"type": "setTier", "id": "g-set-tier-past", "userId": u, "tier": "Business",
                                        "subscriptionExpiresAt": "2001-01-01T00:00:00.000Z"})
        send("setTier user_not_found", {"type": "setTier", "id": "g-set-tier-nobody", "userId": "golden-nobody",
                                        "tier": "Business"})
        send("balanceAt", {"type": "balanceAt", "userId": u, "at": "2100-01-01T00:00:00.000Z"})
        send("balanceAt before the first entry", {"type": "balanceAt", "userId": u, "at": "2001-01-01T00:00:00.000Z"})
        send("balanceAt user_not_found", {"type": "balanceAt", "userId": "golden-nobody",
                                          "at": "2100-01-01T00:00:00.000Z"})
        send("unknown type", {"type": "teleport", "id": "g-teleport", "userId": u})
    finally:
        worker.terminate()
        worker.wait(30)
        for key in r.scan_iter(f"{prefix}*"):
            r.delete(key)
    OUT.write_text(json.dumps({"capturedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "examples": examples}, indent=1) + "\n")
    print(f"wrote {len(examples)} examples to {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
