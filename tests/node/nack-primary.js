// A plain Node cluster primary with a worker that answers a `newconn` with NODE_HANDLE_NACK:
// workers 1 and 3 are tests/node/http-worker.js, worker 2 is `python3 tests/fake_worker.py
// nack` (Node's fork always runs process.execPath, so it points at python3 for that one
// synchronous call). REQUESTS sequential HTTP requests, each given TIMEOUT ms; prints one JSON
// line: who answered each (null: nobody), and every warning the primary emitted.
//
//   node tests/node/nack-primary.js REQUESTS TIMEOUT
//
// What Node does (lib/internal/child_process.js): a NACK releases the messages held behind
// the handle, and re-sends it only if it was a `net.Socket` (or, in 24+, a `net.BoundSocket`):
// those alone keep a `_pendingMessage`. The cluster's `net.Native` is sent once, and its
// `newconn` callback waits for an `{accepted}` that never comes.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const path = require('node:path');

const [requests, timeout] = process.argv.slice(2).map(Number);
const result = { answered_by: [], warnings: [] };
process.on('warning', (w) => result.warnings.push(`${w.name}: ${w.message}`));
setTimeout(() => { console.error('nack-primary.js: timed out'); process.exit(2); }, 30000).unref();

function fork(id) {
  if (id !== 2) {
    cluster.setupPrimary({ exec: path.join(__dirname, 'http-worker.js'), args: [], execArgv: [] });
    return cluster.fork();
  }
  cluster.setupPrimary({ exec: path.join(__dirname, '..', 'fake_worker.py'), args: ['nack'], execArgv: [] });
  const nodePath = process.execPath;
  process.execPath = 'python3';
  try {
    return cluster.fork();
  } finally {
    process.execPath = nodePath;
  }
}

function get(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(Number((/worker (\d+)/.exec(body) || [])[1]) || null));
    });
    req.on('error', () => resolve(null));
    req.setTimeout(timeout, () => { req.destroy(); resolve(null); });
  });
}

async function main() {
  let port;
  for (let id = 1; id <= 3; id++) {
    const w = fork(id);
    ({ port } = await new Promise((resolve) => w.once('listening', resolve)));
  }
  for (let n = 0; n < requests; n++) result.answered_by.push(await get(port));
  cluster.disconnect(() => {
    console.log(JSON.stringify(result));
    process.exit(0);
  });
}
main();
