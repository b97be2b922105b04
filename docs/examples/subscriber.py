#!/usr/bin/env python3
"""Example TokenLedger cache layer (redis-py).

Subscribes to `<prefix>:balance` and keeps the last message of each user in memory, as a cache of
balances would. Prints each message as one JSON line on stdout; says on stderr when it is subscribed.

    python3 subscriber.py
    python3 subscriber.py --prefix tokens --count 2 --timeout 30

Exit status: 0 after --count messages (or at --timeout when no --count is given, or on Ctrl-C);
1 when --timeout passes before --count messages arrived.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import redis


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Follow TokenLedger balance invalidations.")
    parser.add_argument("--redis-url",
                        default=os.environ.get("TOKENLEDGER_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis URL (default: $TOKENLEDGER_REDIS_URL or redis://127.0.0.1:6379/0)")
    parser.add_argument("--prefix", default="tokens", help="key prefix (default: tokens)")
    parser.add_argument("--count", type=int, default=None, help="exit after this many messages")
    parser.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    return parser.parse_args(argv)


class BalanceCache:
    """userId -> the last message, ignoring a delayed message older than the one held."""

    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}

    def apply(self, message: dict) -> bool:
        held = self.entries.get(message["userId"])
        if held is not None:
            new_id, held_id = message.get("ledgerEntryId"), held.get("ledgerEntryId")
            if isinstance(new_id, int) and isinstance(held_id, int) and new_id < held_id:
                return False
        self.entries[message["userId"]] = message
        return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    channel = f"{args.prefix}:balance"
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    cache = BalanceCache()
    received = 0

    client = redis.Redis.from_url(args.redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    try:
        while True:
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            item = pubsub.get_message(timeout=min(wait, 1.0))
            if item is None:
                continue
            if item["type"] == "subscribe":
                print(f"subscriber: subscribed to {channel}", file=sys.stderr, flush=True)
                continue
            if item["type"] != "message":
                continue
            received += 1
            data = item["data"]
            text = data.decode() if isinstance(data, bytes) else data
            try:
                message = json.loads(text)
            except ValueError:
                print(f"subscriber: not JSON: {text!r}", file=sys.stderr, flush=True)
            else:
                if not cache.apply(message):
                    print(f"subscriber: older than the state held for {message['userId']}, ignored",
                          file=sys.stderr, flush=True)
                print(json.dumps(message, separators=(",", ":")), flush=True)
            if args.count is not None and received >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        pubsub.close()
        client.close()
        for user, message in sorted(cache.entries.items()):
            print(f"subscriber: {user}: balance {message['tokensBalance']}, tier {message['tier']}",
                  file=sys.stderr, flush=True)
    if args.count is not None and received < args.count:
        print(f"subscriber: {received} of {args.count} messages before the timeout", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
