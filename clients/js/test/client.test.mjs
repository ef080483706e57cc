// The browser client in headless Chromium against the real ringcast binary (RINGCAST_BIN).
// Each test starts its own ringcast and front server on loopback and stops them; a failing
// wait prints everything the page's client reported.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Front,
  Ringcast,
  assertHygiene,
  authSecret,
  dump,
  idleSubscribers,
  jwtExp,
  launchBrowser,
  mintToken,
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
    .map(({ at, wall, ...e }) => e);
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

// Tokens against ringcast's own auth (--auth-key): every token is signed by `ringcast
// token`; the page's token function asks the test for each one (window.mintToken), so a
// test decides what the n-th call gets. The front only notes the `auth` messages.

/** ringcast with auth on, a front that notes `auth` messages, and `mint(n, page)` as the page's token source. */
async function authSetup(t, mint) {
  const secret = await authSecret(t);
  const s = await setup(t, ['--auth-key', secret], { watchAuth: true });
  await s.page.exposeFunction('mintToken', (n) => mint(n, secret, s.page));
  s.secret = secret;
  s.tokens = () => s.page.evaluate(() => window.tokens.map((x) => x.token));
  s.publisher = await mintToken(secret, { grantSub: [], grantPub: ['secure'] });
  return s;
}
const since = (epoch, seq, token) => `/sub/secure?since=secure@${epoch}:${seq}&token=${token}`;
const disconnects = async (page) => (await page.log()).filter((e) => e.type === 'disconnect');

test('token (ringcast --auth-key): sent as ?token=, replaced with `auth <jwt>` before exp, the connection outlives the first token', async (t) => {
  // Every call: a fresh 3 s token (the client renews 1 s before exp).
  const { rc, front, page, tokens, publisher } = await authSetup(t, (n, secret) => mintToken(secret, { ttl: '3s' }));
  await start(page, `ws://127.0.0.1:${front.port}`, ['secure'], { ...FAST, tokenFromTest: true, refreshBefore: 1000 });
  await waitLog(page, opened(1), 'the connection opens');
  const [first] = await tokens();
  const exp = jwtExp(first);
  await check(page, async () => {
    assert.equal(front.upgrades[0], `/sub/secure?token=${first}`);
    await until(() => front.authMessages.length >= 1, 8000, () => 'an auth message');
    const tk = await tokens();
    assert.equal(front.authMessages[0].text, `auth ${tk[1]}`, 'the second token, on the open connection');
    assert.ok(front.authMessages[0].at < exp * 1000, 'sent before the first token expired');
    assert.ok(jwtExp(tk[1]) > exp, 'the new token expires later');
  });
  // ringcast took the new token: a second past the first token's exp (whole seconds), the
  // connection is still the first one and messages still arrive on it.
  await until(() => Date.now() >= (exp + 1) * 1000, 8000, () => 'the first token\'s exp to pass');
  const pos = await post(rc.port, 'secure', 'after the first exp', 'text/plain', publisher);
  await waitLog(page, messages(1), 'a message after the first token expired');
  await check(page, async () => {
    assert.deepEqual(await stream(page), [msg('secure', pos.epoch, pos.seq, 'after the first exp')]);
    assert.deepEqual(await disconnects(page), [], 'never disconnected');
    assert.equal(front.upgrades.length, 1, 'one connection');
  });
  assertHygiene(page, [front.port, rc.port]);
});

test('token (ringcast --auth-key): not replaced in time, ringcast closes with 1008 token expired at exp; a fresh token, then resume', async (t) => {
  // Call 1: a 3 s token. Later calls, while connected: that same token (a token cache that
  // cannot renew yet: expiring no later, the client does not send it). After the 1008: fresh.
  let cached;
  const { rc, front, page, tokens, publisher } = await authSetup(t, async (n, secret, page) => {
    if (n === 1) return (cached = await mintToken(secret, { ttl: '3s' }));
    const closed = (await page.evaluate(() => window.log)).some((e) => e.type === 'disconnect');
    return closed ? mintToken(secret, { ttl: '1h' }) : cached;
  });
  await start(page, `ws://127.0.0.1:${front.port}`, ['secure'], { ...FAST, tokenFromTest: true, refreshBefore: 1000 });
  await waitLog(page, opened(1), 'the connection opens');
  const m1 = await post(rc.port, 'secure', 'm1', 'text/plain', publisher);
  await waitLog(page, messages(1), 'the first message');
  const exp = jwtExp(cached);
  await waitLog(page, hasEvent('disconnect'), 'the server\'s close at exp', 8000);
  await waitLog(page, opened(2), 'the reconnect');
  const m2 = await post(rc.port, 'secure', 'm2', 'text/plain', publisher);
  await waitLog(page, messages(2), 'the message after the reconnect');

  await check(page, async () => {
    const [bye, ...more] = await disconnects(page);
    assert.deepEqual(more, [], 'one disconnect');
    assert.equal(bye.code, 1008);
    assert.equal(bye.reason, 'token expired');
    assert.ok(bye.wall >= exp * 1000, `not before exp (${bye.wall - exp * 1000} ms after)`);
    assert.ok(bye.wall < exp * 1000 + 1500, `at exp (${bye.wall - exp * 1000} ms after)`);
    assert.deepEqual(front.authMessages, [], 'the client sent no auth: the close is the server\'s own expiry');
    const tk = await tokens();
    assert.notEqual(tk.at(-1), cached, 'a fresh token after the 1008');
    assert.equal(front.upgrades.length, 2);
    assert.equal(front.upgrades[1], since(m1.epoch, m1.seq, tk.at(-1)));
    assert.deepEqual(await stream(page), [msg('secure', m1.epoch, m1.seq, 'm1'), msg('secure', m2.epoch, m2.seq, 'm2')]);
  });
  assertHygiene(page, [front.port, rc.port]);
});

test('token (ringcast --auth-key): a refused `auth` (topic not granted) is closed with 1008 token refused at once; a fresh token, then resume', async (t) => {
  // Call 1: a 3 s token; call 2 (the renewal): a later token that does not grant `secure`;
  // call 3 (after the 1008): a good one.
  const { rc, front, page, tokens, publisher } = await authSetup(t, (n, secret) =>
    n === 2 ? mintToken(secret, { grantSub: ['other'] }) : mintToken(secret, { ttl: n === 1 ? '3s' : '1h' }),
  );
  await start(page, `ws://127.0.0.1:${front.port}`, ['secure'], { ...FAST, tokenFromTest: true, refreshBefore: 1000 });
  await waitLog(page, opened(1), 'the connection opens');
  const m1 = await post(rc.port, 'secure', 'm1', 'text/plain', publisher);
  await waitLog(page, messages(1), 'the first message');
  const exp = jwtExp((await tokens())[0]);
  await waitLog(page, hasEvent('disconnect'), 'the refusal', 8000);
  await waitLog(page, opened(2), 'the reconnect');
  const m2 = await post(rc.port, 'secure', 'm2', 'text/plain', publisher);
  await waitLog(page, messages(2), 'the message after the reconnect');

  await check(page, async () => {
    const tk = await tokens();
    assert.equal(tk.length, 3);
    assert.deepEqual(front.authMessages.map((a) => a.text), [`auth ${tk[1]}`]);
    const [bye, ...more] = await disconnects(page);
    assert.deepEqual(more, [], 'one disconnect');
    assert.equal(bye.code, 1008);
    assert.equal(bye.reason, 'token refused');
    assert.ok(bye.wall < exp * 1000, 'at once, before the first token expired');
    assert.ok(bye.wall - front.authMessages[0].at < 1000, `within a second of the auth (${bye.wall - front.authMessages[0].at} ms)`);
    assert.equal(front.upgrades[1], since(m1.epoch, m1.seq, tk[2]));
    assert.deepEqual(await stream(page), [msg('secure', m1.epoch, m1.seq, 'm1'), msg('secure', m2.epoch, m2.seq, 'm2')]);
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
