// Copies clients/js/ringcast.js into dashboard/index.html, between the `// ringcast.js begin`
// and `// ringcast.js end` lines of its module script. The server serves the page verbatim
// (include_str!), so the page cannot import the module from a second URL: it carries a copy,
// and this script is how that copy is made. dashboard/test checks the copy is exact.
//
//   node dashboard/sync-client.mjs            # rewrite the copy
//   node dashboard/sync-client.mjs --check    # exit 1 if the copy differs

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PAGE = path.join(HERE, 'index.html');
export const CLIENT = path.join(HERE, '..', 'clients', 'js', 'ringcast.js');
const BEGIN = /^\/\/ ringcast\.js begin\n/m;
const END = /^\/\/ ringcast\.js end\n/m;

/** The page split around the copy: [before, copy, after]. Throws if the markers are missing. */
export function split(page) {
  const b = BEGIN.exec(page);
  const e = END.exec(page);
  if (!b || !e || e.index < b.index + b[0].length) throw new Error(`${PAGE}: ringcast.js begin/end markers not found`);
  const start = b.index + b[0].length;
  return [page.slice(0, start), page.slice(start, e.index), page.slice(e.index)];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const page = readFileSync(PAGE, 'utf8');
  const client = readFileSync(CLIENT, 'utf8');
  if (/<\/script|<!--/i.test(client)) throw new Error('ringcast.js contains </script or <!--: it cannot be inlined as it is');
  const [before, copy, after] = split(page);
  if (process.argv.includes('--check')) {
    if (copy !== client) {
      console.error('dashboard/index.html: the inlined ringcast.js differs from clients/js/ringcast.js; run node dashboard/sync-client.mjs');
      process.exit(1);
    }
  } else if (copy !== client) {
    writeFileSync(PAGE, before + client + after);
    console.log(`dashboard/index.html: ringcast.js copied in (${Buffer.byteLength(before + client + after)} bytes)`);
  }
}
