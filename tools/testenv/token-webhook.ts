// A webhook token authenticator for the test control plane, so that tests can mint a bearer token for
// any user with any groups without restarting kube-apiserver (its static token file is read once).
// A token is `pfo.<payload>.<mac>`: payload is base64url JSON {user, groups}, mac an HMAC-SHA256 of it
// under a secret that lives in the state folder. kube-apiserver asks this server about every token it
// does not know itself (TokenReview, authentication.k8s.io/v1).
//
// Run as a program: node token-webhook.js PORT SECRET_FILE
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

export interface UserInfo {
  user: string;
  groups: string[];
}

const PREFIX = 'pfo.';

export function mintToken(secret: string, info: UserInfo): string {
  const payload = Buffer.from(JSON.stringify(info)).toString('base64url');
  return `${PREFIX}${payload}.${mac(secret, payload)}`;
}

/** The user a token stands for, or undefined when it is not one of ours or its MAC is wrong. */
export function verifyToken(secret: string, token: string): UserInfo | undefined {
  if (!token.startsWith(PREFIX)) return undefined;
  const [payload, sig] = token.slice(PREFIX.length).split('.');
  if (!payload || !sig) return undefined;
  const want = Buffer.from(mac(secret, payload));
  const got = Buffer.from(sig);
  if (want.length !== got.length || !crypto.timingSafeEqual(want, got)) return undefined;
  try {
    const info = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as UserInfo;
    if (typeof info.user !== 'string' || !Array.isArray(info.groups)) return undefined;
    return info;
  } catch {
    return undefined;
  }
}

function mac(secret: string, payload: string): string {
  return crypto.createHmac('sha256', secret).update(payload).digest('base64url');
}

interface TokenReview {
  apiVersion?: string;
  kind?: string;
  spec?: { token?: string };
}

export function createServer(secret: string): http.Server {
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let review: TokenReview;
      try {
        review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as TokenReview;
      } catch {
        res.writeHead(400).end('request body is not a TokenReview');
        return;
      }
      const info = verifyToken(secret, review.spec?.token ?? '');
      const status = info
        ? { authenticated: true, user: { username: info.user, uid: `pfo-${info.user}`, groups: info.groups } }
        : { authenticated: false };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', status }));
    });
  });
}

if (require.main === module) {
  const [port, secretFile] = process.argv.slice(2);
  if (!port || !secretFile) {
    console.error('usage: token-webhook PORT SECRET_FILE');
    process.exit(2);
  }
  const secret = fs.readFileSync(secretFile, 'utf8').trim();
  createServer(secret).listen(Number(port), '127.0.0.1', () => {
    console.log(`token webhook listening on 127.0.0.1:${port}`);
  });
}
