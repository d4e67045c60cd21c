// Credentials across the thread boundary. The main thread owns the kubeconfig (client-node, exec and
// OIDC providers); before each dial the worker asks it for the TLS settings and credentials of that
// moment (`readCredentials`), and applies them to its request (`applyCredentials`). Agents do not
// cross threads, so the worker makes its own: one https.Agent (TLS session resumption across dials),
// or the proxy agent the kubeconfig's proxy-url asks for, built the way client-node builds it.
//
// TLS contexts: left alone, every dial builds a new `SecureContext` from the same PEM text (parsing
// the CA bundle, the certificate and the key: about 0.25 ms of the worker's CPU each, half a second
// when a restart re-dials 2,000 sessions). The worker keeps the context of each credential set it
// has seen lately, keyed on a hash of that material, and passes it with the request; the PEM fields
// stay on the request too, since the agent names its TLS session cache after them. A rotated
// certificate hashes differently and gets a context of its own.
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';
import { SocksProxyAgent } from 'socks-proxy-agent';
import type { ApiServerAccess } from '../access';
import type { CredentialData, DialCredentials } from './protocol';

/** Runs on the main thread: the cloneable TLS settings and credentials `access` gives now. */
export async function readCredentials(access: ApiServerAccess): Promise<DialCredentials> {
  const opts: https.RequestOptions = {};
  await access.applyToHTTPSOptions(opts);
  const out: DialCredentials = {};
  const data = (v: unknown): CredentialData | undefined => {
    if (typeof v === 'string' || v instanceof Uint8Array) return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string' || x instanceof Uint8Array)) return v;
    return undefined;
  };
  for (const k of ['ca', 'cert', 'key', 'pfx'] as const) {
    const v = data(opts[k]);
    if (v !== undefined) out[k] = v;
  }
  if (typeof opts.passphrase === 'string') out.passphrase = opts.passphrase;
  if (typeof opts.rejectUnauthorized === 'boolean') out.rejectUnauthorized = opts.rejectUnauthorized;
  if (typeof opts.servername === 'string') out.servername = opts.servername;
  if (typeof opts.auth === 'string') out.auth = opts.auth;
  if (opts.headers && !Array.isArray(opts.headers)) {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers)) if (v !== undefined) headers[k] = String(v);
    out.headers = headers;
  }
  return out;
}

/** Runs in the worker: puts `creds` and the worker's agent on request options. */
export function applyCredentials(
  opts: https.RequestOptions,
  creds: DialCredentials,
  agent: http.Agent,
): void {
  for (const k of ['ca', 'cert', 'key', 'pfx'] as const) {
    const v = creds[k];
    if (v !== undefined) opts[k] = Array.isArray(v) ? v.map(asBuffer) : asBuffer(v);
  }
  if (creds.passphrase !== undefined) opts.passphrase = creds.passphrase;
  if (creds.rejectUnauthorized !== undefined) opts.rejectUnauthorized = creds.rejectUnauthorized;
  if (creds.servername !== undefined) opts.servername = creds.servername;
  if (creds.auth !== undefined) opts.auth = creds.auth;
  if (creds.headers) opts.headers = { ...(opts.headers as Record<string, string>), ...creds.headers };
  // https.request hands its options to tls.connect, which takes a ready context (ConnectionOptions).
  (opts as tls.ConnectionOptions).secureContext = secureContextFor(opts);
  opts.agent = agent;
}

/** How many credential sets' contexts the worker keeps: the local cluster's and remote ones'. */
const MAX_CONTEXTS = 16;
const contexts = new Map<string, tls.SecureContext>();

/** The TLS context of the material on `opts` (ca, cert, key, pfx, passphrase): the cached one, or new. */
export function secureContextFor(opts: tls.SecureContextOptions): tls.SecureContext {
  const hash = createHash('sha256');
  for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase'] as const) {
    const v = opts[k] as string | Buffer | (string | Buffer)[] | undefined;
    hash.update(`${k}:${v === undefined ? '-' : Array.isArray(v) ? v.length : 1}\0`);
    for (const part of v === undefined ? [] : Array.isArray(v) ? v : [v]) {
      hash.update(part);
      hash.update('\0');
    }
  }
  const key = hash.digest('hex');
  let ctx = contexts.get(key);
  if (ctx) {
    contexts.delete(key); // most recently used last
  } else {
    ctx = tls.createSecureContext({
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      pfx: opts.pfx,
      passphrase: opts.passphrase,
    });
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value!);
  }
  contexts.set(key, ctx);
  return ctx;
}

function asBuffer(v: string | Uint8Array): string | Buffer {
  return typeof v === 'string' ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** The agent of every dial to `server`, through `proxyUrl` when the kubeconfig names one. */
export function workerAgent(server: string, proxyUrl: string | undefined): http.Agent {
  if (!proxyUrl) return server.startsWith('https:') ? new https.Agent() : new http.Agent();
  if (proxyUrl.startsWith('socks')) return new SocksProxyAgent(proxyUrl);
  if (server.startsWith('https:')) return new HttpsProxyAgent({ proxy: proxyUrl });
  return new HttpProxyAgent({ proxy: proxyUrl });
}
