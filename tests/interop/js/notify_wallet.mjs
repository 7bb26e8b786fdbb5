// Interactive wallet peer: the OFFICIAL @walletconnect/notify-client as a wallet against our relay, keys
// server and notify server on loopback, for tests/interop/test_js_notify.py. Two pinned lines: 1.4.1 (./notify,
// core 2.12.2) and 0.14.6 (./notify0146, core 2.25.0), picked by `init {package}`.
//
// Protocol (as relay_peer.mjs): one JSON request per stdin line, {"id": n, "op": "<name>", ...args}; one
// reply per request on stdout, on a line starting with "@@notify-wallet " followed by
// {"id": n, "ok": true, "value": ...} or {"id": n, "ok": false, "error": "..."}. Other output goes to stderr.
//
// Ops (one NotifyClient per process, in-memory storage):
//   init {relayUrl, keyserverUrl, notifyServerUrl, projectId, package}
//        -> {relayUrl, keyserverUrl, notifyServerUrl, version, coreVersion}; package "notify" (1.4.1, the
//        default) or "notify0146" (0.14.6)
//   register {privateKey, chain, domain, allApps, timeoutMs}     -> {account, identityKey, registered, watch}
//        1.4.1: prepareRegistration -> EIP-191 signature (ethers v5) -> register; 0.14.6: register({account,
//        domain, isLimited: !allApps, onSign}). Both POST {keyserverUrl}/identity, then send
//        wc_notifyWatchSubscription to the notify server; waits for the watch answer, which `watch` is
//   subscribe {account, appDomain, timeoutMs}                    -> the active subscription for that app
//        (0.14.6 does not wait for the answer: the subscription arrives by wc_notifySubscriptionsChanged)
//   update {account, appDomain, scope, timeoutMs}                -> the subscription afterwards
//   deleteSubscription {account, appDomain, timeoutMs}           -> the account's active subscriptions afterwards
//   waitSubscription {account, appDomain, present, scope, timeoutMs}  -> the subscription once its topic is
//        also subscribed at the relay (or null once it is gone), as another device of the account learns it
//        from wc_notifySubscriptionsChanged; with `scope` (type ids), once exactly those are enabled
//   activeSubscriptions {account, apps, timeoutMs}  -> getActiveSubscriptions({account}) as a list, each with
//        relaySubscribed; with `apps` (app domains), once exactly those are active, each topic subscribed at the relay
//   messages {atLeast, timeoutMs}  -> every "notify_message" event so far, [{id, topic, message}], once
//        there are at least `atLeast`
//   localHistory {account, appDomain}  -> the client's own message store for the subscription (both lines)
//   history {account, appDomain, limit, startingAfter, unreadFirst, timeoutMs}
//        -> getNotificationHistory (1.4.1 only: wc_notifyGetNotifications): {notifications, hasMore, hasMoreUnread}
//   markRead {account, appDomain, ids, timeoutMs}  -> null; markNotificationsAsRead(ids), or
//        markAllNotificationsAsRead when ids is absent (1.4.1 only)
//   state {}      -> {externalLookups, explorerRequests, responses, requests, published, received,
//        subscriptionsChanged: every "notify_subscriptions_changed" event as {id, topic, apps}, ...}
//   exit {}       -> closes the relay transport, then the process exits
//
// The client's fixed endpoints are redirected: `client.notifyServerUrl` is set to ours (the client only
// GETs /.well-known/did.json there); the explorer's notify-config (hard-coded URL, axios, no timeout) is
// rewritten by an axios request interceptor to our notify server's /w3i/v1/notify-config, so the scope the
// client builds carries the notification type ids OUR server issued. Every DNS lookup of a name other than
// localhost fails and is recorded; localhost resolves to 127.0.0.1 only (Node's verbatim order may put ::1
// first, and the dapp's did.json is served on 127.0.0.1). A watchdog ends the process if "exit" never comes.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { guardDns, serveOps, startWatchdog } from "./line_peer.mjs";
import { MemoryStorage } from "./memory_storage.mjs";

const PREFIX = "@@notify-wallet ";
const WATCHDOG_MS = Number(process.env.NOTIFY_WALLET_WATCHDOG_MS || 90_000);
const LOG_LEVEL = process.env.NOTIFY_WALLET_LOG || "silent";
const EXPLORER = "https://explorer-api.walletconnect.com/w3i/v1/";
const PACKAGES = new Set(["notify", "notify0146"]); // folders beside this file, each with its own lockfile
startWatchdog("notify_wallet", WATCHDOG_MS);

const externalLookups = guardDns("notify_wallet");

// ------------------------------------------------------------------------------------ the packages
const here = path.dirname(fileURLToPath(import.meta.url));

// Loaded by `init` (after the DNS guard and the WebSocket fix of line_peer.mjs are in place).
function loadPackage(name) {
  if (!PACKAGES.has(name)) throw new Error(`unknown package folder ${name}`);
  const requireNotify = createRequire(path.join(here, name, "package.json"));
  const clientEntry = requireNotify.resolve("@walletconnect/notify-client");
  const requireFromClient = createRequire(clientEntry);
  // the version in the package.json above the module `require` resolves for `pkg` (exports may hide it)
  const versionOf = (require, pkg) => {
    for (let dir = path.dirname(require.resolve(pkg)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
      try {
        const meta = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
        if (meta.name === pkg) return meta.version;
      } catch {
        // no package.json at this level
      }
    }
    throw new Error(`no package.json for ${pkg}`);
  };
  const version = versionOf(requireNotify, "@walletconnect/notify-client");
  return {
    name,
    version,
    legacy: version.startsWith("0."), // 0.14.x: register({onSign}), no awaited answers, no server history
    coreVersion: versionOf(requireFromClient, "@walletconnect/core"),
    NotifyClient: requireNotify("@walletconnect/notify-client").NotifyClient,
    axios: requireFromClient("axios"), // the instance the client's engine calls
    ethers: {
      signingKey: requireNotify("@ethersproject/signing-key"),
      hash: requireNotify("@ethersproject/hash"),
      transactions: requireNotify("@ethersproject/transactions"),
      bytes: requireNotify("@ethersproject/bytes"),
    },
  };
}

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

let pkg = null;
let client = null;
let notifyServerUrl = null;
const explorerRequests = [];
const responses = []; // every JSON-RPC response the engine received: {topic, method, result | error}
const requests = []; // every JSON-RPC request the engine received: {topic, method}
const received = []; // every "notify_message" event: {id, topic, message}
const published = []; // every relayer.publish the client made: {topic, tag, ttl}
const subscriptionsChanged = []; // every "notify_subscriptions_changed" event: {id, topic, apps}

function redirectExplorer(axios) {
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
}

const c = () => {
  if (!client) throw new Error("call init first");
  return client;
};
const subscriptionFor = (account, appDomain) =>
  Object.values(c().getActiveSubscriptions({ account })).find((s) => s.metadata.appDomain === appDomain);
const activeSubscription = (account, appDomain) => {
  const sub = subscriptionFor(account, appDomain);
  if (!sub) throw new Error(`no active subscription to ${appDomain}`);
  return sub;
};
const plain = (value) => JSON.parse(JSON.stringify(value ?? null));
const relaySubscribed = (topic) => c().core.relayer.subscriber.topics.includes(topic);
const enabledScope = (sub) => Object.keys(sub?.scope ?? {}).filter((t) => sub.scope[t].enabled).sort();
const onlyIn141 = (what) => {
  if (pkg.legacy) throw new Error(`notify-client ${pkg.version} has no ${what}`);
};

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
    requests.push({ topic: event.topic, method: event.payload.method, id: event.payload.id });
    return onRequest(event);
  };
  // what the client sends, e.g. its wc_notifyMessage answers (tag 4003)
  const relayer = client.core.relayer;
  const publish = relayer.publish.bind(relayer);
  relayer.publish = (topic, message, opts) => {
    published.push({ topic, tag: opts?.tag ?? null, ttl: opts?.ttl ?? null });
    return publish(topic, message, opts);
  };
  client.on("notify_message", ({ id, topic, params }) => received.push({ id, topic, message: params.message }));
  // emitted for the watch answer (1.4.1) and for each wc_notifySubscriptionsChanged the client applied
  client.on("notify_subscriptions_changed", ({ id, topic, params }) =>
    subscriptionsChanged.push({ id, topic, apps: (params.subscriptions ?? []).map((s) => s.metadata.appDomain).sort() }),
  );
}

const lastResponse = (method, after) => responses.slice(after).find((r) => r.method === method);
const refused = (r) => new Error(`the server answered ${r.method} with an error: ${JSON.stringify(r.error)}`);

// The answer to `method` since `before`: an error is thrown; 0.14.6's calls return before it comes.
async function answered(method, before, timeoutMs) {
  const r = await until(() => lastResponse(method, before), timeoutMs, `the ${method} answer`);
  if (r.error) throw refused(r);
  return r;
}

const ops = {
  async init({ relayUrl, keyserverUrl, notifyServerUrl: notifyUrl, projectId = "wcnotify-interop-wallet", package: name = "notify" }) {
    need({ relayUrl, keyserverUrl, notifyUrl }, "relayUrl", "keyserverUrl", "notifyUrl");
    if (client) throw new Error("init twice");
    pkg = loadPackage(name);
    redirectExplorer(pkg.axios);
    notifyServerUrl = notifyUrl.replace(/\/$/, "");
    client = await within(
      pkg.NotifyClient.init({
        projectId, relayUrl, keyserverUrl, logger: LOG_LEVEL, storage: new MemoryStorage(),
        telemetryEnabled: false, // core 2.25 (0.14.6): no verify/telemetry calls
      }),
      15_000,
      "NotifyClient.init",
    );
    // A plain property holding the hard-coded https://notify.walletconnect.com (interop.md).
    client.notifyServerUrl = notifyServerUrl;
    spyOnEngine(client.engine);
    return {
      relayUrl: client.core.relayer.relayUrl, keyserverUrl: client.keyserverUrl, notifyServerUrl: client.notifyServerUrl,
      version: pkg.version, coreVersion: pkg.coreVersion,
    };
  },

  async register({ privateKey, chain = "eip155:1", domain, allApps = true, timeoutMs = 15_000 }) {
    need({ privateKey, domain }, "privateKey", "domain");
    const { ethers } = pkg;
    const key = new ethers.signingKey.SigningKey(privateKey);
    const sign = (message) => ethers.bytes.joinSignature(key.signDigest(ethers.hash.hashMessage(message)));
    const account = `${chain}:${ethers.transactions.computeAddress(privateKey)}`;
    const before = responses.length;
    let identityKey;
    let registered;
    if (pkg.legacy) {
      // identity-keys 0.2.3 builds the CACAO and asks for the signature itself
      const registering = c().register({ account, domain, isLimited: !allApps, onSign: async (m) => sign(m) });
      identityKey = await within(registering, timeoutMs, "register");
      registered = await c().identityKeys.hasIdentity({ account });
    } else {
      const { message, registerParams } = await c().prepareRegistration({ account, domain, allApps });
      // POST {keyserverUrl}/identity, then the watch request; register() swallows a failed watch (it logs it).
      const registering = c().register({ registerParams, signature: sign(message) });
      identityKey = await within(registering, timeoutMs, "register");
      registered = c().isRegistered({ account, allApps, domain });
    }
    const watch = await until(() => lastResponse("wc_notifyWatchSubscription", before), timeoutMs, "the watch answer");
    if (watch.error) throw refused(watch);
    if (!pkg.legacy && !c().hasFinishedInitialLoad()) {
      throw new Error("watch answered but the client has not finished its initial load");
    }
    return { account, identityKey, registered, watch };
  },

  async subscribe({ account, appDomain, timeoutMs = 15_000 }) {
    need({ account, appDomain }, "account", "appDomain");
    const before = responses.length;
    if (pkg.legacy) {
      // resolves once sent ({id, subscriptionAuth}); the subscription comes by wc_notifySubscriptionsChanged
      await within(c().subscribe({ account, appDomain }), timeoutMs, "subscribe");
      await answered("wc_notifySubscribe", before, timeoutMs);
    } else {
      // resolves true on a notify_subscription_response naming this app, false on a JSON-RPC error
      const ok = await within(c().subscribe({ account, appDomain }), timeoutMs, "subscribe");
      if (!ok) {
        const r = lastResponse("wc_notifySubscribe", before);
        throw r ? refused(r) : new Error("subscribe() resolved false");
      }
    }
    const sub = await until(() => subscriptionFor(account, appDomain), timeoutMs, `an active subscription to ${appDomain}`);
    await until(() => relaySubscribed(sub.topic) || undefined, timeoutMs, "the relay subscription");
    return plain({ ...sub, relaySubscribed: relaySubscribed(sub.topic) });
  },

  async update({ account, appDomain, scope, timeoutMs = 15_000 }) {
    need({ account, appDomain, scope }, "account", "appDomain", "scope");
    const sub = activeSubscription(account, appDomain);
    const before = responses.length;
    await within(c().update({ topic: sub.topic, scope }), timeoutMs, "update");
    await answered("wc_notifyUpdate", before, timeoutMs);
    // 1.4.1 has applied the answer's sbs; 0.14.6 applies the wc_notifySubscriptionsChanged that follows
    const wanted = JSON.stringify([...scope].sort());
    await until(
      () => (JSON.stringify(enabledScope(subscriptionFor(account, appDomain))) === wanted ? true : undefined),
      timeoutMs,
      `the scope ${wanted}`,
    );
    return plain(subscriptionFor(account, appDomain));
  },

  async deleteSubscription({ account, appDomain, timeoutMs = 15_000 }) {
    need({ account, appDomain }, "account", "appDomain");
    const sub = activeSubscription(account, appDomain);
    const before = responses.length;
    await within(c().deleteSubscription({ topic: sub.topic }), timeoutMs, "deleteSubscription");
    await answered("wc_notifyDelete", before, timeoutMs);
    await until(() => (subscriptionFor(account, appDomain) ? undefined : true), timeoutMs, "the subscription to go");
    await until(() => (relaySubscribed(sub.topic) ? undefined : true), timeoutMs, "the relay unsubscription");
    return plain({ active: c().getActiveSubscriptions({ account }), relaySubscribed: relaySubscribed(sub.topic) });
  },

  async waitSubscription({ account, appDomain, present = true, scope, timeoutMs = 15_000 }) {
    need({ account, appDomain }, "account", "appDomain");
    const wanted = scope === undefined ? undefined : JSON.stringify([...scope].sort());
    const sub = await until(
      () => {
        const found = subscriptionFor(account, appDomain);
        if (!present) return found ? undefined : null;
        // the client stores the subscription, then subscribes its topic at the relay: wait for both
        if (!found || !relaySubscribed(found.topic)) return undefined;
        return wanted === undefined || JSON.stringify(enabledScope(found)) === wanted ? found : undefined;
      },
      timeoutMs,
      `the subscription to ${appDomain} to be ${present ? "there, its topic subscribed at the relay" : "gone"}` +
        (wanted === undefined ? "" : ` with the scope ${wanted}`),
    );
    return plain(sub && { ...sub, relaySubscribed: relaySubscribed(sub.topic) });
  },

  async activeSubscriptions({ account, apps, timeoutMs = 15_000 }) {
    need({ account }, "account");
    const active = () => Object.values(c().getActiveSubscriptions({ account }));
    if (apps !== undefined) {
      const wanted = JSON.stringify([...apps].sort());
      await until(
        () => {
          const subs = active();
          const domains = JSON.stringify(subs.map((s) => s.metadata.appDomain).sort());
          return domains === wanted && subs.every((s) => relaySubscribed(s.topic)) ? true : undefined;
        },
        timeoutMs,
        `exactly the subscriptions ${wanted}, their topics subscribed at the relay`,
      );
    }
    return plain(active().map((s) => ({ ...s, relaySubscribed: relaySubscribed(s.topic) })));
  },

  async messages({ atLeast = 1, timeoutMs = 15_000 }) {
    c();
    await until(() => (received.length >= atLeast ? true : undefined), timeoutMs, `${atLeast} notify_message events`);
    return plain(received);
  },

  async localHistory({ account, appDomain }) {
    need({ account, appDomain }, "account", "appDomain");
    const { topic } = activeSubscription(account, appDomain);
    return plain(c().messages.keys.includes(topic) ? Object.values(c().messages.get(topic).messages) : []);
  },

  async history({ account, appDomain, limit, startingAfter, unreadFirst, timeoutMs = 15_000 }) {
    need({ account, appDomain }, "account", "appDomain");
    onlyIn141("getNotificationHistory");
    const { topic } = activeSubscription(account, appDomain);
    const before = responses.length;
    const page = await within(
      c().getNotificationHistory({ topic, limit, startingAfter, unreadFirst }),
      timeoutMs,
      "getNotificationHistory",
    );
    await answered("wc_notifyGetNotifications", before, timeoutMs);
    return plain(page);
  },

  async markRead({ account, appDomain, ids, timeoutMs = 15_000 }) {
    need({ account, appDomain }, "account", "appDomain");
    onlyIn141("markNotificationsAsRead");
    const { topic } = activeSubscription(account, appDomain);
    const before = responses.length;
    const marking = ids === undefined
      ? c().markAllNotificationsAsRead({ topic })
      : c().markNotificationsAsRead({ topic, notificationIds: ids });
    await within(marking, timeoutMs, "markNotificationsAsRead");
    await answered("wc_notifyMarkNotificationsAsRead", before, timeoutMs);
    return null;
  },

  async state() {
    return plain({
      version: pkg?.version ?? null,
      relayUrl: client?.core.relayer.relayUrl ?? null,
      connected: client?.core.relayer.connected ?? false,
      externalLookups,
      explorerRequests,
      responses,
      requests,
      published,
      received,
      subscriptionsChanged,
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
