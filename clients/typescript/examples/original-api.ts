// A script written against the original in-process TokenService, as the guide shows it. Only the
// import and the `db` line differ from the original: `db` was the database handle, and is now a
// connection to the queue (TOKENLEDGER_REDIS_URL, TOKENLEDGER_REDIS_PASSWORD, TOKENLEDGER_PREFIX).
//
//   node build/examples/original-api.js <userId>
import { connect, MonthlyRenewalService, OperationType, SubscriptionTier, TokenService } from "../src"; // in an application: from "tokenledger"

async function main(userId: string): Promise<void> {
  const db = await connect();

  const tokenService = new TokenService(db, {
    cacheInvalidationCallback: (id) => console.log(`cache: invalidate ${id}`),
    metricsCallback: (metrics) =>
      console.log(`metrics: ${metrics.operation} user=${metrics.userId} amount=${metrics.amount} success=${metrics.success} ${metrics.durationMs}ms`),
  });
  const renewalService = new MonthlyRenewalService(db);

  // Charging for an image, with a refund when generation fails
  const check = await tokenService.canAfford(userId, "image_generation");
  if (!check.canAfford) {
    console.log(`Not enough tokens: need ${check.deficit} more`);
    return;
  }
  const charge = await tokenService.chargeForOperation(userId, "image_generation", { prompt: "a lighthouse at dusk" });
  if (!charge.success) throw new Error(charge.error);
  const generationFailed = true;
  if (generationFailed) {
    await tokenService.refund(userId, check.cost, { reason: "generation_failed", ledgerEntryId: charge.ledgerEntryId });
  }

  // A chat message
  const chatOperation: OperationType = "chatgpt_message";
  const chat = await tokenService.chargeForOperation(userId, chatOperation, { conversationId: "conv-1" });
  console.log(`chat: success=${chat.success} balance=${chat.newBalance}`);

  // A subscription purchase: the allocation credited, then the tier and its expiry written to the
  // user table, which the original service read (`db.user` now writes them to the ledger: setTier)
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
  await handleSubscriptionPurchase(userId, SubscriptionTier.Professional, `pi_${userId}`);

  // Bonus tokens, and a metered API call
  await tokenService.credit(userId, { operationType: "bonus", amount: 25, metadata: { reason: "referral" } });
  await tokenService.debit(userId, { operationType: "api_call", amount: 3 });

  // Error handling
  const tooMuch = await tokenService.debit(userId, { operationType: "batch_export", amount: 1_000_000 });
  if (!tooMuch.success && tooMuch.error?.includes("Insufficient tokens")) {
    console.log(`refused: ${tooMuch.error}`);
  }

  // The balance, the history and the monthly report
  const balance = await tokenService.getBalance(userId);
  console.log(`balance: ${balance?.tokensBalance} tokens, ${balance?.tokensSpent} spent, tier ${balance?.tier}, renewed ${balance?.lastRenewalAt.toISOString()}`);
  const entries = await tokenService.getLedger().getUserEntries(userId, { limit: 10, offset: 0 });
  for (const entry of entries) {
    console.log(`entry: ${entry.createdAt.toISOString()} ${entry.operationType} ${entry.tokensAmount} -> ${entry.balanceAfter}`);
  }
  const now = new Date();
  const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const report = await tokenService.getLedger().getUserStatistics(userId, monthStart, now);
  console.log(`report: spent ${report.totalSpent}, earned ${report.totalEarned}, net ${report.netChange}, ${report.operationCount} operations`);

  // Renewal
  const eligibility = await renewalService.checkEligibility(userId);
  console.log(`renewal: eligible=${eligibility.eligible} (${eligibility.reason}), in ${eligibility.daysUntilRenewal} days`);
  const preview = await renewalService.renewAllEligible({ dryRun: true, tier: SubscriptionTier.Gift });
  console.log(`renewal: a run now would renew ${preview.totalProcessed} accounts; cron ${renewalService.getCronExpression()}`);

  console.log(`SUMMARY ${JSON.stringify({ balance: balance?.tokensBalance, spent: report.totalSpent, earned: report.totalEarned, entries: entries.length, tier: balance?.tier, refused: tooMuch.success ? null : tooMuch.code })}`);
  await db.close();
}

main(process.argv[2] ?? "demo-user").catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
