// SCHED_NONE as one ordinary Node cluster script: the primary forks 2 workers, waits until
// both listen, makes 2 HTTP requests itself, then disconnects. Chapter 10 runs it under strace
// next to its twin, `cluster-walkthrough lab --workers 2 --connections 2 --policy none`.
//
//   node tests/node/scenario-none.js
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const HOST = '127.0.0.1';
const WORKERS = 2;
const REQUESTS = 2;

if (cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_NONE; // before the first fork
  setTimeout(() => { console.error('scenario-none.js: timed out'); process.exit(2); }, 10000).unref();
  let listening = 0;
  cluster.on('listening', async (worker, address) => {
    if (++listening < WORKERS) return;
    const answers = [];
    for (let n = 0; n < REQUESTS; n++) answers.push(await get(address.port));
    console.log(`answered by: ${answers.join(' ')}`);
    cluster.disconnect();
  });
  for (let i = 0; i < WORKERS; i++) cluster.fork();
} else {
  http.createServer((req, res) => res.end(`${cluster.worker.id}`)).listen(0, HOST);
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
