// A real Node cluster primary that runs OUR Rust program as its workers.
//
//   node tests/node/primary.js <worker-binary> <workers> <connections> [kill-id]
//
// Node's cluster.fork() always runs process.execPath; pointing it at our binary for the
// (synchronous) fork call is all it takes. Prints one JSON line: who answered each request,
// and how each worker exited. NODE_CLUSTER_SCHED_POLICY=none selects SCHED_NONE as usual.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const [binary, workers, connections, killId] = process.argv.slice(2);
const plan = { host: '127.0.0.1', port: 0, servers: 1, exclusive: false, udp: false, handle_errors: false };
const result = { policy: cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none', answered_by: [], exits: {} };

setTimeout(() => { console.error('primary.js: timed out'); process.exit(2); }, 20000).unref();
cluster.setupPrimary({ exec: binary, args: [], execArgv: [] });

function forkOurs() {
  const nodePath = process.execPath;
  process.execPath = binary;
  try {
    return cluster.fork({ CLUSTER_WALKTHROUGH_WORKER: JSON.stringify(plan), CLUSTER_WALKTHROUGH_TRACE: 'off' });
  } finally {
    process.execPath = nodePath;
  }
}

cluster.on('exit', (worker, code, signal) => { result.exits[worker.id] = { code, signal }; });

function get(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(Number((/worker (\d+)/.exec(body) || [])[1]) || null));
    });
    req.on('error', () => resolve(null));
    req.setTimeout(3000, () => { req.destroy(); resolve(null); });
  });
}

async function main() {
  let port;
  for (let i = 0; i < Number(workers); i++) {
    const w = forkOurs();
    const address = await new Promise((resolve) => w.once('listening', resolve));
    port = address.port;
  }
  for (let n = 1; n <= Number(connections); n++) {
    if (killId && n === Math.floor(Number(connections) / 2) + 1) {
      const victim = cluster.workers[killId];
      const gone = new Promise((resolve) => victim.once('exit', resolve));
      victim.process.kill('SIGKILL');
      await gone;
    }
    result.answered_by.push(await get(port));
  }
  cluster.disconnect(() => {
    const done = () => (Object.keys(result.exits).length === Number(workers)
      ? console.log(JSON.stringify(result))
      : setTimeout(done, 5));
    done();
  });
}
main();
