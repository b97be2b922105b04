"""The connection to a TokenLedger queue: sends jobs, waits for their replies, resends on timeout,
routes each user to its partition, and follows the balance invalidations."""
from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import Any, Callable, Mapping, Optional

import redis

from .ids import partition_of, uuid7

Job = dict
Reply = dict


def describe_error(code: str, message: str) -> str:
    """`Insufficient tokens: The balance of 3 tokens does not cover the 5 tokens required.`: the
    code as words, then the worker's sentence. The words keep the original service's checks
    working (`'Insufficient tokens' in error`, `'User not found'`, `'Unknown operation'`)."""
    words = code.replace("_", " ")
    return f"{words[:1].upper()}{words[1:]}: {message}"


class TokenLedgerError(Exception):
    """A refusal raised by a query, a failed call, or `timeout`. `str(error)` is describe_error's text."""

    def __init__(self, code: str, message: str, reply: Optional[Reply] = None, job: Optional[Job] = None):
        super().__init__(describe_error(code, message))
        self.code = code
        self.detail = message
        self.reply = reply
        self.job = job


def connection_settings(url: Optional[str] = None, prefix: Optional[str] = None,
                        env: Mapping[str, str] = os.environ) -> dict:
    """The URL, credentials and prefix; a password written into the URL is refused."""
    url = url or env.get("TOKENLEDGER_REDIS_URL") or "redis://127.0.0.1:6379/0"
    if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", url, re.I):
        raise ValueError("the Redis URL must not carry a password: set TOKENLEDGER_REDIS_PASSWORD")
    return {
        "url": url,
        "username": env.get("TOKENLEDGER_REDIS_USERNAME") or None,
        "password": env.get("TOKENLEDGER_REDIS_PASSWORD") or None,
        "prefix": prefix or env.get("TOKENLEDGER_PREFIX") or "tokens",
    }


class LedgerClient:
    """`LedgerClient(url=None, prefix=None, partitions=1, timeout=10.0, attempts=3)`.

    `timeout` (seconds) is how long one attempt waits for its reply; after `attempts` sends without
    a reply, `send` raises TokenLedgerError("timeout"). Thread-safe: each wait takes a connection
    from redis-py's pool."""

    def __init__(self, url: Optional[str] = None, prefix: Optional[str] = None, partitions: int = 1,
                 timeout: float = 10.0, attempts: int = 3,
                 on_resend: Optional[Callable[[Job, int], None]] = None):
        settings = connection_settings(url, prefix)
        if not isinstance(partitions, int) or partitions < 1:
            raise ValueError("partitions must be an integer >= 1")
        self.prefix, self.partitions = settings["prefix"], partitions
        self.timeout, self.attempts, self.on_resend = timeout, attempts, on_resend
        self.redis = redis.Redis.from_url(settings["url"], username=settings["username"],
                                          password=settings["password"], decode_responses=True,
                                          socket_timeout=timeout + 10, health_check_interval=30)
        self._listeners: list[Callable[[dict], None]] = []
        self._subscriber: Optional[threading.Thread] = None
        self._stopped = threading.Event()

    def key(self, name: str, partition: int = 0) -> str:
        """`P:<name>`, or `P:{k}:<name>` when N > 1."""
        return f"{self.prefix}:{{{partition}}}:{name}" if self.partitions > 1 else f"{self.prefix}:{name}"

    def jobs_key(self, user_id: str) -> str:
        return self.key("jobs", partition_of(user_id, self.partitions))

    @staticmethod
    def new_id() -> str:
        return uuid7()

    def send(self, job: Job, partition: Optional[int] = None) -> Reply:
        """Sends a job and answers its reply, which comes on a key of its own. When none comes
        within `timeout`, the same job (same id) is pushed again, up to `attempts` times; a resent
        job applied meanwhile answers its first result with `duplicate: true`."""
        reply_to = f"{self.prefix}:reply:{uuid7()}"
        payload = json.dumps({**job, "replyTo": reply_to})
        if partition is not None:
            queue = self.key("jobs", partition)
        else:
            queue = self.jobs_key(job["userId"]) if "userId" in job else self.key("jobs")
        for attempt in range(1, self.attempts + 1):
            if attempt > 1 and self.on_resend:
                self.on_resend(job, attempt)
            self.redis.lpush(queue, payload)
            got = self.redis.brpop([reply_to], timeout=self.timeout)
            if got is not None:
                self.redis.delete(reply_to)
                return json.loads(got[1])
        raise TokenLedgerError(
            "timeout", f"No reply to job {job.get('id') or job['type']} after {self.attempts} attempts of "
                       f"{self.timeout} s; send it again with the same id.", job=job)

    def on_balance(self, listener: Callable[[dict], None]) -> Callable[[], None]:
        """Calls `listener` (on a thread of its own) with every message on `P:balance`. The
        subscription is made again after a lost connection or a Redis restart (messages sent while
        it was away are lost: see the contract's Invalidations). Returns the unsubscribe."""
        self._listeners.append(listener)
        if self._subscriber is None:
            subscribed = threading.Event()
            self._subscriber = threading.Thread(target=self._listen, args=(subscribed,), daemon=True)
            self._subscriber.start()
            subscribed.wait(self.timeout)
        return lambda: self._listeners.remove(listener)

    def _listen(self, subscribed: threading.Event) -> None:
        while not self._stopped.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(f"{self.prefix}:balance")
                subscribed.set()
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message["type"] == "message":
                        data = json.loads(message["data"])
                        for listener in list(self._listeners):
                            listener(data)
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.2)  # then subscribe on a new connection
            finally:
                pubsub.close()

    def close(self) -> None:
        self._stopped.set()
        if self._subscriber is not None:
            self._subscriber.join(timeout=5)
        self.redis.close()

    def __enter__(self) -> "LedgerClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: Optional[str] = None, **options: Any) -> LedgerClient:
    """`db = connect()`: a client on TOKENLEDGER_REDIS_URL (or `url`), checked with a PING."""
    client = LedgerClient(url, **options)
    client.redis.ping()
    return client
