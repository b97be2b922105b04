// Example TokenLedger producer (ioredis), the TypeScript twin of producer.py.
//
// Opens an account, charges `chatgpt_message`, and waits for each result with BRPOP on a reply key
// unique to the request. Prints each result as one JSON line on stdout.
//
//   npm install ioredis
//   npx tsx producer.ts --user alice
//   npx tsx producer.ts --redis-url redis://127.0.0.1:6379/0 --prefix tokens --user bob --charges 3
//
// Exit status: 0 when every reply arrived and every job succeeded (an `open` refused with
// `account_exists` counts as success); 1 when a job was refused; 2 when a reply did not arrive in
// time (send the same job again: its id makes that safe).
//
// Not run by the project's tests: no Node.js registry is reachable where the project is built.
import Redis from "ioredis";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

type Job = { type: string; id?: string; userId?: string; [field: string]: unknown };
type Result = { id: string | null; type: string; success: boolean; error?: { code: string; message: string }; [field: string]: unknown };

class NoReply extends Error {}

async function send(redis: Redis, prefix: string, job: Job, timeoutSeconds: number): Promise<Result> {
  const replyTo = `${prefix}:reply:${randomUUID()}`;
  await redis.lpush(`${prefix}:jobs`, JSON.stringify({ ...job, replyTo }));
  const got = await redis.brpop(replyTo, timeoutSeconds);
  if (got === null) throw new NoReply(`no reply to job ${JSON.stringify(job.id)} within ${timeoutSeconds} s`);
  await redis.del(replyTo);
  return JSON.parse(got[1]) as Result;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      "redis-url": { type: "string", default: process.env.TOKENLEDGER_REDIS_URL ?? "redis://127.0.0.1:6379/0" },
      prefix: { type: "string", default: "tokens" },
      user: { type: "string", default: "alice" },
      operation: { type: "string", default: "chatgpt_message" },
      charges: { type: "string", default: "1" },
      timeout: { type: "string", default: "10" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log("usage: producer.ts [--redis-url URL] [--prefix P] [--user ID] [--operation OP] [--charges N] [--timeout S]");
    return 0;
  }
  const prefix = values.prefix!;
  const user = values.user!;
  const timeout = Number(values.timeout);
  // A stable id for `open`: running the example again answers the first result, duplicate: true.
  const jobs: Job[] = [{ type: "open", id: `open:${user}`, userId: user }];
  for (let i = 0; i < Number(values.charges); i++) {
    jobs.push({ type: "charge", id: `charge:${randomUUID()}`, userId: user,
                operation: values.operation, metadata: { source: "producer.ts" } });
  }

  const redis = new Redis(values["redis-url"]!);
  let status = 0;
  try {
    for (const job of jobs) {
      const result = await send(redis, prefix, job, timeout);
      console.log(JSON.stringify(result));
      if (!result.success && !(job.type === "open" && result.error?.code === "account_exists")) status = 1;
    }
  } catch (error) {
    if (!(error instanceof NoReply)) throw error;
    console.error(`producer: ${error.message}`);
    status = 2;
  } finally {
    await redis.quit();
  }
  return status;
}

main().then((status) => process.exit(status), (error) => { console.error(error); process.exit(1); });
