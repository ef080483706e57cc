// Test harness for the browser client: a real ringcast process, a front HTTP server that
// serves the test page and module and reverse-proxies to ringcast (so the page can be cut
// off, or be sent frames a future server will send), and headless Debian Chromium.
// Loopback only; everything started here is stopped here, by PID or handle.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
export const HOST = '127.0.0.1';

/** Resolve when `pred()` is true; reject after `ms` with `what()` in the message. */
export async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A ringcast process. `port` 0: any free port. One worker unless `args` has `--workers`.
 * With `--admin-listen` in `args`, `adminPort` is that listener's port.
 */
export class Ringcast {
  static async start(args = [], port = 0) {
    const bin = process.env.RINGCAST_BIN;
    if (!bin) throw new Error('RINGCAST_BIN is not set');
    const workers = args.includes('--workers') ? [] : ['--workers', '1'];
    const proc = spawn(bin, ['--listen', `${HOST}:${port}`, ...workers, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const r = new Ringcast(proc);
    const admin = args.includes('--admin-listen');
    const [main, adm] = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ringcast did not listen in 10 s: ${r.output}`)), 10000);
      proc.on('exit', (code) => reject(new Error(`ringcast exited (${code}) before listening: ${r.output}`)));
      proc.stdout.on('data', () => {
        const m = /^listening on (\S+)/m.exec(r.output);
        const a = /^admin listening on (\S+)/m.exec(r.output);
        if (m && (a || !admin)) {
          clearTimeout(timer);
          resolve([m[1], a?.[1]]);
        }
      });
    });
    r.port = Number(main.split(':').pop());
    if (adm) r.adminPort = Number(adm.split(':').pop());
    return r;
  }

  constructor(proc) {
    this.proc = proc;
    this.output = '';
    proc.stdout.on('data', (d) => (this.output += d));
    proc.stderr.on('data', (d) => (this.output += d));
    this.exited = once(proc, 'exit');
  }

  get url() {
    return `ws://${HOST}:${this.port}`;
  }

  /** SIGTERM (graceful: 1001 to every client) and wait for the exit, at most `ms`. */
  async stop(ms = 15000) {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    await this.exited;
    clearTimeout(timer);
  }

  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/**
 * POST text to ringcast's /pub/{topic} with Accept: application/json (and the `token` as
 * `Authorization: Bearer`, when given); the position.
 */
export async function post(port, topic, body, contentType = 'text/plain', token = undefined) {
  const headers = { 'Content-Type': contentType, Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(`http://${HOST}:${port}/pub/${topic}`, { method: 'POST', headers, body });
  if (r.status !== 200) throw new Error(`POST /pub/${topic}: ${r.status} ${await r.text()}`);
  return r.json();
}

/**
 * `n` raw WebSocket subscribers of `topic` (so a paced drain has connections to spread);
 * each ends its TCP when anything arrives after the 101 (the 1001 close frame). Returns a
 * function that destroys those still open.
 */
export async function idleSubscribers(port, topic, n) {
  const sockets = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, HOST);
    sockets.push(s);
    s.on('error', () => s.destroy());
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end >= 0 && got.length > end + 4) s.end();
    });
    s.write(
      `GET /sub/${topic} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  }
  await until(() => sockets.every((s) => s.bytesRead > 0), 5000, () => 'the idle subscribers\' 101');
  return () => sockets.forEach((s) => s.destroy());
}

/** A fresh random HMAC secret file for `--auth-key` (48 bytes; ringcast wants ≥ 32), removed after test `t`. */
export async function authSecret(t) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ringcast-secret-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'secret');
  await writeFile(file, randomBytes(48), { mode: 0o600 });
  return file;
}

/** A JWT signed by `ringcast token` with `secret` (the file given to --auth-key). */
export function mintToken(secret, { ttl = '1h', grantSub = ['*'], grantPub = ['*'], sub = 'browser-test' } = {}) {
  const args = ['token', '--secret', secret, '--sub', sub, '--ttl', ttl];
  for (const g of grantSub) args.push('--grant-sub', g);
  for (const g of grantPub) args.push('--grant-pub', g);
  return new Promise((resolve, reject) =>
    execFile(process.env.RINGCAST_BIN, args, { timeout: 10000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`ringcast token: ${err.message} ${stderr}`)) : resolve(stdout.trim()),
    ),
  );
}

/** The `exp` claim of a JWT (not verified). */
export function jwtExp(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp;
}

/** One unmasked server frame (what a server sends). */
export function serverFrame(opcode, payload) {
  const p = Buffer.from(payload);
  const len = p.length < 126 ? Buffer.from([p.length]) : Buffer.from([126, p.length >> 8, p.length & 255]);
  return Buffer.concat([Buffer.from([0x80 | opcode]), len, p]);
}

// Complete client frames at the front of `buf` (masked, as a client sends them):
// [{fin, opcode, payload, raw}], and the bytes left over.
function clientFrames(buf) {
  const out = [];
  for (;;) {
    if (buf.length < 2) break;
    let len = buf[1] & 127;
    let off = 2;
    if (len === 126) {
      if (buf.length < 4) break;
      len = buf.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (buf.length < 10) break;
      len = Number(buf.readBigUInt64BE(2));
      off = 10;
    }
    const masked = buf[1] & 128;
    const end = off + (masked ? 4 : 0) + len;
    if (buf.length < end) break;
    const payload = Buffer.from(buf.subarray(end - len, end));
    if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[off + (i & 3)];
    out.push({ opcode: buf[0] & 15, payload, raw: buf.subarray(0, end) });
    buf = buf.subarray(end);
  }
  return [out, buf];
}

/**
 * The page's own origin: serves the test page and the module, forwards `/pub/*` and
 * WebSocket upgrades to ringcast at `upstreamPort`. It can refuse new upgrades, cut the
 * open ones, send frames to the page, and (with `watchAuth`) note the client's
 * `auth <jwt>` messages on their way to ringcast.
 */
export class Front {
  constructor(upstreamPort, { watchAuth = false } = {}) {
    this.upstreamPort = upstreamPort;
    this.watchAuth = watchAuth;
    this.refusing = false;
    this.upgrades = []; // request targets of every upgrade asked for
    this.authMessages = []; // `auth …` texts the clients sent (watchAuth), with the time
    this.pairs = new Set();
    this.server = http.createServer((req, res) => this._request(req, res));
    this.server.on('upgrade', (req, socket, head) => this._upgrade(req, socket, head));
  }

  async start() {
    this.server.listen(0, HOST);
    await once(this.server, 'listening');
    this.port = this.server.address().port;
    return this;
  }

  get origin() {
    return `http://${HOST}:${this.port}`;
  }

  async _request(req, res) {
    const files = {
      '/': ['page.html', 'text/html'],
      '/page.js': ['page.js', 'text/javascript'],
      '/ringcast.js': ['../ringcast.js', 'text/javascript'],
    };
    const f = files[req.url];
    if (f) {
      res.writeHead(200, { 'Content-Type': f[1], 'Cache-Control': 'no-store' });
      res.end(await readFile(path.join(HERE, f[0])));
    } else if (req.url.startsWith('/pub/')) {
      const up = http.request(
        { host: HOST, port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      req.pipe(up);
    } else if (req.url === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  }

  _upgrade(req, socket, head) {
    this.upgrades.push(req.url);
    if (this.refusing) return socket.destroy();
    const up = net.connect(this.upstreamPort, HOST);
    const pair = { socket, up };
    this.pairs.add(pair);
    // ringcast closing its side ends the page's gracefully (what it sent is delivered
    // first); an error on either side, or the page going, drops both.
    socket.on('error', () => socket.destroy()).on('close', () => {
      up.destroy();
      this.pairs.delete(pair);
    });
    up.on('error', () => socket.destroy()).on('close', () => socket.end());
    up.on('connect', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        // Watched connections do not offer permessage-deflate: `auth` messages must be readable here.
        if (this.watchAuth && /^sec-websocket-extensions$/i.test(req.rawHeaders[i])) continue;
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      }
      up.write(lines.join('\r\n') + '\r\n\r\n');
      up.pipe(socket);
      if (!this.watchAuth) {
        up.write(head);
        socket.pipe(up);
        return;
      }
      // Whole frames only are forwarded, each as it completes (so a note and the frame
      // reaching ringcast are in the same order as the client sent them).
      let pending = Buffer.from(head);
      socket.on('data', (d) => {
        let frames;
        [frames, pending] = clientFrames(Buffer.concat([pending, d]));
        for (const f of frames) {
          const text = f.opcode === 1 && f.payload.toString();
          if (text && text.startsWith('auth ')) this.authMessages.push({ at: Date.now(), text });
          up.write(f.raw);
        }
      });
      socket.on('end', () => up.end());
    });
  }

  /** Cut every open proxied connection (both TCP sides, no close frame: 1006). */
  cut() {
    for (const p of this.pairs) {
      p.socket.destroy();
      p.up.destroy();
    }
    this.pairs.clear();
  }

  /** Write raw bytes to every open proxied client (as if ringcast had sent them). */
  sendToClients(bytes) {
    for (const p of this.pairs) p.socket.write(bytes);
  }

  async stop() {
    this.cut();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** Headless Debian Chromium with a fresh profile, which the returned `close()` removes. */
export async function launchBrowser() {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'ringcast-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30000,
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A page of `front`, watched: every request and WebSocket URL, console errors and
 * uncaught page errors are recorded. `page.log()` is what the page's client reported.
 */
export async function openPage(context, front) {
  const page = watch(await context.newPage());
  await page.goto(front.origin + '/');
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10000 });
  page.log = () => page.evaluate(() => window.log);
  return page;
}

/** Record `page`'s requests, WebSocket URLs, console errors and page errors in `page.seen`. */
export function watch(page) {
  const seen = { requests: [], consoleErrors: [], pageErrors: [] };
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('websocket', (ws) => seen.requests.push(ws.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') seen.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  page.seen = seen;
  return page;
}

/** Wait until `fn(log)` (run in the page on its event log) is true; on timeout the log is shown. */
export async function waitLog(page, fn, what, ms = 15000) {
  try {
    await page.waitForFunction(`(${fn})(window.log)`, null, { timeout: ms, polling: 20 });
  } catch (e) {
    throw new Error(`${what}: ${e.message.split('\n')[0]}\npage log:\n${await dump(page)}`);
  }
}

/** The page's event log, one line per event. */
export async function dump(page) {
  const log = await page.log();
  return log.map((e) => JSON.stringify(e)).join('\n');
}

/**
 * Only the test's own hosts were asked for; no page error; no console error, except, when
 * the test made the server unreachable (`outage`), Chromium's own report of a WebSocket
 * handshake to the test's host that failed then (a network log line, not a script error),
 * on a path starting with `outagePath`.
 */
export function assertHygiene(page, allowedPorts, { outage = false, outagePath = '/sub/' } = {}) {
  const allowed = new Set(allowedPorts.map((p) => `${HOST}:${p}`));
  const foreign = page.seen.requests.filter((u) => !allowed.has(new URL(u).host));
  const failedHandshake = new RegExp(`^WebSocket connection to 'ws://([^/]+)${outagePath}[^']*' failed: `);
  const errors = page.seen.consoleErrors.filter((m) => {
    const f = failedHandshake.exec(m);
    return !(outage && f && allowed.has(f[1]));
  });
  const problems = [];
  if (foreign.length) problems.push(`requests to other hosts: ${foreign.join(', ')}`);
  if (errors.length) problems.push(`console errors: ${errors.join(' | ')}`);
  if (page.seen.pageErrors.length) problems.push(`page errors: ${page.seen.pageErrors.join(' | ')}`);
  if (problems.length) throw new Error(problems.join('\n'));
}
