// Exercise 6.1: SCHED_NONE from inside the script.
//
// This cluster script works: two workers, four requests, `answered by: ...`. Under round
// robin the primary listens and accepts; the workers make no socket call of their own.
// Switch it to SCHED_NONE from inside the script (the check runs it with no
// NODE_CLUSTER_SCHED_POLICY in its environment), so that the primary only binds and
// each worker calls listen(2) itself. See it with strace:
//
//   strace -f -e trace=bind,listen node exercises/ch06/1_sched_none.js
//   cargo run -- check 6.1
'use strict';
// TODO: choose SCHED_NONE here, before cluster is loaded (or set
//       cluster.schedulingPolicy before the first fork).
const cluster = require('node:cluster');
const http = require('node:http');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 0);
const WORKERS = 2;
const REQUESTS = 4;

if (cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', async (worker, address) => {
    if (++listening < WORKERS) return;
    const answers = [];
    for (let n = 0; n < REQUESTS; n++) answers.push(await get(address.port));
    console.log(`policy: ${cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none'}`);
    console.log(`answered by: ${answers.join(' ')}`);
    cluster.disconnect();
  });
  for (let i = 0; i < WORKERS; i++) cluster.fork();
} else {
  http.createServer((req, res) => res.end(`${cluster.worker.id}`)).listen(PORT, HOST);
}

/** One GET with a connection of its own; resolves to the body ('-' on an error). */
function get(port) {
  return new Promise((resolve) => {
    http.get({ host: HOST, port, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve(body));
    }).on('error', () => resolve('-'));
  });
}
