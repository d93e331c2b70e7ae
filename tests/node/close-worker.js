// A worker that closes its server right after it listens: it sends `close` for its key and
// the primary stops handing it connections. (It waits for setImmediate: a server closed in a
// 'listening' handler that runs before cluster's own never tells the primary it listened.)
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const server = http.createServer((req, res) => res.end(`worker ${cluster.worker.id}\n`));
server.listen(Number(process.env.PORT || 0), process.env.HOST || '127.0.0.1', () => {
  setImmediate(() => server.close());
});
