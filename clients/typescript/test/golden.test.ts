// The codes and message shapes the worker uses, as the repository's golden files hold them: the
// client's lists must equal them, and its readers must read every golden reply and invalidation
// (Tests/Golden/transcript.json, the same file the Swift tests replay).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DEAD_LETTER_CODES, REFUSAL_CODES, ReplyShapeError, readReply, TokenLedgerError } from "../src";
import { readBalanceMessage } from "../src/client";
import { queryReaders, readRefusal, successReaders } from "../src/service";
import { Fields } from "../src/shape";
import { sleep, Worker } from "./harness";

const worker = new Worker();
before(() => worker.start());
after(() => worker.close());

const root = join(__dirname, "..", "..", "..", "..");
const golden = (name: string): unknown => JSON.parse(readFileSync(join(root, "Tests", "Golden", name), "utf8"));
const codes = golden("error-codes.json") as { refusals: string[]; deadLetters: string[] };
const sorted = (list: readonly string[]) => [...new Set(list)].sort();

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Step = {
  name: string; job?: { type: string; userId?: string } & Record<string, Json>; raw?: string; rawBase64?: string; await?: string;
  noReply?: boolean; restart?: { sql: string }; reply?: Record<string, Json>; invalidations: Record<string, Json>[]; events: Record<string, string>[];
  alerts: Record<string, Json>[]; deadLetters: Record<string, Json>[];
};
type Scenario = { name: string; partitionCount: number; steps: Step[] };
const transcript = golden("transcript.json") as { scenarios: Scenario[] };
const steps = transcript.scenarios.flatMap((s) => s.steps);

/** A transcript value with its placeholders (Tests/Golden/README.md) given sample values, as a worker would send it. */
function concrete(value: Json): Json {
  if (value === "<int>") return 30;
  if (typeof value === "string") {
    return value.replace(/<x\*(\d+)>/g, (_, n: string) => "x".repeat(Number(n))).replaceAll("<P>", "tokens")
      .replaceAll("<time>", "2026-01-31T02:00:00.000Z");
  }
  if (Array.isArray(value)) return value.map(concrete);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, concrete(v)]));
  return value;
}

/** The job types of the contract. */
const contractTypes = ["open", "charge", "debit", "credit", "refund", "purchase", "renew", "renewAll", "balance", "canAfford",
  "history", "statistics", "eligibility", "hold", "capture", "release", "holds", "monitor", "unmonitor", "setTier", "balanceAt"];
/** Each event kind and the fields the contract gives it (besides `event`; `partition` with N > 1). */
const eventFields: Record<string, string[]> = {
  "job.applied": ["type", "success", "at"],
  "hold.expired": ["userId", "holdId", "amount", "at"],
  "grant.expired": ["userId", "grantId", "tokensAmount", "expiresAt", "at"],
  "balance.low": ["userId", "monitorId", "threshold", "available", "at"],
  "renewal.completed": ["slot", "totalProcessed", "successful", "failed", "at"],
};

test("the golden refusal codes are those of Sources/LedgerModel/Refusal.swift", () => {
  const swift = readFileSync(join(root, "Sources", "LedgerModel", "Refusal.swift"), "utf8");
  const declared = [...swift.matchAll(/public static let \w+ = RefusalCode\("([a-z_]+)"\)/g)].map((m) => m[1]);
  assert.ok(declared.length > 10, "Refusal.swift declares its codes as `public static let name = RefusalCode(\"code\")`");
  assert.deepEqual(sorted(codes.refusals), sorted(declared));
});

test("the golden dead-letter codes are those the worker's sources give a JobError", () => {
  const found = new Set<string>(["invalid_job"]); // JobError's default
  for (const folder of ["JobWire", "Worker"]) {
    const dir = join(root, "Sources", folder);
    for (const file of readdirSync(dir).filter((name) => name.endsWith(".swift"))) {
      for (const m of readFileSync(join(dir, file), "utf8").matchAll(/JobError\(code: "([a-z_]+)"/g)) found.add(m[1]);
    }
  }
  assert.deepEqual(sorted(codes.deadLetters), sorted([...found]));
});

test("the client's code lists are the golden ones", () => {
  assert.deepEqual(sorted(REFUSAL_CODES), sorted(codes.refusals));
  assert.deepEqual(sorted(DEAD_LETTER_CODES), sorted(codes.deadLetters));
  for (const code of ["invalid_threshold", "monitor_not_found", "reserved_grant_id"]) assert.ok((REFUSAL_CODES as readonly string[]).includes(code));
});

test("every golden reply of a real worker reads", () => {
  const withReplies = steps.filter((step) => step.reply);
  assert.ok(withReplies.length >= 90);
  const types = new Set<string>();
  for (const step of withReplies) {
    const text = JSON.stringify(concrete(step.reply!));
    if (!step.job) {
      // A dead letter's failure reply (`type` is null when the job named none): the dead letter's code.
      const error = step.reply!.error as { code: string };
      assert.ok(DEAD_LETTER_CODES.includes(error.code as never), step.name);
      assert.equal(error.code, (step.deadLetters[0].error as { code: string }).code, step.name);
      continue;
    }
    const { reply, fields } = readReply(text);
    assert.equal(reply.type, step.job.type, step.name);
    if (reply.error) {
      const refusal = readRefusal(reply, fields, reply.error);
      assert.ok(codes.refusals.includes(refusal.code) || codes.deadLetters.includes(refusal.code), `${step.name}: ${refusal.code}`);
      continue;
    }
    const reader = successReaders[reply.type] ?? queryReaders[reply.type];
    assert.ok(reader, `${step.name}: a reader for ${reply.type}`);
    reader(fields); // throws a ReplyShapeError naming the field it cannot read
    types.add(reply.type);
  }
  assert.deepEqual(sorted([...types]), sorted(contractTypes));
  assert.deepEqual(sorted([...Object.keys(successReaders), ...Object.keys(queryReaders)]), sorted(contractTypes));
});

test("every golden invalidation reads", () => {
  const messages = transcript.scenarios.flatMap((s) => s.steps.flatMap((step) => step.invalidations.map((m) => ({ s, m }))));
  assert.ok(messages.length >= 35);
  for (const { s, m } of messages) {
    const message = readBalanceMessage(JSON.stringify(concrete(m)));
    assert.equal(message.available, message.tokensBalance - message.held);
    assert.equal(message.partition === undefined, s.partitionCount === 1);
    assert.equal(message.ledgerEntryId === null, message.operationType === null);
    assert.equal(message.ledgerEntryId === null, message.tokensAmount === null);
  }
});

test("every golden event and alert has its contract fields", () => {
  const events = transcript.scenarios.flatMap((s) => s.steps.flatMap((step) => step.events.map((e) => ({ s, e }))));
  assert.deepEqual(sorted(events.map(({ e }) => e.event)), sorted(Object.keys(eventFields)));
  for (const { s, e } of events) {
    assert.ok(Object.values(e).every((v) => typeof v === "string"), JSON.stringify(e)); // stream values are strings
    for (const field of eventFields[e.event]) assert.ok(field in e, `${e.event} has ${field}`);
    assert.equal("partition" in e, s.partitionCount > 1);
  }
  const alerts = steps.flatMap((step) => step.alerts.map((alert) => ({ step, alert })));
  assert.ok(alerts.length > 0);
  for (const { step, alert } of alerts) {
    // The message on P:alerts is the stream's balance.low as JSON: the same fields, typed.
    const low = step.events.find((e) => e.event === "balance.low" && e.monitorId === alert.monitorId);
    const asStream = Object.fromEntries(Object.entries(alert).filter(([, v]) => v !== null).map(([k, v]) => [k, String(v)]));
    assert.deepEqual(asStream, low, step.name);
    assert.ok(Number.isInteger(new Fields(alert as Record<string, unknown>, "", "").int("threshold")));
  }
});

test("every golden dead letter keeps its job and names its cause", () => {
  const letters = steps.flatMap((step) => step.deadLetters.map((letter) => ({ step, letter })));
  assert.deepEqual(sorted(letters.map(({ letter }) => (letter.error as { code: string }).code)), ["invalid_job", "wrong_partition"]);
  for (const { step, letter } of letters) {
    const error = letter.error as { code: string; message: string };
    assert.ok(DEAD_LETTER_CODES.includes(error.code as never) && error.message.length > 0, step.name);
    assert.equal(typeof letter.failedAt, "string", step.name);
    assert.equal("job" in letter, !("jobBase64" in letter), step.name);
    if (step.raw !== undefined) assert.equal(letter.job, step.raw, step.name);
    else assert.equal(letter.jobBase64, step.rawBase64, step.name);
  }
});

test("a reply of another shape fails naming the field", () => {
  const charge = JSON.stringify({ id: "c-1", type: "charge", success: true, newBalance: "90", ledgerEntryId: 2, tokensAmount: -10, duplicate: false });
  const { fields } = readReply(charge);
  assert.throws(() => successReaders.charge(fields),
    (e: unknown) => e instanceof ReplyShapeError && e instanceof TokenLedgerError && e.field === "newBalance" && e.code === "invalid_reply");
  const entries = readReply(JSON.stringify({ type: "history", success: true, entries: [{ id: 1 }, { id: "two" }] })).fields;
  assert.throws(() => entries.list("entries").map((e) => e.int("id")), (e: unknown) => e instanceof ReplyShapeError && e.field === "entries[1].id");
  assert.throws(() => readReply('{"type": "charge"}'), (e: unknown) => e instanceof ReplyShapeError && e.field === "success");
  assert.throws(() => readReply('{"type": "charge", "success": false}'), (e: unknown) => e instanceof ReplyShapeError && e.field === "error");
});

test("a balanceAt reply that mixes an entry and no entry fails naming the field", () => {
  const none = { id: null, type: "balanceAt", success: true, userId: "u", at: "2026-01-01T00:00:00.000Z", exists: false,
    tokensBalance: 0, tokensSpent: 0, ledgerEntryId: null, createdAt: null };
  const read = (reply: object) => successReaders.balanceAt(readReply(JSON.stringify(reply)).fields);
  assert.deepEqual(read(none), { exists: false, userId: "u", at: new Date(none.at), tokensBalance: 0, tokensSpent: 0, ledgerEntryId: null, createdAt: null });
  for (const [field, value] of [["ledgerEntryId", 5], ["createdAt", "2026-01-01T00:00:00.000Z"], ["tokensBalance", 7]] as const) {
    assert.throws(() => read({ ...none, [field]: value }), (e: unknown) => e instanceof ReplyShapeError && e.field === field, field);
  }
  assert.throws(() => read({ ...none, exists: true }), (e: unknown) => e instanceof ReplyShapeError && e.field === "ledgerEntryId");
});

test("a 64-bit value past 2^53 - 1 is refused, not rounded", () => {
  // 2^53 + 1 cannot be a JavaScript number: JSON.parse makes it 2^53, which is no longer exact.
  const text = '{"id": "c-1", "type": "charge", "success": true, "newBalance": 5, "ledgerEntryId": 9007199254740993, "tokensAmount": -5}';
  assert.throws(() => successReaders.charge(readReply(text).fields), (e: unknown) => e instanceof ReplyShapeError && e.field === "ledgerEntryId");
  const safe = text.replace("9007199254740993", "9007199254740991");
  assert.equal((successReaders.charge(readReply(safe).fields) as { ledgerEntryId: number }).ledgerEntryId, 9007199254740991);
});

/** A JSON value's shape: its keys and the kinds of their values, whatever the values. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length ? [shapeOf(value[0])] : [];
  if (value === null) return "null";
  if (typeof value === "object") {
    const shape: Record<string, unknown> = {};
    for (const [key, member] of Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) shape[key] = shapeOf(member);
    return shape;
  }
  return typeof value;
}

test("a real worker still answers the golden jobs with the golden shapes", async () => {
  const [scenario] = transcript.scenarios;
  assert.equal(scenario.partitionCount, 1);
  const client = await worker.client();
  for (const step of scenario.steps) {
    if (step.restart) {
      // renewal clocks moved back while the worker is stopped
      await worker.stop();
      execFileSync("sqlite3", [worker.database, step.restart.sql]);
      worker.start();
    }
    if (step.await) {
      // an expiry the worker writes on its own within seconds
      const expired = async () => (await client.connection.xRange(client.key("events"), "-", "+")).some((e) => e.message.event === step.await);
      for (const deadline = Date.now() + 30_000; !(await expired()); await sleep(25)) assert.ok(Date.now() < deadline, `${step.name}: no ${step.await}`);
    } else if (step.job) {
      // a worker of its own: the golden ids and users are fresh here, so the jobs replay as they were captured
      const reply = await client.send(step.job);
      if (!step.reply) continue;
      const { id, type, success, duplicate, error, ...rest } = reply;
      const live = { id, type, success, ...(duplicate === undefined ? {} : { duplicate }), ...(error ? { error } : {}), ...rest };
      assert.deepEqual(shapeOf(live), shapeOf(concrete(step.reply)), step.name);
    }
  }
});
