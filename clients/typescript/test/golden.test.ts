// The codes and reply shapes the worker uses, as the repository's golden files hold them: the
// client's lists must equal them, and its readers must read every golden reply.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DEAD_LETTER_CODES, REFUSAL_CODES, ReplyShapeError, readReply, TokenLedgerError } from "../src";
import { readRefusal, successReaders } from "../src/service";
import { Worker } from "./harness";

const worker = new Worker();
before(() => worker.start());
after(() => worker.close());

const root = join(__dirname, "..", "..", "..", "..");
const golden = (name: string): unknown => JSON.parse(readFileSync(join(root, "Tests", "Golden", name), "utf8"));
const codes = golden("error-codes.json") as { refusals: string[]; deadLetters: string[] };
const sorted = (list: readonly string[]) => [...new Set(list)].sort();

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
  const { examples } = golden("replies.json") as { examples: { name: string; job: { type: string }; reply: unknown }[] };
  assert.ok(examples.length >= 30);
  const types = new Set<string>();
  for (const example of examples) {
    const { reply, fields } = readReply(JSON.stringify(example.reply));
    assert.equal(reply.type, example.job.type, example.name);
    if (reply.error) {
      const refusal = readRefusal(reply, fields, reply.error);
      assert.ok(codes.refusals.includes(refusal.code) || codes.deadLetters.includes(refusal.code), `${example.name}: ${refusal.code}`);
    } else if (successReaders[reply.type]) {
      types.add(reply.type);
      successReaders[reply.type](fields); // throws a ReplyShapeError naming the field it cannot read
    }
  }
  assert.deepEqual(sorted([...types]), sorted(Object.keys(successReaders).filter((t) => t !== "renew")));
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
  const { examples } = golden("replies.json") as { examples: { name: string; job: { type: string; userId?: string }; reply: unknown }[] };
  const client = await worker.client();
  for (const example of examples) {
    // a worker of its own: the golden ids and users are fresh here, so the jobs replay as they were captured
    const reply = await client.send(example.job);
    const { id, type, success, duplicate, error, ...rest } = reply;
    const live = { id, type, success, ...(duplicate === undefined ? {} : { duplicate }), ...(error ? { error } : {}), ...rest };
    assert.deepEqual(shapeOf(live), shapeOf(example.reply), example.name);
  }
});
