// How a call reports what went wrong.
import { ErrorCode } from "./codes";

/**
 * `Insufficient tokens: The balance of 3 tokens does not cover the 5 tokens required.`: the code
 * as words, then the worker's sentence. The words keep the original service's checks working
 * (`error.includes('Insufficient tokens')`, `'User not found'`, `'Unknown operation'`).
 */
export function describeError(code: string, message: string): string {
  const words = code.replace(/_/g, " ");
  return `${words.charAt(0).toUpperCase()}${words.slice(1)}: ${message}`;
}

/** A job as pushed on the queue (see the contract's "Jobs"). */
export interface Job {
  type: string;
  id?: string;
  userId?: string;
  [field: string]: unknown;
}

/** A reply as the worker writes it, its envelope checked (see `readReply`). */
export interface Reply {
  id: string | null;
  type: string;
  success: boolean;
  duplicate?: boolean;
  error?: { code: ErrorCode; message: string };
  [field: string]: unknown;
}

/**
 * A refused change, and the `refusal` of a TokenLedgerError a query throws: one shape for both.
 * The optional fields are those the refusal's code carries (see docs/PROTOCOL.md, Error codes).
 */
export interface Refusal {
  success: false;
  /** The job id (null for a query without one). */
  id: string;
  /** `Insufficient tokens: <the worker's sentence>`: see describeError. */
  error: string;
  code: ErrorCode;
  /** The worker's sentence alone. */
  message: string;
  duplicate: boolean;
  /** The balance, when the refusal names it (insufficient_tokens). */
  newBalance?: number;
  balance?: number;
  available?: number;
  required?: number;
  deficit?: number;
  /** capture_exceeds_hold: what the hold holds and what the capture asked for. */
  held?: number;
  requested?: number;
  /** refund_exceeds_charge: what remains refundable of the charge. */
  refundable?: number;
  /** hold_closed: `captured` or `released`. */
  state?: "captured" | "released";
  /** not_eligible: when the account is due. */
  nextRenewalDate?: Date;
  daysUntilRenewal?: number;
  ledgerEntryId?: undefined;
  tokensAmount?: undefined;
}

/**
 * A refusal thrown by a query, a failed call, `timeout`, or a reply that cannot be read.
 * `message` is describeError's text, `detail` the worker's sentence. For a worker's refusal,
 * `reply` is the reply it came in and `refusal` the same Refusal a change answers, so that both
 * kinds of call report a refusal with the same fields.
 */
export class TokenLedgerError extends Error {
  constructor(readonly code: ErrorCode, readonly detail: string, readonly reply?: Reply, readonly job?: Job,
    readonly refusal?: Refusal) {
    super(describeError(code, detail));
    this.name = "TokenLedgerError";
  }
}

/**
 * A reply whose shape is not the contract's: `field` names the first field found wrong (as a
 * path, `entries[2].tokensAmount`). Also thrown for an integer beyond 2^53 - 1, which a JavaScript
 * number cannot hold exactly.
 */
export class ReplyShapeError extends TokenLedgerError {
  constructor(readonly field: string, readonly expected: string, readonly text: string) {
    super("invalid_reply", `Field '${field}' of the reply must be ${expected}; the reply was ${text.slice(0, 300)}`);
    this.name = "ReplyShapeError";
  }
}
