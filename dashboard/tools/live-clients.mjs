// Not a test: holds N dashboards' live connections (GET /dashboard/live) open and reads every
// snapshot, as N open dashboard pages would, until SIGTERM/SIGINT; then prints how many
// snapshots each received. Used by cost.sh to measure what the snapshot stream costs.
//
//   node --experimental-websocket dashboard/tools/live-clients.mjs ws://127.0.0.1:9001 10
//
// Prints `open N` once every connection is open. Exits 1 if one closes before the end.

const [url, n = '10'] = process.argv.slice(2);
const counts = [];
let open = 0;
let failed = false;
const sockets = Array.from({ length: Number(n) }, (_, i) => {
  counts[i] = 0;
  const ws = new WebSocket(`${url}/dashboard/live`);
  ws.onopen = () => ++open === sockets.length && console.log(`open ${open}`);
  ws.onmessage = (e) => {
    JSON.parse(e.data); // read it as a page would
    counts[i]++;
  };
  ws.onclose = () => {
    if (!stopping) {
      console.error(`live-clients: connection ${i} closed`);
      failed = true;
    }
  };
  return ws;
});
let stopping = false;
const stop = () => {
  stopping = true;
  for (const ws of sockets) ws.close();
  console.log(`snapshots received per connection: ${counts.join(' ')}`);
  setTimeout(() => process.exit(failed ? 1 : 0), 200);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
