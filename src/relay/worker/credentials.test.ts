// The worker's TLS contexts: one per credential set, reused across dials, a new one when the material
// changes (a rotated certificate), and the PEM fields left on the request for the agent's session
// cache. The material is Node's own root certificates: real PEM that createSecureContext parses. A
// handshake with the cached context is covered on the real API server by every relay test.
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type * as https from 'node:https';
import { type ConnectionOptions, rootCertificates } from 'node:tls';
import { applyCredentials, secureContextFor } from './credentials';

describe('relay worker credentials (TLS contexts)', function () {
  const [a, b] = rootCertificates;

  it('reuses the context of equal material, even in other objects', function () {
    const first = secureContextFor({ ca: a });
    assert.equal(secureContextFor({ ca: Buffer.from(a) }), first);
    assert.equal(secureContextFor({ ca: a }), first);
  });

  it('builds another context when the material changes (a rotated CA or certificate)', function () {
    const first = secureContextFor({ ca: a });
    assert.notEqual(secureContextFor({ ca: b }), first);
    assert.notEqual(secureContextFor({ ca: [a, b] }), first);
    assert.notEqual(secureContextFor({}), first);
    assert.notEqual(secureContextFor({ ca: a, passphrase: 'x' }), first);
  });

  it('keeps the contexts of the 16 credential sets used last', function () {
    const first = secureContextFor({ ca: rootCertificates[2] });
    for (let i = 3; i < 3 + 15; i++) secureContextFor({ ca: rootCertificates[i] });
    assert.equal(secureContextFor({ ca: rootCertificates[2] }), first, 'still among the last 16');
    for (let i = 20; i < 20 + 16; i++) secureContextFor({ ca: rootCertificates[i] });
    assert.notEqual(secureContextFor({ ca: rootCertificates[2] }), first, 'evicted after 16 others');
  });

  it('puts the context on the request and keeps the PEM fields the agent names its sessions by', function () {
    const opts: https.RequestOptions = {};
    const agent = new http.Agent();
    applyCredentials(
      opts,
      { ca: a, servername: 'kubernetes', headers: { authorization: 'Bearer t' } },
      agent,
    );
    assert.equal(opts.ca, a);
    assert.equal((opts as ConnectionOptions).secureContext, secureContextFor({ ca: a }));
    assert.equal(opts.servername, 'kubernetes');
    assert.equal(opts.agent, agent);
    assert.deepEqual(opts.headers, { authorization: 'Bearer t' });
  });
});
