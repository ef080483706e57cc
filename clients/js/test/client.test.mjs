// The browser client in headless Chromium against the real ringcast binary (RINGCAST_BIN).
// Each test starts its own ringcast and front server on loopback and stops them; a failing
// wait prints everything the page's client reported.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Front,
  Ringcast,
  assertHygiene,
  dump,
  idleSubscribers,
  launchBrowser,
  openPage,
  post,
  serverFrame,
  until,
  waitLog,
} from './harness.mjs';

// Short delays so a test's reconnects take milliseconds, not the defaults' seconds.
const FAST = { backoff: { initial: 50, max: 500 }, goingAwayJitter: 200 };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** ringcast + front + a page of the front, all stopped when the test ends. */
async function setup(t, args = [], frontOptions) {
  const rc = await Ringcast.start(args);
  t.after(() => rc.kill());
  const front = await new Front(rc.port, frontOptions).start();
  t.after(() => front.stop());
  const page = await openPage(browser.context, front);
  t.after(() => page.close());
  return { rc, front, page };
}

const start = (page, url, topics, opts = FAST) =>
  page.evaluate(([u, ts, o]) => window.start(u, ts, o), [url, topics, opts]);
const opened = (n) => `(log) => log.filter((e) => e.type === 'state' && e.state === 'open').length >= ${n}`;
const messages = (n) => `(log) => log.filter((e) => e.type === 'message').length >= ${n}`;
const hasEvent = (type, extra = 'true') => `(log) => log.some((e) => e.type === '${type}' && ${extra})`;

/** The delivery-relevant events (messages, gaps, resets) without timing. */
async function stream(page) {
  return (await page.log())
    .filter((e) => ['message', 'gap', 'reset'].includes(e.type))
    .map(({ at, ...e }) => e);
}

const msg = (topic, epoch, seq, data, text = true) => ({ type: 'message', topic, epoch, seq, text, data });

/** Assert, showing the page's whole log when it fails. */
async function check(page, fn) {
  try {
    await fn();
  } catch (e) {
    e.message += `\npage log:\n${await dump(page)}`;
    throw e;
  }
}

test('subscribe: POSTed messages arrive in order with positions, text and binary; publish() answers the position', async (t) => {
  const { rc, front, page } = await setup(t);
  // Published before the page subscribes: `last: 1` asks for the newest retained one.
  await post(rc.port, 'b', 'early 0');
  const early = await post(rc.port, 'b', 'early 1');
  await start(page, rc.url, ['a', 'b'], { ...FAST, last: 1 });
  await waitLog(page, opened(1), 'the connection opens');

  const expected = [msg('b', early.epoch, early.seq, 'early 1')];
  for (let i = 0; i < 12; i++) {
    const topic = i % 3 ? 'a' : 'b';
    const pos = await post(rc.port, topic, `m${i}`);
    expected.push(msg(topic, pos.epoch, pos.seq, `m${i}`));
  }
  // A binary payload containing LF: only the header's LF ends the header.
  const bytes = [0, 1, 2, 10, 255, 10];
  const bin = await post(rc.port, 'a', new Uint8Array(bytes), 'application/octet-stream');
  expected.push(msg('a', bin.epoch, bin.seq, bytes, false));
  // publish() from the page, through its own origin (ringcast sends no CORS headers).
  const answers = await page.evaluate(async (o) => [
    await window.publishFromPage(o, 'a', 'from the page ✓'),
    await window.publishFromPage(o, 'b', [7, 8, 9]),
  ], front.origin);
  expected.push(msg('a', answers[0].epoch, answers[0].seq, 'from the page ✓'));
  expected.push(msg('b', answers[1].epoch, answers[1].seq, [7, 8, 9], false));
  await waitLog(page, messages(expected.length), `${expected.length} messages`);

  await check(page, async () => {
    assert.deepEqual(answers.map((a) => a.topic), ['a', 'b']);
    const got = await stream(page);
    for (const topic of ['a', 'b']) {
      const mine = got.filter((e) => e.topic === topic);
      assert.deepEqual(mine, expected.filter((e) => e.topic === topic), `topic ${topic}: order and positions`);
      const first = topic === 'b' ? 2 : 1;
      assert.deepEqual(mine.map((e) => e.seq), mine.map((_, i) => i + first), `topic ${topic}: seq consecutive`);
    }
    assert.equal(got.length, expected.length, 'nothing else was delivered (no gap, no reset)');
    const pos = await page.evaluate(() => window.sub.positions());
    assert.deepEqual(pos.a, { epoch: answers[0].epoch, seq: answers[0].seq });
  });

  // close(): the connection goes, the state is `closed`, and nothing reconnects.
  await page.evaluate(() => window.sub.close());
  await waitLog(page, hasEvent('state', "e.state === 'closed'"), 'closed');
  assert.equal(await page.evaluate(() => window.sub.state), 'closed');
  assertHygiene(page, [front.port, rc.port]);
});

for (const drain of ['0s', '1s']) {
  test(`server restart (SIGTERM, --drain-window ${drain}): 1001, prompt reconnect, explicit reset, every message exactly once`, async (t) => {
    const { rc, front, page } = await setup(t, ['--drain-window', drain]);
    const port = rc.port;
    // The backoff's first delay is up to 1 s, the 1001 jitter up to 100 ms.
    const opts = { backoff: { initial: 1000, max: 1000 }, goingAwayJitter: 100 };
    await start(page, rc.url, ['news'], opts);
    await waitLog(page, opened(1), 'the connection opens');
    const expected = [];
    for (let i = 0; i < 10; i++) {
      const pos = await post(port, 'news', `before ${i}`);
      expected.push(msg('news', pos.epoch, pos.seq, `before ${i}`));
    }
    await waitLog(page, messages(10), 'the 10 messages published before the restart');
    const before = expected[9];

    // With a window, 9 other subscribers keep the old server draining (listener closed)
    // while the page is told to go away.
    if (drain !== '0s') t.after(await idleSubscribers(port, 'news', 9));
    const stopping = Date.now();
    await rc.stop();
    const stopMs = Date.now() - stopping;
    await waitLog(page, hasEvent('disconnect', 'e.code === 1001'), 'the 1001 close');
    const rc2 = await Ringcast.start(['--drain-window', drain], port);
    t.after(() => rc2.kill());
    // Some published before the page is back (the reset's replay), some after (live).
    const after = [];
    for (let i = 0; i < 5; i++) after.push([await post(port, 'news', `after ${i}`), `after ${i}`]);
    await waitLog(page, opened(2), 'the page reconnects');
    for (let i = 5; i < 10; i++) after.push([await post(port, 'news', `after ${i}`), `after ${i}`]);
    await waitLog(page, messages(20), 'every message published after the restart');

    await check(page, async () => {
      const epoch2 = after[0][0].epoch;
      assert.notEqual(epoch2, before.epoch, 'a new process is a new epoch');
      const got = await stream(page);
      assert.deepEqual(got, [
        ...expected,
        { type: 'reset', topic: 'news', epoch: epoch2, previous: { epoch: before.epoch, seq: before.seq } },
        ...after.map(([p, data]) => msg('news', p.epoch, p.seq, data)),
      ]);
      const log = await page.log();
      const bye = log.find((e) => e.type === 'disconnect');
      assert.equal(bye.reason, 'server shutting down');
      assert.ok(bye.retryIn < opts.goingAwayJitter, `1001: reconnect within the jitter, not the backoff (${bye.retryIn})`);
      assert.equal(await page.evaluate(() => window.sub.duplicates), 0);
      if (drain !== '0s') assert.ok(stopMs >= 500, `the drain spread the closes (exit after ${stopMs} ms)`);
    });
    assertHygiene(page, [front.port, port], { outage: true });
  });
}

test('connection killed while publishing continues: resume with since, every message exactly once, no gap', async (t) => {
  const { rc, front, page } = await setup(t);
  await start(page, `ws://127.0.0.1:${front.port}`, ['live']);
  await waitLog(page, opened(1), 'the connection opens');
  const sent = [];
  const pub = async (i) => sent.push(await post(rc.port, 'live', `m${i}`));
  for (let i = 0; i < 20; i++) await pub(i);
  front.cut(); // mid-stream, reconnect allowed at once
  for (let i = 20; i < 35; i++) await pub(i);
  await waitLog(page, opened(2), 'the first reconnect');
  front.refusing = true; // now the page stays away while 15 more are published
  front.cut();
  const tries = front.upgrades.length;
  for (let i = 35; i < 50; i++) await pub(i);
  await until(() => front.upgrades.length >= tries + 2, 10000, () => 'reconnect attempts while refused');
  front.refusing = false;
  for (let i = 50; i < 60; i++) await pub(i);
  await waitLog(page, messages(60), 'all 60 messages');

  await check(page, async () => {
    const epoch = sent[0].epoch;
    assert.deepEqual(await stream(page), sent.map((p, i) => msg('live', epoch, p.seq, `m${i}`)));
    assert.deepEqual(sent.map((p) => p.seq), sent.map((_, i) => i + 1));
    const log = await page.log();
    assert.ok(log.filter((e) => e.type === 'disconnect').every((e) => e.code === 1006), 'cut: 1006');
    assert.equal(await page.evaluate(() => window.sub.duplicates), 0);
    // Every reconnect resumed from a position of this epoch.
    const resumes = front.upgrades.slice(1);
    assert.ok(resumes.length >= 3);
    for (const u of resumes) assert.match(u, new RegExp(`^/sub/live\\?since=live@${epoch}:\\d+$`));
  });
  assertHygiene(page, [front.port, rc.port], { outage: true });
});

test('history no longer covers the position: gap surfaced with it, then the retained messages, then live', async (t) => {
  const { rc, front, page } = await setup(t, ['--history-size', '5']);
  await start(page, `ws://127.0.0.1:${front.port}`, ['g']);
  await waitLog(page, opened(1), 'the connection opens');
  const sent = [];
  for (let i = 0; i < 3; i++) sent.push(await post(rc.port, 'g', `m${i}`));
  await waitLog(page, messages(3), 'the first 3 messages');
  front.refusing = true;
  front.cut();
  await waitLog(page, hasEvent('disconnect'), 'the cut');
  for (let i = 3; i < 23; i++) sent.push(await post(rc.port, 'g', `m${i}`));
  front.refusing = false;
  await waitLog(page, messages(8), '3 + the 5 retained messages');
  sent.push(await post(rc.port, 'g', 'm23'));
  await waitLog(page, messages(9), 'the live message after the replay');

  await check(page, async () => {
    const epoch = sent[0].epoch;
    const m = (i) => msg('g', epoch, i + 1, `m${i}`);
    assert.deepEqual(await stream(page), [
      m(0), m(1), m(2),
      { type: 'gap', topic: 'g', epoch, after: 3 },
      m(18), m(19), m(20), m(21), m(22), m(23),
    ]);
  });
  assertHygiene(page, [front.port, rc.port], { outage: true });
});

test('a topic with no position yet when the connection dropped: reset and its retained history, not a silent hole', async (t) => {
  const { rc, front, page } = await setup(t);
  await start(page, `ws://127.0.0.1:${front.port}`, ['quiet', 'busy']);
  await waitLog(page, opened(1), 'the connection opens');
  const busy = await post(rc.port, 'busy', 'b0');
  await waitLog(page, messages(1), 'the busy message');
  front.refusing = true;
  front.cut();
  await waitLog(page, hasEvent('disconnect'), 'the cut');
  const quiet = [];
  for (let i = 0; i < 3; i++) quiet.push(await post(rc.port, 'quiet', `q${i}`));
  front.refusing = false;
  await waitLog(page, messages(4), 'the quiet topic\'s messages');

  await check(page, async () => {
    const epoch = quiet[0].epoch;
    assert.deepEqual(await stream(page), [
      msg('busy', busy.epoch, 1, 'b0'),
      { type: 'reset', topic: 'quiet', epoch, previous: null },
      ...quiet.map((p, i) => msg('quiet', epoch, p.seq, `q${i}`)),
    ]);
    assert.equal(front.upgrades.at(-1), `/sub/quiet,busy?since=quiet@none:0,busy@${busy.epoch}:1`);
  });
  assertHygiene(page, [front.port, rc.port], { outage: true });
});

test('positions saved by an earlier page: the first connection resumes from them', async (t) => {
  const { rc, front, page } = await setup(t);
  const sent = [];
  for (let i = 0; i < 5; i++) sent.push(await post(rc.port, 'p', `m${i}`));
  const { epoch } = sent[0];
  await start(page, `ws://127.0.0.1:${front.port}`, ['p'], { ...FAST, positions: { p: { epoch, seq: 2 } } });
  await waitLog(page, messages(3), 'the 3 messages after the saved position');
  sent.push(await post(rc.port, 'p', 'm5'));
  await waitLog(page, messages(4), 'the live message');
  await check(page, async () => {
    assert.deepEqual(await stream(page), sent.slice(2).map((p, i) => msg('p', epoch, p.seq, `m${i + 2}`)));
    assert.equal(front.upgrades[0], `/sub/p?since=p@${epoch}:2`);
  });
  assertHygiene(page, [front.port, rc.port]);
});

test('a duplicate or older seq is never delivered; a malformed event drops the connection and resumes', async (t) => {
  const { rc, front, page } = await setup(t);
  await start(page, `ws://127.0.0.1:${front.port}`, ['d']);
  await waitLog(page, opened(1), 'the connection opens');
  const sent = [];
  for (let i = 0; i < 3; i++) sent.push(await post(rc.port, 'd', `m${i}`));
  await waitLog(page, messages(3), 'the first 3 messages');
  const { epoch } = sent[0];
  // The server is idle: frames written now cannot split one of its own.
  front.sendToClients(serverFrame(1, `msg d ${epoch} 2\nstale`));
  front.sendToClients(serverFrame(2, Buffer.from(`msg d ${epoch} 3\nduplicate`)));
  sent.push(await post(rc.port, 'd', 'm3'));
  await waitLog(page, messages(4), 'the next real message');
  assert.equal(await page.evaluate(() => window.sub.duplicates), 2);

  front.sendToClients(serverFrame(1, 'not an event'));
  await waitLog(page, hasEvent('error'), 'the parse error');
  await waitLog(page, opened(2), 'the reconnect');
  sent.push(await post(rc.port, 'd', 'm4'));
  await waitLog(page, messages(5), 'the message after the reconnect');

  await check(page, async () => {
    assert.deepEqual(await stream(page), sent.map((p, i) => msg('d', epoch, i + 1, `m${i}`)));
    assert.match(front.upgrades.at(-1), new RegExp(`since=d@${epoch}:4$`));
  });
  assertHygiene(page, [front.port, rc.port]);
});

// Auth is not wired into the server yet: the front stands in for it here (it takes the
// `auth` messages and sends the 1008 close the server will send at exp). The end-to-end
// test against ringcast's own auth comes with that work.
test('token: sent as ?token=, renewed with `auth <jwt>` before exp, renewed before reconnecting after 1008 token expired', async (t) => {
  const { rc, front, page } = await setup(t, [], { interceptAuth: true });
  await start(page, `ws://127.0.0.1:${front.port}`, ['secure'], { ...FAST, tokenLifetime: 4, refreshBefore: 1000 });
  await waitLog(page, opened(1), 'the connection opens');
  const tokens = () => page.evaluate(() => window.tokens);
  await check(page, async () => {
    const [first] = await tokens();
    assert.equal(front.upgrades[0], `/sub/secure?token=${first.token}`);
    const exp = await page.evaluate((tk) => window.jwtExp(tk), first.token);
    await until(() => front.authMessages.length >= 1, 8000, () => 'an auth message');
    const tk = await tokens();
    assert.equal(tk.length, 2, 'one renewal');
    assert.equal(front.authMessages[0].text, `auth ${tk[1].token}`);
    assert.ok(front.authMessages[0].at < exp * 1000, 'sent before the first token expired');
    // Messages still flow on the same connection.
    await post(rc.port, 'secure', 'still here');
    await waitLog(page, messages(1), 'a message after the renewal');
  });

  const before = (await tokens()).length;
  front.closeClients(1008, 'token expired');
  await waitLog(page, hasEvent('disconnect', "e.code === 1008 && e.reason === 'token expired'"), 'the 1008 close');
  await waitLog(page, opened(2), 'the reconnect');
  await check(page, async () => {
    const tk = await tokens();
    assert.equal(tk.length, before + 1, 'a new token was asked for before reconnecting');
    assert.equal(front.upgrades.at(-1), `/sub/secure?since=secure@${(await stream(page))[0].epoch}:1&token=${tk.at(-1).token}`);
  });
  assertHygiene(page, [front.port, rc.port]);
});

test('an expired token string cannot be renewed: the client closes with an error and never connects', async (t) => {
  const { front, page } = await setup(t);
  await start(page, `ws://127.0.0.1:${front.port}`, ['x'], { ...FAST, expiredToken: true });
  await waitLog(page, hasEvent('state', "e.state === 'closed'"), 'closed');
  await check(page, async () => {
    const log = await page.log();
    assert.match(log.find((e) => e.type === 'error').error, /token expired/);
    assert.deepEqual(front.upgrades, []);
  });
  assertHygiene(page, [front.port]);
});
