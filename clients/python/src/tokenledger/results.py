"""What the calls answer: one result type per kind of change, each a success or a Refusal, and
the queries' answers. `success` is a Literal, so `if not result.success:` narrows the type."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Generic, List, Literal, Optional, TypedDict, TypeVar, Union

from ._fields import Fields, JsonObject
from .errors import describe_error

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """A refused change, and the `refusal` of the TokenLedgerError a query raises: one shape for
    both. The optional fields are those the code carries (docs/PROTOCOL.md, Error codes)."""
    #: the job id ("" for a query without one)
    id: str
    #: `Insufficient tokens: <the worker's sentence>` (see describe_error)
    error: str
    code: str
    #: the worker's sentence alone
    message: str
    duplicate: bool = False
    #: insufficient_tokens: the balance (also as new_balance), what is available, required, missing
    new_balance: Optional[int] = None
    balance: Optional[int] = None
    available: Optional[int] = None
    required: Optional[int] = None
    deficit: Optional[int] = None
    #: capture_exceeds_hold: what the hold holds and what the capture asked for
    held: Optional[int] = None
    requested: Optional[int] = None
    #: refund_exceeds_charge: what remains refundable
    refundable: Optional[int] = None
    #: hold_closed: `captured` or `released`
    state: Optional[str] = None
    #: not_eligible: when the account is due
    next_renewal_date: Optional[datetime] = None
    days_until_renewal: Optional[int] = None
    ledger_entry_id: None = None
    tokens_amount: None = None
    success: Literal[False] = False


@dataclass(frozen=True, kw_only=True)
class ChangeSuccess:
    """A charge, debit, refund: the entry written and the balance after it."""
    #: the job id
    id: str
    new_balance: int
    #: the entry written; None for a change that writes none (a renewal top-up that added nothing)
    ledger_entry_id: Optional[int]
    tokens_amount: int
    #: True when this delivery found the job already applied (a resend or a retry)
    duplicate: bool = False
    error: None = None
    code: None = None
    success: Literal[True] = True


@dataclass(frozen=True, kw_only=True)
class CreditSuccess(ChangeSuccess):
    """With an expiry, the credit's tokens form a grant named by the job id."""
    grant_id: Optional[str] = None
    expires_at: Optional[datetime] = None


@dataclass(frozen=True, kw_only=True)
class OpenSuccess(ChangeSuccess):
    tier: str
    last_renewal_at: datetime
    next_renewal_date: datetime


@dataclass(frozen=True, kw_only=True)
class PurchaseSuccess(ChangeSuccess):
    tier: str
    tokens_added: int
    subscription_expires_at: Optional[datetime]
    last_renewal_at: datetime
    next_renewal_date: datetime


@dataclass(frozen=True, kw_only=True)
class RenewSuccess(ChangeSuccess):
    tier: str
    tokens_added: int
    #: whether an expired subscription was moved to Gift first
    downgraded: bool
    last_renewal_at: datetime
    next_renewal_date: datetime
    #: policy `rollover` only: tokens carried into the new period, and those above the cap that lapsed
    tokens_carried: Optional[int] = None
    tokens_lapsed: Optional[int] = None


@dataclass(frozen=True, kw_only=True)
class HoldSuccess:
    """Tokens reserved (`available` drops); no entry is written."""
    id: str
    #: the hold's id: its job id
    hold_id: str
    amount: int
    #: `available` after the hold
    available: int
    expires_at: datetime
    duplicate: bool = False
    error: None = None
    code: None = None
    success: Literal[True] = True


@dataclass(frozen=True, kw_only=True)
class CaptureSuccess(ChangeSuccess):
    """One debit entry for what was used; the rest (`released`) is freed."""
    hold_id: str
    released: int
    available: int


@dataclass(frozen=True, kw_only=True)
class ReleaseSuccess:
    """The hold closed with nothing spent; no entry."""
    id: str
    hold_id: str
    released: int
    available: int
    duplicate: bool = False
    error: None = None
    code: None = None
    success: Literal[True] = True


@dataclass(frozen=True, kw_only=True)
class MonitorSuccess:
    """A monitor made or replaced: `balance.low` fires when `available` falls below `threshold`."""
    id: str
    monitor_id: str
    threshold: int
    #: available >= threshold now: only an armed monitor fires
    armed: bool
    #: whether a monitor of this id existed, whose threshold this one replaced
    replaced: bool
    duplicate: bool = False
    error: None = None
    code: None = None
    success: Literal[True] = True


@dataclass(frozen=True, kw_only=True)
class UnmonitorSuccess:
    id: str
    monitor_id: str
    duplicate: bool = False
    error: None = None
    code: None = None
    success: Literal[True] = True


@dataclass(frozen=True, kw_only=True)
class SetTierSuccess:
    """A tier (and expiry) set without a credit: no entry, the renewal clock unmoved, so the next
    renewal, on the date the account already had, grants the new tier's allocation."""
    id: str
    user_id: str
    tier: str
    previous_tier: str
    #: after the change: None when the account has no paid subscription
    subscription_expires_at: Optional[datetime]
    last_renewal_at: datetime
    next_renewal_date: datetime
    duplicate: bool = False
    error: None = None
    code: None = None
    success: Literal[True] = True


ChangeResult = Union[ChangeSuccess, Refusal]
CreditResult = Union[CreditSuccess, Refusal]
OpenResult = Union[OpenSuccess, Refusal]
PurchaseResult = Union[PurchaseSuccess, Refusal]
RenewResult = Union[RenewSuccess, Refusal]
HoldResult = Union[HoldSuccess, Refusal]
CaptureResult = Union[CaptureSuccess, Refusal]
ReleaseResult = Union[ReleaseSuccess, Refusal]
MonitorResult = Union[MonitorSuccess, Refusal]
UnmonitorResult = Union[UnmonitorSuccess, Refusal]
SetTierResult = Union[SetTierSuccess, Refusal]


@dataclass(frozen=True, kw_only=True)
class BalanceAtEntry:
    """The balance as it stood at `at`, after the last entry at or before it (a time after the
    last entry answers the current totals)."""
    user_id: str
    at: datetime
    tokens_balance: int
    #: spending up to `at`; lapsed grants never count in it
    tokens_spent: int
    ledger_entry_id: int
    created_at: datetime
    exists: Literal[True] = True


@dataclass(frozen=True, kw_only=True)
class BalanceBeforeFirstEntry:
    """`at` is before the account's first entry: there was no balance yet."""
    user_id: str
    at: datetime
    tokens_balance: Literal[0] = 0
    tokens_spent: Literal[0] = 0
    ledger_entry_id: None = None
    created_at: None = None
    exists: Literal[False] = False


#: `if result.exists:` narrows it to BalanceAtEntry
BalanceAt = Union[BalanceAtEntry, BalanceBeforeFirstEntry]


@dataclass(frozen=True)
class AffordResult:
    can_afford: bool
    cost: int
    balance: int
    deficit: int


@dataclass(frozen=True)
class Grant:
    grant_id: str
    remaining: int
    expires_at: datetime


@dataclass(frozen=True)
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
    #: the expiring grants not used up, soonest first
    grants: List[Grant] = field(default_factory=list)


@dataclass(frozen=True)
class OpenHold:
    hold_id: str
    amount: int
    #: the hold's operation, or None
    operation_type: Optional[str]
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Holds:
    #: the open, unexpired holds, soonest expiring first
    holds: List[OpenHold]
    held: int
    available: int


@dataclass(frozen=True)
class WithHoldResult(Generic[T]):
    value: Optional[T]
    used: int
    #: the capture, or None when nothing was used (the hold was released)
    capture: Optional[CaptureSuccess]


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    job_id: Optional[str]
    operation_type: str
    tokens_amount: int
    balance_before: int
    balance_after: int
    created_at: datetime
    metadata: Optional[JsonObject]


@dataclass(frozen=True)
class EntryPage:
    entries: List[LedgerEntry]
    #: how many entries match the filters, whatever limit and offset
    total: int
    limit: int
    offset: int


class OperationTotals(TypedDict):
    """One operation type's share of the statistics (a dict, as the original's `byOperation`)."""
    count: int
    #: the signed sum
    tokens: int


@dataclass(frozen=True)
class Statistics:
    total_spent: int
    total_earned: int
    net_change: int
    operation_count: int
    by_operation: Dict[str, OperationTotals]


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    #: `renewal_due` or `not_yet_due`
    reason: str
    next_renewal_date: datetime
    days_until_renewal: int
    last_renewal_at: datetime
    tier: str


@dataclass(frozen=True)
class Renewal:
    user_id: str
    tier: str
    tokens_added: int
    new_balance: int
    #: policy `rollover` only (see RenewSuccess)
    tokens_carried: Optional[int] = None
    tokens_lapsed: Optional[int] = None


@dataclass(frozen=True)
class RenewalError:
    user_id: str
    code: str
    message: str


@dataclass(frozen=True)
class RenewAllResult:
    dry_run: bool
    total_processed: int
    successful: int
    failed: int
    errors: List[RenewalError]
    renewals: List[Renewal]


@dataclass(frozen=True)
class OperationMetrics:
    operation: str
    user_id: str
    #: the tokens the call was about: a debit's amount, a charge's cost, a hold's amount
    amount: Optional[int]
    success: bool
    error: Optional[str]
    duration_ms: float


# Readers: a reply's checked fields into a result.

def read_change(f: Fields) -> ChangeSuccess:
    return ChangeSuccess(**_change(f))


def _change(f: Fields) -> Dict[str, Any]:
    return {"id": f.string("id"), "new_balance": f.integer("newBalance"),
            "ledger_entry_id": f.integer_or_none("ledgerEntryId"), "tokens_amount": f.integer("tokensAmount"),
            "duplicate": f.boolean_or("duplicate", False)}


def read_credit(f: Fields) -> CreditSuccess:
    return CreditSuccess(**_change(f), grant_id=f.string_or_none("grantId"), expires_at=f.time_or_none("expiresAt"))


def read_open(f: Fields) -> OpenSuccess:
    return OpenSuccess(**_change(f), tier=f.string("tier"), last_renewal_at=f.time("lastRenewalAt"),
                       next_renewal_date=f.time("nextRenewalDate"))


def read_purchase(f: Fields) -> PurchaseSuccess:
    return PurchaseSuccess(**_change(f), tier=f.string("tier"), tokens_added=f.integer("tokensAdded"),
                           subscription_expires_at=f.time_or_none("subscriptionExpiresAt"),
                           last_renewal_at=f.time("lastRenewalAt"), next_renewal_date=f.time("nextRenewalDate"))


def read_renew(f: Fields) -> RenewSuccess:
    return RenewSuccess(**_change(f), tier=f.string("tier"), tokens_added=f.integer("tokensAdded"),
                        downgraded=f.boolean("downgraded"), last_renewal_at=f.time("lastRenewalAt"),
                        next_renewal_date=f.time("nextRenewalDate"), tokens_carried=f.integer_or_none("tokensCarried"),
                        tokens_lapsed=f.integer_or_none("tokensLapsed"))


def read_hold(f: Fields) -> HoldSuccess:
    return HoldSuccess(id=f.string("id"), hold_id=f.string("holdId"), amount=f.integer("amount"),
                       available=f.integer("available"), expires_at=f.time("expiresAt"),
                       duplicate=f.boolean_or("duplicate", False))


def read_capture(f: Fields) -> CaptureSuccess:
    return CaptureSuccess(**_change(f), hold_id=f.string("holdId"), released=f.integer("released"),
                          available=f.integer("available"))


def read_release(f: Fields) -> ReleaseSuccess:
    return ReleaseSuccess(id=f.string("id"), hold_id=f.string("holdId"), released=f.integer("released"),
                          available=f.integer("available"), duplicate=f.boolean_or("duplicate", False))


def read_monitor(f: Fields) -> MonitorSuccess:
    return MonitorSuccess(id=f.string("id"), monitor_id=f.string("monitorId"), threshold=f.integer("threshold"),
                          armed=f.boolean("armed"), replaced=f.boolean("replaced"),
                          duplicate=f.boolean_or("duplicate", False))


def read_unmonitor(f: Fields) -> UnmonitorSuccess:
    return UnmonitorSuccess(id=f.string("id"), monitor_id=f.string("monitorId"),
                            duplicate=f.boolean_or("duplicate", False))


def read_set_tier(f: Fields) -> SetTierSuccess:
    return SetTierSuccess(id=f.string("id"), user_id=f.string("userId"), tier=f.string("tier"),
                          previous_tier=f.string("previousTier"),
                          subscription_expires_at=f.time_or_none("subscriptionExpiresAt"),
                          last_renewal_at=f.time("lastRenewalAt"), next_renewal_date=f.time("nextRenewalDate"),
                          duplicate=f.boolean_or("duplicate", False))


def read_balance_at(f: Fields) -> BalanceAt:
    """`exists` decides which fields may be null, so a reply that mixes the two cases is refused."""
    user_id, at = f.string("userId"), f.time("at")
    if f.boolean("exists"):
        return BalanceAtEntry(user_id=user_id, at=at, tokens_balance=f.integer("tokensBalance"),
                              tokens_spent=f.integer("tokensSpent"), ledger_entry_id=f.integer("ledgerEntryId"),
                              created_at=f.time("createdAt"))
    for name in ("tokensBalance", "tokensSpent"):
        if f.integer(name) != 0:
            raise f._fail(name, "0 before the first entry")
    for name in ("ledgerEntryId", "createdAt"):
        if f.value.get(name, 0) is not None:
            raise f._fail(name, "null before the first entry")
    return BalanceBeforeFirstEntry(user_id=user_id, at=at)


def read_refusal(f: Fields) -> Refusal:
    error = f.member("error")
    code, message = error.string("code"), error.string("message")
    balance = f.integer_or_none("balance")
    return Refusal(id=f.string_or_none("id") or "", error=describe_error(code, message), code=code, message=message,
                   duplicate=f.boolean_or("duplicate", False), new_balance=balance, balance=balance,
                   available=f.integer_or_none("available"), required=f.integer_or_none("required"),
                   deficit=f.integer_or_none("deficit"), held=f.integer_or_none("held"),
                   requested=f.integer_or_none("requested"), refundable=f.integer_or_none("refundable"),
                   state=f.string_or_none("state"), next_renewal_date=f.time_or_none("nextRenewalDate"),
                   days_until_renewal=f.integer_or_none("daysUntilRenewal"))


def read_afford(f: Fields) -> AffordResult:
    return AffordResult(f.boolean("canAfford"), f.integer("cost"), f.integer("balance"), f.integer("deficit"))


def read_balance(f: Fields) -> Balance:
    return Balance(
        tokens_balance=f.integer("tokensBalance"), tokens_spent=f.integer("tokensSpent"), tier=f.string("tier"),
        last_renewal_at=f.time("lastRenewalAt"), next_renewal_date=f.time("nextRenewalDate"),
        subscription_expires_at=f.time_or_none("subscriptionExpiresAt"), held=f.integer("held"),
        available=f.integer("available"),
        grants=[Grant(g.string("grantId"), g.integer("remaining"), g.time("expiresAt")) for g in f.array("grants")])


def read_holds(f: Fields) -> Holds:
    return Holds([OpenHold(h.string("holdId"), h.integer("amount"), h.string_or_none("operationType"),
                           h.time("createdAt"), h.time("expiresAt")) for h in f.array("holds")],
                 f.integer("held"), f.integer("available"))


def read_page(f: Fields) -> EntryPage:
    return EntryPage([LedgerEntry(e.integer("id"), e.string_or_none("jobId"), e.string("operationType"),
                                  e.integer("tokensAmount"), e.integer("balanceBefore"), e.integer("balanceAfter"),
                                  e.time("createdAt"), e.json_object_or_none("metadata")) for e in f.array("entries")],
                     f.integer("total"), f.integer("limit"), f.integer("offset"))


def read_statistics(f: Fields) -> Statistics:
    return Statistics(f.integer("totalSpent"), f.integer("totalEarned"), f.integer("netChange"),
                      f.integer("operationCount"),
                      {key: OperationTotals(count=o.integer("count"), tokens=o.integer("tokens")) for key, o in f.items("byOperation")})


def read_eligibility(f: Fields) -> Eligibility:
    return Eligibility(f.boolean("eligible"), f.string("reason"), f.time("nextRenewalDate"),
                       f.integer("daysUntilRenewal"), f.time("lastRenewalAt"), f.string("tier"))


def read_renew_all(f: Fields) -> RenewAllResult:
    return RenewAllResult(
        f.boolean("dryRun"), f.integer("totalProcessed"), f.integer("successful"), f.integer("failed"),
        [RenewalError(e.string("userId"), e.string("code"), e.string("message")) for e in f.array("errors")],
        [Renewal(r.string("userId"), r.string("tier"), r.integer("tokensAdded"), r.integer("newBalance"),
                 r.integer_or_none("tokensCarried"), r.integer_or_none("tokensLapsed")) for r in f.array("renewals")])
