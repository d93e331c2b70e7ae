// An ordinary Node cluster worker that notes how it ends: its worker's 'disconnect' event and
// its process 'exit' code, one line each, in $NOTES_DIR/worker-<id>. tests/reliability.rs kills
// its primary (ours, and Node's own: tests/node/exit-note-primary.js) with SIGKILL and reads
// the notes: a Node worker whose primary dies sees 'disconnect', then exits 0.
'use strict';
const cluster = require('node:cluster');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

if (cluster.isPrimary) throw new Error('run me as a worker (under a cluster primary)');

const note = (what) => fs.appendFileSync(path.join(process.env.NOTES_DIR, `worker-${cluster.worker.id}`), `${what}\n`);
cluster.worker.on('disconnect', () => note('disconnect'));
process.on('exit', (code) => note(`exit ${code}`));

http
  .createServer((req, res) => res.end(`worker ${cluster.worker.id} (pid ${process.pid})\n`))
  .listen(Number(process.env.PORT || 0), process.env.HOST || '127.0.0.1');
