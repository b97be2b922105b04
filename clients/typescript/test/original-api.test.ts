// The original-API script runs unchanged (but for its import and its `db`) against the worker.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { TokenService } from "../src";
import { newUser, Worker } from "./harness";

const worker = new Worker();
before(() => worker.start());
after(() => worker.close());

test("examples/original-api.ts runs against the worker", async () => {
  const userId = newUser("script");
  await new TokenService(await worker.client()).ensureAccount(userId);
  const out = execFileSync("node", [join(__dirname, "..", "examples", "original-api.js"), userId], {
    encoding: "utf8", timeout: 60_000,
    env: { ...process.env, TOKENLEDGER_REDIS_URL: worker.redisUrl, TOKENLEDGER_PREFIX: worker.prefix },
  });
  const summary = JSON.parse(out.split("\n").find((line) => line.startsWith("SUMMARY "))!.slice(8));
  // 100 - 10 + 10 (refund) - 5 + 2000 (the subscription's allocation) + 25 - 3
  assert.deepEqual(summary, { balance: 2117, spent: 18, earned: 2135, entries: 7, tier: "Professional", refused: "insufficient_tokens" });
  assert.match(out, /refused: Insufficient tokens: /);
  assert.match(out, /metrics: chargeForOperation user=.* success=true/);
  assert.match(out, /metrics: chargeForOperation user=\S+ amount=10 success=true/);
  assert.match(out, /renewal: a run now would renew \d+ accounts/); // a dry run of SubscriptionTier.Gift
});
