// The original TokenService, its ledger view and MonthlyRenewalService, over the queue.
import { ClientOptions, connect, LedgerClient } from "./client";
import { ErrorCode, OperationType, TierName } from "./codes";
import { describeError, Job, Refusal, Reply, ReplyShapeError, TokenLedgerError } from "./errors";
import { Fields, isObject, Metadata } from "./shape";

export { Metadata, Refusal };

/** What every changing call also accepts: the job id (default: a new UUIDv7). */
export interface CallOptions {
  id?: string;
}

/**
 * The result of a balance change. A refusal is a result (`success: false`), not a throw, as in the
 * original service; `unwrap(result)` throws it as a query would.
 */
export type ChangeResult = ChangeSuccess | Refusal;

export interface ChangeSuccess {
  success: true;
  /** The job id. */
  id: string;
  newBalance: number;
  /** The entry written; null for a change that writes none (a renewal top-up that added nothing). */
  ledgerEntryId: number | null;
  tokensAmount: number;
  /** True when this delivery found the job already applied (a resend or a retry). */
  duplicate: boolean;
  error?: undefined;
  code?: undefined;
}

/** @deprecated the name of `Refusal` before queries shared it. */
export type ChangeRefusal = Refusal;

/** A credit: with an expiry, its tokens form a grant named by the job id. */
export interface CreditSuccess extends ChangeSuccess {
  grantId?: string;
  expiresAt?: Date;
}

/** An opened account: on tier Gift, its allocation credited, its renewal clock started. */
export interface OpenSuccess extends ChangeSuccess {
  tier: TierName;
  lastRenewalAt: Date;
  nextRenewalDate: Date;
}

export interface PurchaseSuccess extends ChangeSuccess {
  tier: TierName;
  tokensAdded: number;
  subscriptionExpiresAt: Date | null;
  lastRenewalAt: Date;
  nextRenewalDate: Date;
}

export interface RenewSuccess extends ChangeSuccess {
  tier: TierName;
  tokensAdded: number;
  /** Whether an expired subscription was moved to Gift first. */
  downgraded: boolean;
  lastRenewalAt: Date;
  nextRenewalDate: Date;
  /** Policy `rollover`: the tokens carried into the new period, and those above the cap that lapsed. */
  tokensCarried?: number;
  tokensLapsed?: number;
}

/** A hold's result: its tokens are reserved (`available` drops), no entry is written. */
export interface HoldSuccess {
  success: true;
  id: string;
  /** The hold's id: its job id. */
  holdId: string;
  amount: number;
  /** `available` after the hold. */
  available: number;
  expiresAt: Date;
  duplicate: boolean;
  error?: undefined;
  code?: undefined;
}

/** A capture: one debit entry for what was used; the rest (`released`) is freed. */
export interface CaptureSuccess extends ChangeSuccess {
  holdId: string;
  released: number;
  available: number;
}

/** A release: the hold is closed with nothing spent; no entry. */
export interface ReleaseSuccess {
  success: true;
  id: string;
  holdId: string;
  released: number;
  available: number;
  duplicate: boolean;
  error?: undefined;
  code?: undefined;
}

/** A monitor made or replaced: `balance.low` fires when `available` falls below `threshold`. */
export interface MonitorSuccess {
  success: true;
  id: string;
  monitorId: string;
  threshold: number;
  /** `available >= threshold` now: only an armed monitor fires. */
  armed: boolean;
  /** Whether the user had a monitor of this id, whose threshold this one replaced. */
  replaced: boolean;
  duplicate: boolean;
  error?: undefined;
  code?: undefined;
}

export interface UnmonitorSuccess {
  success: true;
  id: string;
  monitorId: string;
  duplicate: boolean;
  error?: undefined;
  code?: undefined;
}

/**
 * A tier (and expiry) set without a credit: no entry, the renewal clock unmoved, so the next
 * renewal, on the date the account already had, grants the new tier's allocation.
 */
export interface SetTierSuccess {
  success: true;
  id: string;
  userId: string;
  tier: TierName;
  previousTier: TierName;
  /** After the change: null when the account has no paid subscription. */
  subscriptionExpiresAt: Date | null;
  lastRenewalAt: Date;
  nextRenewalDate: Date;
  duplicate: boolean;
  error?: undefined;
  code?: undefined;
}

export interface SetTierOptions extends CallOptions {
  /** Left out, the expiry stays; null clears it; a time must be in the future (`invalid_expiry`). */
  subscriptionExpiresAt?: Date | string | null;
}

/**
 * The balance as it stood at a time. Before the account's first entry there was none
 * (`exists: false`, zeros); a time after the last entry answers the current totals.
 */
export type BalanceAt = BalanceAtEntry | BalanceBeforeFirstEntry;

export interface BalanceAtEntry {
  exists: true;
  userId: string;
  at: Date;
  tokensBalance: number;
  /** Spending up to `at`; lapsed grants never count in it. */
  tokensSpent: number;
  /** The last entry at or before `at`. */
  ledgerEntryId: number;
  createdAt: Date;
}

export interface BalanceBeforeFirstEntry {
  exists: false;
  userId: string;
  at: Date;
  tokensBalance: 0;
  tokensSpent: 0;
  ledgerEntryId: null;
  createdAt: null;
}

export type CreditResult = CreditSuccess | Refusal;
export type OpenResult = OpenSuccess | Refusal;
export type PurchaseResult = PurchaseSuccess | Refusal;
export type RenewResult = RenewSuccess | Refusal;
export type HoldResult = HoldSuccess | Refusal;
export type CaptureResult = CaptureSuccess | Refusal;
export type ReleaseResult = ReleaseSuccess | Refusal;
export type MonitorResult = MonitorSuccess | Refusal;
export type UnmonitorResult = UnmonitorSuccess | Refusal;
export type SetTierResult = SetTierSuccess | Refusal;


export interface HoldOptions extends CallOptions {
  /** Seconds until the hold expires unclosed (1 to 7 days; the worker's default is 900). */
  expiresIn?: number;
  /** Kept for the capture's entry when the capture has none. */
  metadata?: Metadata;
}

export interface CaptureOptions extends CallOptions {
  /** Default: the hold's operation, else `capture`. */
  operationType?: OperationType;
  metadata?: Metadata;
}

/** An open hold, as `holds` lists it. */
export interface OpenHold {
  holdId: string;
  amount: number;
  /** The hold's operation, or null. */
  operationType: OperationType | null;
  createdAt: Date;
  expiresAt: Date;
}

export interface Holds {
  /** The open, unexpired holds, soonest expiring first. */
  holds: OpenHold[];
  held: number;
  available: number;
}

/** What `withHold`'s function reports: the tokens used, or them and a value to hand back. */
export type Usage<T> = number | { used: number; value: T };

export interface WithHoldResult<T> {
  value: T | undefined;
  used: number;
  /** The capture, or null when nothing was used (the hold was released). */
  capture: CaptureSuccess | null;
}

export interface AffordResult {
  canAfford: boolean;
  cost: number;
  balance: number;
  deficit: number;
}

export interface Grant {
  grantId: string;
  remaining: number;
  expiresAt: Date;
}

export interface Balance {
  tokensBalance: number;
  tokensSpent: number;
  /** The sum of the open holds. */
  held: number;
  /** `tokensBalance - held`: what a charge, debit or hold may take. */
  available: number;
  /** The expiring grants not used up, soonest first. */
  grants: Grant[];
  tier: TierName;
  lastRenewalAt: Date;
  nextRenewalDate: Date;
  subscriptionExpiresAt: Date | null;
}

export interface LedgerEntry {
  id: number;
  jobId: string | null;
  operationType: OperationType;
  tokensAmount: number;
  balanceBefore: number;
  balanceAfter: number;
  createdAt: Date;
  metadata: Metadata | null;
}

export interface EntryQuery {
  limit?: number;
  offset?: number;
  operationType?: OperationType;
  startDate?: Date | string;
  endDate?: Date | string;
}

export interface EntryPage {
  entries: LedgerEntry[];
  /** How many entries match the filters, whatever limit and offset. */
  total: number;
  limit: number;
  offset: number;
}

export interface Statistics {
  totalSpent: number;
  totalEarned: number;
  netChange: number;
  operationCount: number;
  byOperation: Record<string, { count: number; tokens: number }>;
}


export interface Eligibility {
  eligible: boolean;
  reason: "renewal_due" | "not_yet_due";
  nextRenewalDate: Date;
  daysUntilRenewal: number;
  lastRenewalAt: Date;
  tier: TierName;
}

export interface RenewAllOptions extends CallOptions {
  dryRun?: boolean;
  tier?: TierName;
  limit?: number;
  continueOnError?: boolean;
}

export interface RenewAllResult {
  dryRun: boolean;
  totalProcessed: number;
  successful: number;
  failed: number;
  errors: { userId: string; code: ErrorCode; message: string }[];
  renewals: RenewedAccount[];
}

export interface RenewedAccount {
  userId: string;
  tier: TierName;
  tokensAdded: number;
  newBalance: number;
  /** Policy `rollover` only (see RenewSuccess). */
  tokensCarried?: number;
  tokensLapsed?: number;
}

export interface OperationMetrics {
  operation: string;
  userId: string;
  /** The tokens the call was about: a debit's amount, a charge's cost, a hold's amount. */
  amount: number | undefined;
  success: boolean;
  error: string | undefined;
  durationMs: number;
}

export interface ServiceCallbacks {
  /** Called with the userId of every balance change the worker announces on P:balance. */
  cacheInvalidationCallback?: (userId: string) => void;
  /** Called once per call. */
  metricsCallback?: (metrics: OperationMetrics) => void;
}

/** What a service is built on: a client (shared), client options, or a Redis URL. */
export type Db = LedgerClient | ClientOptions | string;

function clientOf(db: Db): { client: LedgerClient; ready: Promise<unknown> } {
  if (db instanceof LedgerClient) return { client: db, ready: db.connect() };
  const client = new LedgerClient(typeof db === "string" ? { url: db } : db);
  return { client, ready: client.connect() };
}

const isoOf = (value: Date | string | undefined) => (value instanceof Date ? value.toISOString() : value);

/** Reads a success reply's fields into a result. */
type Reader<T> = (f: Fields) => T;

/** The fields every balance change answers. */
const readChange = (f: Fields): ChangeSuccess => ({
  success: true, id: f.str("id"), newBalance: f.int("newBalance"), ledgerEntryId: f.intOrNull("ledgerEntryId"),
  tokensAmount: f.int("tokensAmount"), duplicate: f.optBool("duplicate") ?? false,
});

const readCredit = (f: Fields): CreditSuccess => {
  const result: CreditSuccess = readChange(f);
  const grantId = f.optStr("grantId");
  if (grantId !== undefined) Object.assign(result, { grantId, expiresAt: f.date("expiresAt") });
  return result;
};

const readOpen = (f: Fields): OpenSuccess => ({
  ...readChange(f), tier: f.str("tier"), lastRenewalAt: f.date("lastRenewalAt"), nextRenewalDate: f.date("nextRenewalDate"),
});

const readPurchase = (f: Fields): PurchaseSuccess => ({
  ...readChange(f), tier: f.str("tier"), tokensAdded: f.int("tokensAdded"),
  subscriptionExpiresAt: f.dateOrNull("subscriptionExpiresAt"), lastRenewalAt: f.date("lastRenewalAt"),
  nextRenewalDate: f.date("nextRenewalDate"),
});

/** The rollover policy's fields, present only under it. */
function withRollover<T extends object>(result: T, f: Fields): T & { tokensCarried?: number; tokensLapsed?: number } {
  const carried = f.optInt("tokensCarried");
  const lapsed = f.optInt("tokensLapsed");
  return { ...result, ...(carried !== undefined ? { tokensCarried: carried } : {}), ...(lapsed !== undefined ? { tokensLapsed: lapsed } : {}) };
}

const readRenew = (f: Fields): RenewSuccess => withRollover({
  ...readChange(f), tier: f.str("tier"), tokensAdded: f.int("tokensAdded"), downgraded: f.bool("downgraded"),
  lastRenewalAt: f.date("lastRenewalAt"), nextRenewalDate: f.date("nextRenewalDate"),
}, f);

const readHold = (f: Fields): HoldSuccess => ({
  success: true, id: f.str("id"), holdId: f.str("holdId"), amount: f.int("amount"), available: f.int("available"),
  expiresAt: f.date("expiresAt"), duplicate: f.optBool("duplicate") ?? false,
});

const readCapture = (f: Fields): CaptureSuccess => ({
  ...readChange(f), holdId: f.str("holdId"), released: f.int("released"), available: f.int("available"),
});

const readRelease = (f: Fields): ReleaseSuccess => ({
  success: true, id: f.str("id"), holdId: f.str("holdId"), released: f.int("released"), available: f.int("available"),
  duplicate: f.optBool("duplicate") ?? false,
});

const readMonitor = (f: Fields): MonitorSuccess => ({
  success: true, id: f.str("id"), monitorId: f.str("monitorId"), threshold: f.int("threshold"), armed: f.bool("armed"),
  replaced: f.bool("replaced"), duplicate: f.optBool("duplicate") ?? false,
});

const readUnmonitor = (f: Fields): UnmonitorSuccess => ({
  success: true, id: f.str("id"), monitorId: f.str("monitorId"), duplicate: f.optBool("duplicate") ?? false,
});

const readSetTier = (f: Fields): SetTierSuccess => ({
  success: true, id: f.str("id"), userId: f.str("userId"), tier: f.str("tier"), previousTier: f.str("previousTier"),
  subscriptionExpiresAt: f.dateOrNull("subscriptionExpiresAt"), lastRenewalAt: f.date("lastRenewalAt"),
  nextRenewalDate: f.date("nextRenewalDate"), duplicate: f.optBool("duplicate") ?? false,
});

/** `exists` decides which fields may be null, so a reply that mixes the two cases is refused. */
const readBalanceAt = (f: Fields): BalanceAt => {
  const userId = f.str("userId");
  const at = f.date("at");
  if (!f.bool("exists")) {
    const zeros = { tokensBalance: f.int("tokensBalance"), tokensSpent: f.int("tokensSpent") };
    for (const [field, value] of Object.entries(zeros)) {
      if (value !== 0) throw new ReplyShapeError(field, "0 before the first entry", JSON.stringify(f.value));
    }
    for (const field of ["ledgerEntryId", "createdAt"]) {
      if (f.value[field] !== null) throw new ReplyShapeError(field, "null before the first entry", JSON.stringify(f.value));
    }
    return { exists: false, userId, at, tokensBalance: 0, tokensSpent: 0, ledgerEntryId: null, createdAt: null };
  }
  return {
    exists: true, userId, at, tokensBalance: f.int("tokensBalance"), tokensSpent: f.int("tokensSpent"),
    ledgerEntryId: f.int("ledgerEntryId"), createdAt: f.date("createdAt"),
  };
};

const readAfford = (f: Fields): AffordResult => ({
  canAfford: f.bool("canAfford"), cost: f.int("cost"), balance: f.int("balance"), deficit: f.int("deficit"),
});

const readHolds = (f: Fields): Holds => ({
  holds: f.list("holds").map((h) => ({
    holdId: h.str("holdId"), amount: h.int("amount"), operationType: h.strOrNull("operationType"),
    createdAt: h.date("createdAt"), expiresAt: h.date("expiresAt"),
  })),
  held: f.int("held"), available: f.int("available"),
});

const readBalance = (f: Fields): Balance => ({
  tokensBalance: f.int("tokensBalance"), tokensSpent: f.int("tokensSpent"), held: f.int("held"), available: f.int("available"),
  grants: f.list("grants").map((g) => ({ grantId: g.str("grantId"), remaining: g.int("remaining"), expiresAt: g.date("expiresAt") })),
  tier: f.str("tier"), lastRenewalAt: f.date("lastRenewalAt"), nextRenewalDate: f.date("nextRenewalDate"),
  subscriptionExpiresAt: f.dateOrNull("subscriptionExpiresAt"),
});

const readPage = (f: Fields): EntryPage => ({
  entries: f.list("entries").map((e) => ({
    id: e.int("id"), jobId: e.strOrNull("jobId"), operationType: e.str("operationType"), tokensAmount: e.int("tokensAmount"),
    balanceBefore: e.int("balanceBefore"), balanceAfter: e.int("balanceAfter"), createdAt: e.date("createdAt"),
    metadata: e.jsonObjectOrNull("metadata"),
  })),
  total: f.int("total"), limit: f.int("limit"), offset: f.int("offset"),
});

const readStatistics = (f: Fields): Statistics => ({
  totalSpent: f.int("totalSpent"), totalEarned: f.int("totalEarned"), netChange: f.int("netChange"),
  operationCount: f.int("operationCount"),
  byOperation: Object.fromEntries(f.entries("byOperation").map(([type, o]) => [type, { count: o.int("count"), tokens: o.int("tokens") }])),
});

const readEligibility = (f: Fields): Eligibility => {
  const reason = f.str("reason");
  if (reason !== "renewal_due" && reason !== "not_yet_due") throw new ReplyShapeError("reason", "renewal_due or not_yet_due", JSON.stringify(f.value));
  return {
    eligible: f.bool("eligible"), reason, nextRenewalDate: f.date("nextRenewalDate"), daysUntilRenewal: f.int("daysUntilRenewal"),
    lastRenewalAt: f.date("lastRenewalAt"), tier: f.str("tier"),
  };
};

/**
 * The reader of each job type's success reply, for the tests that read the golden transcript
 * (Tests/Golden/transcript.json); `readRefusal` reads the failures, `queryReaders` the queries'.
 */
export const successReaders: Readonly<Record<string, Reader<unknown>>> = {
  open: readOpen, charge: readChange, debit: readChange, credit: readCredit, refund: readChange, purchase: readPurchase,
  renew: readRenew, hold: readHold, capture: readCapture, release: readRelease, monitor: readMonitor, unmonitor: readUnmonitor,
  setTier: readSetTier, balanceAt: readBalanceAt,
};

/** The reader of each query's success reply (see `successReaders`). */
export const queryReaders: Readonly<Record<string, Reader<unknown>>> = {
  balance: readBalance, canAfford: readAfford, history: readPage, statistics: readStatistics, eligibility: readEligibility,
  holds: readHolds, renewAll: (f) => readRenewAll(f),
};

const refusalNumbers = ["balance", "available", "required", "deficit", "held", "requested", "refundable", "daysUntilRenewal"] as const;

/** A failure reply as a Refusal, with the fields its code carries. */
export function readRefusal(reply: Reply, f: Fields, error: { code: ErrorCode; message: string }): Refusal {
  const refusal: Refusal = {
    success: false, id: reply.id ?? "", error: describeError(error.code, error.message), code: error.code,
    message: error.message, duplicate: f.optBool("duplicate") ?? false,
  };
  for (const key of refusalNumbers) {
    const value = f.optInt(key);
    if (value !== undefined) refusal[key] = value;
  }
  if (refusal.balance !== undefined) refusal.newBalance = refusal.balance;
  const state = f.optStr("state");
  if (state === "captured" || state === "released") refusal.state = state;
  const due = f.optDate("nextRenewalDate");
  if (due !== undefined) refusal.nextRenewalDate = due;
  return refusal;
}

/** The TokenLedgerError a query throws for a refusal: a change's Refusal, thrown. */
function refusalError(refusal: Refusal, job?: Job, reply?: Reply): TokenLedgerError {
  return new TokenLedgerError(refusal.code, refusal.message, reply, job, refusal);
}

/** A change's success, or its refusal thrown as the TokenLedgerError a query throws. */
export function unwrap<T extends { success: true }>(result: T | Refusal): T {
  if (!result.success) throw refusalError(result);
  return result;
}

/** Shared by the services: sends jobs, measures calls, reads replies. */
class Caller {
  readonly client: LedgerClient;
  private readonly ready: Promise<unknown>;

  constructor(db: Db, private readonly callbacks: ServiceCallbacks = {}) {
    ({ client: this.client, ready: this.ready } = clientOf(db));
  }

  async exchange(job: Job, partition?: number): Promise<{ reply: Reply; fields: Fields }> {
    await this.ready;
    return this.client.exchange(job, partition);
  }

  /**
   * Runs one call and reports it to metricsCallback once: a throw or a `success: false` answer
   * fails. `amountOf` gives the call's amount from its answer (undefined after a throw).
   */
  async measure<T>(operation: string, userId: string | undefined, amountOf: (answer: T | undefined) => number | undefined,
    run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    let error: string | undefined;
    let answer: T | undefined;
    try {
      answer = await run();
      if (isObject(answer) && answer.success === false) error = String(answer.error);
      return answer;
    } catch (thrown) {
      error = thrown instanceof Error ? thrown.message : String(thrown);
      throw thrown;
    } finally {
      this.callbacks.metricsCallback?.({
        operation, userId: userId ?? "", amount: amountOf(answer), success: error === undefined, error,
        durationMs: Date.now() - started,
      });
    }
  }

  /** A balance-changing job: a new id unless given; a refusal is answered, not thrown. */
  change<T extends { success: true }>(operation: string, job: Job, options: CallOptions, read: Reader<T>,
    amountOf: (answer: T | Refusal | undefined) => number | undefined = () => undefined): Promise<T | Refusal> {
    return this.measure(operation, job.userId, amountOf, () => this.apply(job, options, read));
  }

  /** `change` without the metrics, for calls made of several jobs. */
  async apply<T extends { success: true }>(job: Job, options: CallOptions, read: Reader<T>): Promise<T | Refusal> {
    const { reply, fields } = await this.exchange({ ...job, id: options.id ?? this.client.newId() });
    return reply.error ? readRefusal(reply, fields, reply.error) : read(fields);
  }

  /** A query: its answer, or the refusal thrown as a TokenLedgerError. */
  query<T>(operation: string, job: Job, read: Reader<T>): Promise<T> {
    return this.measure(operation, job.userId, () => undefined, async () => read(orThrow(await this.exchange(job), job)));
  }
}

function orThrow({ reply, fields }: { reply: Reply; fields: Fields }, job: Job): Fields {
  if (reply.error) throw refusalError(readRefusal(reply, fields, reply.error), job, reply);
  return fields;
}

const holdJob = (userId: string, what: { amount: number } | { operation: OperationType }, { expiresIn, metadata }: HoldOptions): Job =>
  ({ type: "hold", userId, ...what, expiresIn, metadata });

const captureJob = (userId: string, holdId: string, amount: number | undefined, { operationType, metadata }: CaptureOptions): Job =>
  ({ type: "capture", userId, holdId, amount, operationType, metadata });

const given = (amount: number | undefined) => () => amount;

/** `undefined` leaves the expiry out of the job (it stays); `null` is sent and clears it. */
const setTierJob = (userId: string, tier: TierName, expiry: Date | string | null | undefined): Job =>
  ({ type: "setTier", userId, tier, subscriptionExpiresAt: expiry === null ? null : isoOf(expiry) });

/** What the guide's `db.user.update` may write: the two columns of a user the ledger keeps. */
export interface UserUpdate {
  where: { id: string };
  data: { tier?: TierName; subscriptionExpiresAt?: Date | string | null };
}

/**
 * `db.user`: the tier and subscription expiry an application wrote into its own user table, for
 * the original service to read, now written to the ledger with a `setTier` job. Each update is a
 * job of its own id (resent with that id when its reply is late): setting a tier is an assignment,
 * so applying it again changes nothing, while an id derived from the values would make a later
 * return to an earlier tier a replay of the first, applied never.
 */
export class UserTable {
  constructor(private readonly client: LedgerClient) {}

  /**
   * Sets what `data` names and answers the account's tier and expiry after it. Without `tier`,
   * the account's current tier is read first (a tier changed meanwhile is set back). A refusal
   * (`user_not_found`, `unknown_tier`, `invalid_expiry`) throws, as a failed update does; so does
   * a column the ledger does not keep.
   */
  async update({ where, data }: UserUpdate): Promise<SetTierSuccess> {
    const unknown = Object.keys(data).filter((key) => key !== "tier" && key !== "subscriptionExpiresAt");
    if (unknown.length > 0) throw new TypeError(`the ledger keeps a user's tier and subscriptionExpiresAt only, not ${unknown.join(", ")}`);
    await this.client.connect();
    const userId = where.id;
    let tier = data.tier;
    if (tier === undefined) {
      const job = { type: "balance", userId };
      tier = orThrow(await this.client.exchange(job), job).str("tier");
    }
    const job = { ...setTierJob(userId, tier, data.subscriptionExpiresAt), id: this.client.newId() };
    const { reply, fields } = await this.client.exchange(job);
    if (reply.error) throw refusalError(readRefusal(reply, fields, reply.error), job, reply);
    return readSetTier(fields);
  }
}

export class TokenService {
  private readonly caller: Caller;
  private readonly ledger: TokenLedgerView;

  /**
   * `db`: a LedgerClient (shared with other services), client options, or a Redis URL.
   * With a cacheInvalidationCallback, subscribes to P:balance (call `close()` to stop).
   */
  constructor(db: Db, callbacks: ServiceCallbacks = {}) {
    this.caller = new Caller(db, callbacks);
    this.ledger = new TokenLedgerView(this.caller);
    const invalidate = callbacks.cacheInvalidationCallback;
    if (invalidate) this.subscribed = this.caller.client.onBalance((message) => invalidate(message.userId));
  }

  /** Resolves once the P:balance subscription (if any) is in place. */
  readonly subscribed: Promise<unknown> = Promise.resolve();

  get client(): LedgerClient {
    return this.caller.client;
  }

  canAfford(userId: string, operation: OperationType): Promise<AffordResult> {
    return this.caller.query("canAfford", { type: "canAfford", userId, operation }, readAfford);
  }

  /** Debits the operation's configured cost; metrics report that cost as the amount. */
  chargeForOperation(userId: string, operation: OperationType, metadata?: Metadata, options: CallOptions = {}): Promise<ChangeResult> {
    return this.caller.change("chargeForOperation", { type: "charge", userId, operation, metadata }, options, readChange,
      (r) => (r === undefined ? undefined : r.success ? -r.tokensAmount : r.required));
  }

  debit(userId: string, spec: { operationType: OperationType; amount: number; metadata?: Metadata }, options: CallOptions = {}): Promise<ChangeResult> {
    return this.caller.change("debit", { type: "debit", userId, ...spec }, options, readChange, given(spec.amount));
  }

  /** Credits `amount`; with `expiresAt` or `expiresIn` (seconds) the tokens form a grant that lapses then. */
  credit(userId: string, spec: { operationType: OperationType; amount: number; metadata?: Metadata; expiresAt?: Date | string; expiresIn?: number },
    options: CallOptions = {}): Promise<CreditResult> {
    const job = { type: "credit", userId, ...spec, expiresAt: isoOf(spec.expiresAt) };
    return this.caller.change("credit", job, options, readCredit, given(spec.amount));
  }

  /** Credits `amount` back; with `refundOf` (a charge's or debit's job id), `amount` may be left out. */
  refund(userId: string, amount?: number, metadata?: Metadata, options: CallOptions & { refundOf?: string } = {}): Promise<ChangeResult> {
    return this.caller.change("refund", { type: "refund", userId, amount, metadata, refundOf: options.refundOf }, options, readChange,
      (r) => amount ?? (r?.success ? r.tokensAmount : undefined));
  }

  /** Sets the tier and credits its allocation; one paymentId applies once. */
  purchase(userId: string, tier: TierName, paymentId: string, months?: number, options: CallOptions & { metadata?: Metadata } = {}): Promise<PurchaseResult> {
    return this.caller.change("purchase", { type: "purchase", userId, tier, paymentId, months, metadata: options.metadata }, options,
      readPurchase, (r) => (r?.success ? r.tokensAdded : undefined));
  }

  /** Creates the account on tier Gift with its allocation; `account_exists` if it exists. */
  openAccount(userId: string, options: CallOptions = {}): Promise<OpenResult> {
    return this.caller.change("openAccount", { type: "open", userId }, options, readOpen);
  }

  /** Opens the account unless it exists; true when it was created by this call. */
  async ensureAccount(userId: string): Promise<boolean> {
    const result = await this.openAccount(userId, { id: `open:${userId}` });
    if (result.success) return !result.duplicate;
    if (result.code === "account_exists") return false;
    throw refusalError(result);
  }

  /** Reserves `amount` tokens. Refused with `insufficient_tokens` when `available` is short. */
  hold(userId: string, amount: number, options: HoldOptions = {}): Promise<HoldResult> {
    return this.caller.change("hold", holdJob(userId, { amount }, options), options, readHold, given(amount));
  }

  /** Reserves an operation's configured cost; a capture of it then defaults to it as operationType. */
  holdForOperation(userId: string, operation: OperationType, options: HoldOptions = {}): Promise<HoldResult> {
    return this.caller.change("hold", holdJob(userId, { operation }, options), options, readHold, (r) => (r?.success ? r.amount : undefined));
  }

  /** Spends `amount` of a hold (default: all of it) and frees the rest. */
  capture(userId: string, holdId: string, amount?: number, options: CaptureOptions = {}): Promise<CaptureResult> {
    return this.caller.change("capture", captureJob(userId, holdId, amount, options), options, readCapture,
      (r) => amount ?? (r?.success ? -r.tokensAmount : undefined));
  }

  /** Frees a hold with nothing spent. */
  release(userId: string, holdId: string, options: CallOptions = {}): Promise<ReleaseResult> {
    return this.caller.change("release", { type: "release", userId, holdId }, options, readRelease);
  }

  /** The user's open holds, with `held` and `available`. */
  holds(userId: string): Promise<Holds> {
    return this.caller.query("holds", { type: "holds", userId }, readHolds);
  }

  /**
   * Holds `amount`, runs `fn`, and captures what `fn` reports as used (a number, or `{ used, value }`);
   * nothing used releases the hold. When `fn` throws, the hold is released and the error rethrown.
   * A refused hold or capture throws TokenLedgerError (a refused capture releases the hold first).
   * One metrics report, operation `withHold`.
   */
  withHold<T = undefined>(userId: string, amount: number, fn: (hold: HoldSuccess) => Usage<T> | Promise<Usage<T>>,
    options: HoldOptions & { operationType?: OperationType } = {}): Promise<WithHoldResult<T>> {
    return this.holdAndRun(userId, { amount }, fn, options);
  }

  /** `withHold` of an operation's configured cost (see holdForOperation). */
  withHoldForOperation<T = undefined>(userId: string, operation: OperationType, fn: (hold: HoldSuccess) => Usage<T> | Promise<Usage<T>>,
    options: HoldOptions & { operationType?: OperationType } = {}): Promise<WithHoldResult<T>> {
    return this.holdAndRun(userId, { operation }, fn, options);
  }

  private holdAndRun<T>(userId: string, what: { amount: number } | { operation: OperationType },
    fn: (hold: HoldSuccess) => Usage<T> | Promise<Usage<T>>, options: HoldOptions & { operationType?: OperationType }): Promise<WithHoldResult<T>> {
    const { id, operationType, ...holdOptions } = options;
    const amount = "amount" in what ? what.amount : undefined;
    return this.caller.measure("withHold", userId, given(amount), async () => {
      const job = holdJob(userId, what, holdOptions);
      const held = await this.caller.apply(job, { id }, readHold);
      if (!held.success) throw refusalError(held, job);
      const release = () => this.caller.apply({ type: "release", userId, holdId: held.holdId }, {}, readRelease).catch(() => undefined);
      let usage: Usage<T>;
      try {
        usage = await fn(held);
      } catch (thrown) {
        await release();
        throw thrown;
      }
      const { used, value } = typeof usage === "number" ? { used: usage, value: undefined } : usage;
      if (used === 0) {
        await release();
        return { value, used, capture: null };
      }
      const captureJobOf = captureJob(userId, held.holdId, used, { operationType });
      const capture = await this.caller.apply(captureJobOf, {}, readCapture);
      if (!capture.success) {
        await release();
        throw refusalError(capture, captureJobOf);
      }
      return { value, used, capture };
    });
  }

  /**
   * Watches the balance: the worker emits `balance.low` (on P:alerts and the events stream) when
   * `available` falls below `threshold`. `monitorId` defaults to the job id; the same id replaces.
   */
  monitor(userId: string, threshold: number, options: CallOptions & { monitorId?: string } = {}): Promise<MonitorResult> {
    return this.caller.change("monitor", { type: "monitor", userId, threshold, monitorId: options.monitorId }, options, readMonitor);
  }

  /** Stops a monitor; `monitor_not_found` when the user has none of that id. */
  unmonitor(userId: string, monitorId: string, options: CallOptions = {}): Promise<UnmonitorResult> {
    return this.caller.change("unmonitor", { type: "unmonitor", userId, monitorId }, options, readUnmonitor);
  }

  /**
   * Sets the tier, and the expiry when given, without crediting anything or moving the renewal
   * clock (a paid upgrade is a `purchase`). Refused: `user_not_found`, `unknown_tier`, `invalid_expiry`.
   */
  setTier(userId: string, tier: TierName, options: SetTierOptions = {}): Promise<SetTierResult> {
    return this.caller.change("setTier", setTierJob(userId, tier, options.subscriptionExpiresAt), options, readSetTier);
  }

  /** The balance as it stood at `at`, for reconciliation; throws `user_not_found` for no account. */
  balanceAt(userId: string, at: Date | string): Promise<BalanceAt> {
    return this.caller.query("balanceAt", { type: "balanceAt", userId, at: isoOf(at) }, readBalanceAt);
  }

  /** The account, or null when there is none. */
  getBalance(userId: string): Promise<Balance | null> {
    const job = { type: "balance", userId };
    return this.caller.measure("getBalance", userId, () => undefined, async () => {
      const answer = await this.caller.exchange(job);
      if (answer.reply.error?.code === "user_not_found") return null;
      return readBalance(orThrow(answer, job));
    });
  }

  getLedger(): TokenLedgerView {
    return this.ledger;
  }

  /** Stops the subscription and closes the connection (shared clients too). */
  close(): Promise<void> {
    return this.caller.client.close();
  }
}

/** `service.getLedger()`: history and statistics. */
export class TokenLedgerView {
  constructor(private readonly caller: Caller) {}

  async getUserEntries(userId: string, query: EntryQuery = {}): Promise<LedgerEntry[]> {
    return (await this.getUserEntriesPage(userId, query)).entries;
  }

  /** Like getUserEntries, with `total` for paging. */
  getUserEntriesPage(userId: string, query: EntryQuery = {}): Promise<EntryPage> {
    const job = { type: "history", userId, ...query, startDate: isoOf(query.startDate), endDate: isoOf(query.endDate) };
    return this.caller.query("getUserEntries", job, readPage);
  }

  getUserStatistics(userId: string, startDate: Date | string, endDate: Date | string): Promise<Statistics> {
    const job = { type: "statistics", userId, startDate: isoOf(startDate), endDate: isoOf(endDate) };
    return this.caller.query("getUserStatistics", job, readStatistics);
  }
}

const readRenewAll = (f: Fields): RenewAllResult => ({
  dryRun: f.bool("dryRun"), totalProcessed: f.int("totalProcessed"), successful: f.int("successful"), failed: f.int("failed"),
  errors: f.list("errors").map((e) => ({ userId: e.str("userId"), code: e.str("code"), message: e.str("message") })),
  renewals: f.list("renewals").map((r) => withRollover({
    userId: r.str("userId"), tier: r.str("tier"), tokensAdded: r.int("tokensAdded"), newBalance: r.int("newBalance"),
  }, r)),
});

export class MonthlyRenewalService {
  private readonly caller: Caller;

  /** `cronExpression`: the worker's `renewal.cron` setting, when not the default. */
  constructor(db: Db, private readonly options: ServiceCallbacks & { cronExpression?: string } = {}) {
    this.caller = new Caller(db, options);
  }

  checkEligibility(userId: string): Promise<Eligibility> {
    return this.caller.query("checkEligibility", { type: "eligibility", userId }, readEligibility);
  }

  /** Renews one account if due; `not_eligible` otherwise (a refusal result). */
  renewUser(userId: string, options: CallOptions = {}): Promise<RenewResult> {
    return this.caller.change("renewUser", { type: "renew", userId }, options, readRenew, (r) => (r?.success ? r.tokensAdded : undefined));
  }

  /**
   * Renews every eligible account (the worker's scheduler also does this on its cron). With N > 1
   * partitions, one job per partition, totals summed. A dry run sends no id.
   */
  renewAllEligible(options: RenewAllOptions = {}): Promise<RenewAllResult> {
    const { id, ...fields } = options;
    const client = this.caller.client;
    const baseId = options.dryRun ? undefined : id ?? client.newId();
    const one = async (k: number) => {
      const job = { type: "renewAll", ...fields, id: baseId && client.partitions > 1 ? `${baseId}.p${k}` : baseId };
      return readRenewAll(orThrow(await this.caller.exchange(job, k), job));
    };
    return this.caller.measure("renewAllEligible", undefined, () => undefined, async () => {
      const runs = await Promise.all(Array.from({ length: client.partitions }, (_, k) => one(k)));
      return runs.reduce((sum, run) => ({
        dryRun: run.dryRun, totalProcessed: sum.totalProcessed + run.totalProcessed, successful: sum.successful + run.successful,
        failed: sum.failed + run.failed, errors: [...sum.errors, ...run.errors], renewals: [...sum.renewals, ...run.renewals],
      }));
    });
  }

  getCronExpression(): string {
    return this.options.cronExpression ?? "0 2 * * *";
  }

  close(): Promise<void> {
    return this.caller.client.close();
  }
}

export { connect };
