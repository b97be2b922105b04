// The package as people install it: `npm pack` makes a tarball of the compiled code and its types;
// installed from it into an empty project, without a registry, the guide's example compiles against
// its types and runs against a worker. Debian's node-redis serves as the `redis` peer dependency,
// found through NODE_PATH.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TokenService } from "../src";
import { newUser, Worker } from "./harness";

const packageDir = join(__dirname, "..", "..");
const nodePath = process.env.NODE_PATH ?? "/usr/share/nodejs";
const worker = new Worker();
const work = mkdtempSync(join(tmpdir(), "tokenledger-npm-"));
before(() => worker.start());
after(async () => {
  await worker.close();
  rmSync(work, { recursive: true, force: true });
});

test("npm pack, installed offline into an empty project, runs the guide's example", async () => {
  const packed = join(work, "packed");
  execFileSync("mkdir", ["-p", packed]);
  execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", packed], { cwd: packageDir, encoding: "utf8", timeout: 300_000 });
  const [tarball] = readdirSync(packed).filter((name) => name.endsWith(".tgz"));
  assert.ok(tarball, "npm pack made a tarball");
  const listing = execFileSync("tar", ["-tzf", join(packed, tarball)], { encoding: "utf8" });
  for (const file of ["package/build/src/index.js", "package/build/src/index.d.ts", "package/build/src/service.d.ts"]) {
    assert.ok(listing.includes(file), `the tarball holds ${file}`);
  }
  assert.ok(!listing.includes("build/test/"), "the tests stay out of the package");

  const app = join(work, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
  execFileSync("npm", ["install", "--offline", "--legacy-peer-deps", "--no-audit", "--no-fund", join(packed, tarball)],
    { cwd: app, encoding: "utf8", timeout: 300_000 });
  const manifest = JSON.parse(readFileSync(join(app, "node_modules", "tokenledger", "package.json"), "utf8"));
  assert.equal(manifest.peerDependencies.redis, "^4.5.1");

  // The example as an application has it: only its import names the package.
  const source = readFileSync(join(packageDir, "examples", "original-api.ts"), "utf8");
  assert.ok(source.includes('from "../src"'));
  writeFileSync(join(app, "app.ts"), source.replace('from "../src"', 'from "tokenledger"'));
  // Without @types/node (Debian has none), the application declares the Node globals it uses.
  writeFileSync(join(app, "globals.d.ts"), [
    "declare var process: { env: Record<string, string | undefined>; argv: string[]; exitCode: number | undefined };",
    "declare var console: { log(...data: unknown[]): void; error(...data: unknown[]): void };", ""].join("\n"));
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
    compilerOptions: { target: "es2022", lib: ["es2022"], module: "commonjs", moduleResolution: "node", strict: true,
      skipLibCheck: true, types: [], outDir: "out" },
    files: ["app.ts", "globals.d.ts"],
  }));
  execFileSync("tsc", ["-p", "."], { cwd: app, encoding: "utf8", timeout: 300_000 });

  const userId = newUser("packaged");
  await new TokenService(await worker.client()).ensureAccount(userId);
  const out = execFileSync("node", [join(app, "out", "app.js"), userId], {
    cwd: app, encoding: "utf8", timeout: 60_000,
    env: { ...process.env, NODE_PATH: nodePath, TOKENLEDGER_REDIS_URL: worker.redisUrl, TOKENLEDGER_PREFIX: worker.prefix },
  });
  const line = out.split("\n").find((l) => l.startsWith("SUMMARY "));
  assert.ok(line, out);
  assert.deepEqual(JSON.parse(line.slice(8)), { balance: 2117, spent: 18, earned: 2135, entries: 7, tier: "Professional",
    refused: "insufficient_tokens" });
  assert.match(out, /metrics: chargeForOperation user=\S+ amount=10 success=true/);
});
