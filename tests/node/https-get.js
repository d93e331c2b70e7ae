// A TLS client for tests: HTTPS requests to 127.0.0.1:PORT, one after another, until WANT
// different workers have answered or MAX requests were made. Prints one JSON line: the bodies.
// A refused connection (the cluster is not up yet) is tried again, for at most 10 s.
//
//   node tests/node/https-get.js PORT WANT MAX
'use strict';
const https = require('node:https');

const [port, want, max] = process.argv.slice(2).map(Number);
const deadline = Date.now() + 10000;
setTimeout(() => { console.error('https-get.js: timed out'); process.exit(2); }, 15000).unref();

function get() {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', agent: false, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body.trim()));
    });
    req.on('error', (e) => resolve({ error: e.code }));
    req.setTimeout(3000, () => req.destroy());
  });
}

async function main() {
  const answers = [];
  const seen = new Set();
  while (answers.length < max && seen.size < want) {
    const a = await get();
    if (typeof a === 'object') {
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    answers.push(a);
    seen.add((/worker (\d+)/.exec(a) || [])[1]);
  }
  console.log(JSON.stringify(answers));
}
main();
