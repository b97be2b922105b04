"""The codes and message shapes the worker uses, as the repository's golden files hold them: the
client's lists must equal them, and its readers must read every golden reply and invalidation
(Tests/Golden/transcript.json, the same file the Swift tests replay)."""
import json
import re
import sqlite3
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
import redis
from conftest import eventually

from tokenledger import DEAD_LETTER_CODES, REFUSAL_CODES, ReplyShapeError, TokenLedgerError
from tokenledger._fields import Fields, read_reply
from tokenledger.client import _balance_message
from tokenledger.results import (read_afford, read_balance, read_balance_at, read_capture, read_change, read_credit,
                                 read_eligibility, read_hold, read_holds, read_monitor, read_open, read_page,
                                 read_purchase, read_refusal, read_release, read_renew, read_renew_all,
                                 read_set_tier, read_statistics, read_unmonitor)

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "Tests" / "Golden"
CODES = json.loads((GOLDEN / "error-codes.json").read_text())
TRANSCRIPT = json.loads((GOLDEN / "transcript.json").read_text())
READERS: Dict[str, Callable[[Fields], Any]] = {
    "open": read_open, "charge": read_change, "debit": read_change, "credit": read_credit, "refund": read_change,
    "purchase": read_purchase, "renew": read_renew, "hold": read_hold, "capture": read_capture,
    "release": read_release, "monitor": read_monitor, "unmonitor": read_unmonitor, "setTier": read_set_tier,
    "balanceAt": read_balance_at,
}
QUERY_READERS: Dict[str, Callable[[Fields], Any]] = {
    "balance": read_balance, "canAfford": read_afford, "history": read_page, "statistics": read_statistics,
    "eligibility": read_eligibility, "holds": read_holds, "renewAll": read_renew_all,
}
#: The job types of the contract.
CONTRACT_TYPES = {"open", "charge", "debit", "credit", "refund", "purchase", "renew", "renewAll", "balance",
                  "canAfford", "history", "statistics", "eligibility", "hold", "capture", "release", "holds",
                  "monitor", "unmonitor", "setTier", "balanceAt"}
#: Each event kind and the fields the contract gives it (besides `event`; `partition` with N > 1).
EVENT_FIELDS = {
    "job.applied": {"type", "success", "at"},
    "hold.expired": {"userId", "holdId", "amount", "at"},
    "grant.expired": {"userId", "grantId", "tokensAmount", "expiresAt", "at"},
    "balance.low": {"userId", "monitorId", "threshold", "available", "at"},  # ledgerEntryId when there is one
    "renewal.completed": {"slot", "totalProcessed", "successful", "failed", "at"},
}


def concrete(value: Any, key: Optional[str] = None) -> Any:
    """A transcript value with its placeholders (Tests/Golden/README.md) given sample values, as
    a worker would send it: `<time>` a time, `<int>` a number of days, `<P>` a prefix."""
    if value == "<int>":
        return 30
    if isinstance(value, str):
        value = re.sub(r"<x\*(\d+)>", lambda m: "x" * int(m.group(1)), value.replace("<P>", "tokens"))
        return value.replace("<time>", "2026-01-31T02:00:00.000Z")
    if isinstance(value, list):
        return [concrete(v) for v in value]
    if isinstance(value, dict):
        return {k: concrete(v, k) for k, v in value.items()}
    return value


def steps() -> List[Dict[str, Any]]:
    return [step for scenario in TRANSCRIPT["scenarios"] for step in scenario["steps"]]


def test_the_golden_refusal_codes_are_those_of_refusal_swift():
    swift = (ROOT / "Sources" / "LedgerModel" / "Refusal.swift").read_text()
    declared = re.findall(r'public static let \w+ = RefusalCode\("([a-z_]+)"\)', swift)
    assert len(declared) > 10
    assert sorted(set(CODES["refusals"])) == sorted(set(declared))


def test_the_golden_dead_letter_codes_are_those_the_worker_gives_a_job_error():
    found = {"invalid_job"}  # JobError's default
    for folder in ("JobWire", "Worker"):
        for path in (ROOT / "Sources" / folder).glob("*.swift"):
            found.update(re.findall(r'JobError\(code: "([a-z_]+)"', path.read_text()))
    assert sorted(CODES["deadLetters"]) == sorted(found)


def test_the_clients_code_lists_are_the_golden_ones():
    assert sorted(REFUSAL_CODES) == sorted(CODES["refusals"])
    assert sorted(DEAD_LETTER_CODES) == sorted(CODES["deadLetters"])
    assert {"invalid_threshold", "monitor_not_found", "reserved_grant_id"} <= set(REFUSAL_CODES)


def test_every_golden_reply_of_a_real_worker_reads():
    with_replies = [step for step in steps() if "reply" in step]
    assert len(with_replies) >= 90
    read_types = set()
    for step in with_replies:
        text = json.dumps(concrete(step["reply"]))
        if "job" in step:
            fields = read_reply(text)
            assert fields.string("type") == step["job"]["type"], step["name"]
        else:  # a dead letter's failure reply: `type` is null when the job named none
            fields = Fields(json.loads(text), "", text)
        if not fields.boolean("success"):
            code = read_refusal(fields).code
            assert code in CODES["refusals"] or code in CODES["deadLetters"], step["name"]
            if "job" not in step:  # a dead letter's failure reply: the dead letter's code
                assert code in DEAD_LETTER_CODES and code == step["deadLetters"][0]["error"]["code"], step["name"]
            continue
        kind = fields.string("type")
        reader = READERS.get(kind) or QUERY_READERS[kind]
        reader(fields)  # raises a ReplyShapeError naming what it cannot read
        read_types.add(kind)
    assert read_types == CONTRACT_TYPES
    assert set(READERS) | set(QUERY_READERS) == CONTRACT_TYPES


def test_every_golden_invalidation_reads():
    messages = [(scenario, m) for scenario in TRANSCRIPT["scenarios"] for step in scenario["steps"]
                for m in step["invalidations"]]
    assert len(messages) >= 35
    for scenario, m in messages:
        message = _balance_message(json.dumps(concrete(m)))
        assert message.available == message.tokens_balance - message.held
        assert (message.partition is None) == (scenario["partitionCount"] == 1)
        assert (message.ledger_entry_id is None) == (message.operation_type is None) == (message.tokens_amount is None)


def test_every_golden_event_and_alert_has_its_contract_fields():
    events = [(scenario, e) for scenario in TRANSCRIPT["scenarios"] for step in scenario["steps"] for e in step["events"]]
    assert {e["event"] for _, e in events} == set(EVENT_FIELDS)
    for scenario, e in events:
        assert all(isinstance(v, str) for v in e.values()), e  # stream values are strings
        assert EVENT_FIELDS[e["event"]] <= set(e), e
        assert ("partition" in e) == (scenario["partitionCount"] > 1), e
    alerts = [(step, a) for step in steps() for a in step["alerts"]]
    assert alerts
    for step, alert in alerts:
        # The message on P:alerts is the stream's balance.low as JSON: the same fields, typed.
        low = next(e for e in step["events"] if e["event"] == "balance.low" and e["monitorId"] == alert["monitorId"])
        assert {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in alert.items() if v is not None} \
            == {k: v for k, v in low.items()}, step["name"]
        assert isinstance(alert["threshold"], int) and isinstance(alert["available"], int)


def test_every_golden_dead_letter_keeps_its_job_and_names_its_cause():
    letters = [(step, d) for step in steps() for d in step["deadLetters"]]
    assert {d["error"]["code"] for _, d in letters} == {"invalid_job", "wrong_partition"}
    for step, letter in letters:
        assert set(letter) >= {"error", "failedAt"} and ("job" in letter) != ("jobBase64" in letter), step["name"]
        assert letter["error"]["code"] in DEAD_LETTER_CODES and letter["error"]["message"], step["name"]
        if "raw" in step:
            assert letter["job"] == step["raw"], step["name"]
        else:
            assert letter["jobBase64"] == step["rawBase64"], step["name"]


def test_a_reply_of_another_shape_fails_naming_the_field():
    charge = {"id": "c-1", "type": "charge", "success": True, "newBalance": "90", "ledgerEntryId": 2,
              "tokensAmount": -10}
    with pytest.raises(ReplyShapeError) as raised:
        read_change(read_reply(json.dumps(charge)))
    assert (raised.value.field, raised.value.code) == ("newBalance", "invalid_reply")
    assert isinstance(raised.value, TokenLedgerError)
    history = read_reply(json.dumps({"type": "history", "success": True, "entries": [{"id": 1}, {"id": "two"}]}))
    with pytest.raises(ReplyShapeError) as raised:
        [e.integer("id") for e in history.array("entries")]
    assert raised.value.field == "entries[1].id"
    with pytest.raises(ReplyShapeError) as raised:
        read_reply('{"type": "charge", "success": false}')
    assert raised.value.field == "error"
    with pytest.raises(ReplyShapeError) as raised:
        read_change(read_reply(json.dumps({**charge, "newBalance": True})))  # a bool is no integer
    assert raised.value.field == "newBalance"


def test_a_balance_at_reply_that_mixes_an_entry_and_no_entry_fails_naming_the_field():
    none = {"id": None, "type": "balanceAt", "success": True, "userId": "u", "at": "2026-01-01T00:00:00.000Z",
            "exists": False, "tokensBalance": 0, "tokensSpent": 0, "ledgerEntryId": None, "createdAt": None}
    assert read_balance_at(read_reply(json.dumps(none))).exists is False
    for name, value in [("ledgerEntryId", 5), ("createdAt", "2026-01-01T00:00:00.000Z"), ("tokensBalance", 7)]:
        with pytest.raises(ReplyShapeError) as raised:
            read_balance_at(read_reply(json.dumps({**none, name: value})))
        assert raised.value.field == name
    with pytest.raises(ReplyShapeError) as raised:
        read_balance_at(read_reply(json.dumps({**none, "exists": True})))
    assert raised.value.field == "ledgerEntryId"


def test_64_bit_values_are_exact():
    text = ('{"id": "c-1", "type": "charge", "success": true, "newBalance": 9223372036854775807, '
            '"ledgerEntryId": 9007199254740993, "tokensAmount": -5}')
    result = read_change(read_reply(text))
    assert (result.new_balance, result.ledger_entry_id) == (2**63 - 1, 2**53 + 1)


def test_mypy_strict_passes_on_the_package_and_the_guide_example():
    import subprocess
    import sys
    here = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "mypy", "--strict", "src/tokenledger", "examples/original_api.py"],
                         cwd=here, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def _shape_of(value: Any) -> Any:
    """A JSON value's shape: its keys and the kinds of their values, whatever the values."""
    if isinstance(value, list):
        return [_shape_of(value[0])] if value else []
    if isinstance(value, dict):
        return {key: _shape_of(value[key]) for key in sorted(value)}
    return type(value).__name__


def test_a_real_worker_still_answers_the_golden_jobs_with_the_golden_shapes(worker):
    scenario = TRANSCRIPT["scenarios"][0]
    assert scenario["partitionCount"] == 1
    client = worker.client()  # a worker of its own: the golden ids and users are fresh, the jobs replay as captured
    events = redis.Redis.from_url(worker.redis_url)
    for step in scenario["steps"]:
        if "restart" in step:  # renewal clocks moved back while the worker is stopped
            worker.stop()
            with sqlite3.connect(worker.database) as db:
                db.executescript(step["restart"]["sql"])
            db.close()
            worker.start()
        if "await" in step:  # an expiry the worker writes on its own within seconds
            eventually(lambda: any(f.get(b"event") == step["await"].encode()
                                   for _, f in events.xrange(f"{worker.prefix}:events")), timeout=30)
        elif "job" in step:
            reply = client.send(step["job"])
            if "reply" in step:
                assert _shape_of(reply) == _shape_of(concrete(step["reply"])), step["name"]
    events.close()
