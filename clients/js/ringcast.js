// ringcast browser client (ringcast.v1): subscribe with positions, resume after any close,
// deliver each message once and in order per topic, announce gaps and resets, refresh the
// token before it expires; plus publish() over fetch. No dependencies. See README.md.

const TOPIC = /^[A-Za-z0-9._:-]{1,128}$/;
const EPOCH = /^[A-Za-z0-9_-]{1,32}$/;
// A connection that stayed open this long resets the backoff: a server that accepts and
// then closes at once must not be hammered at the initial delay.
const STABLE_MS = 5000;
// The epoch sent for a topic whose position the client never learned (no event yet): the
// server answers `reset` and the retained history, so nothing published while the client
// was away is lost silently. Were it ever a real epoch, `:0` would replay the same history.
const UNKNOWN_EPOCH = 'none';

/** The `exp` claim (seconds since the epoch) of a JWT, read without verifying it. */
export function jwtExp(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

function endpoint(base, scheme, path) {
  const u = new URL(base);
  u.protocol = u.protocol.replace(/^(ws|http)/, scheme);
  u.pathname = u.pathname.replace(/\/$/, '') + path;
  u.search = u.hash = '';
  return u;
}

const report = (e) => (globalThis.reportError ? reportError(e) : setTimeout(() => { throw e; }));

/** Subscribe to `topics` on the server at `url` (ws://, wss://, http:// or https:// base). */
export function subscribe(url, topics, options) {
  return new Subscription(url, topics, options);
}

export class Subscription {
  constructor(url, topics, options = {}) {
    this.url = url;
    this.topics = [...topics];
    if (!this.topics.length || !this.topics.every((t) => TOPIC.test(t))) {
      throw new TypeError(`ringcast: topics must be 1-128 bytes of A-Z a-z 0-9 . _ - : (${topics})`);
    }
    endpoint(url, 'ws', '/'); // throws on a malformed URL, now rather than later
    const o = options;
    this.options = {
      backoff: { initial: 500, max: 30000, ...o.backoff },
      goingAwayJitter: o.goingAwayJitter ?? 1000,
      refreshBefore: o.refreshBefore ?? 30000,
      last: o.last,
      WebSocket: o.WebSocket ?? globalThis.WebSocket,
    };
    this.state = 'connecting';
    this.duplicates = 0; // events dropped because their seq was not after the position
    this._pos = new Map(Object.entries(o.positions ?? {}).map(([t, p]) => [t, { ...p }]));
    this._listeners = new Map();
    this._tokenSource = o.token;
    this._token = typeof o.token === 'string' ? o.token : undefined;
    this._exp = this._token && jwtExp(this._token);
    this._renewToken = false;
    this._attempt = 0;
    this._connected = false; // a connection has been open before: resume unknown topics
    this._ws = null;
    this._openedAt = 0; // when the current connection opened (0: not open)
    this._timer = this._refreshTimer = undefined;
    queueMicrotask(() => this._connect()); // listeners added right after subscribe() see everything
  }

  /** Listen to an event; returns a function that removes the listener. */
  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this._listeners.get(type).delete(listener);
  }

  /** The last position delivered for `topic` ({epoch, seq}), or undefined. */
  position(topic) {
    const p = this._pos.get(topic);
    return p && { ...p };
  }

  /** Every known position, to persist and pass back as `options.positions`. */
  positions() {
    return Object.fromEntries([...this._pos].map(([t, p]) => [t, { ...p }]));
  }

  /** Close for good: no reconnect, no further event but the state change to `closed`. */
  close() {
    if (this.state === 'closed') return;
    clearTimeout(this._timer);
    clearTimeout(this._refreshTimer);
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000);
    this._setState('closed');
  }

  _emit(type, event) {
    for (const fn of [...(this._listeners.get(type) ?? [])]) {
      try {
        fn(event);
      } catch (e) {
        report(e); // an app listener's error must not break delivery to the others
      }
    }
  }

  _setState(state) {
    const previous = this.state;
    if (previous === state) return;
    this.state = state;
    this._emit('state', { state, previous });
  }

  _fail(error) {
    this._emit('error', { error });
    this.close();
  }

  // The token for the next connection: the current one while it has more than
  // `refreshBefore` left, else (or when `renew`) a new one from the token function.
  async _getToken(renew) {
    const src = this._tokenSource;
    if (typeof src !== 'function') return src;
    const left = this._exp ? this._exp * 1000 - Date.now() : Infinity;
    if (this._token && !renew && left > this.options.refreshBefore) return this._token;
    const token = await src();
    if (typeof token !== 'string' || !token) {
      throw new TypeError('ringcast: the token function must return a non-empty string');
    }
    this._token = token;
    this._exp = jwtExp(token);
    return token;
  }

  async _connect() {
    if (this.state === 'closed') return;
    let token;
    if (this._tokenSource !== undefined) {
      try {
        token = await this._getToken(this._renewToken);
      } catch (error) {
        if (this.state === 'closed') return;
        this._emit('error', { error });
        return this._retry(this._backoff());
      }
      if (this.state === 'closed') return;
      this._renewToken = false;
      if (typeof this._tokenSource === 'string' && this._exp && this._exp * 1000 <= Date.now()) {
        return this._fail(new Error('ringcast: token expired and no token function to renew it'));
      }
    }
    const u = endpoint(this.url, 'ws', '/sub/' + this.topics.join(','));
    const since = [];
    for (const t of this.topics) {
      const p = this._pos.get(t);
      if (p) since.push(`${t}@${p.epoch}:${p.seq}`);
      else if (this._connected) since.push(`${t}@${UNKNOWN_EPOCH}:0`);
    }
    const q = [];
    if (since.length) q.push('since=' + since.join(','));
    if (!this._connected && this.options.last) q.push('last=' + this.options.last);
    if (token) q.push('token=' + encodeURIComponent(token));
    u.search = q.join('&');
    let ws;
    try {
      ws = new this.options.WebSocket(u.href, 'ringcast.v1');
    } catch (error) {
      return this._fail(error); // e.g. ws:// from an https:// page: retrying cannot help
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._openedAt = 0;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      this._openedAt = Date.now();
      this._connected = true;
      this._setState('open');
      this._scheduleRefresh();
    };
    ws.onmessage = (e) => {
      if (ws === this._ws) this._event(ws, e.data);
    };
    ws.onclose = (e) => {
      if (ws === this._ws) this._closed(e);
    };
  }

  _backoff() {
    const { initial, max } = this.options.backoff;
    return Math.random() * Math.min(max, initial * 2 ** this._attempt++);
  }

  _retry(delay) {
    this._setState(this._connected ? 'reconnecting' : 'connecting');
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _closed({ code, reason, wasClean }) {
    this._ws = null;
    clearTimeout(this._refreshTimer);
    if (this._openedAt && Date.now() - this._openedAt >= STABLE_MS) this._attempt = 0;
    // 1008 is a policy close (`token expired`, `slow consumer`, a refused `auth`): only a new
    // token can change the outcome of the ones about the token, so get one first.
    if (code === 1008 && typeof this._tokenSource === 'function') this._renewToken = true;
    if (code === 1008 && reason === 'token expired' && typeof this._tokenSource === 'string') {
      this._emit('disconnect', { code, reason, wasClean, retryIn: null });
      return this._fail(new Error('ringcast: token expired and no token function to renew it'));
    }
    // 1001: the server is going away (deploy, drain); it is not overloaded, come back soon.
    const retryIn = code === 1001 ? Math.random() * this.options.goingAwayJitter : this._backoff();
    this._emit('disconnect', { code, reason, wasClean, retryIn });
    if (this.state !== 'closed') this._retry(retryIn);
  }

  _event(ws, data) {
    let nl, head, body;
    if (typeof data === 'string') {
      nl = data.indexOf('\n');
      head = data.slice(0, nl);
      body = data.slice(nl + 1);
    } else {
      const b = new Uint8Array(data);
      nl = b.indexOf(10);
      // A header line is under 200 bytes (topic <= 128, epoch <= 32, seq <= 20 digits).
      head = nl > 0 && nl < 256 ? String.fromCharCode(...b.subarray(0, nl)) : '';
      body = b.subarray(nl + 1);
    }
    const [kind, topic, epoch, n, extra] = head.split(' ');
    const num = Number(n);
    const known = extra === undefined && this.topics.includes(topic) && EPOCH.test(epoch);
    const hasNum = /^\d+$/.test(n) && Number.isSafeInteger(num);
    const p = this._pos.get(topic);
    if (known && kind === 'msg' && hasNum) {
      if (p && p.epoch === epoch && num <= p.seq) {
        this.duplicates++;
        return;
      }
      if (p && p.epoch !== epoch) this._emit('reset', { topic, epoch, previous: { ...p } });
      this._pos.set(topic, { epoch, seq: num });
      this._emit('message', { topic, epoch, seq: num, data: body });
    } else if (known && kind === 'gap' && hasNum && !body.length) {
      if (!p || p.epoch !== epoch || p.seq < num) this._pos.set(topic, { epoch, seq: num });
      this._emit('gap', { topic, epoch, after: num });
    } else if (known && kind === 'reset' && n === undefined && !body.length) {
      this._pos.set(topic, { epoch, seq: 0 });
      this._emit('reset', { topic, epoch, previous: p ? { ...p } : null });
    } else {
      // Not a ringcast.v1 event: drop the connection rather than guess, resume from the
      // last good position.
      this._emit('error', { error: new Error(`ringcast: not a ringcast.v1 event: ${head.slice(0, 80)}`) });
      ws.close(4000, 'bad event');
    }
  }

  // While open, send `auth <new token>` shortly before the current one expires.
  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    if (typeof this._tokenSource !== 'function' || !this._exp) return;
    const exp = this._exp;
    const left = exp * 1000 - Date.now();
    if (left <= 0) return; // the server closes with `token expired`; the reconnect renews
    const wait = Math.max(1000, left - Math.min(this.options.refreshBefore, left / 2));
    this._refreshTimer = setTimeout(async () => {
      const ws = this._ws;
      try {
        const token = await this._getToken(true);
        if (ws !== this._ws || ws.readyState !== 1) return;
        // A token expiring no later (a cache in the token function) is not sent: asked
        // again at half the time left, until exp.
        if (this._exp > exp) ws.send('auth ' + token);
      } catch (error) {
        if (ws !== this._ws) return;
        this._emit('error', { error });
      }
      this._scheduleRefresh();
    }, wait);
  }
}

/**
 * Publish `data` (a string: a text message; bytes or a Blob: binary) to `topic` with
 * `POST /pub/{topic}`; resolves to the message's position {topic, epoch, seq}.
 */
export async function publish(url, topic, data, { token, signal } = {}) {
  const headers = {
    'Content-Type': typeof data === 'string' ? 'text/plain;charset=utf-8' : 'application/octet-stream',
    Accept: 'application/json',
  };
  if (token) headers.Authorization = 'Bearer ' + (typeof token === 'function' ? await token() : token);
  const r = await fetch(endpoint(url, 'http', '/pub/' + topic), { method: 'POST', headers, body: data, signal });
  if (!r.ok) throw new Error(`ringcast: publish to ${topic}: HTTP ${r.status} ${(await r.text()).trim()}`);
  return r.json();
}
