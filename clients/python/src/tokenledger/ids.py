"""Job ids and partitions."""
from __future__ import annotations

import os
import threading
import time
import uuid
import zlib

_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def uuid7() -> str:
    """A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter that keeps ids
    made in one millisecond in order, then 62 random bits. Ids made by one process sort by time,
    which keeps the ledger's idempotency index compact."""
    global _last_ms, _sequence
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _sequence += 1
            if _sequence > 0xFFF:
                _last_ms, _sequence = _last_ms + 1, 0
            ms = _last_ms
        else:
            _last_ms, _sequence = ms, 0
        sequence = _sequence
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (sequence << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


def crc32(text: str) -> int:
    """CRC-32/IEEE of the UTF-8 bytes of `text`, as zlib computes it."""
    return zlib.crc32(text.encode("utf-8"))


def partition_of(user_id: str, partitions: int) -> int:
    """The partition of a user: crc32(UTF-8 userId) mod N."""
    return crc32(user_id) % partitions
