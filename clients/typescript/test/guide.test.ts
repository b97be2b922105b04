// The original guide's examples, against the real worker.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { OperationMetrics, OperationType, SubscriptionTier, TokenLedgerError, TokenService, unwrap } from "../src";
import { newUser, observedService, openedUser, Worker } from "./harness";

const worker = new Worker();
let service: TokenService;
let metrics: OperationMetrics[] = [];

before(async () => {
  worker.start();
  ({ service, metrics } = await observedService(worker));
});
after(() => worker.close());

const opened = (name: string) => openedUser(service, name);

test("charging for an image, with a refund when generation fails", async () => {
  const userId = await opened("image");
  const check = await service.canAfford(userId, "image_generation");
  assert.deepEqual(check, { canAfford: true, cost: 10, balance: 100, deficit: 0 });

  const charge = await service.chargeForOperation(userId, "image_generation", { prompt: "a red fox" });
  assert.ok(charge.success, charge.error);
  assert.equal(charge.newBalance, 90);
  assert.equal(typeof charge.ledgerEntryId, "number");

  // generation fails: give the tokens back, naming the charge
  const refund = await service.refund(userId, undefined, { reason: "generation_failed" }, { refundOf: charge.id });
  assert.ok(refund.success, refund.error);
  assert.equal(refund.newBalance, 100);
  assert.equal((await service.getBalance(userId))?.tokensSpent, 0);
});

test("a chat message", async () => {
  const userId = await opened("chat");
  metrics.length = 0;
  const result = await service.chargeForOperation(userId, "chatgpt_message", { conversationId: "c-1" });
  assert.ok(result.success);
  assert.equal(result.newBalance, 95);
  assert.equal(result.tokensAmount, -5);
  assert.equal(result.duplicate, false);
  assert.equal(metrics.length, 1);
  const [m] = metrics;
  assert.equal(m.operation, "chargeForOperation");
  assert.equal(m.userId, userId);
  assert.equal(m.success, true);
  assert.equal(m.error, undefined);
  assert.ok(m.durationMs >= 0);
  assert.equal(m.amount, 5); // a charge's amount is its cost
});

test("metrics name a charge's cost as its amount, refused or not", async () => {
  const userId = await opened("charge-metrics");
  metrics.length = 0;
  await service.chargeForOperation(userId, "image_generation");
  await service.debit(userId, { operationType: "api_call", amount: 88 });
  const refused = await service.chargeForOperation(userId, "image_generation");
  assert.equal(refused.code, "insufficient_tokens");
  assert.deepEqual(metrics.map((m) => [m.operation, m.amount, m.success]),
    [["chargeForOperation", 10, true], ["debit", 88, true], ["chargeForOperation", 10, false]]);
});

test("SubscriptionTier is a value and a type, OperationType a type", async () => {
  const tier: SubscriptionTier = SubscriptionTier.Gift;
  const operation: OperationType = "image_generation";
  assert.deepEqual(Object.values(SubscriptionTier), ["Gift", "Professional", "Business"]);
  const userId = await opened("tier");
  assert.equal((await service.getBalance(userId))?.tier, tier);
  assert.ok((await service.chargeForOperation(userId, operation)).success);
  const bought = unwrap(await service.purchase(newUser("tier-buyer"), SubscriptionTier.Business, `pi_${userId}`));
  assert.equal(bought.tier, SubscriptionTier.Business);
  assert.equal(bought.newBalance, 10_000);
});

test("monitors: made, replaced, removed", async () => {
  const userId = await opened("monitor");
  const made = unwrap(await service.monitor(userId, 50, { monitorId: "low" }));
  assert.deepEqual([made.monitorId, made.threshold, made.armed, made.replaced, made.duplicate], ["low", 50, true, false, false]);
  const replaced = unwrap(await service.monitor(userId, 500, { monitorId: "low" }));
  assert.deepEqual([replaced.threshold, replaced.armed, replaced.replaced], [500, false, true]);
  const unnamed = unwrap(await service.monitor(userId, 10));
  assert.equal(unnamed.monitorId, unnamed.id); // the job id by default
  assert.equal(unwrap(await service.unmonitor(userId, "low")).monitorId, "low");
  const again = await service.unmonitor(userId, "low");
  assert.equal(again.code, "monitor_not_found");
  const negative = await service.monitor(userId, -1);
  assert.equal(negative.code, "invalid_threshold");
  assert.ok(negative.error?.startsWith("Invalid threshold: "));
});

test("a query's refusal is thrown carrying the Refusal a change answers", async () => {
  const userId = await opened("refusals");
  const changed = await service.chargeForOperation(userId, "teleportation");
  const thrown = await service.canAfford(userId, "teleportation").then(() => undefined, (e: unknown) => e);
  assert.ok(thrown instanceof TokenLedgerError && thrown.refusal);
  assert.deepEqual([thrown.refusal.code, thrown.refusal.error, thrown.message], [changed.code, changed.error, changed.error]);
  assert.throws(() => unwrap(changed), (e: unknown) => e instanceof TokenLedgerError && e.code === "unknown_operation" && e.refusal === changed);
});

test("a subscription purchase", async () => {
  const userId = newUser("buyer"); // purchase creates the account
  const paymentId = `pi_${userId}`;
  const bought = await service.purchase(userId, "Professional", paymentId, 1);
  assert.ok(bought.success, bought.error);
  assert.equal(bought.newBalance, 2000);
  assert.equal(bought.tier, "Professional");
  const balance = await service.getBalance(userId);
  assert.equal(balance?.tier, "Professional");
  assert.ok(balance?.subscriptionExpiresAt instanceof Date);

  // the payment provider's webhook fires again: a new job id, the same payment, applied once
  const again = await service.purchase(userId, "Professional", paymentId, 1);
  assert.ok(again.success);
  assert.equal(again.duplicate, true);
  assert.equal((await service.getBalance(userId))?.tokensBalance, 2000);
});

test("the balance", async () => {
  const userId = await opened("balance");
  const balance = await service.getBalance(userId);
  assert.ok(balance);
  assert.equal(balance.tokensBalance, 100);
  assert.equal(balance.tokensSpent, 0);
  assert.equal(balance.tier, "Gift");
  assert.ok(balance.lastRenewalAt instanceof Date && Math.abs(balance.lastRenewalAt.getTime() - Date.now()) < 60_000);
  assert.equal(await service.getBalance(newUser("nobody")), null);
});

test("history pages", async () => {
  const userId = await opened("history");
  for (let i = 0; i < 5; i++) await service.chargeForOperation(userId, "chatgpt_message", { n: i });
  const ledger = service.getLedger();
  const first = await ledger.getUserEntries(userId, { limit: 2, offset: 0 });
  const second = await ledger.getUserEntries(userId, { limit: 2, offset: 2 });
  assert.deepEqual(first.map((e) => e.metadata), [{ n: 4 }, { n: 3 }]); // newest first
  assert.deepEqual(second.map((e) => e.metadata), [{ n: 2 }, { n: 1 }]);
  assert.ok(first[0].createdAt instanceof Date);
  const page = await ledger.getUserEntriesPage(userId, { limit: 2, offset: 4 });
  assert.equal(page.total, 6); // the opening allocation and five messages
  assert.deepEqual(page.entries.map((e) => e.operationType), ["chatgpt_message", "renewal"]);
  const onlyRenewals = await ledger.getUserEntries(userId, { limit: 10, offset: 0, operationType: "renewal" });
  assert.equal(onlyRenewals.length, 1);
  const none = await ledger.getUserEntries(userId, { limit: 10, offset: 0, startDate: new Date(Date.now() + 3_600_000) });
  assert.equal(none.length, 0);
});

test("statistics", async () => {
  const userId = await opened("stats");
  await service.chargeForOperation(userId, "image_generation");
  await service.chargeForOperation(userId, "chatgpt_message");
  await service.credit(userId, { operationType: "bonus", amount: 20 });
  const stats = await service.getLedger().getUserStatistics(userId, new Date(Date.now() - 3_600_000), new Date(Date.now() + 3_600_000));
  assert.equal(stats.totalSpent, 15);
  assert.equal(stats.totalEarned, 120);
  assert.equal(stats.netChange, 105);
  assert.equal(stats.operationCount, 4);
  assert.deepEqual(stats.byOperation.image_generation, { count: 1, tokens: -10 });
});

test("bonus tokens", async () => {
  const userId = await opened("bonus");
  const bonus = await service.credit(userId, { operationType: "bonus", amount: 50, metadata: { campaign: "welcome" } });
  assert.ok(bonus.success);
  assert.equal(bonus.newBalance, 150);
  const [entry] = await service.getLedger().getUserEntries(userId, { limit: 1, offset: 0 });
  assert.equal(entry.operationType, "bonus");
  assert.deepEqual(entry.metadata, { campaign: "welcome" });
});

test("a charge once, retried, with a refund", async () => {
  const userId = await opened("retry");
  const id = `order-${userId}`;
  const first = await service.chargeForOperation(userId, "image_generation", { order: 1 }, { id });
  const retried = await service.chargeForOperation(userId, "image_generation", { order: 1 }, { id });
  assert.ok(first.success && retried.success);
  assert.equal(first.duplicate, false);
  assert.equal(retried.duplicate, true);
  assert.equal(retried.ledgerEntryId, first.ledgerEntryId);
  assert.equal(retried.newBalance, 90);
  const refund = await service.refund(userId, 4, { reason: "partial" }, { refundOf: id });
  assert.ok(refund.success);
  assert.equal(refund.newBalance, 94);
  const charges = await service.getLedger().getUserEntries(userId, { limit: 10, offset: 0, operationType: "image_generation" });
  assert.equal(charges.length, 1);
});

test("the monthly report", async () => {
  const userId = await opened("report");
  await service.debit(userId, { operationType: "api_call", amount: 7 });
  await service.refund(userId, 2, { ticket: "T-1" });
  const now = new Date();
  const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - 1);
  const report = await service.getLedger().getUserStatistics(userId, start, end);
  assert.deepEqual(
    { totalSpent: report.totalSpent, totalEarned: report.totalEarned, netChange: report.netChange, operationCount: report.operationCount },
    { totalSpent: 7, totalEarned: 102, netChange: 95, operationCount: 3 });
  assert.deepEqual(report.byOperation.refund, { count: 1, tokens: 2 });
});

test("error handling", async () => {
  const userId = await opened("errors");
  await service.debit(userId, { operationType: "api_call", amount: 97 });

  const poor = await service.chargeForOperation(userId, "chatgpt_message");
  assert.equal(poor.success, false);
  assert.ok(poor.error?.includes("Insufficient tokens"), poor.error);
  assert.equal(poor.code, "insufficient_tokens");
  if (!poor.success) assert.deepEqual([poor.balance, poor.required, poor.deficit, poor.newBalance], [3, 5, 2, 3]);
  const check = await service.canAfford(userId, "chatgpt_message");
  assert.deepEqual(check, { canAfford: false, cost: 5, balance: 3, deficit: 2 });

  const stranger = await service.chargeForOperation(newUser("stranger"), "chatgpt_message");
  assert.equal(stranger.code, "user_not_found");
  assert.ok(stranger.error?.includes("User not found"), stranger.error);

  const unknown = await service.chargeForOperation(userId, "teleportation");
  assert.equal(unknown.code, "unknown_operation");
  await assert.rejects(service.canAfford(userId, "teleportation"),
    (e: unknown) => e instanceof TokenLedgerError && e.code === "unknown_operation" && e.message.includes("Unknown operation"));

  const zero = await service.debit(userId, { operationType: "api_call", amount: 0 });
  assert.equal(zero.code, "invalid_amount");
  const malformed = await service.debit(userId, { operationType: "api_call", amount: 2.5 });
  assert.equal(malformed.code, "invalid_job"); // a dead letter, with a failure reply
  const twice = await service.openAccount(userId);
  assert.equal(twice.code, "account_exists");
  const over = await service.refund(userId, 1000, undefined, { refundOf: "no-such-charge" });
  assert.equal(over.code, "charge_not_found");
  await assert.rejects(service.getLedger().getUserEntries(userId, { limit: 5000 }),
    (e: unknown) => e instanceof TokenLedgerError && e.code === "invalid_limit");
  assert.equal((await service.getBalance(userId))?.tokensBalance, 3);
});
