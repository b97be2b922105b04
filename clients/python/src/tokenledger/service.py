"""The original TokenService, its ledger view and MonthlyRenewalService, over the queue.

Python names are the original's in snake_case: `chargeForOperation` is `charge_for_operation`,
`newBalance` is `new_balance`. Times are timezone-aware datetimes."""
from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Tuple, TypeVar, Union

from .client import LedgerClient, Reply, TokenLedgerError, describe_error

T = TypeVar("T")
Metadata = dict
DateLike = Union[datetime, str]


@dataclass
class ChangeResult:
    """A balance change. A refusal is a result (`success` False, `error`, `code`), not a raise."""
    success: bool
    id: str
    duplicate: bool = False
    new_balance: Optional[int] = None
    ledger_entry_id: Optional[int] = None
    tokens_amount: Optional[int] = None
    #: `Insufficient tokens: <the worker's sentence>` (see describe_error)
    error: Optional[str] = None
    code: Optional[str] = None
    #: the worker's sentence alone
    message: Optional[str] = None
    balance: Optional[int] = None
    available: Optional[int] = None
    required: Optional[int] = None
    deficit: Optional[int] = None
    tier: Optional[str] = None
    tokens_added: Optional[int] = None
    #: hold, capture, release: the hold's id; `amount` held, `released` freed, `expires_at`
    hold_id: Optional[str] = None
    amount: Optional[int] = None
    released: Optional[int] = None
    expires_at: Optional[datetime] = None
    #: capture_exceeds_hold: what the hold holds and what the capture asked for
    held: Optional[int] = None
    requested: Optional[int] = None
    #: hold_closed: `captured` or `released`
    state: Optional[str] = None
    #: the reply as the worker wrote it
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class AffordResult:
    can_afford: bool
    cost: int
    balance: int
    deficit: int


@dataclass
class Grant:
    grant_id: str
    remaining: int
    expires_at: datetime


@dataclass
class Balance:
    tokens_balance: int
    tokens_spent: int
    tier: str
    last_renewal_at: datetime
    next_renewal_date: datetime
    subscription_expires_at: Optional[datetime]
    #: the sum of the open holds
    held: int = 0
    #: tokens_balance - held: what a charge, debit or hold may take
    available: int = 0
    #: the expiring grants not used up (Grant), soonest first
    grants: list = field(default_factory=list)


@dataclass
class OpenHold:
    hold_id: str
    amount: int
    #: the hold's operation, or None
    operation_type: Optional[str]
    created_at: datetime
    expires_at: datetime


@dataclass
class Holds:
    #: the open, unexpired holds (OpenHold), soonest expiring first
    holds: list
    held: int
    available: int


@dataclass
class WithHoldResult:
    value: Any
    used: int
    #: the capture, or None when nothing was used (the hold was released)
    capture: Optional[ChangeResult]


@dataclass
class LedgerEntry:
    id: int
    job_id: Optional[str]
    operation_type: str
    tokens_amount: int
    balance_before: int
    balance_after: int
    created_at: datetime
    metadata: Optional[dict]


@dataclass
class EntryPage:
    entries: list
    #: how many entries match the filters, whatever limit and offset
    total: int
    limit: int
    offset: int


@dataclass
class Statistics:
    total_spent: int
    total_earned: int
    net_change: int
    operation_count: int
    by_operation: dict


@dataclass
class Eligibility:
    eligible: bool
    reason: str
    next_renewal_date: datetime
    days_until_renewal: int
    last_renewal_at: datetime
    tier: str


@dataclass
class Renewal:
    user_id: str
    tier: str
    tokens_added: int
    new_balance: int


@dataclass
class RenewalError:
    user_id: str
    code: str
    message: str


@dataclass
class RenewAllResult:
    dry_run: bool
    total_processed: int
    successful: int
    failed: int
    errors: list
    renewals: list


@dataclass
class OperationMetrics:
    operation: str
    user_id: str
    amount: Optional[int]
    success: bool
    error: Optional[str]
    duration_ms: float


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _time(value: Any) -> Any:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value


def _shape(cls: type, reply: dict, **given: Any) -> Any:
    """Builds dataclass `cls` from a reply's camelCase fields; `*_at`/`*_date` become datetimes."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            values[f.name] = given[f.name]
        elif _camel(f.name) in reply:
            value = reply[_camel(f.name)]
            values[f.name] = _time(value) if re.search(r"_(at|date)$", f.name) else value
    return cls(**values)


def _iso(value: Optional[DateLike]) -> Optional[str]:
    """A datetime as ISO 8601 with its zone; a naive one is taken as UTC."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return value


def _or_raise(reply: Reply, job: dict) -> Reply:
    if not reply["success"]:
        raise TokenLedgerError(reply["error"]["code"], reply["error"]["message"], reply, job)
    return reply


def _refusal_raised(result: ChangeResult) -> ChangeResult:
    """A change's success, or its refusal raised as a TokenLedgerError."""
    if not result.success:
        raise TokenLedgerError(result.code or "", result.message or "", result.raw)
    return result


def _hold_job(user_id: str, amount: Union[int, str], expires_in: Optional[int], metadata: Optional[Metadata]) -> dict:
    return {"type": "hold", "userId": user_id, ("operation" if isinstance(amount, str) else "amount"): amount,
            "expiresIn": expires_in, "metadata": metadata}


def _capture_job(user_id: str, hold_id: str, amount: Optional[int], operation_type: Optional[str],
                 metadata: Optional[Metadata]) -> dict:
    return {"type": "capture", "userId": user_id, "holdId": hold_id, "amount": amount,
            "operationType": operation_type, "metadata": metadata}


def _as_change(reply: Reply) -> ChangeResult:
    error = reply.get("error")
    if not error:
        return _shape(ChangeResult, reply, raw=reply)
    return _shape(ChangeResult, reply, raw=reply, code=error["code"], message=error["message"],
                  error=describe_error(error["code"], error["message"]), new_balance=reply.get("balance"))


Db = Union[LedgerClient, str, None]


class _Caller:
    """Shared by the services: sends jobs, measures calls, shapes replies."""

    def __init__(self, db: Db, metrics_callback: Optional[Callable[[OperationMetrics], None]] = None):
        self.client = db if isinstance(db, LedgerClient) else LedgerClient(db)
        self.metrics_callback = metrics_callback

    def measure(self, operation: str, user_id: Optional[str], amount: Optional[int], run: Callable[[], T]) -> T:
        """Runs one call and reports it to metrics_callback once: a raise or `success` False fails."""
        started, error = time.monotonic(), None
        try:
            answer = run()
            if getattr(answer, "success", True) is False:
                error = answer.error
            return answer
        except Exception as raised:
            error = str(raised)
            raise
        finally:
            if self.metrics_callback:
                self.metrics_callback(OperationMetrics(operation, user_id or "", amount, error is None, error,
                                                       (time.monotonic() - started) * 1000))

    def change(self, operation: str, job: dict, id: Optional[str] = None, amount: Optional[int] = None) -> ChangeResult:
        """A balance-changing job: a new UUIDv7 id unless given; a refusal is answered, not raised."""
        return self.measure(operation, job.get("userId"), amount, lambda: self.apply(job, id))

    def apply(self, job: dict, id: Optional[str] = None) -> ChangeResult:
        """`change` without the metrics, for calls made of several jobs."""
        job = {k: v for k, v in {**job, "id": id or self.client.new_id()}.items() if v is not None}
        return _as_change(self.client.send(job))

    def query(self, operation: str, job: dict, shape: Callable[[Reply], T]) -> T:
        """A query: its answer, or a TokenLedgerError."""
        job = {k: v for k, v in job.items() if v is not None}
        return self.measure(operation, job.get("userId"), None, lambda: shape(_or_raise(self.client.send(job), job)))


class TokenService:
    """`TokenService(db, cache_invalidation_callback=None, metrics_callback=None)`.

    `db`: a LedgerClient (shared with other services), a Redis URL, or None (TOKENLEDGER_REDIS_URL).
    With a cache_invalidation_callback, a thread follows P:balance (call `close()` to stop it)."""

    def __init__(self, db: Db = None, cache_invalidation_callback: Optional[Callable[[str], None]] = None,
                 metrics_callback: Optional[Callable[[OperationMetrics], None]] = None):
        self._caller = _Caller(db, metrics_callback)
        self._ledger = TokenLedgerView(self._caller)
        if cache_invalidation_callback:
            self.client.on_balance(lambda message: cache_invalidation_callback(message["userId"]))

    @property
    def client(self) -> LedgerClient:
        return self._caller.client

    def can_afford(self, user_id: str, operation: str) -> AffordResult:
        return self._caller.query("canAfford", {"type": "canAfford", "userId": user_id, "operation": operation},
                                  lambda r: _shape(AffordResult, r))

    def charge_for_operation(self, user_id: str, operation: str, metadata: Optional[Metadata] = None,
                             id: Optional[str] = None) -> ChangeResult:
        job = {"type": "charge", "userId": user_id, "operation": operation, "metadata": metadata}
        return self._caller.change("chargeForOperation", job, id)

    def debit(self, user_id: str, operation_type: str, amount: int, metadata: Optional[Metadata] = None,
              id: Optional[str] = None) -> ChangeResult:
        job = {"type": "debit", "userId": user_id, "operationType": operation_type, "amount": amount, "metadata": metadata}
        return self._caller.change("debit", job, id, amount)

    def credit(self, user_id: str, operation_type: str, amount: int, metadata: Optional[Metadata] = None,
               id: Optional[str] = None) -> ChangeResult:
        job = {"type": "credit", "userId": user_id, "operationType": operation_type, "amount": amount, "metadata": metadata}
        return self._caller.change("credit", job, id, amount)

    def refund(self, user_id: str, amount: Optional[int] = None, metadata: Optional[Metadata] = None,
               id: Optional[str] = None, refund_of: Optional[str] = None) -> ChangeResult:
        """Credits `amount` back; with `refund_of` (a charge's or debit's job id) `amount` may be left out."""
        job = {"type": "refund", "userId": user_id, "amount": amount, "metadata": metadata, "refundOf": refund_of}
        return self._caller.change("refund", job, id, amount)

    def purchase(self, user_id: str, tier: str, payment_id: str, months: Optional[int] = None,
                 metadata: Optional[Metadata] = None, id: Optional[str] = None) -> ChangeResult:
        """Sets the tier and credits its allocation; one payment_id applies once."""
        job = {"type": "purchase", "userId": user_id, "tier": tier, "paymentId": payment_id, "months": months,
               "metadata": metadata}
        return self._caller.change("purchase", job, id)

    def open_account(self, user_id: str, id: Optional[str] = None) -> ChangeResult:
        """Creates the account on tier Gift with its allocation; `account_exists` if it exists."""
        return self._caller.change("openAccount", {"type": "open", "userId": user_id}, id)

    def ensure_account(self, user_id: str) -> bool:
        """Opens the account unless it exists; True when this call created it."""
        result = self.open_account(user_id, id=f"open:{user_id}")
        if result.success:
            return not result.duplicate
        if result.code == "account_exists":
            return False
        raise TokenLedgerError(result.code or "", result.message or "", result.raw)

    def hold(self, user_id: str, amount: Union[int, str], expires_in: Optional[int] = None,
             metadata: Optional[Metadata] = None, id: Optional[str] = None) -> ChangeResult:
        """Reserves `amount` tokens, or an operation's cost when a str is given (the capture then
        defaults to it as operation type). Refused with `insufficient_tokens` when `available` is short;
        `expires_in`: seconds (1 to 7 days; the worker's default is 900)."""
        return self._caller.change("hold", _hold_job(user_id, amount, expires_in, metadata), id,
                                   None if isinstance(amount, str) else amount)

    def capture(self, user_id: str, hold_id: str, amount: Optional[int] = None, operation_type: Optional[str] = None,
                metadata: Optional[Metadata] = None, id: Optional[str] = None) -> ChangeResult:
        """Spends `amount` of a hold (default: all of it) and frees the rest (`released`)."""
        return self._caller.change("capture", _capture_job(user_id, hold_id, amount, operation_type, metadata), id, amount)

    def release(self, user_id: str, hold_id: str, id: Optional[str] = None) -> ChangeResult:
        """Frees a hold with nothing spent."""
        return self._caller.change("release", {"type": "release", "userId": user_id, "holdId": hold_id}, id)

    def holds(self, user_id: str) -> Holds:
        """The user's open holds, with `held` and `available`."""
        return self._caller.query("holds", {"type": "holds", "userId": user_id}, lambda r: _shape(
            Holds, r, holds=[_shape(OpenHold, h) for h in r["holds"]]))

    def with_hold(self, user_id: str, amount: Union[int, str], fn: Callable[[ChangeResult], Union[int, Tuple[int, Any]]],
                  operation_type: Optional[str] = None, expires_in: Optional[int] = None,
                  metadata: Optional[Metadata] = None, id: Optional[str] = None) -> WithHoldResult:
        """Holds `amount`, calls `fn(hold)`, and captures what it reports as used (an int, or a tuple
        `(used, value)`); nothing used releases the hold. When `fn` raises, the hold is released and
        the exception propagates. A refused hold or capture raises TokenLedgerError (a refused
        capture releases the hold first). One metrics report, operation `withHold`."""
        def run() -> WithHoldResult:
            hold = _refusal_raised(self._caller.apply(_hold_job(user_id, amount, expires_in, metadata), id))

            def release() -> None:
                try:
                    self._caller.apply({"type": "release", "userId": user_id, "holdId": hold.hold_id})
                except Exception:
                    pass  # the hold expires by itself; the caller's error matters more
            try:
                usage = fn(hold)
            except BaseException:
                release()
                raise
            used, value = usage if isinstance(usage, tuple) else (usage, None)
            if used == 0:
                release()
                return WithHoldResult(value, used, None)
            capture = self._caller.apply(_capture_job(user_id, hold.hold_id, used, operation_type, None))
            if not capture.success:
                release()
            return WithHoldResult(value, used, _refusal_raised(capture))
        return self._caller.measure("withHold", user_id, None if isinstance(amount, str) else amount, run)

    def get_balance(self, user_id: str) -> Optional[Balance]:
        """The account, or None when there is none."""
        job = {"type": "balance", "userId": user_id}

        def run() -> Optional[Balance]:
            reply = self.client.send(job)
            if reply.get("error", {}).get("code") == "user_not_found":
                return None
            return _shape(Balance, _or_raise(reply, job), grants=[_shape(Grant, g) for g in reply.get("grants", [])])
        return self._caller.measure("getBalance", user_id, None, run)

    def get_ledger(self) -> "TokenLedgerView":
        return self._ledger

    def close(self) -> None:
        """Stops the subscription and closes the connection (a shared client too)."""
        self.client.close()


class TokenLedgerView:
    """`service.get_ledger()`: history and statistics."""

    def __init__(self, caller: _Caller):
        self._caller = caller

    def get_user_entries(self, user_id: str, limit: Optional[int] = None, offset: Optional[int] = None,
                         operation_type: Optional[str] = None, start_date: Optional[DateLike] = None,
                         end_date: Optional[DateLike] = None) -> list:
        return self.get_user_entries_page(user_id, limit, offset, operation_type, start_date, end_date).entries

    def get_user_entries_page(self, user_id: str, limit: Optional[int] = None, offset: Optional[int] = None,
                              operation_type: Optional[str] = None, start_date: Optional[DateLike] = None,
                              end_date: Optional[DateLike] = None) -> EntryPage:
        """Like get_user_entries, with `total` for paging."""
        job = {"type": "history", "userId": user_id, "limit": limit, "offset": offset,
               "operationType": operation_type, "startDate": _iso(start_date), "endDate": _iso(end_date)}
        return self._caller.query("getUserEntries", job, lambda r: _shape(
            EntryPage, r, entries=[_shape(LedgerEntry, e) for e in r["entries"]]))

    def get_user_statistics(self, user_id: str, start_date: DateLike, end_date: DateLike) -> Statistics:
        job = {"type": "statistics", "userId": user_id, "startDate": _iso(start_date), "endDate": _iso(end_date)}
        return self._caller.query("getUserStatistics", job, lambda r: _shape(Statistics, r))


class MonthlyRenewalService:
    """`MonthlyRenewalService(db, cron_expression=None, metrics_callback=None)`;
    `cron_expression`: the worker's `renewal.cron` setting, when not the default."""

    def __init__(self, db: Db = None, cron_expression: Optional[str] = None,
                 metrics_callback: Optional[Callable[[OperationMetrics], None]] = None):
        self._caller = _Caller(db, metrics_callback)
        self._cron = cron_expression or "0 2 * * *"

    def check_eligibility(self, user_id: str) -> Eligibility:
        return self._caller.query("checkEligibility", {"type": "eligibility", "userId": user_id},
                                  lambda r: _shape(Eligibility, r))

    def renew_user(self, user_id: str, id: Optional[str] = None) -> ChangeResult:
        """Renews one account if due; `not_eligible` otherwise (a refusal result)."""
        return self._caller.change("renewUser", {"type": "renew", "userId": user_id}, id)

    def renew_all_eligible(self, dry_run: bool = False, tier: Optional[str] = None, limit: Optional[int] = None,
                           continue_on_error: Optional[bool] = None, id: Optional[str] = None) -> RenewAllResult:
        """Renews every eligible account (the worker's scheduler also does this on its cron). With
        N > 1 partitions, one job per partition, totals summed. A dry run sends no id."""
        client = self._caller.client
        base_id = None if dry_run else id or client.new_id()

        def one(k: int) -> Reply:
            job_id = f"{base_id}.p{k}" if base_id and client.partitions > 1 else base_id
            job = {k2: v for k2, v in {"type": "renewAll", "id": job_id, "dryRun": dry_run, "tier": tier,
                                       "limit": limit, "continueOnError": continue_on_error}.items() if v is not None}
            return _or_raise(client.send(job, partition=k), job)

        def run() -> RenewAllResult:
            runs = [one(k) for k in range(client.partitions)]
            return RenewAllResult(
                dry_run=dry_run, total_processed=sum(r["totalProcessed"] for r in runs),
                successful=sum(r["successful"] for r in runs), failed=sum(r["failed"] for r in runs),
                errors=[_shape(RenewalError, e) for r in runs for e in r["errors"]],
                renewals=[_shape(Renewal, e) for r in runs for e in r["renewals"]])
        return self._caller.measure("renewAllEligible", None, None, run)

    def get_cron_expression(self) -> str:
        return self._cron

    def close(self) -> None:
        self._caller.client.close()
