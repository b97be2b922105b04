// Delivery: partitions, ids, resends across a stopped worker, invalidations across a Redis
// restart, the password, the events stream.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connectionSettings, crc32, EventConsumer, LedgerClient, partitionOf, TokenLedgerError, TokenService, uuidv7 } from "../src";
import { eventually, newUser, PrivateRedis, sleep, Worker } from "./harness";

const worker = new Worker();
before(() => worker.start());
after(() => worker.close());

test("partitions follow the contract's vectors", async () => {
  assert.equal(crc32("alice"), 663665735);
  assert.equal(crc32("bob"), 4123767104);
  assert.equal(partitionOf("alice", 4), 3);
  assert.equal(partitionOf("bob", 4), 0);
  assert.equal(new LedgerClient({ prefix: "P" }).jobsKey("alice"), "P:jobs");
  assert.equal(new LedgerClient({ prefix: "P", partitions: 4 }).jobsKey("alice"), "P:{3}:jobs");
  assert.equal(new LedgerClient({ prefix: "P", partitions: 4 }).jobsKey("bob"), "P:{0}:jobs");

  // A job is pushed on its user's partition (no worker serves this prefix: the call times out).
  const client = await worker.client({ prefix: `${worker.prefix}-n4`, partitions: 4, timeoutMs: 100, attempts: 1 });
  await assert.rejects(client.send({ type: "balance", userId: "alice" }), (e: unknown) => e instanceof TokenLedgerError && e.code === "timeout");
  const [pushed] = await client.connection.lRange(`${worker.prefix}-n4:{3}:jobs`, 0, -1);
  assert.equal(JSON.parse(pushed).userId, "alice");
  await client.connection.del(`${worker.prefix}-n4:{3}:jobs`);
});

test("ids are UUIDv7, in time order", () => {
  const ids = Array.from({ length: 2000 }, () => uuidv7());
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
  assert.match(ids[0], /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("a call resends its job while the worker is stopped, and applies once", async () => {
  const resends: number[] = [];
  const db = await worker.client({ timeoutMs: 300, attempts: 20, onResend: (_job, attempt) => resends.push(attempt) });
  const service = new TokenService(db);
  const userId = newUser("stopped");
  await service.ensureAccount(userId);

  worker.signal("SIGSTOP");
  const call = service.chargeForOperation(userId, "chatgpt_message", { during: "stop" });
  await sleep(1000);
  worker.signal("SIGCONT");
  const result = await call;
  assert.ok(result.success, result.error);
  assert.ok(resends.length >= 2, `resends: ${resends}`);
  assert.equal(result.newBalance, 95);
  const entries = await service.getLedger().getUserEntries(userId, { operationType: "chatgpt_message" });
  assert.equal(entries.length, 1);
  assert.equal(entries[0].jobId, result.id);
  // every copy was answered: the later ones as duplicates
  const again = await service.chargeForOperation(userId, "chatgpt_message", undefined, { id: result.id });
  assert.equal(again.duplicate, true);
  assert.equal((await service.getBalance(userId))?.tokensBalance, 95);
});

test("a call that gets no reply fails with timeout, and is reported once to metrics", async () => {
  const seen: string[] = [];
  const db = await worker.client({ prefix: `${worker.prefix}-idle`, timeoutMs: 100, attempts: 2 });
  const service = new TokenService(db, { metricsCallback: (m) => seen.push(`${m.operation}:${m.success}:${m.error}`) });
  await assert.rejects(service.chargeForOperation("carol", "chatgpt_message"), (e: unknown) => e instanceof TokenLedgerError && e.code === "timeout");
  assert.equal(seen.length, 1);
  assert.match(seen[0], /^chargeForOperation:false:Timeout: No reply to job/);
  await db.connection.del(`${worker.prefix}-idle:jobs`);
});

test("cacheInvalidationCallback follows P:balance across a Redis restart; the password comes from the environment", async () => {
  assert.throws(() => connectionSettings({ url: "redis://:secret@127.0.0.1:6379/0" }), /must not carry a password/);
  const redis = new PrivateRedis(`pw-${uuidv7()}`);
  await redis.start();
  process.env.TOKENLEDGER_REDIS_PASSWORD = redis.password;
  const own = new Worker(redis.url).start();
  try {
    const invalidated: string[] = [];
    const service = new TokenService(await own.client(), { cacheInvalidationCallback: (userId) => invalidated.push(userId) });
    await service.subscribed;
    const userId = newUser("cached");
    await service.ensureAccount(userId);
    await eventually(() => invalidated.includes(userId));

    await redis.stop();
    await redis.start();
    invalidated.length = 0;
    const channel = `${own.prefix}:balance`;
    for (let subscribed = 0; subscribed !== 1; await sleep(50)) {
      subscribed = await service.client.connection.pubSubNumSub(channel).then((n) => n[channel], () => 0);
    }
    const charged = await service.chargeForOperation(newUser("after"), "chatgpt_message"); // Redis lost its data
    assert.equal(charged.code, "user_not_found");
    await service.ensureAccount(userId).catch(() => false);
    await service.chargeForOperation(userId, "chatgpt_message");
    await eventually(() => invalidated.includes(userId), 20_000);
  } finally {
    await own.close();
    await redis.stop();
    delete process.env.TOKENLEDGER_REDIS_PASSWORD;
  }
});

test("EventConsumer reads P:events with a consumer group and acknowledges", async () => {
  // A prefix no worker serves: the stream holds exactly the events this test writes.
  const client = await worker.client({ prefix: `${worker.prefix}-events` });
  const key = client.key("events");
  const at = new Date().toISOString();
  await client.connection.xAdd(key, "*", { event: "job.applied", id: "j-1", type: "charge", userId: "alice", success: "true", tokensAmount: "-5", operationType: "chatgpt_message", newBalance: "95", ledgerEntryId: "2", at });
  const consumer = new EventConsumer(client, { group: "metrics", consumer: "c1", blockMs: 100 });
  await consumer.ensureGroup();
  await consumer.ensureGroup(); // exists already: fine
  await client.connection.xAdd(key, "*", { event: "renewal.completed", slot: at, totalProcessed: "2", successful: "2", failed: "0", at });

  const first = await consumer.read();
  assert.deepEqual(first.map((e) => e.event), ["job.applied", "renewal.completed"]);
  assert.equal(first[0].fields.newBalance, "95");
  // not acknowledged: a restarted consumer of the same name gets them again
  const restarted = new EventConsumer(client, { group: "metrics", consumer: "c1", blockMs: 100 });
  assert.deepEqual((await restarted.read()).map((e) => e.streamId), first.map((e) => e.streamId));
  await restarted.ack(first);
  assert.equal((await client.connection.xPending(key, "metrics")).pending, 0);
  assert.deepEqual(await restarted.read(), []);

  const handled: string[] = [];
  let stop = false;
  const running = restarted.run((events) => { handled.push(...events.map((e) => e.event)); stop = true; }, () => stop);
  await client.connection.xAdd(key, "*", { event: "balance.low", userId: "alice", monitorId: "default", threshold: "10", available: "5", at });
  await running;
  assert.deepEqual(handled, ["balance.low"]);
});

test("the worker writes one job.applied per applied job on P:events", async () => {
  const client = await worker.client();
  const service = new TokenService(client);
  const userId = `ev-${Date.now()}`;
  await service.ensureAccount(userId);
  const charged = await service.chargeForOperation(userId, "chatgpt_message");
  assert.equal(charged.success, true);
  const entries = await client.connection.xRange(client.key("events"), "-", "+");
  const applied = entries.filter((e) => e.message.event === "job.applied" && e.message.userId === userId);
  assert.deepEqual(applied.map((e) => e.message.type), ["open", "charge"]);
  assert.equal(applied[1].message.newBalance, String(charged.newBalance));
});
