// Starts the real worker against REDIS_URL under a prefix of its own, with a ledger in a new
// temporary folder. Needs REDIS_URL and TOKENLEDGER_BIN.
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, LedgerClient, ClientOptions, OperationMetrics, TokenService, uuidv7 } from "../src";

export const REDIS_URL = process.env.REDIS_URL ?? "";
export const TOKENLEDGER_BIN = process.env.TOKENLEDGER_BIN ?? "";
if (!REDIS_URL || !TOKENLEDGER_BIN) throw new Error("set REDIS_URL and TOKENLEDGER_BIN (clients/test.sh does)");

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Worker {
  readonly prefix = `clients-ts-${uuidv7().slice(-12)}`;
  readonly dir = mkdtempSync(join(tmpdir(), "tokenledger-ts-"));
  readonly database = join(this.dir, "ledger.sqlite");
  readonly config = join(this.dir, "config.json");
  private process?: ChildProcess;
  private readonly clients: LedgerClient[] = [];

  constructor(readonly redisUrl = REDIS_URL) {
    // The scheduler's cron is one no test run meets, so that only the tests renew.
    writeFileSync(this.config, JSON.stringify({ renewal: { cron: "0 2 29 2 *" } }));
  }

  start(): this {
    const log = openSync(join(this.dir, "worker.log"), "a");
    this.process = spawn(TOKENLEDGER_BIN, ["worker"], {
      env: {
        ...process.env, TOKENLEDGER_REDIS_URL: this.redisUrl, TOKENLEDGER_DATABASE: this.database,
        TOKENLEDGER_PREFIX: this.prefix, TOKENLEDGER_HTTP: "off", TOKENLEDGER_CONFIG: this.config,
      },
      stdio: ["ignore", log, log],
    });
    return this;
  }

  signal(name: string): void {
    this.process?.kill(name);
    // SIGSTOP takes effect when each of the worker's threads next runs: wait until all have
    // stopped, or a loaded machine lets the worker take the next job before it stops.
    const pid = this.process?.pid;
    if (name !== "SIGSTOP" || pid === undefined) return;
    const stopped = (task: string) =>
      /^State:\s+T/m.test(readFileSync(`/proc/${pid}/task/${task}/status`, "utf8"));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !readdirSync(`/proc/${pid}/task`).every(stopped)) { /* a few ms at most */ }
  }

  /** SIGTERM, and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    await exited;
  }

  /** A client on this worker's prefix, closed by `close()`. */
  async client(options: ClientOptions = {}): Promise<LedgerClient> {
    const client = await connect({ url: this.redisUrl, prefix: this.prefix, ...options });
    this.clients.push(client);
    return client;
  }

  /**
   * Moves the accounts' renewal clocks `days` back (the worker stopped meanwhile), so that they
   * are due: the ledger keeps real time, and a month cannot be waited for.
   */
  async age(userIds: string[], days: number): Promise<void> {
    await this.stop();
    const ms = days * 86_400_000;
    const list = userIds.map((u) => `'${u.replace(/'/g, "''")}'`).join(",");
    execFileSync("sqlite3", [this.database,
      `UPDATE accounts SET anchor_ms = anchor_ms - ${ms}, last_renewal_ms = last_renewal_ms - ${ms}, next_renewal_ms = next_renewal_ms - ${ms} WHERE user_id IN (${list})`]);
    this.start();
  }

  log(): string {
    return readFileSync(join(this.dir, "worker.log"), "utf8");
  }

  async close(): Promise<void> {
    await this.stop();
    for (const client of this.clients) await client.close().catch(() => undefined);
    const cleaner = await connect({ url: this.redisUrl, prefix: this.prefix });
    try {
      for await (const key of cleaner.connection.scanIterator({ MATCH: `${this.prefix}*` })) await cleaner.connection.del(key);
    } finally {
      await cleaner.close();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A user id no other test uses. */
export const newUser = (name: string) => `${name}-${uuidv7().slice(-12)}`;

/** A TokenService on `worker` whose metrics land in the returned array, for a test file's `before`. */
export async function observedService(worker: Worker): Promise<{ service: TokenService; metrics: OperationMetrics[] }> {
  const metrics: OperationMetrics[] = [];
  const service = new TokenService(await worker.client(), { metricsCallback: (m) => metrics.push(m) });
  return { service, metrics };
}

/** A new user with an open account (100 tokens, the Gift allocation). */
export async function openedUser(service: TokenService, name: string): Promise<string> {
  const userId = newUser(name);
  if (!(await service.ensureAccount(userId))) throw new Error(`${userId} was not opened`);
  return userId;
}

/** A private redis-server (for restarts), on a free port, with a password. */
export class PrivateRedis {
  readonly port = execFileSync("python3", ["-c",
    "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"], { encoding: "utf8" }).trim();
  readonly url = `redis://127.0.0.1:${this.port}/0`;
  private process?: ChildProcess;

  constructor(readonly password: string) {}

  async start(): Promise<void> {
    this.process = spawn(process.env.REDIS_SERVER ?? "redis-server", ["--port", this.port, "--bind", "127.0.0.1",
      "--save", "", "--appendonly", "no", "--requirepass", this.password], { stdio: "ignore" });
    for (let i = 0; i < 100; i++) {
      try {
        execFileSync("redis-cli", ["-p", this.port, "--no-auth-warning", "-a", this.password, "ping"], { stdio: "ignore" });
        return;
      } catch {
        await sleep(50);
      }
    }
    throw new Error("redis-server did not start");
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGKILL");
    await exited;
  }
}

/** Polls `check` until it holds, for up to `ms`. */
export async function eventually(check: () => boolean, ms = 10_000): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(25)) if (check()) return;
  throw new Error("timed out waiting for a condition");
}
