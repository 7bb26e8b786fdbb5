// Interactive wallet peer: the OFFICIAL @walletconnect/notify-client 1.4.1 (./notify) as a wallet against
// our relay, keys server and notify server on loopback, for tests/interop/test_js_notify.py.
//
// Protocol (as relay_peer.mjs): one JSON request per stdin line, {"id": n, "op": "<name>", ...args}; one
// reply per request on stdout, on a line starting with "@@notify-wallet " followed by
// {"id": n, "ok": true, "value": ...} or {"id": n, "ok": false, "error": "..."}. Other output goes to stderr.
//
// Ops (one NotifyClient per process, in-memory storage):
//   init {relayUrl, keyserverUrl, notifyServerUrl, projectId}   -> {relayUrl, keyserverUrl, notifyServerUrl}
//   register {privateKey, chain, domain, allApps, timeoutMs}     -> {account, identityKey, watch}
//        prepareRegistration -> EIP-191 signature (ethers v5) -> register (POST {keyserverUrl}/identity, then
//        wc_notifyWatchSubscription to the notify server); waits for the watch answer, which `watch` is
//   subscribe {account, appDomain, timeoutMs}                    -> the active subscription for that app
//   update {account, appDomain, scope, timeoutMs}                -> the subscription afterwards
//   deleteSubscription {account, appDomain, timeoutMs}           -> the account's active subscriptions afterwards
//   waitSubscription {account, appDomain, present, timeoutMs}    -> the subscription (or null once it is gone),
//        as another device of the account learns it from wc_notifySubscriptionsChanged
//   state {}      -> {externalLookups, explorerRequests, responses, requests}
//   exit {}       -> closes the relay transport, then the process exits
//
// The client's fixed endpoints are redirected: `client.notifyServerUrl` is set to ours (the client only
// GETs /.well-known/did.json there); the explorer's notify-config (hard-coded URL, axios, no timeout) is
// rewritten by an axios request interceptor to our notify server's /w3i/v1/notify-config, so the scope the
// client builds carries the notification type ids OUR server issued. Every DNS lookup of a name other than
// localhost fails and is recorded; localhost resolves to 127.0.0.1 only (Node's verbatim order may put ::1
// first, and the dapp's did.json is served on 127.0.0.1). A watchdog ends the process if "exit" never comes.

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { guardDns, serveOps, startWatchdog } from "./line_peer.mjs";
import { MemoryStorage } from "./memory_storage.mjs";

const PREFIX = "@@notify-wallet ";
const WATCHDOG_MS = Number(process.env.NOTIFY_WALLET_WATCHDOG_MS || 90_000);
const LOG_LEVEL = process.env.NOTIFY_WALLET_LOG || "silent";
const EXPLORER = "https://explorer-api.walletconnect.com/w3i/v1/";
startWatchdog("notify_wallet", WATCHDOG_MS);

const externalLookups = guardDns("notify_wallet");

// ------------------------------------------------------------------------------------ the packages
const here = path.dirname(fileURLToPath(import.meta.url));
const requireNotify = createRequire(path.join(here, "notify", "package.json"));
const requireFromClient = createRequire(requireNotify.resolve("@walletconnect/notify-client"));
const { NotifyClient } = requireNotify("@walletconnect/notify-client");
const axios = requireFromClient("axios"); // the instance the client's engine calls
const ethers = {
  signingKey: requireNotify("@ethersproject/signing-key"),
  hash: requireNotify("@ethersproject/hash"),
  transactions: requireNotify("@ethersproject/transactions"),
  bytes: requireNotify("@ethersproject/bytes"),
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const need = (args, ...names) => {
  for (const n of names) if (args[n] === undefined) throw new Error(`missing argument "${n}"`);
};
async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
function within(promise, timeoutMs, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

let client = null;
let notifyServerUrl = null;
const explorerRequests = [];
const responses = []; // every JSON-RPC response the engine received: {topic, method, result | error}
const requests = []; // every JSON-RPC request the engine received: {topic, method}

axios.interceptors.request.use((config) => {
  if (typeof config.url === "string" && config.url.startsWith(EXPLORER)) {
    if (!notifyServerUrl) throw new Error("notify_wallet: explorer request before init");
    const rewritten = `${notifyServerUrl}/w3i/v1/${config.url.slice(EXPLORER.length)}`;
    explorerRequests.push(rewritten);
    config.url = rewritten;
    config.timeout = 5000;
  }
  return config;
});

const c = () => {
  if (!client) throw new Error("call init first");
  return client;
};
const subscriptionFor = (account, appDomain) =>
  Object.values(c().getActiveSubscriptions({ account })).find((s) => s.metadata.appDomain === appDomain);
const plain = (value) => JSON.parse(JSON.stringify(value ?? null));

function spyOnEngine(engine) {
  // The engine dispatches through these instance properties at call time, so wrapping them sees every
  // decoded message (the client itself only logs JSON-RPC errors it gets back).
  const onResponse = engine.onRelayEventResponse;
  engine.onRelayEventResponse = async (event) => {
    const { topic, payload } = event;
    let method = null;
    if (client.core.history.keys.includes(payload.id)) {
      method = (await client.core.history.get(topic, payload.id)).request.method;
    }
    responses.push({ topic, method, id: payload.id, result: payload.result ?? null, error: payload.error ?? null });
    return onResponse(event);
  };
  const onRequest = engine.onRelayEventRequest;
  engine.onRelayEventRequest = (event) => {
    requests.push({ topic: event.topic, method: event.payload.method });
    return onRequest(event);
  };
}

const lastResponse = (method, after) => responses.slice(after).find((r) => r.method === method);
const refused = (r) => new Error(`the server answered ${r.method} with an error: ${JSON.stringify(r.error)}`);

const ops = {
  async init({ relayUrl, keyserverUrl, notifyServerUrl: notifyUrl, projectId = "wcnotify-interop-wallet" }) {
    need({ relayUrl, keyserverUrl, notifyUrl }, "relayUrl", "keyserverUrl", "notifyUrl");
    if (client) throw new Error("init twice");
    notifyServerUrl = notifyUrl.replace(/\/$/, "");
    client = await within(
      NotifyClient.init({ projectId, relayUrl, keyserverUrl, logger: LOG_LEVEL, storage: new MemoryStorage() }),
      15_000,
      "NotifyClient.init",
    );
    // A plain property holding the hard-coded https://notify.walletconnect.com (interop.md).
    client.notifyServerUrl = notifyServerUrl;
    spyOnEngine(client.engine);
    return { relayUrl: client.core.relayer.relayUrl, keyserverUrl: client.keyserverUrl, notifyServerUrl: client.notifyServerUrl };
  },

  async register({ privateKey, chain = "eip155:1", domain, allApps = true, timeoutMs = 15_000 }) {
    need({ privateKey, domain }, "privateKey", "domain");
    const key = new ethers.signingKey.SigningKey(privateKey);
    const account = `${chain}:${ethers.transactions.computeAddress(privateKey)}`;
    const { message, registerParams } = await c().prepareRegistration({ account, domain, allApps });
    const signature = ethers.bytes.joinSignature(key.signDigest(ethers.hash.hashMessage(message)));
    const before = responses.length;
    // POST {keyserverUrl}/identity, then the watch request; register() swallows a failed watch (it logs it).
    const identityKey = await within(c().register({ registerParams, signature }), timeoutMs, "register");
    const watch = await until(() => lastResponse("wc_notifyWatchSubscription", before), timeoutMs, "the watch answer");
    if (watch.error) throw refused(watch);
    if (!c().hasFinishedInitialLoad()) throw new Error("watch answered but the client has not finished its initial load");
    return { account, identityKey, registered: c().isRegistered({ account, allApps, domain }), watch };
  },

  async subscribe({ account, appDomain, timeoutMs = 15_000 }) {
    need({ account, appDomain }, "account", "appDomain");
    const before = responses.length;
    // resolves true on a notify_subscription_response naming this app, false on a JSON-RPC error
    const ok = await within(c().subscribe({ account, appDomain }), timeoutMs, "subscribe");
    if (!ok) {
      const r = lastResponse("wc_notifySubscribe", before);
      throw r ? refused(r) : new Error("subscribe() resolved false");
    }
    const sub = await until(() => subscriptionFor(account, appDomain), timeoutMs, `an active subscription to ${appDomain}`);
    return plain({ ...sub, relaySubscribed: c().core.relayer.subscriber.topics.includes(sub.topic) });
  },

  async update({ account, appDomain, scope, timeoutMs = 15_000 }) {
    need({ account, appDomain, scope }, "account", "appDomain", "scope");
    const sub = subscriptionFor(account, appDomain);
    if (!sub) throw new Error(`no active subscription to ${appDomain}`);
    await within(c().update({ topic: sub.topic, scope }), timeoutMs, "update");
    return plain(subscriptionFor(account, appDomain));
  },

  async deleteSubscription({ account, appDomain, timeoutMs = 15_000 }) {
    need({ account, appDomain }, "account", "appDomain");
    const sub = subscriptionFor(account, appDomain);
    if (!sub) throw new Error(`no active subscription to ${appDomain}`);
    await within(c().deleteSubscription({ topic: sub.topic }), timeoutMs, "deleteSubscription");
    await until(() => (subscriptionFor(account, appDomain) ? undefined : true), timeoutMs, "the subscription to go");
    return plain({
      active: c().getActiveSubscriptions({ account }),
      relaySubscribed: c().core.relayer.subscriber.topics.includes(sub.topic),
    });
  },

  async waitSubscription({ account, appDomain, present = true, timeoutMs = 15_000 }) {
    need({ account, appDomain }, "account", "appDomain");
    const sub = await until(
      () => {
        const found = subscriptionFor(account, appDomain);
        if (present) return found;
        return found ? undefined : null;
      },
      timeoutMs,
      `the subscription to ${appDomain} to be ${present ? "there" : "gone"}`,
    );
    return plain(sub && { ...sub, relaySubscribed: c().core.relayer.subscriber.topics.includes(sub.topic) });
  },

  async state() {
    return plain({
      relayUrl: client?.core.relayer.relayUrl ?? null,
      connected: client?.core.relayer.connected ?? false,
      externalLookups,
      explorerRequests,
      responses,
      requests,
    });
  },

  async exit() {
    if (client) {
      try {
        await Promise.race([client.core.relayer.transportClose(), sleep(1000)]);
      } catch (err) {
        console.error("notify_wallet: transportClose on exit:", err);
      }
    }
    setTimeout(() => process.exit(0), 10);
    return null;
  },
};

serveOps("notify_wallet", PREFIX, ops);
