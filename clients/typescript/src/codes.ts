// The names an application shares with the ledger: error codes, tiers, operation types.

/**
 * The codes of a worker's refusals (a result stored under the job id). Kept equal to
 * Tests/Golden/error-codes.json, which the tests check against the worker's source.
 */
export const REFUSAL_CODES = [
  "invalid_job", "user_not_found", "account_exists", "insufficient_tokens", "unknown_operation", "invalid_amount",
  "refund_exceeds_charge", "not_eligible", "duplicate_payment", "charge_not_found", "unknown_tier",
  "invalid_date_range", "invalid_months", "invalid_limit", "hold_not_found", "hold_closed", "hold_expired",
  "capture_exceeds_hold", "monitor_not_found", "invalid_expiry", "invalid_threshold", "reserved_grant_id",
  "reserved_operation_type",
] as const;

/** The codes of dead letters (a job that was never applied), answered in their failure reply. */
export const DEAD_LETTER_CODES = ["invalid_job", "wrong_partition", "storage_error"] as const;

/**
 * The client's own: `timeout` (no reply after every attempt: the outcome is unknown) and
 * `invalid_reply` (a reply this client cannot read: see ReplyShapeError).
 */
export const CLIENT_CODES = ["timeout", "invalid_reply"] as const;

export type RefusalCode = (typeof REFUSAL_CODES)[number];
export type DeadLetterCode = (typeof DEAD_LETTER_CODES)[number];
export type ClientCode = (typeof CLIENT_CODES)[number];
/**
 * Every code a call may report. A newer worker may add codes, so any other string is accepted
 * too; the named ones still complete in an editor.
 */
export type ErrorCode = RefusalCode | DeadLetterCode | ClientCode | (string & {});

/**
 * The original service's tiers, as a value (`SubscriptionTier.Gift`) and a type. Tiers are the
 * worker's configuration, so a call that takes a tier takes any other configured name too.
 */
export const SubscriptionTier = { Gift: "Gift", Professional: "Professional", Business: "Business" } as const;
export type SubscriptionTier = (typeof SubscriptionTier)[keyof typeof SubscriptionTier];
/** A tier name: one of SubscriptionTier or another tier the worker is configured with. */
export type TierName = SubscriptionTier | (string & {});

/**
 * The original service's operation types. An entry's operationType is any name an application
 * gives a debit or credit, so other strings are accepted; `expiry` is the worker's own.
 */
export type OperationType =
  | "image_generation" | "chatgpt_message" | "purchase" | "renewal" | "refund" | "bonus" | "capture" | "expiry"
  | (string & {});
