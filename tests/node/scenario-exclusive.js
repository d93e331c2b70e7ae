// listen({ exclusive: true }) as one ordinary Node cluster script: both workers bind port P
// themselves (the primary is not asked), so one wins and the other fails with EADDRINUSE and
// exits 1. The primary then makes 2 HTTP requests itself and disconnects. The winner's server
// is not the cluster's, so `disconnect` does not close it: the winner serves on, and the
// primary, like the lab, kills what still runs a second later. Chapter 10 runs it under strace
// next to `cluster-walkthrough lab --workers 2 --connections 2 --exclusive --port P`.
//
//   node tests/node/scenario-exclusive.js P
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const HOST = '127.0.0.1';
const PORT = Number(process.argv[2]);
const WORKERS = 2;
const REQUESTS = 2;

if (cluster.isPrimary) {
  setTimeout(() => { console.error('scenario-exclusive.js: timed out'); process.exit(2); }, 10000).unref();
  // An exclusive server is not the cluster's business: no 'listening' reaches the primary, so
  // each worker says it is listening (a message) or fails (exit code 1).
  let settled = 0;
  const settle = async () => {
    if (++settled !== WORKERS) return;
    const answers = [];
    for (let n = 0; n < REQUESTS; n++) answers.push(await get(PORT));
    console.log(`answered by: ${answers.join(' ')}`);
    cluster.disconnect();
    // Not `cluster.disconnect(cb)`: with a worker that stays, its callback never comes.
    setTimeout(() => workers.forEach((w) => w.process.kill('SIGKILL')), 1000).unref();
  };
  const workers = [];
  for (let i = 0; i < WORKERS; i++) {
    const worker = cluster.fork();
    workers.push(worker);
    worker.on('message', (m) => { if (m === 'listening') settle(); });
    worker.on('exit', (code) => { if (code !== 0) settle(); });
  }
} else {
  const server = http.createServer((req, res) => res.end(`${cluster.worker.id}`));
  server.on('error', () => process.exit(1)); // as an unhandled 'error' would, without the stack
  server.listen({ port: PORT, host: HOST, exclusive: true }, () => process.send('listening'));
}

function get(port) {
  return new Promise((resolve) => {
    http.get({ host: HOST, port, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', () => resolve('-'));
  });
}
