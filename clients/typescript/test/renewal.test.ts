// The guide's renewal examples: a manual renewal, the scheduled batch renewal, a dry run.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { MonthlyRenewalService, TokenService } from "../src";
import { newUser, Worker } from "./harness";

const worker = new Worker();
let tokens: TokenService;
let renewals: MonthlyRenewalService;
const [manual, batchA, batchB, paid] = ["manual", "batch-a", "batch-b", "paid"].map(newUser);

before(async () => {
  worker.start();
  const db = await worker.client();
  tokens = new TokenService(db);
  renewals = new MonthlyRenewalService(db);
  for (const userId of [manual, batchA, batchB]) await tokens.ensureAccount(userId);
  await tokens.purchase(paid, "Professional", `pi_${paid}`);
  for (const userId of [manual, batchA, batchB, paid]) await tokens.debit(userId, { operationType: "api_call", amount: 30 });
});
after(() => worker.close());

test("a manual renewal", async () => {
  const early = await renewals.checkEligibility(manual);
  assert.equal(early.eligible, false);
  assert.equal(early.reason, "not_yet_due");
  assert.ok(early.daysUntilRenewal >= 28 && early.nextRenewalDate instanceof Date);
  const refused = await renewals.renewUser(manual);
  assert.equal(refused.success, false);
  assert.equal(refused.code, "not_eligible");
  assert.equal(renewals.getCronExpression(), "0 2 * * *");

  await worker.age([manual, batchA, batchB, paid], 35); // restarts the worker
  const due = await renewals.checkEligibility(manual);
  assert.deepEqual([due.eligible, due.reason, due.daysUntilRenewal], [true, "renewal_due", 0]);
  const renewed = await renewals.renewUser(manual);
  assert.ok(renewed.success, renewed.error);
  assert.equal(renewed.tokensAdded, 30); // tops the Gift allocation back up
  assert.equal(renewed.newBalance, 100);
  assert.equal((await renewals.checkEligibility(manual)).eligible, false);
});

test("a dry run", async () => {
  const dry = await renewals.renewAllEligible({ dryRun: true });
  assert.equal(dry.dryRun, true);
  assert.deepEqual(dry.renewals.map((r) => r.userId).sort(), [batchA, batchB, paid].sort());
  assert.equal((await tokens.getBalance(batchA))?.tokensBalance, 70); // nothing changed
});

test("the scheduled batch renewal", async () => {
  const gift = await renewals.renewAllEligible({ tier: "Gift", limit: 10, continueOnError: true });
  assert.deepEqual([gift.totalProcessed, gift.successful, gift.failed, gift.errors], [2, 2, 0, []]);
  assert.deepEqual(gift.renewals.map((r) => r.userId).sort(), [batchA, batchB].sort());
  const rest = await renewals.renewAllEligible();
  assert.deepEqual(rest.renewals, [{ userId: paid, tier: "Professional", tokensAdded: 30, newBalance: 2000 }]);
  const none = await renewals.renewAllEligible();
  assert.equal(none.totalProcessed, 0);
  assert.equal((await tokens.getBalance(batchB))?.tokensBalance, 100);
});
