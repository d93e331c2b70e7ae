// Exercise 4.1: two servers in one worker, both on port 0.
//
// This is a worker only: our lab is its primary. Each worker starts one HTTP server on
// port 0. Start a second one, also on port 0, once the first listens. Predict: how many
// ports does each worker end up with, and do the workers share them? Then watch the
// keys go by (their last number is the index). `--servers-per-worker 2` makes the lab
// wait for each worker's second listen before it starts the next worker:
//
//   cargo run -q -- lab --workers 2 --servers-per-worker 2 --trace-wire --no-syscalls \
//     --exec node exercises/ch04/1_two_servers.js
//   cargo run -- check 4.1
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

if (cluster.isPrimary) throw new Error('run me as a worker: lab --exec node <this file>');

const HOST = '127.0.0.1';
const answer = (req, res) => res.end(`worker ${cluster.worker.id}\n`);

http.createServer(answer).listen(0, HOST, () => {
  // TODO: a second server with the same `answer`, also on port 0 and HOST.
});
