"""The original TokenService API over the TokenLedger queue (see docs/clients.md)."""
from .client import BalanceMessage, ConnectionSettings, LedgerClient, connect, connection_settings
from .codes import CLIENT_CODES, DEAD_LETTER_CODES, REFUSAL_CODES, OperationType, SubscriptionTier
from .errors import ReplyShapeError, TokenLedgerError, describe_error
from .events import EventConsumer, LedgerEvent
from .ids import crc32, partition_of, uuid7
from .results import (AffordResult, Balance, BalanceAt, BalanceAtEntry, BalanceBeforeFirstEntry, CaptureResult,
                      CaptureSuccess, ChangeResult, ChangeSuccess, CreditResult, CreditSuccess, Eligibility,
                      EntryPage, Grant, HoldResult, Holds, HoldSuccess, LedgerEntry, MonitorResult, MonitorSuccess,
                      OpenHold, OpenResult, OpenSuccess, OperationMetrics, OperationTotals, PurchaseResult,
                      PurchaseSuccess, Refusal, ReleaseResult, ReleaseSuccess, RenewAllResult, Renewal, RenewalError,
                      RenewResult, RenewSuccess, SetTierResult, SetTierSuccess, Statistics, UnmonitorResult,
                      UnmonitorSuccess, WithHoldResult)
from .service import (KEEP, Expiry, Keep, MonthlyRenewalService, TokenLedgerView, TokenService, UserData, UserTable,
                      UserWhere, unwrap)

__all__ = [
    "AffordResult", "Balance", "BalanceAt", "BalanceAtEntry", "BalanceBeforeFirstEntry", "BalanceMessage",
    "CLIENT_CODES", "CaptureResult", "CaptureSuccess", "ChangeResult", "ChangeSuccess", "ConnectionSettings",
    "CreditResult", "CreditSuccess", "DEAD_LETTER_CODES", "Eligibility", "EntryPage", "EventConsumer", "Expiry",
    "Grant", "HoldResult", "HoldSuccess", "Holds", "KEEP", "Keep", "LedgerClient", "LedgerEntry", "LedgerEvent",
    "MonitorResult", "MonitorSuccess", "MonthlyRenewalService", "OpenHold", "OpenResult", "OpenSuccess",
    "OperationMetrics", "OperationTotals", "OperationType", "PurchaseResult", "PurchaseSuccess", "REFUSAL_CODES",
    "Refusal", "ReleaseResult", "ReleaseSuccess", "RenewAllResult", "RenewResult", "RenewSuccess", "Renewal",
    "RenewalError", "ReplyShapeError", "SetTierResult", "SetTierSuccess", "Statistics", "SubscriptionTier",
    "TokenLedgerError", "TokenLedgerView", "TokenService", "UnmonitorResult", "UnmonitorSuccess", "UserData",
    "UserTable", "UserWhere", "WithHoldResult", "connect", "connection_settings", "crc32", "describe_error",
    "partition_of", "unwrap", "uuid7",
]
