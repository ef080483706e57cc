// The test page: runs the client and records everything it reports in window.log, for the
// Node side of the test to wait on and check.
import { subscribe, publish, jwtExp } from '/ringcast.js';

window.log = [];
// `at`: ms since the page loaded; `wall`: Date.now(), to compare with a token's exp.
const record = (type, e) => window.log.push({ type, at: Math.round(performance.now()), wall: Date.now(), ...e });

// An unsigned JWT-shaped token: only for what the client decides alone (an expired token
// string is never sent); tokens the server sees come from the test (`ringcast token`).
function fakeJwt(claims) {
  const b64 = (o) => btoa(JSON.stringify(o)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.c2ln`;
}

window.tokens = [];
// A token function backed by the test: window.mintToken (exposed by the Node side) signs
// each token with `ringcast token`, and decides what the n-th call gets.
async function tokenFromTest() {
  const n = window.tokens.length + 1;
  const token = await window.mintToken(n);
  window.tokens.push({ n, at: Date.now(), token });
  record('token', { n });
  return token;
}

window.start = (url, topics, opts = {}) => {
  if (opts.tokenFromTest) opts.token = tokenFromTest;
  if (opts.expiredToken) opts.token = fakeJwt({ exp: Math.floor(Date.now() / 1000) - 10 });
  const sub = subscribe(url, topics, opts);
  sub.on('message', ({ topic, epoch, seq, data }) =>
    record('message', {
      topic,
      epoch,
      seq,
      text: typeof data === 'string',
      data: typeof data === 'string' ? data : Array.from(data),
    }),
  );
  sub.on('gap', (e) => record('gap', e));
  sub.on('reset', (e) => record('reset', e));
  sub.on('state', (e) => record('state', e));
  sub.on('disconnect', (e) => record('disconnect', e));
  sub.on('error', (e) => record('error', { error: String(e.error) }));
  window.sub = sub;
};

window.publishFromPage = (url, topic, data) =>
  publish(url, topic, typeof data === 'string' ? data : new Uint8Array(data));
window.jwtExp = jwtExp;
window.fakeJwt = fakeJwt;
window.ready = true;
