// Exercise 5.1, solved: watch the rotation from Node.
//
//   node exercises/solutions/ch05/1_rotation.js
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 0);
const WORKERS = 3;
const REQUESTS = 6;

if (cluster.isPrimary) {
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
