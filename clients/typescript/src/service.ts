// The original TokenService, its ledger view and MonthlyRenewalService, over the queue.
import { ClientOptions, connect, ErrorCode, Job, LedgerClient, Reply, TokenLedgerError, describeError } from "./client";

export type Metadata = Record<string, unknown>;

/** What every changing call also accepts: the job id (default: a new UUIDv7). */
export interface CallOptions {
  id?: string;
}

/** The result of a balance change. A refusal is a result (`success: false`), not a throw. */
export type ChangeResult = ChangeSuccess | ChangeRefusal;

export interface ChangeSuccess {
  success: true;
  /** The job id. */
  id: string;
  newBalance: number;
  ledgerEntryId: number | null;
  tokensAmount: number;
  /** True when this delivery found the job already applied (a resend or a retry). */
  duplicate: boolean;
  error?: undefined;
  code?: undefined;
}

export interface ChangeRefusal {
  success: false;
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
  /** hold_closed: `captured` or `released`. */
  state?: "captured" | "released";
  ledgerEntryId?: undefined;
  tokensAmount?: undefined;
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
  expiresAt: string;
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

export type HoldResult = HoldSuccess | ChangeRefusal;
export type CaptureResult = CaptureSuccess | ChangeRefusal;
export type ReleaseResult = ReleaseSuccess | ChangeRefusal;

export interface HoldOptions extends CallOptions {
  /** Seconds until the hold expires unclosed (1 to 7 days; the worker's default is 900). */
  expiresIn?: number;
  /** Kept for the capture's entry when the capture has none. */
  metadata?: Metadata;
}

export interface CaptureOptions extends CallOptions {
  /** Default: the hold's operation, else `capture`. */
  operationType?: string;
  metadata?: Metadata;
}

/** An open hold, as `holds` lists it. */
export interface OpenHold {
  holdId: string;
  amount: number;
  /** The hold's operation, or null. */
  operationType: string | null;
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
  tier: string;
  lastRenewalAt: Date;
  nextRenewalDate: Date;
  subscriptionExpiresAt: Date | null;
}

export interface LedgerEntry {
  id: number;
  jobId: string | null;
  operationType: string;
  tokensAmount: number;
  balanceBefore: number;
  balanceAfter: number;
  createdAt: Date;
  metadata: Metadata | null;
}

export interface EntryQuery {
  limit?: number;
  offset?: number;
  operationType?: string;
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

export type PurchaseResult = ChangeResult & { tier?: string; tokensAdded?: number; subscriptionExpiresAt?: string };
export type RenewResult = ChangeResult & { tier?: string; tokensAdded?: number; downgraded?: boolean; nextRenewalDate?: string };

export interface Eligibility {
  eligible: boolean;
  reason: "renewal_due" | "not_yet_due";
  nextRenewalDate: Date;
  daysUntilRenewal: number;
  lastRenewalAt: Date;
  tier: string;
}

export interface RenewAllOptions extends CallOptions {
  dryRun?: boolean;
  tier?: string;
  limit?: number;
  continueOnError?: boolean;
}

export interface RenewAllResult {
  dryRun: boolean;
  totalProcessed: number;
  successful: number;
  failed: number;
  errors: { userId: string; code: ErrorCode; message: string }[];
  renewals: { userId: string; tier: string; tokensAdded: number; newBalance: number }[];
}

export interface OperationMetrics {
  operation: string;
  userId: string;
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

const toDate = (value: unknown): Date => new Date(value as string);
const toDateOrNull = (value: unknown): Date | null => (value == null ? null : toDate(value));
const isoOf = (value: Date | string | undefined) => (value instanceof Date ? value.toISOString() : value);

/** Shared by the services: sends jobs, measures calls, shapes replies. */
class Caller {
  readonly client: LedgerClient;
  private readonly ready: Promise<unknown>;

  constructor(db: Db, private readonly callbacks: ServiceCallbacks = {}) {
    ({ client: this.client, ready: this.ready } = clientOf(db));
  }

  async send(job: Job, partition?: number): Promise<Reply> {
    await this.ready;
    return this.client.send(job, partition);
  }

  /** Runs one call and reports it to metricsCallback once: a throw or a `success: false` answer fails. */
  async measure<T>(operation: string, userId: string | undefined, amount: number | undefined, run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    let error: string | undefined;
    try {
      const answer = await run();
      const refusal = answer as { success?: unknown; error?: unknown } | null;
      if (refusal?.success === false) error = String(refusal.error);
      return answer;
    } catch (thrown) {
      error = thrown instanceof Error ? thrown.message : String(thrown);
      throw thrown;
    } finally {
      this.callbacks.metricsCallback?.({
        operation, userId: userId ?? "", amount, success: error === undefined, error, durationMs: Date.now() - started,
      });
    }
  }

  /** A balance-changing job: a new id unless given; a refusal is answered, not thrown. */
  change<T extends { success: boolean } = ChangeResult>(operation: string, job: Job, options: CallOptions = {}, amount?: number): Promise<T> {
    return this.measure(operation, job.userId, amount, () => this.apply<T>(job, options));
  }

  /** `change` without the metrics, for calls made of several jobs. */
  async apply<T extends { success: boolean } = ChangeResult>(job: Job, options: CallOptions = {}): Promise<T> {
    return asChange(await this.send({ ...job, id: options.id ?? this.client.newId() })) as unknown as T;
  }

  /** A query: its answer, or a TokenLedgerError. */
  query<T>(operation: string, job: Job, shape: (reply: Reply) => T): Promise<T> {
    return this.measure(operation, job.userId, undefined, async () => shape(orThrow(await this.send(job), job)));
  }
}

function orThrow(reply: Reply, job: Job): Reply {
  if (reply.error) throw new TokenLedgerError(reply.error.code, reply.error.message, reply, job);
  return reply;
}

/** A change's success, or its refusal thrown as a TokenLedgerError. */
function refusalThrown<T extends { success: true }>(result: T | ChangeRefusal, job: Job): T {
  if (!result.success) throw new TokenLedgerError(result.code, result.message, undefined, job);
  return result;
}

const holdJob = (userId: string, amount: number | string, { expiresIn, metadata }: HoldOptions): Job =>
  ({ type: "hold", userId, ...(typeof amount === "number" ? { amount } : { operation: amount }), expiresIn, metadata });

const captureJob = (userId: string, holdId: string, amount: number | undefined, { operationType, metadata }: CaptureOptions): Job =>
  ({ type: "capture", userId, holdId, amount, operationType, metadata });

function asChange(reply: Reply): ChangeResult {
  const { error, ...rest } = reply;
  if (!error) return { duplicate: false, ...rest } as unknown as ChangeSuccess;
  return {
    duplicate: false, ...rest, success: false, code: error.code, message: error.message,
    error: describeError(error.code, error.message),
    ...(typeof reply.balance === "number" ? { newBalance: reply.balance } : {}),
  } as unknown as ChangeRefusal;
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

  canAfford(userId: string, operation: string): Promise<AffordResult> {
    return this.caller.query("canAfford", { type: "canAfford", userId, operation }, (r) => ({
      canAfford: r.canAfford as boolean, cost: r.cost as number, balance: r.balance as number, deficit: r.deficit as number,
    }));
  }

  chargeForOperation(userId: string, operation: string, metadata?: Metadata, options?: CallOptions): Promise<ChangeResult> {
    return this.caller.change("chargeForOperation", { type: "charge", userId, operation, metadata }, options);
  }

  debit(userId: string, spec: { operationType: string; amount: number; metadata?: Metadata }, options?: CallOptions): Promise<ChangeResult> {
    return this.caller.change("debit", { type: "debit", userId, ...spec }, options, spec.amount);
  }

  credit(userId: string, spec: { operationType: string; amount: number; metadata?: Metadata }, options?: CallOptions): Promise<ChangeResult> {
    return this.caller.change("credit", { type: "credit", userId, ...spec }, options, spec.amount);
  }

  /** Credits `amount` back; with `refundOf` (a charge's or debit's job id), `amount` may be left out. */
  refund(userId: string, amount?: number, metadata?: Metadata, options: CallOptions & { refundOf?: string } = {}): Promise<ChangeResult> {
    return this.caller.change("refund", { type: "refund", userId, amount, metadata, refundOf: options.refundOf }, options, amount);
  }

  /** Sets the tier and credits its allocation; one paymentId applies once. */
  purchase(userId: string, tier: string, paymentId: string, months?: number, options?: CallOptions & { metadata?: Metadata }): Promise<PurchaseResult> {
    return this.caller.change("purchase", { type: "purchase", userId, tier, paymentId, months, metadata: options?.metadata }, options);
  }

  /** Creates the account on tier Gift with its allocation; `account_exists` if it exists. */
  openAccount(userId: string, options?: CallOptions): Promise<ChangeResult> {
    return this.caller.change("openAccount", { type: "open", userId }, options);
  }

  /** Opens the account unless it exists; true when it was created by this call. */
  async ensureAccount(userId: string): Promise<boolean> {
    const result = await this.openAccount(userId, { id: `open:${userId}` });
    if (result.success) return !result.duplicate;
    if (result.code === "account_exists") return false;
    throw new TokenLedgerError(result.code, result.message);
  }

  /**
   * Reserves tokens: `amount`, or an operation's cost when a string is given (the capture then
   * defaults to it as operationType). Refused with `insufficient_tokens` when `available` is short.
   */
  hold(userId: string, amount: number | string, options: HoldOptions = {}): Promise<HoldResult> {
    return this.caller.change("hold", holdJob(userId, amount, options), options, typeof amount === "number" ? amount : undefined);
  }

  /** Spends `amount` of a hold (default: all of it) and frees the rest. */
  capture(userId: string, holdId: string, amount?: number, options: CaptureOptions = {}): Promise<CaptureResult> {
    return this.caller.change("capture", captureJob(userId, holdId, amount, options), options, amount);
  }

  /** Frees a hold with nothing spent. */
  release(userId: string, holdId: string, options?: CallOptions): Promise<ReleaseResult> {
    return this.caller.change("release", { type: "release", userId, holdId }, options);
  }

  /** The user's open holds, with `held` and `available`. */
  holds(userId: string): Promise<Holds> {
    return this.caller.query("holds", { type: "holds", userId }, (r) => ({
      holds: (r.holds as OpenHold[]).map((h) => ({ ...h, createdAt: toDate(h.createdAt), expiresAt: toDate(h.expiresAt) })),
      held: r.held as number, available: r.available as number,
    }));
  }

  /**
   * Holds `amount`, runs `fn`, and captures what `fn` reports as used (a number, or `{ used, value }`);
   * nothing used releases the hold. When `fn` throws, the hold is released and the error rethrown.
   * A refused hold or capture throws TokenLedgerError (a refused capture releases the hold first).
   * One metrics report, operation `withHold`.
   */
  withHold<T = undefined>(userId: string, amount: number | string, fn: (hold: HoldSuccess) => Usage<T> | Promise<Usage<T>>,
    options: HoldOptions & { operationType?: string } = {}): Promise<WithHoldResult<T>> {
    const { id, operationType, ...holdOptions } = options;
    return this.caller.measure("withHold", userId, typeof amount === "number" ? amount : undefined, async () => {
      const job = holdJob(userId, amount, holdOptions);
      const hold = refusalThrown(await this.caller.apply<HoldResult>(job, { id }), job);
      const release = () => this.caller.apply<ReleaseResult>({ type: "release", userId, holdId: hold.holdId }).catch(() => undefined);
      let usage: Usage<T>;
      try {
        usage = await fn(hold);
      } catch (thrown) {
        await release();
        throw thrown;
      }
      const { used, value } = typeof usage === "number" ? { used: usage, value: undefined } : usage;
      if (used === 0) {
        await release();
        return { value, used, capture: null };
      }
      const captureJobOf = captureJob(userId, hold.holdId, used, { operationType });
      const capture = await this.caller.apply<CaptureResult>(captureJobOf);
      if (!capture.success) await release();
      return { value, used, capture: refusalThrown(capture, captureJobOf) };
    });
  }

  /** The account, or null when there is none. */
  getBalance(userId: string): Promise<Balance | null> {
    const job = { type: "balance", userId };
    return this.caller.measure("getBalance", userId, undefined, async () => {
      const r = await this.caller.send(job);
      if (r.error?.code === "user_not_found") return null;
      orThrow(r, job);
      return {
        tokensBalance: r.tokensBalance as number, tokensSpent: r.tokensSpent as number,
        held: r.held as number, available: r.available as number,
        grants: (r.grants as Grant[]).map((g) => ({ ...g, expiresAt: toDate(g.expiresAt) })), tier: r.tier as string,
        lastRenewalAt: toDate(r.lastRenewalAt), nextRenewalDate: toDate(r.nextRenewalDate),
        subscriptionExpiresAt: toDateOrNull(r.subscriptionExpiresAt),
      };
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
    return this.caller.query("getUserEntries", job, (r) => ({
      entries: (r.entries as LedgerEntry[]).map((e) => ({ ...e, createdAt: toDate(e.createdAt) })),
      total: r.total as number, limit: r.limit as number, offset: r.offset as number,
    }));
  }

  getUserStatistics(userId: string, startDate: Date | string, endDate: Date | string): Promise<Statistics> {
    const job = { type: "statistics", userId, startDate: isoOf(startDate), endDate: isoOf(endDate) };
    return this.caller.query("getUserStatistics", job, (r) => ({
      totalSpent: r.totalSpent as number, totalEarned: r.totalEarned as number, netChange: r.netChange as number,
      operationCount: r.operationCount as number, byOperation: r.byOperation as Statistics["byOperation"],
    }));
  }
}

export class MonthlyRenewalService {
  private readonly caller: Caller;

  /** `cronExpression`: the worker's `renewal.cron` setting, when not the default. */
  constructor(db: Db, private readonly options: ServiceCallbacks & { cronExpression?: string } = {}) {
    this.caller = new Caller(db, options);
  }

  checkEligibility(userId: string): Promise<Eligibility> {
    return this.caller.query("checkEligibility", { type: "eligibility", userId }, (r) => ({
      eligible: r.eligible as boolean, reason: r.reason as Eligibility["reason"], nextRenewalDate: toDate(r.nextRenewalDate),
      daysUntilRenewal: r.daysUntilRenewal as number, lastRenewalAt: toDate(r.lastRenewalAt), tier: r.tier as string,
    }));
  }

  /** Renews one account if due; `not_eligible` otherwise (a refusal result). */
  renewUser(userId: string, options?: CallOptions): Promise<RenewResult> {
    return this.caller.change("renewUser", { type: "renew", userId }, options);
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
      return orThrow(await this.caller.send(job, k), job) as unknown as RenewAllResult;
    };
    return this.caller.measure("renewAllEligible", undefined, undefined, async () => {
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
