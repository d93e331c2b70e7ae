// An ordinary Node cluster worker serving HTTP on a unix socket (a "pipe" in Node's words):
// `server.listen(path)`. Run by `cluster-walkthrough lab --path DIR/app.sock --exec node
// tests/node/pipe-worker.js`; the lab passes the path in SOCKET_PATH.
//
// Its queryServer has `address` = the path and `port` and `addressType` -1
// (`listenInCluster(this, pipeName, -1, -1, ...)` in lib/net.js). Node's primary serves it:
// round robin listens on the path and hands each accepted connection over as `net.Native`;
// SCHED_NONE binds a `Pipe` and sends it to every worker.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

if (cluster.isPrimary) throw new Error('run me as a worker (under a cluster primary)');

// An abstract name (Linux) cannot travel in an environment variable: `@name` stands for `\0name`.
const path = process.env.SOCKET_PATH.replace(/^@/, '\0');
const options = { path };
if (process.env.SOCKET_READABLE_ALL) options.readableAll = true;
if (process.env.SOCKET_WRITABLE_ALL) options.writableAll = true;
http
  .createServer((req, res) => res.end(`worker ${cluster.worker.id} (pid ${process.pid})\n`))
  .listen(options);
