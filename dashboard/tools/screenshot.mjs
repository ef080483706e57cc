// Not a test: makes docs/dashboard.png, the README's picture of the dashboard, from a real
// run (about 75 s): ringcast with two workers, two loadgen fan-outs one after the other, the
// close probes (1009, slow consumer) in between, and the console subscribed to a topic.
//
//   RINGCAST_BIN=target/ci/ringcast node dashboard/tools/screenshot.mjs [out.png]
//
// LOADGEN_BIN defaults to the loadgen next to RINGCAST_BIN.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOST, Ringcast, launchBrowser, post } from '../../clients/js/test/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const out = process.argv[2] ?? path.join(ROOT, 'docs', 'dashboard.png');
const LOADGEN = process.env.LOADGEN_BIN ?? path.join(path.dirname(process.env.RINGCAST_BIN), 'loadgen');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function loadgen(args) {
  const proc = spawn(LOADGEN, [...args, '--progress', 'never'], { stdio: 'ignore' });
  return { proc, done: new Promise((r) => proc.on('exit', r)) };
}

const port = 20000 + Math.floor(Math.random() * 20000);
const rc = await Ringcast.start(['--workers', '2', '--max-payload', '16KiB', '--max-buffered', '64KiB', '--close-timeout', '500ms'], port);
const browser = await launchBrowser();
const running = [];
try {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`http://${HOST}:${port}/dashboard`);
  await page.waitForFunction(() => document.getElementById('live').textContent === 'live');
  await page.fill('#c-topics', 'news,demo');
  await page.click('#c-sub');
  const url = `ws://${HOST}:${port}`;
  const a = loadgen(['fanout', '--url', url, '--subscribers', '300', '--topics', '3', '--publishers', '3', '--rate', '150', '--duration', '25s']);
  running.push(a.proc);
  await sleep(12000);
  await loadgen(['close', '--url', url, '--probes', 'oversize,slow', '--max-payload', '16KiB', '--max-buffered', '64KiB',
    '--server-close-timeout', '500ms', '--slow-wait', '1s', '--subscribers', '10', '--rate', '100', '--warmup', '0s', '--duration', '1s']).done;
  await a.done;
  const b = loadgen(['fanout', '--url', url, '--subscribers', '800', '--topics', '8', '--publishers', '8', '--rate', '400', '--duration', '40s']);
  running.push(b.proc);
  for (const [i, text] of ['deploy started', 'eu-west drained', 'deploy done'].entries()) {
    await post(port, 'news', text);
    await sleep(i === 2 ? 0 : 4000);
  }
  await page.fill('#c-pub-topic', 'demo');
  await page.fill('#c-msg', 'hello from the console');
  await page.click('#c-pub');
  await sleep(25000);
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  for (const p of running) if (p.exitCode === null) p.kill('SIGKILL');
  await browser.close();
  rc.kill();
}
