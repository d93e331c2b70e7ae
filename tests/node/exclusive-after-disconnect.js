// Does an exclusive server outlive `cluster.disconnect()`? Two workers `listen({ port: P,
// exclusive: true })`; one wins. The primary disconnects them, then asks the port again, then
// kills what still runs. Prints one JSON line: the answer after disconnect ('-' if none), and
// how each worker ended.
//
//   node tests/node/exclusive-after-disconnect.js P
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const PORT = Number(process.argv[2]);

if (cluster.isPrimary) {
  setTimeout(() => { console.error('exclusive-after-disconnect.js: timed out'); process.exit(2); }, 20000).unref();
  const exits = {};
  const workers = [];
  let settled = 0;
  const settle = async () => {
    if (++settled !== 2) return;
    cluster.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const after = await get();
    workers.forEach((w) => w.process.kill('SIGKILL'));
    const done = () => (Object.keys(exits).length === 2
      ? console.log(JSON.stringify({ after, exits }))
      : setTimeout(done, 10));
    done();
  };
  for (let i = 0; i < 2; i++) {
    const w = cluster.fork();
    workers.push(w);
    w.on('message', (m) => { if (m === 'listening') settle(); });
    w.on('exit', (code, signal) => {
      exits[w.id] = { code, signal };
      if (code === 1) settle();
    });
  }
} else {
  const server = http.createServer((req, res) => res.end(`worker ${cluster.worker.id}\n`));
  server.on('error', () => process.exit(1));
  server.listen({ port: PORT, host: '127.0.0.1', exclusive: true }, () => process.send('listening'));
}

function get() {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: PORT, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body.trim()));
    });
    req.on('error', () => resolve('-'));
    req.setTimeout(3000, () => req.destroy());
  });
}
