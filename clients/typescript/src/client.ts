// The connection to a TokenLedger queue: sends jobs, waits for their replies, resends on timeout,
// routes each user to its partition, and follows the balance invalidations.
import { commandOptions, createClient } from "redis";
import { Job, Reply, TokenLedgerError } from "./errors";
import { partitionOf, uuidv7 } from "./ids";
import { Fields, isObject, readReply } from "./shape";
import { UserTable } from "./service";

export { describeError, Job, Reply, ReplyShapeError, TokenLedgerError } from "./errors";
export { ErrorCode } from "./codes";

export interface ClientOptions {
  /** Default: TOKENLEDGER_REDIS_URL, else redis://127.0.0.1:6379/0. Never put a password here. */
  url?: string;
  /** Key prefix P. Default: TOKENLEDGER_PREFIX, else `tokens`. */
  prefix?: string;
  /** N, the ledger's partition count. Default 1. */
  partitions?: number;
  /** How long one attempt waits for its reply. Default 10 000 ms. */
  timeoutMs?: number;
  /** How many times a job is sent before `timeout` is thrown. Default 3. */
  attempts?: number;
  /** Connections for concurrent waits (each wait holds one). Default 16. */
  poolSize?: number;
  /** Told of every resend (attempt >= 2). */
  onResend?: (job: Job, attempt: number) => void;
}

export type Env = Record<string, string | undefined>;

/** Reads the URL, password and prefix, refusing a password written into the URL. */
export function connectionSettings(options: ClientOptions, env: Env = process.env) {
  const url = options.url ?? env.TOKENLEDGER_REDIS_URL ?? "redis://127.0.0.1:6379/0";
  if (/^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(url)) {
    throw new Error("the Redis URL must not carry a password: set TOKENLEDGER_REDIS_PASSWORD");
  }
  return {
    url,
    username: env.TOKENLEDGER_REDIS_USERNAME || undefined,
    password: env.TOKENLEDGER_REDIS_PASSWORD || undefined,
    prefix: options.prefix ?? env.TOKENLEDGER_PREFIX ?? "tokens",
  };
}

type Redis = ReturnType<typeof createClient>;

export class LedgerClient {
  readonly prefix: string;
  readonly partitions: number;
  private readonly redis: Redis;
  private subscriber?: Redis;
  private readonly balanceListeners = new Set<(message: BalanceMessage) => void>();

  constructor(readonly options: ClientOptions = {}) {
    const settings = connectionSettings(options);
    this.prefix = settings.prefix;
    this.partitions = options.partitions ?? 1;
    if (!Number.isInteger(this.partitions) || this.partitions < 1) throw new Error("partitions must be an integer >= 1");
    this.redis = createClient({
      url: settings.url,
      username: settings.username,
      password: settings.password,
      isolationPoolOptions: { min: 0, max: options.poolSize ?? 16 },
    });
    this.redis.on("error", () => undefined); // reconnects by itself; calls fail or wait meanwhile
  }

  /** Opens the connection; `connect(options)` below does `new` and this in one step. */
  async connect(): Promise<this> {
    if (!this.redis.isOpen) await this.redis.connect();
    return this;
  }

  /** The key `P:<name>` of a partition: `P:{k}:<name>` when N > 1. */
  key(name: string, partition = 0): string {
    return this.partitions > 1 ? `${this.prefix}:{${partition}}:${name}` : `${this.prefix}:${name}`;
  }

  /** The queue of a user's partition. */
  jobsKey(userId: string): string {
    return this.key("jobs", partitionOf(userId, this.partitions));
  }

  private users?: UserTable;

  /**
   * `db.user.update({ where: { id }, data: { tier, subscriptionExpiresAt } })`, as the guide's
   * application wrote its user table: the tier and expiry go to the ledger (see UserTable).
   */
  get user(): UserTable {
    return (this.users ??= new UserTable(this));
  }

  /** The raw connection, for helpers such as `EventConsumer`. */
  get connection(): Redis {
    return this.redis;
  }

  /**
   * Sends a job and answers its reply. The reply comes on a key of its own; when none comes within
   * `timeoutMs`, the same job (same id) is pushed again, up to `attempts` times. A resent job that
   * was applied meanwhile answers its first result with `duplicate: true`.
   */
  async send(job: Job, partition?: number): Promise<Reply> {
    return (await this.exchange(job, partition)).reply;
  }

  /** `send`, answering the reply's checked fields too. */
  async exchange(job: Job, partition?: number): Promise<{ reply: Reply; fields: Fields }> {
    const replyTo = `${this.prefix}:reply:${uuidv7()}`;
    const payload = JSON.stringify({ ...job, replyTo });
    const queue = partition !== undefined ? this.key("jobs", partition)
      : job.userId !== undefined ? this.jobsKey(job.userId) : this.key("jobs");
    const attempts = this.options.attempts ?? 3;
    const seconds = (this.options.timeoutMs ?? 10_000) / 1000;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) this.options.onResend?.(job, attempt);
      await this.redis.lPush(queue, payload);
      const got = await this.redis.brPop(commandOptions({ isolated: true }), replyTo, seconds);
      if (got) {
        await this.redis.del(replyTo);
        return readReply(got.element);
      }
    }
    throw new TokenLedgerError("timeout", `No reply to job ${job.id ?? job.type} after ${attempts} attempts of ${seconds} s; send it again with the same id.`, undefined, job);
  }

  /** A new time-ordered job id. */
  newId(): string {
    return uuidv7();
  }

  /**
   * Calls `listener` with every message on `P:balance`. One subscriber connection serves all
   * listeners; it reconnects and subscribes again by itself after Redis restarts (messages sent
   * while it was away are lost: see the contract's Invalidations). Returns the unsubscribe.
   */
  async onBalance(listener: (message: BalanceMessage) => void): Promise<() => void> {
    this.balanceListeners.add(listener);
    if (!this.subscriber) {
      this.subscriber = this.redis.duplicate();
      this.subscriber.on("error", () => undefined);
      await this.subscriber.connect();
      await this.subscriber.subscribe(`${this.prefix}:balance`, (text) => {
        let message: BalanceMessage;
        try {
          message = readBalanceMessage(text);
        } catch {
          return; // not an invalidation this client can read: nothing to tell
        }
        for (const each of this.balanceListeners) each(message);
      });
    }
    return () => this.balanceListeners.delete(listener);
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    if (this.subscriber?.isOpen) await this.subscriber.quit();
    if (this.redis.isOpen) await this.redis.quit();
  }
}

/** One invalidation (contract "Invalidations"). */
export interface BalanceMessage {
  userId: string;
  tokensBalance: number;
  tokensSpent: number;
  held: number;
  available: number;
  tier: string;
  ledgerEntryId: number | null;
  operationType: string | null;
  tokensAmount: number | null;
  at: string;
  /** With N > 1 partitions: the partition of the change. */
  partition?: number;
}

/** Reads one invalidation (a message on P:balance); throws a ReplyShapeError naming the field it cannot read. */
export function readBalanceMessage(text: string): BalanceMessage {
  const parsed: unknown = JSON.parse(text);
  if (!isObject(parsed)) throw new Error("not an object");
  const f = new Fields(parsed, "", text);
  return {
    userId: f.str("userId"), tokensBalance: f.int("tokensBalance"), tokensSpent: f.int("tokensSpent"),
    held: f.int("held"), available: f.int("available"), tier: f.str("tier"), ledgerEntryId: f.intOrNull("ledgerEntryId"),
    operationType: f.strOrNull("operationType"), tokensAmount: f.intOrNull("tokensAmount"), at: f.str("at"),
    partition: f.optInt("partition"),
  };
}

/** A connected client: `const db = await connect({ url })`. */
export async function connect(options: ClientOptions = {}): Promise<LedgerClient> {
  return new LedgerClient(options).connect();
}
