// A whole Node cluster for `cluster-walkthrough bench` (chapter 11): a primary and W workers,
// each worker an HTTP server giving the same tiny answer as the lab's workers.
//
//   node tests/node/bench-cluster.js WORKERS rr|none [PORT] [SECONDS]
//
// Once every worker listens, the primary prints one line, {"port":P,"pid":PID}. It stops its
// workers and exits on SIGTERM or Ctrl-C, or by itself after SECONDS (default 60); a worker
// whose primary is gone exits too (Node's cluster does that on 'disconnect').
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const [workers, policy, port, seconds] = process.argv.slice(2);
const W = Number(workers || 2);

if (cluster.isPrimary) {
  if (!(W >= 1 && W <= 64) || !['rr', 'none'].includes(policy || 'rr')) {
    console.error('usage: node bench-cluster.js WORKERS rr|none [PORT] [SECONDS]');
    process.exit(2);
  }
  // Before the first fork, as the docs say (NODE_CLUSTER_SCHED_POLICY does the same).
  cluster.schedulingPolicy = policy === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  let listening = 0;
  cluster.on('listening', (worker, address) => {
    listening += 1;
    if (listening === W) console.log(JSON.stringify({ port: address.port, pid: process.pid }));
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`worker ${worker.id} exited (${signal || code}); stopping`);
      stop(1);
    }
  });
  let stopping = false;
  const stop = (code) => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGKILL');
    process.exit(code);
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  setTimeout(() => stop(0), 1000 * Number(seconds || 60));
  for (let i = 0; i < W; i++) cluster.fork();
} else {
  const body = `worker ${cluster.worker.id} (pid ${process.pid})\n`;
  const server = http.createServer((req, res) => {
    res.sendDate = false; // the lab's answer has no Date header either
    res.writeHead(200, {
      'Content-Type': 'text/plain',
      'Content-Length': Buffer.byteLength(body),
      Connection: 'close',
    });
    res.end(body);
  });
  server.listen(Number(port || 0), '127.0.0.1');
}
