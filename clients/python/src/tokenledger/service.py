"""The original TokenService, its ledger view and MonthlyRenewalService, over the queue.

Python names are the original's in snake_case: `chargeForOperation` is `charge_for_operation`,
`newBalance` is `new_balance`. Times are timezone-aware datetimes. A changing call's own job id
is `job_id=` (default: a new UUIDv7)."""
from __future__ import annotations

import enum
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Literal, Optional, Tuple, TypedDict, TypeVar, Union

from ._fields import Fields
from .client import LedgerClient
from .codes import OperationType
from .errors import Job, TokenLedgerError
from .results import (AffordResult, Balance, BalanceAt, CaptureResult, CaptureSuccess, ChangeResult, CreditResult,
                      Eligibility, EntryPage, HoldResult, HoldSuccess, Holds, LedgerEntry, MonitorResult, OpenResult,
                      OperationMetrics, PurchaseResult, Refusal, ReleaseResult, RenewAllResult, RenewResult,
                      SetTierResult, SetTierSuccess, Statistics, UnmonitorResult, WithHoldResult, read_afford,
                      read_balance, read_balance_at, read_capture, read_change, read_credit, read_eligibility,
                      read_hold, read_holds, read_monitor, read_open, read_page, read_purchase, read_refusal,
                      read_release, read_renew, read_renew_all, read_set_tier, read_statistics, read_unmonitor)

T = TypeVar("T")
S = TypeVar("S")
#: metadata kept on an entry: any JSON object
Metadata = Dict[str, Any]
DateLike = Union[datetime, str]
#: a tier: a SubscriptionTier, or the name of another tier the worker is configured with
Tier = str
#: what with_hold's function reports: the tokens used, or them and a value to hand back
Usage = Union[int, Tuple[int, T]]
Db = Union[LedgerClient, str, None]
MetricsCallback = Callable[[OperationMetrics], None]


class Keep(enum.Enum):
    """`set_tier(..., subscription_expires_at=KEEP)`: the expiry stays (None clears it)."""
    KEEP = "keep"


KEEP = Keep.KEEP
#: a subscription expiry to set: a time (in the future), None to clear it, or KEEP
Expiry = Union[DateLike, None, Literal[Keep.KEEP]]


def _iso(value: Optional[DateLike]) -> Optional[str]:
    """A datetime as ISO 8601 with its zone; a naive one is taken as UTC."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return value


def _refusal_error(refusal: Refusal, job: Optional[Job] = None) -> TokenLedgerError:
    return TokenLedgerError(refusal.code, refusal.message, job=job, refusal=refusal)


def unwrap(result: Union[S, Refusal]) -> S:
    """A change's success, or its refusal raised as the TokenLedgerError a query raises."""
    if isinstance(result, Refusal):
        raise _refusal_error(result)
    return result


def _or_raise(f: Fields, job: Job) -> Fields:
    if not f.boolean("success"):
        raise _refusal_error(read_refusal(f), job)
    return f


def _given(amount: Optional[int]) -> Callable[[object], Optional[int]]:
    return lambda answer: amount


def _no_amount(answer: object) -> Optional[int]:
    return None


class _Caller:
    """Shared by the services: sends jobs, measures calls, reads replies."""

    def __init__(self, db: Db, metrics_callback: Optional[MetricsCallback] = None):
        self.client = db if isinstance(db, LedgerClient) else LedgerClient(db)
        self.metrics_callback = metrics_callback

    def measure(self, operation: str, user_id: Optional[str], amount_of: Callable[[Optional[T]], Optional[int]],
                run: Callable[[], T]) -> T:
        """Runs one call and reports it to metrics_callback once: a raise or a Refusal fails.
        `amount_of` gives the call's amount from its answer (None after a raise)."""
        started, error, answer = time.monotonic(), None, None
        try:
            answer = run()
            if isinstance(answer, Refusal):
                error = answer.error
            return answer
        except Exception as raised:
            error = str(raised)
            raise
        finally:
            if self.metrics_callback:
                self.metrics_callback(OperationMetrics(operation, user_id or "", amount_of(answer), error is None, error,
                                                       (time.monotonic() - started) * 1000))

    def change(self, operation: str, job: Job, job_id: Optional[str], read: Callable[[Fields], S],
               amount_of: Callable[[Optional[Union[S, Refusal]]], Optional[int]] = _no_amount,
               nulls: Tuple[str, ...] = ()) -> Union[S, Refusal]:
        """A balance-changing job: a new UUIDv7 id unless given; a refusal is answered, not raised.
        None leaves a field out of the job, except the `nulls`, where null means something."""
        user_id = job.get("userId")
        return self.measure(operation, user_id if isinstance(user_id, str) else None, amount_of,
                            lambda: self.apply(job, job_id, read, nulls))

    def apply(self, job: Job, job_id: Optional[str], read: Callable[[Fields], S],
              nulls: Tuple[str, ...] = ()) -> Union[S, Refusal]:
        """`change` without the metrics, for calls made of several jobs."""
        job = {k: v for k, v in {**job, "id": job_id or self.client.new_id()}.items() if v is not None or k in nulls}
        f = self.client.exchange(job)
        return read(f) if f.boolean("success") else read_refusal(f)

    def query(self, operation: str, job: Job, read: Callable[[Fields], T]) -> T:
        """A query: its answer, or the refusal raised as a TokenLedgerError."""
        job = {k: v for k, v in job.items() if v is not None}
        user_id = job.get("userId")
        return self.measure(operation, user_id if isinstance(user_id, str) else None, _no_amount,
                            lambda: read(_or_raise(self.client.exchange(job), job)))


def _hold_job(user_id: str, what: Dict[str, Union[int, str]], expires_in: Optional[int],
              metadata: Optional[Metadata]) -> Job:
    return {"type": "hold", "userId": user_id, **what, "expiresIn": expires_in, "metadata": metadata}


def _capture_job(user_id: str, hold_id: str, amount: Optional[int], operation_type: Optional[str],
                 metadata: Optional[Metadata]) -> Job:
    return {"type": "capture", "userId": user_id, "holdId": hold_id, "amount": amount,
            "operationType": operation_type, "metadata": metadata}


def _set_tier_job(user_id: str, tier: Tier, expiry: Expiry) -> Job:
    """KEEP leaves the expiry out of the job (it stays); None is sent as null and clears it."""
    job: Job = {"type": "setTier", "userId": user_id, "tier": str(tier)}
    if expiry is not KEEP:
        job["subscriptionExpiresAt"] = _iso(expiry)
    return job


class UserWhere(TypedDict):
    id: str


class UserData(TypedDict, total=False):
    """The two columns of a user the ledger keeps."""
    tier: Tier
    subscription_expires_at: Optional[DateLike]


class UserTable:
    """`db.user`: the tier and subscription expiry an application wrote into its own user table,
    for the original service to read, now written to the ledger with a `setTier` job. Each update
    is a job of its own id (resent with that id when its reply is late): setting a tier is an
    assignment, so applying it again changes nothing, while an id derived from the values would
    make a later return to an earlier tier a replay of the first, applied never."""

    def __init__(self, client: LedgerClient):
        self._client = client

    def update(self, where: UserWhere, data: UserData) -> SetTierSuccess:
        """Sets what `data` names and answers the account's tier and expiry after it. Without
        `tier`, the account's current tier is read first (a tier changed meanwhile is set back). A
        refusal (`user_not_found`, `unknown_tier`, `invalid_expiry`) raises TokenLedgerError, as a
        failed update does; a column the ledger does not keep raises TypeError."""
        unknown = sorted(set(data) - {"tier", "subscription_expires_at"})
        if unknown:
            raise TypeError(f"the ledger keeps a user's tier and subscription_expires_at only, not {', '.join(unknown)}")
        user_id = where["id"]
        tier = data.get("tier")
        if tier is None:
            job: Job = {"type": "balance", "userId": user_id}
            tier = _or_raise(self._client.exchange(job), job).string("tier")
        expiry: Expiry = data["subscription_expires_at"] if "subscription_expires_at" in data else KEEP
        job = {**_set_tier_job(user_id, tier, expiry), "id": self._client.new_id()}
        return read_set_tier(_or_raise(self._client.exchange(job), job))


def _charge_amount(result: Optional[ChangeResult]) -> Optional[int]:
    """A charge's amount is its cost: what it took, or what it required when refused."""
    if result is None:
        return None
    return result.required if isinstance(result, Refusal) else -result.tokens_amount


class TokenService:
    """`TokenService(db, cache_invalidation_callback=None, metrics_callback=None)`.

    `db`: a LedgerClient (shared with other services), a Redis URL, or None (TOKENLEDGER_REDIS_URL).
    With a cache_invalidation_callback, a thread follows P:balance (call `close()` to stop it)."""

    def __init__(self, db: Db = None, cache_invalidation_callback: Optional[Callable[[str], None]] = None,
                 metrics_callback: Optional[MetricsCallback] = None):
        self._caller = _Caller(db, metrics_callback)
        self._ledger = TokenLedgerView(self._caller)
        if cache_invalidation_callback:
            invalidate = cache_invalidation_callback
            self.client.on_balance(lambda message: invalidate(message.user_id))

    @property
    def client(self) -> LedgerClient:
        return self._caller.client

    def can_afford(self, user_id: str, operation: OperationType) -> AffordResult:
        return self._caller.query("canAfford", {"type": "canAfford", "userId": user_id, "operation": operation},
                                  read_afford)

    def charge_for_operation(self, user_id: str, operation: OperationType, metadata: Optional[Metadata] = None,
                             job_id: Optional[str] = None) -> ChangeResult:
        """Debits the operation's configured cost; metrics report that cost as the amount."""
        job: Job = {"type": "charge", "userId": user_id, "operation": operation, "metadata": metadata}
        return self._caller.change("chargeForOperation", job, job_id, read_change, _charge_amount)

    def debit(self, user_id: str, operation_type: OperationType, amount: int, metadata: Optional[Metadata] = None,
              job_id: Optional[str] = None) -> ChangeResult:
        job: Job = {"type": "debit", "userId": user_id, "operationType": operation_type, "amount": amount,
                    "metadata": metadata}
        return self._caller.change("debit", job, job_id, read_change, _given(amount))

    def credit(self, user_id: str, operation_type: OperationType, amount: int, metadata: Optional[Metadata] = None,
               job_id: Optional[str] = None, expires_at: Optional[DateLike] = None,
               expires_in: Optional[int] = None) -> CreditResult:
        """Credits `amount`; with `expires_at` or `expires_in` (seconds) the tokens form a grant that
        lapses then."""
        job: Job = {"type": "credit", "userId": user_id, "operationType": operation_type, "amount": amount,
                    "metadata": metadata, "expiresAt": _iso(expires_at), "expiresIn": expires_in}
        return self._caller.change("credit", job, job_id, read_credit, _given(amount))

    def refund(self, user_id: str, amount: Optional[int] = None, metadata: Optional[Metadata] = None,
               job_id: Optional[str] = None, refund_of: Optional[str] = None) -> ChangeResult:
        """Credits `amount` back; with `refund_of` (a charge's or debit's job id) `amount` may be left out."""
        job: Job = {"type": "refund", "userId": user_id, "amount": amount, "metadata": metadata, "refundOf": refund_of}

        def amount_of(result: Optional[ChangeResult]) -> Optional[int]:
            if amount is not None or result is None or isinstance(result, Refusal):
                return amount
            return result.tokens_amount
        return self._caller.change("refund", job, job_id, read_change, amount_of)

    def purchase(self, user_id: str, tier: Tier, payment_id: str, months: Optional[int] = None,
                 metadata: Optional[Metadata] = None, job_id: Optional[str] = None) -> PurchaseResult:
        """Sets the tier and credits its allocation; one payment_id applies once."""
        job: Job = {"type": "purchase", "userId": user_id, "tier": str(tier), "paymentId": payment_id,
                    "months": months, "metadata": metadata}
        return self._caller.change("purchase", job, job_id, read_purchase)

    def open_account(self, user_id: str, job_id: Optional[str] = None) -> OpenResult:
        """Creates the account on tier Gift with its allocation; `account_exists` if it exists."""
        return self._caller.change("openAccount", {"type": "open", "userId": user_id}, job_id, read_open)

    def ensure_account(self, user_id: str) -> bool:
        """Opens the account unless it exists; True when this call created it."""
        result = self.open_account(user_id, job_id=f"open:{user_id}")
        if not result.success:
            if result.code == "account_exists":
                return False
            raise _refusal_error(result)
        return not result.duplicate

    def hold(self, user_id: str, amount: int, expires_in: Optional[int] = None, metadata: Optional[Metadata] = None,
             job_id: Optional[str] = None) -> HoldResult:
        """Reserves `amount` tokens. Refused with `insufficient_tokens` when `available` is short;
        `expires_in`: seconds (1 to 7 days; the worker's default is 900)."""
        return self._caller.change("hold", _hold_job(user_id, {"amount": amount}, expires_in, metadata), job_id,
                                   read_hold, _given(amount))

    def hold_for_operation(self, user_id: str, operation: OperationType, expires_in: Optional[int] = None,
                           metadata: Optional[Metadata] = None, job_id: Optional[str] = None) -> HoldResult:
        """Reserves an operation's configured cost; a capture of it then defaults to it as operation type."""
        def amount_of(result: Optional[HoldResult]) -> Optional[int]:
            return result.amount if isinstance(result, HoldSuccess) else None
        return self._caller.change("hold", _hold_job(user_id, {"operation": operation}, expires_in, metadata), job_id,
                                   read_hold, amount_of)

    def capture(self, user_id: str, hold_id: str, amount: Optional[int] = None,
                operation_type: Optional[OperationType] = None, metadata: Optional[Metadata] = None,
                job_id: Optional[str] = None) -> CaptureResult:
        """Spends `amount` of a hold (default: all of it) and frees the rest (`released`)."""
        def amount_of(result: Optional[CaptureResult]) -> Optional[int]:
            if amount is not None or not isinstance(result, CaptureSuccess):
                return amount
            return -result.tokens_amount
        return self._caller.change("capture", _capture_job(user_id, hold_id, amount, operation_type, metadata),
                                   job_id, read_capture, amount_of)

    def release(self, user_id: str, hold_id: str, job_id: Optional[str] = None) -> ReleaseResult:
        """Frees a hold with nothing spent."""
        return self._caller.change("release", {"type": "release", "userId": user_id, "holdId": hold_id}, job_id,
                                   read_release)

    def holds(self, user_id: str) -> Holds:
        """The user's open holds, with `held` and `available`."""
        return self._caller.query("holds", {"type": "holds", "userId": user_id}, read_holds)

    def with_hold(self, user_id: str, amount: int, fn: Callable[[HoldSuccess], Usage[T]],
                  operation_type: Optional[OperationType] = None, expires_in: Optional[int] = None,
                  metadata: Optional[Metadata] = None, job_id: Optional[str] = None) -> WithHoldResult[T]:
        """Holds `amount`, calls `fn(hold)`, and captures what it reports as used (an int, or a tuple
        `(used, value)`); nothing used releases the hold. When `fn` raises, the hold is released and
        the exception propagates. A refused hold or capture raises TokenLedgerError (a refused
        capture releases the hold first). One metrics report, operation `withHold`."""
        return self._hold_and_run(user_id, {"amount": amount}, amount, fn, operation_type, expires_in, metadata, job_id)

    def with_hold_for_operation(self, user_id: str, operation: OperationType, fn: Callable[[HoldSuccess], Usage[T]],
                                operation_type: Optional[OperationType] = None, expires_in: Optional[int] = None,
                                metadata: Optional[Metadata] = None,
                                job_id: Optional[str] = None) -> WithHoldResult[T]:
        """`with_hold` of an operation's configured cost (see hold_for_operation)."""
        return self._hold_and_run(user_id, {"operation": operation}, None, fn, operation_type, expires_in, metadata,
                                  job_id)

    def _hold_and_run(self, user_id: str, what: Dict[str, Union[int, str]], amount: Optional[int],
                      fn: Callable[[HoldSuccess], Usage[T]], operation_type: Optional[str], expires_in: Optional[int],
                      metadata: Optional[Metadata], job_id: Optional[str]) -> WithHoldResult[T]:
        def run() -> WithHoldResult[T]:
            job = _hold_job(user_id, what, expires_in, metadata)
            held = self._caller.apply(job, job_id, read_hold)
            if isinstance(held, Refusal):
                raise _refusal_error(held, job)
            hold = held

            def release() -> None:
                try:
                    self._caller.apply({"type": "release", "userId": user_id, "holdId": hold.hold_id}, None,
                                       read_release)
                except Exception:
                    pass  # the hold expires by itself; the caller's error matters more
            try:
                usage = fn(hold)
            except BaseException:
                release()
                raise
            value: Optional[T] = None
            if isinstance(usage, tuple):
                used, value = usage
            else:
                used = usage
            if used == 0:
                release()
                return WithHoldResult(value, used, None)
            capture_job = _capture_job(user_id, hold.hold_id, used, operation_type, None)
            capture = self._caller.apply(capture_job, None, read_capture)
            if isinstance(capture, Refusal):
                release()
                raise _refusal_error(capture, capture_job)
            return WithHoldResult(value, used, capture)
        return self._caller.measure("withHold", user_id, _given(amount), run)

    def monitor(self, user_id: str, threshold: int, monitor_id: Optional[str] = None,
                job_id: Optional[str] = None) -> MonitorResult:
        """Watches the balance: the worker emits `balance.low` (on P:alerts and the events stream)
        when `available` falls below `threshold`. `monitor_id` defaults to the job id; the same id
        replaces."""
        job: Job = {"type": "monitor", "userId": user_id, "threshold": threshold, "monitorId": monitor_id}
        return self._caller.change("monitor", job, job_id, read_monitor)

    def unmonitor(self, user_id: str, monitor_id: str, job_id: Optional[str] = None) -> UnmonitorResult:
        """Stops a monitor; `monitor_not_found` when the user has none of that id."""
        job: Job = {"type": "unmonitor", "userId": user_id, "monitorId": monitor_id}
        return self._caller.change("unmonitor", job, job_id, read_unmonitor)

    def set_tier(self, user_id: str, tier: Tier, subscription_expires_at: Expiry = KEEP,
                 job_id: Optional[str] = None) -> SetTierResult:
        """Sets the tier, and the expiry unless KEEP (None clears it), without crediting anything or
        moving the renewal clock (a paid upgrade is a `purchase`). Refused: `user_not_found`,
        `unknown_tier`, `invalid_expiry` (a time not in the future)."""
        return self._caller.change("setTier", _set_tier_job(user_id, tier, subscription_expires_at), job_id,
                                   read_set_tier, nulls=("subscriptionExpiresAt",))

    def balance_at(self, user_id: str, at: DateLike) -> BalanceAt:
        """The balance as it stood at `at`, for reconciliation; `user_not_found` raises."""
        return self._caller.query("balanceAt", {"type": "balanceAt", "userId": user_id, "at": _iso(at)},
                                  read_balance_at)

    def get_balance(self, user_id: str) -> Optional[Balance]:
        """The account, or None when there is none."""
        job: Job = {"type": "balance", "userId": user_id}

        def run() -> Optional[Balance]:
            f = self.client.exchange(job)
            if not f.boolean("success") and f.member("error").string("code") == "user_not_found":
                return None
            return read_balance(_or_raise(f, job))
        return self._caller.measure("getBalance", user_id, _no_amount, run)

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
                         operation_type: Optional[OperationType] = None, start_date: Optional[DateLike] = None,
                         end_date: Optional[DateLike] = None) -> List[LedgerEntry]:
        return self.get_user_entries_page(user_id, limit, offset, operation_type, start_date, end_date).entries

    def get_user_entries_page(self, user_id: str, limit: Optional[int] = None, offset: Optional[int] = None,
                              operation_type: Optional[OperationType] = None, start_date: Optional[DateLike] = None,
                              end_date: Optional[DateLike] = None) -> EntryPage:
        """Like get_user_entries, with `total` for paging."""
        job: Job = {"type": "history", "userId": user_id, "limit": limit, "offset": offset,
                    "operationType": operation_type, "startDate": _iso(start_date), "endDate": _iso(end_date)}
        return self._caller.query("getUserEntries", job, read_page)

    def get_user_statistics(self, user_id: str, start_date: DateLike, end_date: DateLike) -> Statistics:
        job: Job = {"type": "statistics", "userId": user_id, "startDate": _iso(start_date), "endDate": _iso(end_date)}
        return self._caller.query("getUserStatistics", job, read_statistics)


class MonthlyRenewalService:
    """`MonthlyRenewalService(db, cron_expression=None, metrics_callback=None)`;
    `cron_expression`: the worker's `renewal.cron` setting, when not the default."""

    def __init__(self, db: Db = None, cron_expression: Optional[str] = None,
                 metrics_callback: Optional[MetricsCallback] = None):
        self._caller = _Caller(db, metrics_callback)
        self._cron = cron_expression or "0 2 * * *"

    def check_eligibility(self, user_id: str) -> Eligibility:
        return self._caller.query("checkEligibility", {"type": "eligibility", "userId": user_id}, read_eligibility)

    def renew_user(self, user_id: str, job_id: Optional[str] = None) -> RenewResult:
        """Renews one account if due; `not_eligible` otherwise (a refusal result)."""
        return self._caller.change("renewUser", {"type": "renew", "userId": user_id}, job_id, read_renew)

    def renew_all_eligible(self, dry_run: bool = False, tier: Optional[Tier] = None, limit: Optional[int] = None,
                           continue_on_error: Optional[bool] = None, job_id: Optional[str] = None) -> RenewAllResult:
        """Renews every eligible account (the worker's scheduler also does this on its cron). With
        N > 1 partitions, one job per partition, totals summed. A dry run sends no id."""
        client = self._caller.client
        base_id = None if dry_run else job_id or client.new_id()

        def one(k: int) -> RenewAllResult:
            one_id = f"{base_id}.p{k}" if base_id and client.partitions > 1 else base_id
            job: Job = {key: v for key, v in {
                "type": "renewAll", "id": one_id, "dryRun": dry_run, "tier": None if tier is None else str(tier),
                "limit": limit, "continueOnError": continue_on_error}.items() if v is not None}
            return read_renew_all(_or_raise(client.exchange(job, partition=k), job))

        def run() -> RenewAllResult:
            runs = [one(k) for k in range(client.partitions)]
            return RenewAllResult(
                dry_run=dry_run, total_processed=sum(r.total_processed for r in runs),
                successful=sum(r.successful for r in runs), failed=sum(r.failed for r in runs),
                errors=[e for r in runs for e in r.errors], renewals=[e for r in runs for e in r.renewals])
        return self._caller.measure("renewAllEligible", None, _no_amount, run)

    def get_cron_expression(self) -> str:
        return self._cron

    def close(self) -> None:
        self._caller.client.close()
