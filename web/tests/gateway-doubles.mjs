// Local doubles of the routers the hub's gateway poller reads (no FRITZ!Box
// or UniFi console exists here), serving the answers recorded from real ones
// (crates/hub/src/gateway/testdata, as the hub's provider_tests.rs does) and
// checking credentials the way the devices do:
//
// - a FRITZ!Box's TR-064 on plain HTTP: the description is public, every
//   SOAP action demands HTTP digest authentication (MD5, qop=auth); its
//   answers carry the WAN link and the DSL line;
// - a UniFi OS console on HTTPS (a self-signed certificate made here with
//   openssl; the hub pins it by fingerprint): `stat/health` with the API key
//   in X-API-KEY; its answer carries the latency to the internet.
//
//   const fritz = await fritzBox('secret');   // fritzbox://admin@127.0.0.1:${fritz.port}
//   const unifi = await unifiConsole('secret', dir);  // unifi://127.0.0.1:${unifi.port}?fingerprint=${unifi.fingerprint}
//   fritz.close(); unifi.close();

import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './harness.mjs';

const run = promisify(execFile);
const TESTDATA = path.join(REPO, 'crates/hub/src/gateway/testdata');
const REALM = 'F!Box SOAP-Auth';
const NONCE = '5E1C7C3B9A0D4F21';

const md5 = (s) => createHash('md5').update(s).digest('hex');
const recorded = (name) => fs.readFile(path.join(TESTDATA, name), 'utf8');

/** Serves `handle(req, body) → [status, contentType, text, headers?]` on a loopback port. */
async function listen(server, handle) {
  server.on('request', (req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      try {
        const [status, type, text, headers = {}] = await handle(req, body);
        res.writeHead(status, { 'content-type': type, ...headers });
        res.end(text);
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => server.close() };
}

/** Whether an Authorization header is a right digest answer for `password` (RFC 7616, MD5, qop=auth). */
function digestOk(header, method, password) {
  const m = /^Digest\s+(.*)$/i.exec(header || '');
  if (!m) return false;
  const p = {};
  for (const [, k, quoted, bare] of m[1].matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) p[k.toLowerCase()] = quoted ?? bare;
  if (p.realm !== REALM || p.nonce !== NONCE || p.qop !== 'auth') return false;
  const ha1 = md5(`${p.username}:${REALM}:${password}`);
  const ha2 = md5(`${method}:${p.uri}`);
  return p.response === md5(`${ha1}:${NONCE}:${p.nc}:${p.cnonce}:auth:${ha2}`);
}

/** A FRITZ!Box 7590's TR-064 interface (user any, password `password`), on HTTP. */
export async function fritzBox(password) {
  const ACTIONS = {
    '/upnp/control/layer3forwarding GetDefaultConnectionService': 'fritzbox-GetDefaultConnectionService.xml',
    '/upnp/control/wanpppconn1 GetInfo': 'fritzbox-WANPPPConnection-GetInfo.xml',
    '/upnp/control/wancommonifconfig1 GetCommonLinkProperties': 'fritzbox-GetCommonLinkProperties.xml',
    '/upnp/control/wancommonifconfig1 X_AVM-DE_GetOnlineMonitor': 'fritzbox-GetOnlineMonitor.xml',
    '/upnp/control/wandslifconfig1 GetInfo': 'fritzbox-WANDSLInterfaceConfig-GetInfo.xml',
  };
  return listen(http.createServer(), async (req, body) => {
    if (req.method === 'GET' && req.url === '/tr64desc.xml') return [200, 'text/xml', await recorded('fritzbox-tr64desc.xml')];
    if (req.method !== 'POST') return [404, 'text/plain', ''];
    if (!digestOk(req.headers.authorization, req.method, password)) {
      return [401, 'text/html', await recorded('fritzbox-401.html'), { 'www-authenticate': `Digest realm="${REALM}", nonce="${NONCE}", algorithm=MD5, qop="auth"` }];
    }
    const action = (req.headers.soapaction || '').split('#')[1]?.replace(/"/g, '');
    const file = ACTIONS[`${req.url} ${action}`];
    if (!file || (action === 'X_AVM-DE_GetOnlineMonitor' && !body.includes('<NewSyncGroupIndex>0</NewSyncGroupIndex>'))) {
      return [500, 'text/xml', await recorded('fritzbox-fault-606.xml')];
    }
    return [200, 'text/xml', await recorded(file)];
  });
}

/** A UniFi OS console (a UDM Pro) answering `stat/health` to API key `key`, on HTTPS with a certificate made in `dir`. */
export async function unifiConsole(key, dir) {
  const [keyFile, certFile] = [path.join(dir, 'unifi-key.pem'), path.join(dir, 'unifi-cert.pem')];
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  const cert = await fs.readFile(certFile);
  const fingerprint = `sha256:${createHash('sha256').update(new X509Certificate(cert).raw).digest('hex')}`;
  const server = https.createServer({ key: await fs.readFile(keyFile), cert });
  const s = await listen(server, async (req) => {
    if (req.method === 'GET' && req.url === '/proxy/network/api/s/default/stat/health') {
      return req.headers['x-api-key'] === key
        ? [200, 'application/json', await recorded('unifi-stat-health.json')]
        : [401, 'application/json', await recorded('unifi-os-unauthorized.json')];
    }
    return [404, 'application/json', '{"meta":{"rc":"error","msg":"api.err.NotFound"},"data":[]}'];
  });
  return { ...s, fingerprint };
}
