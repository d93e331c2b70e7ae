// An ordinary Node cluster worker: one HTTP server that says who answered.
// Run by `cluster-walkthrough lab --exec node tests/node/http-worker.js`: our primary forks it
// exactly as Node's would (NODE_UNIQUE_ID, channel on fd 3), and it never knows the difference.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

if (cluster.isPrimary) throw new Error('run me as a worker (under a cluster primary)');

http
  .createServer((req, res) => res.end(`worker ${cluster.worker.id} (pid ${process.pid})\n`))
  .listen(Number(process.env.PORT || 0), process.env.HOST || '127.0.0.1');
