"""Reads P:events (a Redis stream) with a consumer group: the feed for server-side metrics."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import redis

from .client import LedgerClient, text_of


@dataclass
class LedgerEvent:
    """One stream entry: `event` names the kind; every value is a string, as the worker writes it."""
    stream_id: str
    event: str
    fields: Dict[str, str]


def _events_of(streams: object) -> List[LedgerEvent]:
    """XREADGROUP's answer for one stream, `[[key, [(id, {field: value}), ...]]]`, as events; a
    pending entry deleted from the stream meanwhile comes with no fields and is skipped."""
    if not isinstance(streams, list) or not streams:
        return []
    messages = streams[0][1]
    events: List[LedgerEvent] = []
    for stream_id, fields in messages:
        if not isinstance(fields, dict):
            continue
        values = {text_of(k): text_of(v) for k, v in fields.items()}
        events.append(LedgerEvent(text_of(stream_id), values.get("event", ""), values))
    return events


class EventConsumer:
    """Delivery is at least once: events are acknowledged only after the handler returns, so after
    a crash the consumer's pending events come again (dedupe by the job `id` where needed).
    `start_id`: where a new group starts, `0` (everything kept, the default) or `$` (new events)."""

    def __init__(self, client: LedgerClient, group: str, consumer: str, partition: int = 0,
                 start_id: str = "0", count: int = 100, block_ms: int = 1000):
        self.client, self.group, self.consumer = client, group, consumer
        self.key = client.key("events", partition)
        self.start_id, self.count, self.block_ms = start_id, count, block_ms
        self._pending_first = True

    def ensure_group(self) -> None:
        """XGROUP CREATE ... MKSTREAM, unless the group exists."""
        try:
            self.client.redis.xgroup_create(self.key, self.group, id=self.start_id, mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def read(self) -> List[LedgerEvent]:
        """The next events: this consumer's unacknowledged ones first, then new ones (waits up to block_ms)."""
        start = "0" if self._pending_first else ">"
        streams = self.client.redis.xreadgroup(self.group, self.consumer, {self.key: start},
                                               count=self.count, block=self.block_ms)
        events = _events_of(streams)
        if self._pending_first and not events:
            self._pending_first = False
            return self.read()
        return events

    def ack(self, events: List[LedgerEvent]) -> None:
        if events:
            self.client.redis.xack(self.key, self.group, *(e.stream_id for e in events))  # type: ignore[no-untyped-call, unused-ignore]

    def run(self, handler: Callable[[List[LedgerEvent]], object], should_stop: Optional[Callable[[], bool]] = None) -> None:
        """Reads, hands each batch to `handler`, acknowledges it; until `should_stop()` says so."""
        self.ensure_group()
        while not (should_stop and should_stop()):
            events = self.read()
            if events:
                handler(events)
                self.ack(events)
