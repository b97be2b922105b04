// setTier, balanceAt, and the guide's section 4: the tier an application writes with
// `db.user.update` reaches the ledger, so the next renewal grants that tier's allocation.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { BalanceMessage, LedgerClient, MonthlyRenewalService, SubscriptionTier, TokenLedgerError, TokenService, unwrap } from "../src";
import { eventually, newUser, openedUser, Worker } from "./harness";

const worker = new Worker();
let db: LedgerClient;
let tokenService: TokenService;
let renewalService: MonthlyRenewalService;

before(async () => {
  worker.start();
  db = await worker.client();
  tokenService = new TokenService(db);
  renewalService = new MonthlyRenewalService(db);
});
after(() => worker.close());

const inDays = (days: number) => new Date(Date.now() + days * 86_400_000);
const isCode = (code: string) => (e: unknown) => e instanceof TokenLedgerError && e.code === code;

test("setTier sets the tier and expiry without an entry or a new renewal date", async () => {
  const userId = await openedUser(tokenService, "set-tier");
  const before = await tokenService.getBalance(userId);
  const expiry = inDays(60);
  const set = unwrap(await tokenService.setTier(userId, SubscriptionTier.Professional, { subscriptionExpiresAt: expiry, id: `tier-${userId}` }));
  assert.deepEqual([set.userId, set.tier, set.previousTier, set.subscriptionExpiresAt?.getTime(), set.duplicate],
    [userId, "Professional", "Gift", expiry.getTime(), false]);
  assert.equal(set.nextRenewalDate.getTime(), before?.nextRenewalDate.getTime()); // the renewal clock stays
  assert.equal(set.lastRenewalAt.getTime(), before?.lastRenewalAt.getTime());
  const after = await tokenService.getBalance(userId);
  assert.deepEqual([after?.tier, after?.tokensBalance, after?.subscriptionExpiresAt?.getTime()], ["Professional", 100, expiry.getTime()]);
  assert.equal((await tokenService.getLedger().getUserEntriesPage(userId)).total, 1); // only the opening allocation

  const replay = unwrap(await tokenService.setTier(userId, SubscriptionTier.Professional, { subscriptionExpiresAt: expiry, id: `tier-${userId}` }));
  assert.deepEqual({ ...replay, duplicate: false }, set);
  assert.equal(replay.duplicate, true);

  const kept = unwrap(await tokenService.setTier(userId, SubscriptionTier.Business)); // expiry left out: kept
  assert.deepEqual([kept.previousTier, kept.subscriptionExpiresAt?.getTime()], ["Professional", expiry.getTime()]);
  const cleared = unwrap(await tokenService.setTier(userId, SubscriptionTier.Gift, { subscriptionExpiresAt: null }));
  assert.deepEqual([cleared.tier, cleared.subscriptionExpiresAt], ["Gift", null]);
  assert.equal((await tokenService.getBalance(userId))?.subscriptionExpiresAt, null);
});

test("a tier set by db.user.update is announced on P:balance, with no entry", async () => {
  const userId = await openedUser(tokenService, "tier-invalidation");
  const messages: BalanceMessage[] = [];
  const unsubscribe = await db.onBalance((message) => messages.push(message));
  try {
    await db.user.update({ where: { id: userId }, data: { tier: SubscriptionTier.Business } });
    await eventually(() => messages.some((m) => m.userId === userId));
    const message = messages.find((m) => m.userId === userId);
    assert.deepEqual([message?.tier, message?.tokensBalance, message?.ledgerEntryId, message?.operationType, message?.tokensAmount],
      ["Business", 100, null, null, null]);
  } finally {
    unsubscribe();
  }
});

test("setTier's refusals are results with their codes", async () => {
  const userId = await openedUser(tokenService, "set-tier-refused");
  const nobody = await tokenService.setTier(newUser("nobody"), SubscriptionTier.Business);
  assert.deepEqual([nobody.success, nobody.code], [false, "user_not_found"]);
  const platinum = await tokenService.setTier(userId, "Platinum");
  assert.deepEqual([platinum.success, platinum.code], [false, "unknown_tier"]);
  assert.ok(platinum.error?.startsWith("Unknown tier: "), platinum.error);
  const past = await tokenService.setTier(userId, SubscriptionTier.Business, { subscriptionExpiresAt: new Date(Date.now() - 60_000) });
  assert.deepEqual([past.success, past.code], [false, "invalid_expiry"]);
  // a refusal is stored under its id: the same id answers it again
  const again = await tokenService.setTier(userId, "Platinum", { id: platinum.id });
  assert.deepEqual([again.code, again.duplicate], ["unknown_tier", true]);
  assert.equal((await tokenService.getBalance(userId))?.tier, "Gift");
});

test("balanceAt answers the balance as it stood, and no balance before the first entry", async () => {
  const userId = await openedUser(tokenService, "balance-at");
  const [opening] = await tokenService.getLedger().getUserEntries(userId);
  await tokenService.chargeForOperation(userId, "image_generation");
  const before = await tokenService.balanceAt(userId, new Date(opening.createdAt.getTime() - 1));
  assert.deepEqual(before, { exists: false, userId, at: new Date(opening.createdAt.getTime() - 1), tokensBalance: 0, tokensSpent: 0,
    ledgerEntryId: null, createdAt: null });
  const then = await tokenService.balanceAt(userId, opening.createdAt);
  assert.ok(then.exists);
  assert.deepEqual([then.tokensBalance, then.tokensSpent, then.ledgerEntryId, then.createdAt.getTime()],
    [100, 0, opening.id, opening.createdAt.getTime()]);
  const now = await tokenService.balanceAt(userId, inDays(1).toISOString()); // the future: the current totals
  assert.deepEqual([now.exists, now.tokensBalance, now.tokensSpent], [true, 90, 10]);
  await assert.rejects(tokenService.balanceAt(newUser("nobody"), new Date()), isCode("user_not_found"));
});

test("the guide's section 4, unchanged, leaves the account on the tier it set; the renewal grants its allocation", async () => {
  const userId = await openedUser(tokenService, "guide-section-4");

  // ---- the guide's section 4, as written for the original service ----
  async function handleSubscriptionPurchase(userId: string, tier: SubscriptionTier, paymentId: string) {
    const allocations = { [SubscriptionTier.Gift]: 100, [SubscriptionTier.Professional]: 2000, [SubscriptionTier.Business]: 10000 };
    const result = await tokenService.credit(userId, {
      operationType: "purchase",
      amount: allocations[tier],
      metadata: { tier, paymentId },
    });
    if (!result.success) throw new Error(result.error);
    await db.user.update({
      where: { id: userId },
      data: { tier, subscriptionExpiresAt: new Date(Date.now() + 30 * 24 * 60 * 60 * 1000) },
    });
    return result;
  }
  // ----

  const bought = await handleSubscriptionPurchase(userId, SubscriptionTier.Professional, `pi_${userId}`);
  assert.equal(bought.newBalance, 2100);
  const balance = await tokenService.getBalance(userId);
  assert.equal(balance?.tier, "Professional");
  assert.ok(balance?.subscriptionExpiresAt && Math.abs(balance.subscriptionExpiresAt.getTime() - inDays(30).getTime()) < 60_000);

  await tokenService.debit(userId, { operationType: "api_call", amount: 2050 });
  await worker.age([userId], 35); // restarts the worker; the subscription still runs 30 days from today
  const renewed = unwrap(await renewalService.renewUser(userId));
  assert.deepEqual([renewed.tier, renewed.downgraded, renewed.tokensAdded, renewed.newBalance], ["Professional", false, 1950, 2000]);
});

test("db.user.update: the expiry alone keeps the tier; refusals and other columns throw", async () => {
  const userId = await openedUser(tokenService, "user-update");
  const expiry = inDays(40);
  const updated = await db.user.update({ where: { id: userId }, data: { subscriptionExpiresAt: expiry } });
  assert.deepEqual([updated.tier, updated.subscriptionExpiresAt?.getTime()], ["Gift", expiry.getTime()]);
  const twice = await db.user.update({ where: { id: userId }, data: { subscriptionExpiresAt: expiry } });
  assert.notEqual(twice.id, updated.id); // an update is a job of its own
  assert.equal((await db.user.update({ where: { id: userId }, data: { tier: "Business", subscriptionExpiresAt: null } })).subscriptionExpiresAt, null);
  await assert.rejects(db.user.update({ where: { id: newUser("nobody") }, data: { tier: "Business" } }), isCode("user_not_found"));
  await assert.rejects(db.user.update({ where: { id: userId }, data: { tier: "Platinum" } }), isCode("unknown_tier"));
  await assert.rejects(db.user.update({ where: { id: userId }, data: { subscriptionExpiresAt: new Date(0) } }), isCode("invalid_expiry"));
  const other = { tier: "Gift", email: "a@example.com" };
  await assert.rejects(db.user.update({ where: { id: userId }, data: other }), (e: unknown) => e instanceof TypeError && /email/.test(e.message));
  assert.equal((await tokenService.getBalance(userId))?.tier, "Business");
});
