#!/usr/bin/env python3
"""Example TokenLedger producer (redis-py).

Opens an account, charges `chatgpt_message`, and waits for each result with BRPOP on a reply key
unique to the request. Prints each result as one JSON line on stdout.

    python3 producer.py --user alice
    python3 producer.py --redis-url redis://127.0.0.1:6379/0 --prefix tokens --user bob --charges 3

Exit status: 0 when every reply arrived and every job succeeded (an `open` refused with
`account_exists` counts as success: the account is there); 1 when a job was refused; 2 when a reply
did not arrive in time (send the same job again: its id makes that safe).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import uuid

import redis


class NoReply(Exception):
    pass


def send(client: redis.Redis, prefix: str, job: dict, timeout: float) -> dict:
    """Push one job with a fresh replyTo and wait for its result."""
    reply_to = f"{prefix}:reply:{uuid.uuid4()}"
    client.lpush(f"{prefix}:jobs", json.dumps({**job, "replyTo": reply_to}, separators=(",", ":")))
    got = client.brpop([reply_to], timeout=timeout)
    if got is None:
        raise NoReply(f"no reply to job {job.get('id')!r} within {timeout} s")
    client.delete(reply_to)
    return json.loads(got[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Open a TokenLedger account and charge a chat message.")
    parser.add_argument("--redis-url",
                        default=os.environ.get("TOKENLEDGER_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis URL (default: $TOKENLEDGER_REDIS_URL or redis://127.0.0.1:6379/0)")
    parser.add_argument("--prefix", default="tokens", help="key prefix (default: tokens)")
    parser.add_argument("--user", default="alice", help="userId (default: alice)")
    parser.add_argument("--operation", default="chatgpt_message", help="operation to charge (default: chatgpt_message)")
    parser.add_argument("--charges", type=int, default=1, help="how many charges to send (default: 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply (default: 10)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The socket timeout must outlast BRPOP's own timeout (redis-py defaults it to a few seconds).
    client = redis.Redis.from_url(args.redis_url, socket_timeout=args.timeout + 5)
    # A stable id for `open`: running the example again answers the first result, duplicate: true.
    jobs = [{"type": "open", "id": f"open:{args.user}", "userId": args.user}]
    jobs += [{"type": "charge", "id": f"charge:{uuid.uuid4()}", "userId": args.user,
              "operation": args.operation, "metadata": {"source": "producer.py"}}
             for _ in range(args.charges)]
    status = 0
    try:
        for job in jobs:
            result = send(client, args.prefix, job, args.timeout)
            print(json.dumps(result, separators=(",", ":")), flush=True)
            if not result.get("success"):
                code = result.get("error", {}).get("code")
                if not (job["type"] == "open" and code == "account_exists"):
                    status = 1
    except NoReply as error:
        print(f"producer: {error}", file=sys.stderr)
        return 2
    finally:
        client.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
