// An ordinary Node cluster worker serving HTTPS: one `https.createServer` that says who answered.
//
//   TLS_KEY=key.pem TLS_CERT=cert.pem cluster-walkthrough lab --exec node tests/node/https-worker.js
//
// A TLS server's `queryServer` carries `data`: its session ticket keys
// (`tls.Server.prototype._getServerData`). The primary keeps the first worker's and sends it to
// every worker, which installs it (`_setServerData`) — so a session ticket issued by one worker
// is accepted by all. A primary that answers `data: null` makes this worker throw.
'use strict';
const cluster = require('node:cluster');
const fs = require('node:fs');
const https = require('node:https');

if (cluster.isPrimary) throw new Error('run me as a worker (under a cluster primary)');

const options = { key: fs.readFileSync(process.env.TLS_KEY), cert: fs.readFileSync(process.env.TLS_CERT) };
https
  .createServer(options, (req, res) => res.end(`worker ${cluster.worker.id} (pid ${process.pid})\n`))
  .listen(Number(process.env.PORT || 0), process.env.HOST || '127.0.0.1');
