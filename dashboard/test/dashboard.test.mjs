// The dashboard (GET /dashboard, served by the ringcast binary in RINGCAST_BIN) in headless
// Chromium: its figures against what loadgen (LOADGEN_BIN, default: next to RINGCAST_BIN)
// opened and measured, its close-code panel after real 1009 and slow-consumer closes, and its
// console against real servers (admin listener, auth). Each test starts its own ringcast on
// loopback and stops it; the browser harness is the client's (clients/js/test/harness.mjs).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  HOST,
  Ringcast,
  assertHygiene,
  authSecret,
  launchBrowser,
  mintToken,
  post,
  watch,
} from '../../clients/js/test/harness.mjs';
import { CLIENT, PAGE, split } from '../sync-client.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LOADGEN = process.env.LOADGEN_BIN ?? path.join(path.dirname(process.env.RINGCAST_BIN ?? '.'), 'loadgen');
const SHOTS = path.join(ROOT, 'target', 'dashboard'); // screenshots of each run
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
// The handshakes Chromium reports as failed while a test has the server down on purpose.
const OUTAGE = { outage: true, outagePath: '/(sub/|dashboard/live)' };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/**
 * ringcast on a free port named on its command line: the snapshot's `listen` is the address
 * as configured (`127.0.0.1:0` stays `:0`), and the console's default URL comes from it.
 */
async function start(t, args = []) {
  const rc = await Ringcast.start(args, await freePort());
  t.after(() => rc.kill());
  return rc;
}

async function freePort() {
  const s = net.createServer().listen(0, HOST);
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** The dashboard of the server on `port`, watched (harness `watch`), once its live figures show. */
async function open(t, port) {
  const page = watch(await browser.context.newPage());
  t.after(() => page.close());
  await page.setViewportSize(LAPTOP);
  await page.goto(`http://${HOST}:${port}/dashboard`);
  await waitFor(page, () => document.getElementById('live').textContent === 'live', null, 'the live figures');
  return page;
}

/** Wait until `fn(arg)` (run in the page) is true; on timeout say what, and show the page's text. */
async function waitFor(page, fn, arg, what, ms = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
  } catch (e) {
    const shown = await page.evaluate(() => document.body.innerText).catch(() => '(page gone)');
    throw new Error(`${what}: ${e.message.split('\n')[0]}\npage text:\n${shown}`);
  }
}
const waitText = (page, sel, want, what) =>
  waitFor(page, ([s, w]) => document.querySelector(s)?.textContent === w, [sel, want], `${what} (${sel} = ${want})`);
const consoleLine = (page, text, what) =>
  waitFor(page, (s) => [...document.querySelectorAll('#c-log li')].some((li) => li.textContent.includes(s)), text,
    `console: ${what} (a line with ${JSON.stringify(text)})`);
const count = async (page, sel) => Number((await page.textContent(sel)).replace(/,/g, ''));

/** Run loadgen; resolves to its stdout when it exits 0, rejects otherwise (it is killed if the test ends first). */
function loadgen(t, args) {
  const proc = spawn(LOADGEN, [...args, '--progress', 'never'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'));
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    proc.on('error', (e) => reject(new Error(`loadgen (${LOADGEN}): ${e.message}; build it: cargo build --profile ci -p loadgen`)));
    proc.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`loadgen ${args[0]} exited ${code}:\n${out}`))));
  });
}

/** `curl -X POST` a text message; its position. */
function curlPost(port, topic, body, token) {
  const args = ['-sS', '--fail', '--max-time', '5', '-X', 'POST', '-H', 'Content-Type: text/plain', '-H', 'Accept: application/json'];
  if (token) args.push('-H', `Authorization: Bearer ${token}`);
  args.push('--data-binary', body, `http://${HOST}:${port}/pub/${topic}`);
  return new Promise((resolve, reject) =>
    execFile('curl', args, (err, stdout, stderr) => (err ? reject(new Error(`curl: ${err.message} ${stderr}`)) : resolve(JSON.parse(stdout)))),
  );
}

/** Subscribe the console to `topics` and wait until it is open. */
async function consoleSubscribe(page, topics) {
  await page.fill('#c-topics', topics);
  await page.click('#c-sub');
  await consoleLine(page, 'state open', 'the subscription opens');
}

test('one self-contained file: the binary serves dashboard/index.html as it is, with clients/js/ringcast.js inlined verbatim', async (t) => {
  const page = await readFile(PAGE, 'utf8');
  const [, copy] = split(page);
  assert.equal(copy, await readFile(CLIENT, 'utf8'), 'the inlined ringcast.js differs: run node dashboard/sync-client.mjs');
  // Nothing fetched from anywhere: no tag with a src/href but a data: URL, no CSS import or url().
  assert.deepEqual(page.match(/<[a-z][^>]*\s(?:src|href)\s*=\s*(?!["']?data:)[^>]*>/gi), null);
  assert.deepEqual(/<style>([^]*?)<\/style>/.exec(page)[1].match(/@import|url\(/g), null);
  const rc = await start(t);
  const served = await (await fetch(`http://${HOST}:${rc.port}/dashboard`)).text();
  assert.ok(served === page, 'the binary serves another page than dashboard/index.html: rebuild it (cargo build --profile ci)');
  console.log(`dashboard/index.html: ${Buffer.byteLength(page)} bytes (ringcast.js ${Buffer.byteLength(copy)} of them)`);
});

test('loads with no console error and no other host; live figures; reconnects the live socket after a restart and shows it; fits a phone', async (t) => {
  const rc = await start(t, ['--workers', '2']);
  const page = await open(t, rc.port);
  const version = (await new Promise((r, j) => execFile(process.env.RINGCAST_BIN, ['--version'], (e, o) => (e ? j(e) : r(o))))).trim();
  assert.equal(`ringcast ${(await page.textContent('#version')).slice(1)}`, version);
  await waitText(page, '#conn-dashboard', '1', 'the page\'s own live connection');
  assert.equal(await page.textContent('#listen'), `${HOST}:${rc.port}`);
  assert.equal(await page.locator('#workers tr').count(), 2, 'one row per worker');
  assert.equal(await page.inputValue('#c-url'), `ws://${HOST}:${rc.port}`, 'the console defaults to the main listener');
  // A second snapshot: rates (from two snapshots) are shown.
  await waitFor(page, () => window.dashboard.points.length >= 1 && document.getElementById('rate-deliveries').textContent === '0', null, 'a rate');
  // A phone: nothing wider than the screen (no sideways scrolling).
  await page.setViewportSize(PHONE);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'no horizontal overflow at 390 px');
  await page.setViewportSize(LAPTOP);
  assertHygiene(page, [rc.port]);

  // The server goes: the page says so, and comes back by itself when the server does.
  await rc.stop();
  await waitFor(page, () => document.getElementById('live').textContent.startsWith('disconnected: reconnecting'), null, 'the disconnected badge');
  const rc2 = await Ringcast.start(['--workers', '2'], rc.port);
  t.after(() => rc2.kill());
  await waitText(page, '#live', 'live', 'live again');
  await waitFor(page, () => window.dashboard.snaps.every((s) => s.uptime_s < 5), null, 'the figures start over with the new process');
  assertHygiene(page, [rc.port], OUTAGE);
});

test('under loadgen fanout: connections by role are what is open, deliveries/s within 10 % of loadgen\'s over its window; screenshots', async (t) => {
  const rc = await start(t, ['--workers', '2']);
  const page = await open(t, rc.port);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ringcast-dash-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const json = path.join(dir, 'fanout.json');
  // loadgen's timeline is in ms from its start; its `started_unix_ms` is when it wrote the
  // report. Its start is this spawn, to a few ms (the rate is the same in the warm-up before).
  const spawned = Date.now();
  const run = loadgen(t, ['fanout', '--url', `ws://${HOST}:${rc.port}`, '--subscribers', '200', '--rate', '50',
    '--warmup', '1s', '--duration', '5s', '--json', json]);
  // Every connection loadgen opened, by role (and the page's own).
  await waitText(page, '#conn-sub', '200', 'loadgen\'s 200 subscribers');
  await waitText(page, '#conn-pub', '1', 'loadgen\'s publisher');
  assert.equal(await page.textContent('#conn-dashboard'), '1');
  await waitFor(page, () => window.dashboard.points.slice(-2).every((p) => p.deliveries > 5000), null, 'two seconds of deliveries');
  await waitFor(page, () => document.querySelector('#busiest td')?.textContent === 'lg-0', null, 'the busiest topic');
  // What the tile shows is the page's last derived rate; the workers' connections add up.
  const shown = await page.evaluate(() => ({
    tile: document.getElementById('rate-deliveries').textContent,
    last: window.dashboard.points.at(-1).deliveries,
    total: document.getElementById('conn-total').textContent,
    workers: [...document.querySelectorAll('#workers tr')].map((tr) => Number(tr.children[2].textContent)),
  }));
  assert.equal(Number(shown.tile.replace(/,/g, '')), Math.round(shown.last));
  assert.equal(shown.workers.reduce((a, b) => a + b, 0), Number(shown.total.replace(/,/g, '')));
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, 'under-load.png'), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(SHOTS, 'under-load-phone.png'), fullPage: true });
  await page.setViewportSize(LAPTOP);

  await run;
  const report = JSON.parse(await readFile(json, 'utf8'));
  const from = spawned + report.timeline.window_start_ms;
  const to = spawned + report.timeline.window_end_ms;
  const want = report.delivery.deliveries_per_s;
  // The page's per-second rates whose whole interval lies in loadgen's measurement window.
  const inside = (await page.evaluate(() => window.dashboard.points)).filter((p) => p.t - p.dt * 1000 >= from && p.t <= to);
  const rates = inside.map((p) => Math.round(p.deliveries));
  assert.ok(inside.length >= 3, `at least 3 snapshots inside the 5 s window (${inside.length})`);
  const mean = inside.reduce((a, p) => a + p.deliveries * p.dt, 0) / inside.reduce((a, p) => a + p.dt, 0);
  console.log(`deliveries/s: loadgen ${want}, page ${Math.round(mean)} (per second: ${rates.join(', ')})`);
  assert.ok(Math.abs(mean - want) <= want * 0.1, `page ${mean} vs loadgen ${want}`);
  for (const r of rates) assert.ok(Math.abs(r - want) <= want * 0.1, `a second at ${r}/s vs loadgen ${want}/s (${rates})`);

  // loadgen closed everything (1000): the counts go back, the closes show.
  await waitText(page, '#conn-sub', '0', 'the subscribers gone');
  await waitText(page, '#conn-pub', '0', 'the publisher gone');
  await waitFor(page, () => Number(document.querySelector('#closes tr[data-code="1000"]')?.children[2].textContent.replace(/,/g, '')) >= 201,
    null, 'the 201 closes 1000 received');
  assertHygiene(page, [rc.port]);
});

test('close codes: a 1009 and a slow-consumer 1008 appear, labelled, with the slow-consumer count', async (t) => {
  const rc = await start(t, ['--max-payload', '16KiB', '--max-buffered', '64KiB', '--close-timeout', '500ms']);
  const page = await open(t, rc.port);
  assert.equal(await page.textContent('#closes'), 'no connection closed yet');
  // loadgen's probes: one message a byte over --max-payload; one subscriber that stops
  // reading while its topic is flooded past --max-buffered.
  await loadgen(t, ['close', '--url', `ws://${HOST}:${rc.port}`, '--probes', 'oversize,slow', '--max-payload', '16KiB',
    '--max-buffered', '64KiB', '--server-close-timeout', '500ms', '--slow-wait', '1s', '--subscribers', '10', '--rate', '100',
    '--warmup', '0s', '--duration', '1s']);
  await waitText(page, '#slow-closed', '1', 'one slow-consumer close');
  const row = (code) => page.evaluate((c) => {
    const tr = document.querySelector(`#closes tr[data-code="${c}"]`);
    return tr && { why: tr.children[0].textContent, sent: tr.children[1].textContent, hot: tr.classList.contains('hot') };
  }, code);
  await waitFor(page, () => document.querySelector('#closes tr[data-code="1009"]'), null, 'the 1009 row');
  assert.deepEqual(await row('1009'), { why: '1009 message too big (over --max-payload)', sent: '1', hot: true });
  const slow = await row('1008');
  assert.equal(slow.sent, '1');
  assert.ok(slow.hot, 'marked as recent');
  assert.match(slow.why, /^1008 policy: slow consumer.*\(slow consumer: 1\)$/);
  assertHygiene(page, [rc.port]);
});

test('console: subscribes with ringcast.js over ringcast.v1, receives what curl POSTed, publishes over /pub; shows the reconnect and reset after a restart', async (t) => {
  const rc = await start(t);
  const page = await open(t, rc.port);
  await consoleSubscribe(page, 'demo');
  const a = await curlPost(rc.port, 'demo', 'hello from curl');
  await consoleLine(page, `msg demo ${a.epoch}:${a.seq} "hello from curl"`, 'the POSTed message with its position');
  await page.fill('#c-pub-topic', 'demo');
  await page.fill('#c-msg', 'from the console');
  await page.click('#c-pub');
  await consoleLine(page, `msg demo ${a.epoch}:${a.seq + 1} "from the console"`, 'the console\'s own message');
  assert.ok(page.seen.requests.includes(`ws://${HOST}:${rc.port}/pub/demo`), 'published over a /pub WebSocket');
  assert.ok(page.seen.requests.includes(`ws://${HOST}:${rc.port}/sub/demo`), 'subscribed over a /sub WebSocket');
  await waitText(page, '#c-state', `open · positions: demo ${a.epoch}:${a.seq + 1}`, 'the position shown');
  assertHygiene(page, [rc.port]);

  // A restart: the close, the reconnect, and the new epoch are all in the console.
  await rc.stop();
  await consoleLine(page, 'close 1001 server shutting down', 'the 1001');
  const rc2 = await Ringcast.start([], rc.port);
  t.after(() => rc2.kill());
  const b = await curlPost(rc.port, 'demo', 'after the restart');
  await consoleLine(page, `reset demo now epoch ${b.epoch} (was ${a.epoch}:${a.seq + 1})`, 'the reset');
  await consoleLine(page, `msg demo ${b.epoch}:${b.seq} "after the restart"`, 'the message after the restart');
  assertHygiene(page, [rc.port], OUTAGE);
});

test('admin listener: the page is there (not on the main listener) and its console talks to the main listener', async (t) => {
  const rc = await start(t, ['--admin-listen', `${HOST}:0`]);
  assert.equal((await fetch(`http://${HOST}:${rc.port}/dashboard`)).status, 404, 'not on the main listener');
  const page = await open(t, rc.adminPort);
  assert.equal(await page.textContent('#listen'), `${HOST}:${rc.port}`);
  assert.equal(await page.inputValue('#c-url'), `ws://${HOST}:${rc.port}`);
  await consoleSubscribe(page, 'ops');
  const a = await post(rc.port, 'ops', 'via the main listener');
  await consoleLine(page, `msg ops ${a.epoch}:${a.seq} "via the main listener"`, 'the POSTed message');
  await page.fill('#c-pub-topic', 'ops');
  await page.fill('#c-msg', 'from the admin page');
  await page.click('#c-pub');
  await consoleLine(page, `msg ops ${a.epoch}:${a.seq + 1} "from the admin page"`, 'the console\'s message');
  assertHygiene(page, [rc.adminPort, rc.port]);
});

test('auth on: the console asks for a token, then subscribes and publishes with it (?token=)', async (t) => {
  const secret = await authSecret(t);
  const rc = await start(t, ['--auth-key', secret, '--admin-listen', `${HOST}:0`]);
  const page = await open(t, rc.adminPort);
  assert.ok(await page.isVisible('#auth'), 'the auth badge');
  assert.ok(await page.isVisible('#c-token'), 'the token field');
  // No token: the console asks for one and opens nothing.
  await page.click('#c-sub');
  await consoleLine(page, 'this server needs a token', 'the request for a token');
  await page.click('#c-pub');
  assert.equal(await page.locator('#c-log li[data-kind="token"]').count(), 2);
  assert.deepEqual(page.seen.requests.filter((u) => /\/(sub|pub)\//.test(u)), [], 'no connection without a token');

  const token = await mintToken(secret, { ttl: '1h', grantSub: ['*'], grantPub: ['*'] });
  await page.fill('#c-token', token);
  await consoleSubscribe(page, 'secret');
  const a = await curlPost(rc.port, 'secret', 'for token holders', token);
  await consoleLine(page, `msg secret ${a.epoch}:${a.seq} "for token holders"`, 'the POSTed message');
  await page.fill('#c-pub-topic', 'secret');
  await page.fill('#c-msg', 'signed');
  await page.click('#c-pub');
  await consoleLine(page, `msg secret ${a.epoch}:${a.seq + 1} "signed"`, 'the console\'s message');
  const q = `token=${encodeURIComponent(token)}`;
  assert.ok(page.seen.requests.includes(`ws://${HOST}:${rc.port}/sub/secret?${q}`), 'the subscription carried the token');
  assert.ok(page.seen.requests.includes(`ws://${HOST}:${rc.port}/pub/secret?${q}`), 'the publisher carried the token');
  assert.match(await page.textContent('#c-state'), /token expires in (59 m|1 h)/);
  assertHygiene(page, [rc.adminPort, rc.port]);
});
