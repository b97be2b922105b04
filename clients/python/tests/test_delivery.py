"""Delivery: partitions, ids, resends across a stopped worker, invalidations across a Redis
restart, the password, the events stream."""
import json
import os
import signal
from pathlib import Path
import threading
import time
from datetime import datetime, timezone

import pytest

from conftest import PrivateRedis, Worker, eventually, new_user
from tokenledger import (EventConsumer, LedgerClient, TokenLedgerError, TokenService, connection_settings,
                         crc32, partition_of, uuid7)


def test_partitions_follow_the_contracts_vectors(worker):
    assert crc32("alice") == 663665735 and crc32("bob") == 4123767104
    assert partition_of("alice", 4) == 3 and partition_of("bob", 4) == 0
    assert LedgerClient(prefix="P").jobs_key("alice") == "P:jobs"
    assert LedgerClient(prefix="P", partitions=4).jobs_key("alice") == "P:{3}:jobs"
    assert LedgerClient(prefix="P", partitions=4).jobs_key("bob") == "P:{0}:jobs"

    # A job is pushed on its user's partition (no worker serves this prefix: the call times out).
    client = worker.client(prefix=f"{worker.prefix}-n4", partitions=4, timeout=0.1, attempts=1)
    with pytest.raises(TokenLedgerError) as raised:
        client.send({"type": "balance", "userId": "alice"})
    assert raised.value.code == "timeout"
    [pushed] = client.redis.lrange(f"{worker.prefix}-n4:{{3}}:jobs", 0, -1)
    assert json.loads(pushed)["userId"] == "alice"


def test_ids_are_uuid7_in_time_order():
    ids = [uuid7() for _ in range(2000)]
    assert sorted(ids) == ids and len(set(ids)) == len(ids)
    assert ids[0][14] == "7" and ids[0][19] in "89ab"


def test_a_call_resends_its_job_while_the_worker_is_stopped_and_applies_once(worker):
    resends = []
    service = TokenService(worker.client(timeout=0.3, attempts=20, on_resend=lambda job, n: resends.append(n)))
    user_id = new_user("stopped")
    service.ensure_account(user_id)

    worker.process.send_signal(signal.SIGSTOP)
    # The signal takes effect when each of the worker's threads next runs: wait until all have
    # stopped, or a loaded machine lets the worker take the charge before it stops.
    tasks = Path(f"/proc/{worker.process.pid}/task")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
            "\tT" in (task / "status").read_text().split("State:", 1)[1].split("\n", 1)[0] for task in tasks.iterdir()):
        time.sleep(0.01)
    timer = threading.Timer(1.0, lambda: worker.process.send_signal(signal.SIGCONT))
    timer.start()
    result = service.charge_for_operation(user_id, "chatgpt_message", {"during": "stop"})
    timer.join()
    assert result.success, result.error
    assert len(resends) >= 2, resends
    assert result.new_balance == 95
    [entry] = service.get_ledger().get_user_entries(user_id, operation_type="chatgpt_message")
    assert entry.job_id == result.id
    assert service.charge_for_operation(user_id, "chatgpt_message", job_id=result.id).duplicate is True
    assert service.get_balance(user_id).tokens_balance == 95


def test_a_call_without_reply_fails_with_timeout_reported_once_to_metrics(worker):
    seen = []
    service = TokenService(worker.client(prefix=f"{worker.prefix}-idle", timeout=0.1, attempts=2),
                           metrics_callback=seen.append)
    with pytest.raises(TokenLedgerError) as raised:
        service.charge_for_operation("carol", "chatgpt_message")
    assert raised.value.code == "timeout"
    assert len(seen) == 1 and not seen[0].success
    assert seen[0].error.startswith("Timeout: No reply to job")


def test_invalidations_follow_a_redis_restart_and_the_password_comes_from_the_environment(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="must not carry a password"):
        connection_settings("redis://:secret@127.0.0.1:6379/0")
    redis_server = PrivateRedis(f"pw-{uuid7()}")
    redis_server.start()
    monkeypatch.setenv("TOKENLEDGER_REDIS_PASSWORD", redis_server.password)
    own = Worker(tmp_path, redis_server.url).start()
    try:
        invalidated = []
        service = TokenService(own.client(), cache_invalidation_callback=invalidated.append)
        user_id = new_user("cached")
        service.ensure_account(user_id)
        eventually(lambda: user_id in invalidated)

        redis_server.stop()
        redis_server.start()  # empty: the account lives in the ledger, the queue was lost
        invalidated.clear()
        channel = f"{own.prefix}:balance"
        eventually(lambda: service.client.redis.pubsub_numsub(channel) == [(channel, 1)])
        assert service.charge_for_operation(user_id, "chatgpt_message").success
        eventually(lambda: user_id in invalidated, timeout=20)
    finally:
        own.close()
        redis_server.stop()


def test_event_consumer_reads_p_events_with_a_consumer_group(worker):
    # A prefix no worker serves: the stream holds exactly the events this test writes.
    client = worker.client(prefix=f"{worker.prefix}-events")
    key = client.key("events")
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    client.redis.xadd(key, {"event": "job.applied", "id": "j-1", "type": "charge", "userId": "alice",
                            "success": "true", "tokensAmount": "-5", "operationType": "chatgpt_message",
                            "newBalance": "95", "ledgerEntryId": "2", "at": at})
    consumer = EventConsumer(client, "metrics", "c1", block_ms=100)
    consumer.ensure_group()
    consumer.ensure_group()  # exists already: fine
    client.redis.xadd(key, {"event": "renewal.completed", "slot": at, "totalProcessed": "2", "successful": "2",
                            "failed": "0", "at": at})

    first = consumer.read()
    assert [e.event for e in first] == ["job.applied", "renewal.completed"]
    assert first[0].fields["newBalance"] == "95"
    # not acknowledged: a restarted consumer of the same name gets them again
    restarted = EventConsumer(client, "metrics", "c1", block_ms=100)
    assert [e.stream_id for e in restarted.read()] == [e.stream_id for e in first]
    restarted.ack(first)
    assert client.redis.xpending(key, "metrics")["pending"] == 0
    assert restarted.read() == []

    handled = []
    client.redis.xadd(key, {"event": "balance.low", "userId": "alice", "monitorId": "default", "threshold": "10",
                            "available": "5", "at": at})
    restarted.run(lambda events: handled.extend(e.event for e in events), should_stop=lambda: bool(handled))
    assert handled == ["balance.low"]
