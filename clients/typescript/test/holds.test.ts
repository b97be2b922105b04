// Reservations: hold, capture, release, holds and withHold, against the real worker.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { OperationMetrics, TokenLedgerError, TokenService } from "../src";
import { observedService, openedUser, Worker } from "./harness";

const worker = new Worker();
let service: TokenService;
let metrics: OperationMetrics[] = [];

before(async () => {
  worker.start();
  ({ service, metrics } = await observedService(worker));
});
after(() => worker.close());

const opened = (name: string) => openedUser(service, name);

test("a hold, then a capture of less: the rest is freed", async () => {
  const userId = await opened("hold");
  const hold = await service.hold(userId, 40, { expiresIn: 120 });
  assert.ok(hold.success, hold.error);
  assert.equal(hold.holdId, hold.id);
  assert.equal(hold.amount, 40);
  assert.equal(hold.available, 60);
  const held = await service.getBalance(userId);
  assert.equal(held?.tokensBalance, 100);
  assert.equal(held?.held, 40);
  assert.equal(held?.available, 60);
  assert.deepEqual(held?.grants, []);
  const open = await service.holds(userId);
  assert.deepEqual(open.holds.map((h) => [h.holdId, h.amount, h.operationType]), [[hold.holdId, 40, null]]);
  assert.ok(open.holds[0].expiresAt instanceof Date);
  assert.equal(open.held, 40);

  metrics.length = 0;
  const capture = await service.capture(userId, hold.holdId, 25, { operationType: "llm_tokens" });
  assert.ok(capture.success, capture.error);
  assert.deepEqual([capture.newBalance, capture.tokensAmount, capture.released, capture.available], [75, -25, 15, 75]);
  assert.equal(typeof capture.ledgerEntryId, "number");
  assert.deepEqual(metrics.map((m) => [m.operation, m.amount, m.success]), [["capture", 25, true]]);
  const after = await service.getBalance(userId);
  assert.deepEqual([after?.tokensBalance, after?.tokensSpent, after?.held, after?.available], [75, 25, 0, 75]);
  assert.deepEqual((await service.holds(userId)).holds, []);

  const again = await service.capture(userId, hold.holdId);
  assert.ok(!again.success);
  assert.equal(again.code, "hold_closed");
  assert.equal(again.state, "captured");
});

test("a capture above the hold is capture_exceeds_hold; a release frees it all", async () => {
  const userId = await opened("exceeds");
  const hold = await service.holdForOperation(userId, "image_generation");
  assert.ok(hold.success, hold.error);
  assert.equal(hold.amount, 10);
  const over = await service.capture(userId, hold.holdId, 11);
  assert.ok(!over.success);
  assert.equal(over.code, "capture_exceeds_hold");
  assert.deepEqual([over.held, over.requested], [10, 11]);
  assert.match(over.error, /^Capture exceeds hold: /);

  const released = await service.release(userId, hold.holdId);
  assert.ok(released.success, released.error);
  assert.deepEqual([released.holdId, released.released, released.available], [hold.holdId, 10, 100]);
  const balance = await service.getBalance(userId);
  assert.deepEqual([balance?.tokensBalance, balance?.held, balance?.available], [100, 0, 100]);
  const late = await service.capture(userId, hold.holdId);
  assert.ok(!late.success);
  assert.deepEqual([late.code, late.state], ["hold_closed", "released"]);
  const unknown = await service.release(userId, "no-such-hold");
  assert.ok(!unknown.success);
  assert.equal(unknown.code, "hold_not_found");
});

test("a hold beyond the available tokens is refused", async () => {
  const userId = await opened("short");
  assert.ok((await service.hold(userId, 70)).success);
  const refused = await service.hold(userId, 40);
  assert.ok(!refused.success);
  assert.equal(refused.code, "insufficient_tokens");
  assert.deepEqual([refused.available, refused.deficit], [30, 10]);
  assert.ok(refused.error.includes("Insufficient tokens"));
  const charge = await service.chargeForOperation(userId, "image_generation"); // 10 of the 30 available
  assert.ok(charge.success, charge.error);
  const bad = await service.hold(userId, 5, { expiresIn: 8 * 86_400 });
  assert.ok(!bad.success);
  assert.equal(bad.code, "invalid_expiry");
});

test("withHold captures what the function reports as used", async () => {
  const userId = await opened("withhold");
  metrics.length = 0;
  const result = await service.withHold(userId, 50, async (hold) => {
    assert.equal(hold.available, 50);
    assert.equal((await service.getBalance(userId))?.held, 50);
    return { used: 32, value: "the answer" };
  }, { operationType: "llm_tokens" });
  assert.equal(result.value, "the answer");
  assert.equal(result.used, 32);
  assert.deepEqual([result.capture?.newBalance, result.capture?.released, result.capture?.available], [68, 18, 68]);
  // one report for the whole call (the getBalance inside reports its own)
  assert.deepEqual(metrics.filter((m) => m.operation !== "getBalance").map((m) => [m.operation, m.amount, m.success]), [["withHold", 50, true]]);
  const [entry] = await service.getLedger().getUserEntries(userId, { limit: 1 });
  assert.deepEqual([entry.operationType, entry.tokensAmount], ["llm_tokens", -32]);

  const none = await service.withHold(userId, 10, () => 0);
  assert.equal(none.capture, null);
  assert.deepEqual((await service.holds(userId)).holds, []);
  assert.equal((await service.getBalance(userId))?.available, 68);
});

test("withHold releases the hold when the function throws, and rethrows", async () => {
  const userId = await opened("throws");
  metrics.length = 0;
  await assert.rejects(service.withHold(userId, 60, async () => { throw new Error("generation failed"); }), /generation failed/);
  const balance = await service.getBalance(userId);
  assert.deepEqual([balance?.tokensBalance, balance?.held, balance?.available], [100, 0, 100]);
  assert.deepEqual(metrics[0], { ...metrics[0], operation: "withHold", success: false, error: "generation failed" });

  await assert.rejects(service.withHold(userId, 500, () => 1), (e: unknown) =>
    e instanceof TokenLedgerError && e.code === "insufficient_tokens" && e.message.startsWith("Insufficient tokens"));
  await assert.rejects(service.withHold(userId, 5, () => 6), (e: unknown) => e instanceof TokenLedgerError && e.code === "capture_exceeds_hold");
  assert.equal((await service.getBalance(userId))?.available, 100); // the refused capture released its hold
});

test("a hold sent again with its id answers duplicate: true", async () => {
  const userId = await opened("replay");
  const id = `hold:${userId}`;
  const first = await service.hold(userId, 30, { id });
  assert.ok(first.success, first.error);
  assert.equal(first.duplicate, false);
  const replay = await service.hold(userId, 30, { id });
  assert.ok(replay.success, replay.error);
  assert.equal(replay.duplicate, true);
  assert.equal(replay.holdId, id);
  assert.equal((await service.getBalance(userId))?.held, 30); // held once
});
