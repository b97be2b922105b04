"""The connection to a TokenLedger queue: sends jobs, waits for their replies, resends on timeout,
routes each user to its partition, and follows the balance invalidations."""
from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional

import redis

from ._fields import Fields, read_reply
from .errors import Job, Reply, ReplyShapeError, TokenLedgerError, describe_error
from .ids import partition_of, uuid7

if TYPE_CHECKING:
    from .service import UserTable

__all__ = ["BalanceMessage", "ConnectionSettings", "Job", "LedgerClient", "Reply", "ReplyShapeError",
           "TokenLedgerError", "connect", "connection_settings", "describe_error"]


@dataclass(frozen=True)
class ConnectionSettings:
    url: str
    username: Optional[str]
    password: Optional[str]
    prefix: str


def connection_settings(url: Optional[str] = None, prefix: Optional[str] = None,
                        env: Mapping[str, str] = os.environ) -> ConnectionSettings:
    """The URL, credentials and prefix; a password written into the URL is refused."""
    url = url or env.get("TOKENLEDGER_REDIS_URL") or "redis://127.0.0.1:6379/0"
    if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", url, re.I):
        raise ValueError("the Redis URL must not carry a password: set TOKENLEDGER_REDIS_PASSWORD")
    return ConnectionSettings(url=url, username=env.get("TOKENLEDGER_REDIS_USERNAME") or None,
                              password=env.get("TOKENLEDGER_REDIS_PASSWORD") or None,
                              prefix=prefix or env.get("TOKENLEDGER_PREFIX") or "tokens")


@dataclass(frozen=True)
class BalanceMessage:
    """One invalidation (contract "Invalidations"): the whole balance after a committed change."""
    user_id: str
    tokens_balance: int
    tokens_spent: int
    held: int
    available: int
    tier: str
    ledger_entry_id: Optional[int]
    operation_type: Optional[str]
    tokens_amount: Optional[int]
    at: str
    #: with N > 1 partitions: the partition of the change
    partition: Optional[int] = None


def text_of(value: object) -> str:
    """A value Redis answered, as text (the connection decodes responses; bytes are decoded too)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise ReplyShapeError("(redis)", "a string", repr(value))


def _balance_message(text: str) -> BalanceMessage:
    f = Fields(json.loads(text), "", text)
    return BalanceMessage(f.string("userId"), f.integer("tokensBalance"), f.integer("tokensSpent"), f.integer("held"),
                          f.integer("available"), f.string("tier"), f.integer_or_none("ledgerEntryId"),
                          f.string_or_none("operationType"), f.integer_or_none("tokensAmount"), f.string("at"),
                          f.integer_or_none("partition"))


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
        self.prefix, self.partitions = settings.prefix, partitions
        self.timeout, self.attempts, self.on_resend = timeout, attempts, on_resend
        # Not annotated: redis-py's own types and the types-redis stubs spell this type differently.
        self.redis = redis.Redis.from_url(
            settings.url, username=settings.username, password=settings.password, decode_responses=True,
            socket_timeout=timeout + 10, health_check_interval=30)
        self._listeners: List[Callable[[BalanceMessage], None]] = []
        self._subscriber: Optional[threading.Thread] = None
        self._stopped = threading.Event()

    @property
    def user(self) -> "UserTable":
        """`db.user.update(where={"id": ...}, data={"tier": ..., "subscription_expires_at": ...})`,
        as the guide's application wrote its user table: the tier and expiry go to the ledger (see
        UserTable)."""
        from .service import UserTable  # the service module builds on this one
        return UserTable(self)

    def key(self, name: str, partition: int = 0) -> str:
        """`P:<name>`, or `P:{k}:<name>` when N > 1."""
        return f"{self.prefix}:{{{partition}}}:{name}" if self.partitions > 1 else f"{self.prefix}:{name}"

    def jobs_key(self, user_id: str) -> str:
        return self.key("jobs", partition_of(user_id, self.partitions))

    @staticmethod
    def new_id() -> str:
        return uuid7()

    def send(self, job: Job, partition: Optional[int] = None) -> Reply:
        """`exchange`, answering the reply as the worker wrote it (its envelope checked)."""
        return dict(self.exchange(job, partition).value)

    def exchange(self, job: Job, partition: Optional[int] = None) -> Fields:
        """Sends a job and answers its reply, which comes on a key of its own. When none comes
        within `timeout`, the same job (same id) is pushed again, up to `attempts` times; a resent
        job applied meanwhile answers its first result with `duplicate: true`."""
        reply_to = f"{self.prefix}:reply:{uuid7()}"
        payload = json.dumps({**job, "replyTo": reply_to})
        if partition is not None:
            queue = self.key("jobs", partition)
        else:
            user_id = job.get("userId")
            queue = self.jobs_key(user_id) if isinstance(user_id, str) else self.key("jobs")
        for attempt in range(1, self.attempts + 1):
            if attempt > 1 and self.on_resend:
                self.on_resend(job, attempt)
            self.redis.lpush(queue, payload)
            got = self.redis.brpop([reply_to], timeout=self.timeout)
            if got is not None:
                self.redis.delete(reply_to)
                return read_reply(text_of(got[1]))
        raise TokenLedgerError(
            "timeout", f"No reply to job {job.get('id') or job['type']} after {self.attempts} attempts of "
                       f"{self.timeout} s; send it again with the same id.", job=job)

    def on_balance(self, listener: Callable[[BalanceMessage], None]) -> Callable[[], None]:
        """Calls `listener` (on a thread of its own) with every message on `P:balance`. The
        subscription is made again after a lost connection or a Redis restart (messages sent while
        it was away are lost: see the contract's Invalidations). Returns the unsubscribe."""
        self._listeners.append(listener)
        if self._subscriber is None:
            subscribed = threading.Event()
            self._subscriber = threading.Thread(target=self._listen, args=(subscribed,), daemon=True)
            self._subscriber.start()
            subscribed.wait(self.timeout)
        def unsubscribe() -> None:
            self._listeners.remove(listener)
        return unsubscribe

    def _listen(self, subscribed: threading.Event) -> None:
        while not self._stopped.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
            try:
                pubsub.subscribe(f"{self.prefix}:balance")
                subscribed.set()
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message["type"] == "message":
                        try:
                            data = _balance_message(text_of(message["data"]))
                        except (ValueError, ReplyShapeError):
                            continue  # not an invalidation this client can read: nothing to tell
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


def connect(url: Optional[str] = None, prefix: Optional[str] = None, partitions: int = 1, timeout: float = 10.0,
            attempts: int = 3, on_resend: Optional[Callable[[Job, int], None]] = None) -> LedgerClient:
    """`db = connect()`: a client on TOKENLEDGER_REDIS_URL (or `url`), checked with a PING."""
    client = LedgerClient(url, prefix, partitions, timeout, attempts, on_resend)
    client.redis.ping()
    return client
