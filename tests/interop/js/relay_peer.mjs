// Interactive relay peer: OFFICIAL @walletconnect/core relayers (2.25.0 from ./current, 2.12.2 from the
// notify-client 1.4.1 tree in ./notify) connected to a relay on loopback, for tests/interop/test_js_relay.py.
//
// Protocol: one JSON request per stdin line, {"id": n, "op": "<name>", ...args}; one reply per request on
// stdout, on a line starting with "@@relay-peer " followed by {"id": n, "ok": true, "value": ...} or
// {"id": n, "ok": false, "error": "..."}. Requests run concurrently (the Python side awaits each reply),
// so a test can wait for a message while it restarts the relay. Other output goes to stderr.
//
// Ops (`name` picks one Core instance in this process; each has its own in-memory storage, hence its
// own relay client key):
//   init {name, line: "current"|"legacy", relayUrl}  -> {relayUrl, clientId, version}
//   subscribe {name, topic}                          -> subscription id
//   publish {name, topic, message, ttl, tag}         -> null
//   waitMessages {name, topic, messages, timeoutMs}  -> every message received on topic (once all are in)
//   waitConnected {name, connected, timeoutMs}       -> state
//   state {name}                              -> {relayUrl, connected, connects, received, externalLookups}
//   transportClose {name} / transportOpen {name}     -> null
//   exit                                             -> closes every transport, then the process exits
//
// Nothing may leave the machine: every DNS lookup of a name other than localhost fails here and is
// recorded (core 2.12.2 silently falls back to wss://relay.walletconnect.org when the relay refuses at
// init; the tests assert `externalLookups` stays empty and `relayUrl` is the local one). A watchdog ends
// the process if the test side never says "exit".

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { guardDns, serveOps, startWatchdog } from "./line_peer.mjs";
import { MemoryStorage } from "./memory_storage.mjs";

const WATCHDOG_MS = Number(process.env.RELAY_PEER_WATCHDOG_MS || 90_000);
const LOG_LEVEL = process.env.RELAY_PEER_LOG || "silent";
startWatchdog("relay_peer", WATCHDOG_MS);

const externalLookups = guardDns("relay_peer");

// ------------------------------------------------------------------------------------ the packages
const here = path.dirname(fileURLToPath(import.meta.url));
const LINES = {
  current: () => createRequire(path.join(here, "current", "package.json"))("@walletconnect/core"),
  // the copy notify-client 1.4.1 pins (hoisted in ./notify/node_modules)
  legacy: () =>
    createRequire(createRequire(path.join(here, "notify", "package.json")).resolve("@walletconnect/notify-client"))(
      "@walletconnect/core",
    ),
};


const peers = new Map(); // name -> {core, received: [{topic, message, publishedAt}], waiters: Set<fn>}
const peer = (name) => {
  const p = peers.get(name);
  if (!p) throw new Error(`no peer named ${name}; call init first`);
  return p;
};
const need = (args, ...names) => {
  for (const n of names) if (args[n] === undefined) throw new Error(`missing argument "${n}"`);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

const state = (p) => ({
  relayUrl: p.core.relayer.relayUrl,
  connected: p.core.relayer.connected,
  connects: p.connects,
  received: p.received.map((m) => ({ topic: m.topic, message: m.message })),
  externalLookups,
});

const ops = {
  async init({ name, line, relayUrl }) {
    need({ name, line, relayUrl }, "name", "line", "relayUrl");
    if (peers.has(name)) throw new Error(`peer ${name} exists`);
    const { Core, RELAYER_EVENTS, RELAYER_SDK_VERSION } = LINES[line]();
    const core = new Core({
      projectId: "wcnotify-interop-relay",
      relayUrl,
      storage: new MemoryStorage(),
      logger: LOG_LEVEL,
      customStoragePrefix: `wcnotify-${name}`, // 2.25 shares one Core per prefix (globalThis)
      telemetryEnabled: false,
    });
    const p = { core, received: [], connects: 0 };
    core.relayer.on(RELAYER_EVENTS.message, (event) => p.received.push(event));
    core.relayer.on(RELAYER_EVENTS.connect, () => (p.connects += 1));
    peers.set(name, p);
    await core.start();
    return { relayUrl: core.relayer.relayUrl, clientId: await core.crypto.getClientId(), version: RELAYER_SDK_VERSION };
  },
  async subscribe({ name, topic }) {
    return await peer(name).core.relayer.subscribe(topic);
  },
  async publish({ name, topic, message, ttl = 300, tag = 0 }) {
    await peer(name).core.relayer.publish(topic, message, { ttl, tag });
    return null;
  },
  async waitMessages({ name, topic, messages, timeoutMs = 10_000 }) {
    const p = peer(name);
    const onTopic = () => p.received.filter((m) => m.topic === topic).map((m) => m.message);
    return await until(
      () => (messages.every((m) => onTopic().includes(m)) ? onTopic() : undefined),
      timeoutMs,
      `${name} to receive ${JSON.stringify(messages)} on ${topic.slice(0, 8)}… (has ${JSON.stringify(onTopic())})`,
    );
  },
  async waitConnected({ name, connected = true, timeoutMs = 10_000 }) {
    const p = peer(name);
    return await until(
      () => (p.core.relayer.connected === connected ? state(p) : undefined),
      timeoutMs,
      `${name}.relayer.connected === ${connected}`,
    );
  },
  async state({ name }) {
    return state(peer(name));
  },
  async transportClose({ name }) {
    await peer(name).core.relayer.transportClose();
    return null;
  },
  async transportOpen({ name }) {
    await peer(name).core.relayer.transportOpen();
    return null;
  },
  async exit() {
    for (const p of peers.values()) {
      try {
        await Promise.race([p.core.relayer.transportClose(), sleep(1000)]);
      } catch (err) {
        console.error("relay_peer: transportClose on exit:", err);
      }
    }
    setTimeout(() => process.exit(0), 10);
    return null;
  },
};

serveOps("relay_peer", "@@relay-peer ", ops);
