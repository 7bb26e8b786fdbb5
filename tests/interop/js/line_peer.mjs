// What every interactive Node peer (relay_peer.mjs, notify_wallet.mjs) shares: the set-up the official
// packages need offline, the loopback-only DNS guard, the watchdog, and the line protocol.
//
// Line protocol: one JSON request per stdin line, {"id": n, "op": "<name>", ...args}; one reply per request
// on stdout, on a line starting with `prefix` followed by {"id": n, "ok": true, "value": ...} or
// {"id": n, "ok": false, "error": "..."}. Everything else goes to stderr.
//
// Import this module before any @walletconnect package: the guard must be in place when they load.

import dns from "node:dns";
import readline from "node:readline";
import { webcrypto } from "node:crypto";

// interop.md: core 2.12.2 crashes ~31 s after the last frame with Node's global WebSocket.
delete globalThis.WebSocket;
if (!globalThis.crypto) globalThis.crypto = webcrypto;
for (const level of ["log", "info", "warn", "debug", "trace"]) console[level] = console.error;

// Ends the process if the test never sends "exit" (a stuck test must not leave Node behind).
export function startWatchdog(name, ms) {
  setTimeout(() => {
    console.error(`${name}: watchdog: no "exit" after ${ms} ms`);
    process.exit(3);
  }, ms).unref();
}

// Every DNS lookup of a name other than localhost fails and is recorded in the returned array (the tests
// assert it stays empty: no silent fallback to a public WalletConnect host). localhost resolves to
// 127.0.0.1 only: Node's verbatim order may put ::1 first, and the test servers listen on 127.0.0.1.
export function guardDns(name) {
  const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1"]);
  const externalLookups = [];
  const V4 = { address: "127.0.0.1", family: 4 };
  const blocked = (hostname) => {
    externalLookups.push(hostname);
    return Object.assign(new Error(`${name}: blocked DNS lookup of ${hostname} (loopback only)`), {
      code: "ENOTFOUND",
      hostname,
    });
  };
  const realLookup = dns.lookup;
  dns.lookup = function lookup(hostname, options, callback) {
    const cb = typeof options === "function" ? options : callback;
    const opts = typeof options === "function" ? {} : typeof options === "number" ? { family: options } : options || {};
    if (!LOOPBACK.has(hostname)) return void process.nextTick(cb, blocked(hostname));
    if (hostname === "localhost") {
      return void process.nextTick(() => (opts.all ? cb(null, [V4]) : cb(null, V4.address, V4.family)));
    }
    return realLookup.call(this, hostname, options, callback);
  };
  const realPromiseLookup = dns.promises.lookup;
  dns.promises.lookup = async (hostname, options) => {
    if (!LOOPBACK.has(hostname)) throw blocked(hostname);
    if (hostname === "localhost") return options?.all ? [V4] : V4;
    return realPromiseLookup(hostname, options);
  };
  return externalLookups;
}

// Answers each stdin line with ops[op](args); exits when stdin closes.
export function serveOps(name, prefix, ops) {
  const reply = (obj) => process.stdout.write(`${prefix}${JSON.stringify(obj)}\n`);
  const input = readline.createInterface({ input: process.stdin });
  input.on("line", async (text) => {
    if (!text.trim()) return;
    let request;
    try {
      request = JSON.parse(text);
    } catch (err) {
      return reply({ id: null, ok: false, error: `bad request line: ${err}` });
    }
    const { id, op, ...args } = request;
    try {
      const fn = ops[op];
      if (!fn) throw new Error(`unknown op ${op}`);
      reply({ id, ok: true, value: (await fn(args)) ?? null });
    } catch (err) {
      reply({ id, ok: false, error: String(err?.stack || err) });
    }
  });
  input.on("close", () => setTimeout(() => process.exit(0), 2000).unref());
  process.on("unhandledRejection", (err) => console.error(`${name}: unhandled rejection:`, err));
}
