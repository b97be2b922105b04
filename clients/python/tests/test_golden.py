"""The codes and reply shapes the worker uses, as the repository's golden files hold them: the
client's lists must equal them, and its readers must read every golden reply."""
import json
import re
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from tokenledger import DEAD_LETTER_CODES, REFUSAL_CODES, ReplyShapeError, TokenLedgerError
from tokenledger._fields import Fields, read_reply
from tokenledger.results import (read_balance_at, read_capture, read_change, read_credit, read_hold, read_monitor,
                                 read_open, read_purchase, read_refusal, read_release, read_renew, read_set_tier,
                                 read_unmonitor)

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "Tests" / "Golden"
CODES = json.loads((GOLDEN / "error-codes.json").read_text())
READERS: Dict[str, Callable[[Fields], Any]] = {
    "open": read_open, "charge": read_change, "debit": read_change, "credit": read_credit, "refund": read_change,
    "purchase": read_purchase, "renew": read_renew, "hold": read_hold, "capture": read_capture,
    "release": read_release, "monitor": read_monitor, "unmonitor": read_unmonitor, "setTier": read_set_tier,
    "balanceAt": read_balance_at,
}


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
    examples = json.loads((GOLDEN / "replies.json").read_text())["examples"]
    assert len(examples) >= 30
    read_types = set()
    for example in examples:
        fields = read_reply(json.dumps(example["reply"]))
        assert fields.string("type") == example["job"]["type"], example["name"]
        if not fields.boolean("success"):
            code = read_refusal(fields).code
            assert code in CODES["refusals"] or code in CODES["deadLetters"], example["name"]
        elif fields.string("type") in READERS:
            READERS[fields.string("type")](fields)  # raises a ReplyShapeError naming what it cannot read
            read_types.add(fields.string("type"))
    assert read_types == set(READERS) - {"renew"}


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
    examples = json.loads((GOLDEN / "replies.json").read_text())["examples"]
    client = worker.client()  # a worker of its own: the golden ids and users are fresh, the jobs replay as captured
    for example in examples:
        assert _shape_of(client.send(example["job"])) == _shape_of(example["reply"]), example["name"]
