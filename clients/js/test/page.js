// The test page: runs the client and records everything it reports in window.log, for the
// Node side of the test to wait on and check.
import { subscribe, publish, jwtExp } from '/ringcast.js';

window.log = [];
const record = (type, e) => window.log.push({ type, at: Math.round(performance.now()), ...e });

// An unsigned JWT-shaped token (the client never verifies; the server is not told to).
function fakeJwt(claims) {
  const b64 = (o) => btoa(JSON.stringify(o)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.c2ln`;
}

window.tokens = [];
// A token function: each call mints token n+1, valid for `lifetimeS` seconds.
function tokenFunction(lifetimeS) {
  return async () => {
    const n = window.tokens.length + 1;
    const t = fakeJwt({ sub: 'page', n, exp: Math.floor(Date.now() / 1000) + lifetimeS });
    window.tokens.push({ n, at: Date.now(), token: t });
    record('token', { n });
    return t;
  };
}

window.start = (url, topics, opts = {}) => {
  if (opts.tokenLifetime) opts.token = tokenFunction(opts.tokenLifetime);
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
