// Exercise 4.1, solved: two servers in one worker, both on port 0.
//
//   cargo run -q -- lab --workers 2 --servers-per-worker 2 --trace-wire --no-syscalls \
//     --exec node exercises/solutions/ch04/1_two_servers.js
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

if (cluster.isPrimary) throw new Error('run me as a worker: lab --exec node <this file>');

const HOST = '127.0.0.1';
const answer = (req, res) => res.end(`worker ${cluster.worker.id}\n`);

http.createServer(answer).listen(0, HOST, () => {
  http.createServer(answer).listen(0, HOST);
});
