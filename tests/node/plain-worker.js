// An ordinary Node cluster worker whose answer does not say "worker N": with ANSWER=pid it
// answers `{"pid":1234}`, otherwise `Hello, World!`. The lab's client still shows who answered
// (the worker that has that pid; or the answer's first line).
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

if (cluster.isPrimary) throw new Error('run me as a worker (under a cluster primary)');

const answer = process.env.ANSWER === 'pid' ? () => JSON.stringify({ pid: process.pid }) : () => 'Hello, World!\n';
http
  .createServer((req, res) => res.end(answer()))
  .listen(Number(process.env.PORT || 0), process.env.HOST || '127.0.0.1');
