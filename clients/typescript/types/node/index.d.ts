// The little of Node.js that the client, its tests and node-redis's declarations use. Debian
// ships no @types/node; node-redis's .d.ts files say `/// <reference types="node" />`, which
// tsconfig's typeRoots resolves to this file.

interface Buffer extends Uint8Array {
  toString(encoding?: string): string;
}
declare var Buffer: { from(text: string, encoding?: string): Buffer };

declare var process: {
  env: Record<string, string | undefined>;
  argv: string[];
  pid: number;
  exitCode: number | undefined;
  kill(pid: number, signal?: string | number): boolean;
};
declare var console: {
  log(...data: unknown[]): void;
  error(...data: unknown[]): void;
};
declare function setTimeout(callback: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
declare class TextEncoder {
  encode(input: string): Uint8Array;
}
declare var crypto: { getRandomValues<T extends Uint8Array>(array: T): T };
declare var __dirname: string;

declare module "events" {
  class EventEmitter {
    on(event: string | symbol, listener: (...args: any[]) => void): this;
    once(event: string | symbol, listener: (...args: any[]) => void): this;
    off(event: string | symbol, listener: (...args: any[]) => void): this;
    emit(event: string | symbol, ...args: any[]): boolean;
  }
}
declare module "net" {
  interface TcpNetConnectOpts { host?: string; port?: number; [option: string]: unknown }
  interface IpcNetConnectOpts { path: string; [option: string]: unknown }
}
declare module "tls" {
  interface ConnectionOptions { [option: string]: unknown }
}

// For the tests.
declare module "node:test" {
  type Body = () => unknown | Promise<unknown>;
  export function test(name: string, body: Body): Promise<void>;
  export function describe(name: string, body: () => void): void;
  export function before(body: Body): void;
  export function after(body: Body): void;
  export function beforeEach(body: Body): void;
  export function afterEach(body: Body): void;
  export const it: typeof test;
}
declare module "node:assert/strict" {
  interface Assert {
    (value: unknown, message?: string): asserts value;
    ok(value: unknown, message?: string): asserts value;
    equal<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
    notEqual(actual: unknown, expected: unknown, message?: string): void;
    deepEqual<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
    match(value: string, pattern: RegExp, message?: string): void;
    throws(fn: () => unknown, expected?: unknown, message?: string): void;
    rejects(promise: Promise<unknown> | (() => Promise<unknown>), expected?: unknown, message?: string): Promise<void>;
    fail(message?: string): never;
  }
  const assert: Assert;
  export = assert;
}
declare module "node:child_process" {
  interface ChildProcess {
    pid?: number;
    exitCode: number | null;
    kill(signal?: string): boolean;
    once(event: "exit", listener: (code: number | null, signal: string | null) => void): this;
  }
  interface Options {
    env?: Record<string, string | undefined>;
    cwd?: string;
    stdio?: unknown;
    encoding?: string;
    timeout?: number;
  }
  export function spawn(command: string, args: string[], options?: Options): ChildProcess;
  export function execFileSync(command: string, args: string[], options?: Options): string;
}
declare module "node:fs" {
  export function mkdtempSync(prefix: string): string;
  export function copyFileSync(from: string, to: string): void;
  export function rmSync(path: string, options?: { recursive?: boolean; force?: boolean }): void;
  export function openSync(path: string, flags: string): number;
  export function readFileSync(path: string, encoding: string): string;
  export function readdirSync(path: string): string[];
  export function writeFileSync(path: string, data: string): void;
}
declare module "node:os" {
  export function tmpdir(): string;
}
declare module "node:path" {
  export function join(...parts: string[]): string;
}
