// Two servers per worker, both on port 0: the key's index makes every worker's first server
// share one port and every second server share another.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const answer = (req, res) => res.end(`worker ${cluster.worker.id} (pid ${process.pid})\n`);
const host = process.env.HOST || '127.0.0.1';
http.createServer(answer).listen(0, host, () => {
  http.createServer(answer).listen(0, host);
});
