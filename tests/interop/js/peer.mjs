// Interop peer: drives the OFFICIAL WalletConnect JS packages (pinned in ./current and ./notify) for the
// Python tests in tests/interop/. Every operation calls the packages' own exported functions; nothing of
// the protocol is re-implemented here beyond gluing those calls together.
//
// Protocol: read ONE JSON document from stdin, write ONE JSON line to stdout.
//   request  {"op": "<name>", ...args}            -> {"ok": true, "value": ...} | {"ok": false, "error": "..."}
//   request  {"ops": [{"op": ...}, ...]}          -> [ <one result object per op, in order> ]
// Ops run sequentially. A failing op does not stop the batch. Anything the packages log goes to stderr
// (console.* is redirected), and the result is the LAST line of stdout.
//
// Nothing here touches the network. The notify-client path constructs NotifyClient WITHOUT calling init(),
// so its Core 2.12.2 never starts or connects; it gets an in-memory key-value storage so nothing is
// written to disk.

import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { webcrypto } from "node:crypto";
import fs from "node:fs";
import { MemoryStorage } from "./memory_storage.mjs";

// interop.md: core 2.12.2 misbehaves with the global WebSocket of newer Node; remove it before any
// @walletconnect module loads (a no-op on plain Node 20).
delete globalThis.WebSocket;
if (!globalThis.crypto) globalThis.crypto = webcrypto;

// Keep stdout for the single result line.
for (const level of ["log", "info", "warn", "debug", "trace"]) console[level] = console.error;

const here = path.dirname(fileURLToPath(import.meta.url));
const requireCurrent = createRequire(path.join(here, "current", "package.json"));
const requireNotify = createRequire(path.join(here, "notify", "package.json"));

// Resolve a module the way a given package resolves it (e.g. the @noble/ed25519 copy did-jwt uses).
const requireFrom = (req, pkg) => createRequire(req.resolve(pkg));

const lazy = (load) => {
  let value;
  return () => (value ??= load());
};

// ------------------------------------------------------------------ current line (utils/core 2.25.0)
const utils25 = lazy(() => requireCurrent("@walletconnect/utils"));
const relayAuth = lazy(() => requireCurrent("@walletconnect/relay-auth"));
const relayAuthTime = lazy(() =>
  requireFrom(requireCurrent, "@walletconnect/relay-auth")("@walletconnect/time"),
);

// --------------------------------------------------------------- notify-client 1.4.1 and its pins
// did-jwt: notify-client 1.4.1 depends on 2.0.1; identity-keys 2.1.0 (which signs every JWT the client
// sends, via IdentityKeys.generateIdAuth) has its own nested copy of 2.1.0. Both can be selected.
const didJwtModules = {
  "2.0.1": lazy(() => requireFrom(requireNotify, "@walletconnect/notify-client")("@walletconnect/did-jwt")),
  "2.1.0": lazy(() =>
    requireFrom(requireNotify, "@walletconnect/identity-keys")("@walletconnect/did-jwt"),
  ),
};
const didJwtPaths = {
  "2.0.1": () => requireFrom(requireNotify, "@walletconnect/notify-client").resolve("@walletconnect/did-jwt"),
  "2.1.0": () => requireFrom(requireNotify, "@walletconnect/identity-keys").resolve("@walletconnect/did-jwt"),
};
const didJwt = (version = "2.0.1") => {
  const load = didJwtModules[version];
  if (!load) throw new Error(`unknown did-jwt version ${version} (have ${Object.keys(didJwtModules)})`);
  return load();
};
// The Ed25519 library each did-jwt copy signs with (@noble/ed25519 1.7.3).
const nobleFor = (version = "2.0.1") => createRequire(didJwtPaths[version]())("@noble/ed25519");
const notifyClientPkg = lazy(() => requireNotify("@walletconnect/notify-client"));
const utils12 = lazy(() => requireFrom(requireNotify, "@walletconnect/identity-keys")("@walletconnect/utils"));
const cacaoPkg = lazy(() => requireFrom(requireNotify, "@walletconnect/identity-keys")("@walletconnect/cacao"));
const jwtDecodeLib = lazy(() => {
  const mod = requireFrom(requireNotify, "@walletconnect/notify-client")("jwt-decode");
  return typeof mod === "function" ? mod : mod.default;
});
const ethers = lazy(() => ({
  signingKey: requireNotify("@ethersproject/signing-key"),
  hash: requireNotify("@ethersproject/hash"),
  transactions: requireNotify("@ethersproject/transactions"),
  address: requireNotify("@ethersproject/address"),
  bytes: requireNotify("@ethersproject/bytes"),
}));

// ------------------------------------------------------------------------------------------ helpers
const hexToBytes = (hex, what = "hex") => {
  if (typeof hex !== "string" || !/^(0x)?([0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`${what} must be hex`);
  return Uint8Array.from(Buffer.from(hex.replace(/^0x/, ""), "hex"));
};
const bytesToHex = (bytes) => Buffer.from(bytes).toString("hex");
const need = (args, ...names) => {
  for (const n of names) if (args[n] === undefined) throw new Error(`missing argument "${n}"`);
};


const offlineNotifyClients = new Map();
function offlineNotifyClient(keyserverUrl, identitySeed) {
  // A NotifyClient 1.4.1 built exactly as a wallet builds it, but never initialised: no core.start(),
  // so no relay connection, no storage restore, no network. prepareRegistration() only needs the
  // IdentityKeys instance it constructs (identity-keys 2.1.0 with this keyserverUrl).
  if (!offlineNotifyClients.has(keyserverUrl)) {
    const { NotifyClient } = notifyClientPkg();
    const client = new NotifyClient({
      projectId: "wcnotify-interop-offline",
      relayUrl: "ws://127.0.0.1:9",
      keyserverUrl,
      logger: "silent",
      storage: new MemoryStorage(),
    });
    client.identityKeys.randomIdentityKey = client.identityKeys.generateIdentityKey;
    offlineNotifyClients.set(keyserverUrl, client);
  }
  const client = offlineNotifyClients.get(keyserverUrl);
  const ik = client.identityKeys;
  if (identitySeed !== undefined) {
    // Pin the identity key: replace identity-keys' random key generator (a private instance property)
    // with its own getKeyData(seed).
    const seed = hexToBytes(identitySeed, "identitySeed");
    ik.generateIdentityKey = () => ik.getKeyData(seed);
  } else {
    ik.generateIdentityKey = ik.randomIdentityKey; // @noble/ed25519 utils.randomPrivateKey()
  }
  return client;
}

function splitJwt(jwt) {
  const parts = String(jwt).split(".");
  if (parts.length !== 3) throw new Error("JWT must have three segments");
  return parts;
}

// ------------------------------------------------------------------------------------------ the ops
const ops = {
  versions() {
    const v = (req, name) => JSON.parse(fs.readFileSync(findPackageJson(req, name), "utf8")).version;
    return {
      node: process.version,
      "current:@walletconnect/utils": v(requireCurrent, "@walletconnect/utils"),
      "current:@walletconnect/relay-auth": v(requireCurrent, "@walletconnect/relay-auth"),
      "current:@walletconnect/core": v(requireCurrent, "@walletconnect/core"),
      "notify:@walletconnect/notify-client": v(requireNotify, "@walletconnect/notify-client"),
      "notify:@walletconnect/core": v(requireFrom(requireNotify, "@walletconnect/notify-client"), "@walletconnect/core"),
      "notify:@walletconnect/utils": v(requireFrom(requireNotify, "@walletconnect/identity-keys"), "@walletconnect/utils"),
      "notify:@walletconnect/identity-keys": v(requireNotify, "@walletconnect/identity-keys"),
      "notify:@walletconnect/did-jwt": v(requireFrom(requireNotify, "@walletconnect/notify-client"), "@walletconnect/did-jwt"),
      "notify:identity-keys/@walletconnect/did-jwt": v(requireFrom(requireNotify, "@walletconnect/identity-keys"), "@walletconnect/did-jwt"),
      "notify:@walletconnect/cacao": v(requireFrom(requireNotify, "@walletconnect/identity-keys"), "@walletconnect/cacao"),
    };
  },

  // ---- @walletconnect/utils 2.25.0 crypto.ts
  generateKeyPair() {
    return utils25().generateKeyPair(); // {privateKey, publicKey} hex
  },
  deriveSymKey({ privateKey, publicKey }) {
    return utils25().deriveSymKey(privateKey, publicKey);
  },
  hashKey({ key }) {
    return utils25().hashKey(key);
  },
  hashMessage({ message }) {
    return utils25().hashMessage(message);
  },
  encrypt0({ symKey, message, iv }) {
    need({ symKey, message }, "symKey", "message");
    return utils25().encrypt({ type: 0, symKey, message, iv });
  },
  encrypt1({ symKey, senderPublicKey, message, iv }) {
    need({ symKey, senderPublicKey, message }, "symKey", "senderPublicKey", "message");
    return utils25().encrypt({ type: 1, symKey, senderPublicKey, message, iv });
  },
  encrypt2({ message }) {
    return utils25().encodeTypeTwoEnvelope(message);
  },
  decrypt({ symKey, encoded }) {
    return utils25().decrypt({ symKey, encoded });
  },
  decrypt1({ receiverPrivateKey, receiverPublicKey, encoded }) {
    // What core's Crypto.decode does for a type 1 envelope, with utils' own functions:
    // validateDecoding(encoded, {receiverPublicKey}) -> senderPublicKey; deriveSymKey(receiverPrivate,
    // senderPublic); decrypt. The receiver's public key defaults to X25519(receiverPrivateKey) computed
    // with the @noble/curves copy utils itself uses.
    need({ receiverPrivateKey, encoded }, "receiverPrivateKey", "encoded");
    const u = utils25();
    receiverPublicKey ??= bytesToHex(
      requireFrom(requireCurrent, "@walletconnect/utils")("@noble/curves/ed25519").x25519.getPublicKey(
        hexToBytes(receiverPrivateKey, "receiverPrivateKey"),
      ),
    );
    const params = u.validateDecoding(encoded, { receiverPublicKey });
    if (!u.isTypeOneEnvelope(params)) throw new Error(`not a type 1 envelope (type ${params.type})`);
    const symKey = u.deriveSymKey(receiverPrivateKey, params.senderPublicKey);
    return { senderPublicKey: params.senderPublicKey, symKey, message: u.decrypt({ symKey, encoded }) };
  },
  deserialize({ encoded }) {
    const d = utils25().deserialize({ encoded });
    return {
      type: d.type[0],
      senderPublicKey: d.senderPublicKey ? bytesToHex(d.senderPublicKey) : null,
      iv: bytesToHex(d.iv),
      sealed: bytesToHex(d.sealed),
    };
  },

  // ---- @walletconnect/relay-auth 1.1.0
  async relayAuthSign({ seed, sub, aud, ttl, iat }) {
    need({ seed, sub, aud, ttl }, "seed", "sub", "aud", "ttl");
    const keyPair = relayAuth().generateKeyPair(hexToBytes(seed, "seed"));
    return relayAuth().signJWT(sub, aud, ttl, keyPair, iat ?? relayAuthTime().fromMiliseconds(Date.now()));
  },
  async relayAuthVerify({ jwt }) {
    try {
      return await relayAuth().verifyJWT(jwt);
    } catch (err) {
      return false; // verifyJWT throws on a non-EdDSA header or a bad iss; treat as "does not verify"
    }
  },
  relayAuthDecode({ jwt }) {
    const d = relayAuth().decodeJWT(jwt);
    return { header: d.header, payload: d.payload, signature: bytesToHex(d.signature) };
  },
  relayAuthIss({ publicKey }) {
    return relayAuth().encodeIss(hexToBytes(publicKey, "publicKey"));
  },
  relayAuthPublicKey({ seed }) {
    return bytesToHex(relayAuth().generateKeyPair(hexToBytes(seed, "seed")).publicKey);
  },

  // ---- @walletconnect/did-jwt 2.0.1 (notify-client) / 2.1.0 (identity-keys)
  async didJwtSign({ seed, claims, version }) {
    need({ seed, claims }, "seed", "claims");
    const noble = nobleFor(version);
    const publicKey = bytesToHex(await noble.getPublicKey(hexToBytes(seed, "seed")));
    // generateJWT([publicKeyHex, privateKeyHex], payload): exactly how IdentityKeys.generateIdAuth calls it.
    return didJwt(version).generateJWT([publicKey, seed.replace(/^0x/, "")], claims);
  },
  async didJwtVerify({ jwt, version }) {
    // did-jwt 2.x has no verify function (the notify client never verifies what it receives). This uses
    // the package's own pieces: decodeEd25519Key(iss) and the @noble/ed25519 copy it signs with.
    try {
      const [h, p, s] = splitJwt(jwt);
      const header = JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
      const payload = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
      if (header.alg !== "EdDSA") return false;
      const publicKey = didJwt(version).decodeEd25519Key(payload.iss);
      const data = new TextEncoder().encode(`${h}.${p}`);
      return await nobleFor(version).verify(Buffer.from(s, "base64url"), data, publicKey);
    } catch (err) {
      return false;
    }
  },
  jwtDecode({ jwt, header }) {
    // jwt-decode 3.1.2: what notify-client 1.4.1 uses to read every JWT it receives.
    return jwtDecodeLib()(jwt, header ? { header: true } : undefined);
  },
  didKeyEd25519({ publicKey, version }) {
    return didJwt(version).encodeEd25519Key(publicKey);
  },
  didKeyX25519({ publicKey, version }) {
    return didJwt(version).encodeX25519Key(publicKey);
  },
  didKeyDecodeEd25519({ didKey, version }) {
    return bytesToHex(didJwt(version).decodeEd25519Key(didKey));
  },
  didPkh({ account, version }) {
    return didJwt(version).composeDidPkh(account);
  },

  // ---- SIWE / CACAO registration message (notify-client 1.4.1 -> identity-keys 2.1.0)
  async siwe({ account, domain, keyserverUrl, allApps, identitySeed }) {
    need({ account, domain, keyserverUrl }, "account", "domain", "keyserverUrl");
    const client = offlineNotifyClient(keyserverUrl, identitySeed);
    // NotifyClient.prepareRegistration -> engine -> IdentityKeys.prepareRegistration({accountId, domain,
    // statement}) -> utils 2.12.2 formatMessage(payload, did:pkh).
    const { message, registerParams } = await client.prepareRegistration({ account, domain, allApps });
    const payload = registerParams.cacaoPayload;
    const privateIdentityKey = bytesToHex(registerParams.privateIdentityKey);
    const identityPublicKey = bytesToHex(await nobleFor("2.1.0").getPublicKey(registerParams.privateIdentityKey));
    return {
      message,
      payload: JSON.parse(JSON.stringify(payload)), // drops statement when undefined, as axios would
      payloadKeys: Object.keys(payload),
      identityPrivateKey: privateIdentityKey,
      identityPublicKey,
      // The same payload through the two other formatters in the tree, for cross-checking.
      utilsFormatMessage: utils12().formatMessage(payload, payload.iss),
      cacaoFormatMessage: cacaoPkg().formatMessage(payload, payload.iss),
      statements: {
        thisDomain: notifyClientPkg().NOTIFY_AUTHORIZATION_STATEMENT_THIS_DOMAIN,
        allDomains: notifyClientPkg().NOTIFY_AUTHORIZATION_STATEMENT_ALL_DOMAINS,
      },
    };
  },
  async siweRecaps({ account, domain, keyserverUrl, allApps, identitySeed }) {
    // NotifyClient.prepareRegistrationWithRecaps -> IdentityKeys.prepareRegistrationWithRecaps: a payload
    // without iss (aud = uri = https://{domain}?walletconnect_identity_key=did:key..., resources =
    // [keyserverUrl, urn:recap:...]). The wallet's auth flow adds iss = did:pkh:<account>; register() ->
    // IdentityKeys.registerIdentity then checks the signature against utils 2.12.2
    // formatMessage(payload, payload.iss), which is the message returned here.
    need({ account, domain, keyserverUrl }, "account", "domain", "keyserverUrl");
    const client = offlineNotifyClient(keyserverUrl, identitySeed);
    const prepared = await client.prepareRegistrationWithRecaps({ domain, allApps });
    const iss = didJwt("2.1.0").composeDidPkh(account);
    const payload = { ...prepared.cacaoPayload, iss };
    return {
      message: utils12().formatMessage(payload, iss),
      payload: JSON.parse(JSON.stringify(payload)),
      payloadKeys: Object.keys(payload),
      allApps: prepared.allApps,
      identityPrivateKey: bytesToHex(prepared.privateIdentityKey),
      identityPublicKey: bytesToHex(await nobleFor("2.1.0").getPublicKey(prepared.privateIdentityKey)),
    };
  },
  formatMessage({ payload, iss }) {
    // utils 2.12.2 formatMessage: what identity-keys uses for both prepareRegistration and registerIdentity.
    return utils12().formatMessage(payload, iss ?? payload.iss);
  },

  // ---- EIP-191 (ethers v5 packages from notify-client's tree; the ones @walletconnect/cacao verifies with)
  ethAddress({ privateKey }) {
    return ethers().transactions.computeAddress(hexToBytes(privateKey, "privateKey"));
  },
  ethChecksum({ address }) {
    return ethers().address.getAddress(address);
  },
  eip191Sign({ privateKey, message }) {
    const e = ethers();
    const key = new e.signingKey.SigningKey(hexToBytes(privateKey, "privateKey"));
    return e.bytes.joinSignature(key.signDigest(e.hash.hashMessage(message)));
  },
  async cacaoVerifySignature({ address, message, signature, chainId }) {
    // @walletconnect/cacao verifySignature, EIP-191 branch only (the EIP-1271 branch calls an RPC).
    return cacaoPkg().verifySignature(address, message, { t: "eip191", s: signature }, chainId ?? "eip155:1", "offline");
  },
};

// ---- identity-keys 2.1.0 against a keys server on LOOPBACK (tests/interop/test_js_keys.py)
// IdentityKeys is built as NotifyClient builds it: on a Core 2.12.2 (never started: no relay) with in-memory
// storage; only its keychain and its identityKeys Store are initialised. Its register/resolve/unregister
// then talk HTTP (axios) to keyserverUrl, which must be a loopback URL.
const identityKeysPkg = lazy(() => requireNotify("@walletconnect/identity-keys"));
const identityKeysCore = lazy(() => requireFrom(requireNotify, "@walletconnect/identity-keys")("@walletconnect/core"));
async function loopbackIdentityKeys(keyserverUrl, identitySeed) {
  if (!["127.0.0.1", "localhost", "[::1]"].includes(new URL(keyserverUrl).hostname)) {
    throw new Error(`keyserverUrl must be a loopback URL, got ${keyserverUrl}`);
  }
  const core = new (identityKeysCore().Core)({
    projectId: "wcnotify-interop-offline", relayUrl: "ws://127.0.0.1:9", logger: "silent", storage: new MemoryStorage(),
  });
  await core.crypto.init();
  const ik = new (identityKeysPkg().IdentityKeys)(core, "wcnotify-interop-offline", keyserverUrl);
  await ik.init();
  if (identitySeed !== undefined) {
    const seed = hexToBytes(identitySeed, "identitySeed");
    ik.generateIdentityKey = () => ik.getKeyData(seed);
  }
  return ik;
}
Object.assign(ops, {
  async identityKeysRegister({ keyserverUrl, account, domain, allApps, privateKey, identitySeed }) {
    // prepareRegistration -> the wallet signs the SIWE text (ethers, EIP-191) -> registerIdentity, which
    // checks the signature itself and POSTs {cacao} to keyserverUrl/identity.
    need({ keyserverUrl, account, domain, privateKey }, "keyserverUrl", "account", "domain", "privateKey");
    const ik = await loopbackIdentityKeys(keyserverUrl, identitySeed);
    const n = notifyClientPkg();
    const statement = allApps ? n.NOTIFY_AUTHORIZATION_STATEMENT_ALL_DOMAINS : n.NOTIFY_AUTHORIZATION_STATEMENT_THIS_DOMAIN;
    const { message, registerParams } = await ik.prepareRegistration({ accountId: account, domain, statement });
    const signature = { t: "eip191", s: ops.eip191Sign({ privateKey, message }) };
    const identityPublicKey = await ik.registerIdentity({ registerParams, signature });
    return { message, identityPublicKey, identityKey: didJwt("2.1.0").encodeEd25519Key(identityPublicKey) };
  },
  async identityKeysResolve({ keyserverUrl, publicKey }) {
    // resolveIdentity({publicKey: did:key}) -> GET keyserverUrl/identity?publicKey=<multibase> -> value.cacao
    need({ keyserverUrl, publicKey }, "keyserverUrl", "publicKey");
    return (await loopbackIdentityKeys(keyserverUrl)).resolveIdentity({ publicKey });
  },
  async identityKeysUnregister({ keyserverUrl, account, identitySeed }) {
    // The key pair a wallet would restore from its storage, then unregisterIdentity: DELETE {idAuth} signed
    // by the identity key with iat = Date.now() and exp = jwtExp(iat), both in milliseconds.
    need({ keyserverUrl, account, identitySeed }, "keyserverUrl", "account", "identitySeed");
    const ik = await loopbackIdentityKeys(keyserverUrl);
    const { pubKeyHex, privKeyHex } = await ik.getKeyData(hexToBytes(identitySeed, "identitySeed"));
    await ik.identityKeys.set(account, { identityKeyPriv: privKeyHex, identityKeyPub: pubKeyHex, accountId: account });
    await ik.unregisterIdentity({ account });
    return { registered: ik.isRegistered(account) };
  },
});

// ---- versions() helper
function findPackageJson(req, name) {
  // Walk up from the resolved entry point to the package's own package.json.
  let dir = path.dirname(req.resolve(name));
  for (;;) {
    const candidate = path.join(dir, "package.json");
    if (fs.existsSync(candidate)) {
      const pkg = JSON.parse(fs.readFileSync(candidate, "utf8"));
      if (pkg.name === name) return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`package.json of ${name} not found`);
    dir = parent;
  }
}

// ------------------------------------------------------------------------------------------ driver
async function runOne(request) {
  try {
    if (!request || typeof request !== "object") throw new Error("each request must be an object");
    const { op, ...args } = request;
    const fn = Object.hasOwn(ops, op) ? ops[op] : undefined;
    if (!fn) throw new Error(`unknown op ${JSON.stringify(op)}`);
    return { ok: true, value: (await fn(args)) ?? null };
  } catch (err) {
    return { ok: false, error: String(err?.stack || err) };
  }
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  let request;
  try {
    request = JSON.parse(await readStdin());
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, error: `bad request JSON: ${err}` }) + "\n");
    process.exitCode = 2;
    return;
  }
  let result;
  if (request && Array.isArray(request.ops)) {
    result = [];
    for (const r of request.ops) result.push(await runOne(r));
  } else {
    result = await runOne(request);
  }
  process.stdout.write("\n" + JSON.stringify(result) + "\n", () => process.exit(0));
}

main();
