// Exercise 5.1: watch the rotation from Node.
//
// The workers are written: each answers every request with its cluster id. Write the
// primary: fork WORKERS workers; once all of them listen, make REQUESTS requests one
// after another (await get(port) in a loop), print
//
//   answered by: <the answers, joined by spaces>
//
// and end with cluster.disconnect(). Predict the line before you run it.
//
//   node exercises/ch05/1_rotation.js
//   cargo run -- check 5.1
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 0);
const WORKERS = 3;
const REQUESTS = 6;

if (cluster.isPrimary) {
  // TODO: fork WORKERS workers. cluster.on('listening', (worker, address) => ...) fires
  //       once per worker; on the last one, make the requests to address.port.
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
