// A worker that crashes on its first request, before answering: the connection it was
// handed is lost, and the primary sees the worker go (exit code 3).
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

http
  .createServer(() => process.exit(3))
  .listen(Number(process.env.PORT || 0), process.env.HOST || '127.0.0.1');
