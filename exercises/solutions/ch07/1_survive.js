// Exercise 7.1, solved: a worker that survives a taken port.
//
//   PORT=47311 node exercises/solutions/ch07/1_survive.js
'use strict';
const cluster = require('node:cluster');
const net = require('node:net');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 47311);
const WORKERS = 2;

if (cluster.isPrimary) {
  const quiet = () => {
    console.log(`nobody said anything within 5 s: is port ${PORT} really taken?`);
    process.exit(1);
  };
  setTimeout(quiet, 5000).unref();
  let told = 0;
  for (let i = 0; i < WORKERS; i++) {
    const worker = cluster.fork();
    worker.on('message', (text) => {
      console.log(`worker ${worker.id}: ${text}`);
      if (++told === WORKERS) setTimeout(roll, 200);
    });
    worker.on('exit', (code) => {
      if (code) console.log(`worker ${worker.id} exited with code ${code}`);
    });
  }
} else {
  const server = net.createServer();
  // With a listener for 'error', the error is no longer thrown, and the channel to the
  // primary keeps the worker alive.
  server.on('error', (err) => process.send(`${err.code} ${err.syscall}`));
  server.listen(PORT, HOST);
}

/** Say which workers are still alive, then end them all. */
function roll() {
  for (const worker of Object.values(cluster.workers)) {
    console.log(`worker ${worker.id}: ${worker.isDead() ? 'dead' : 'still up'}`);
  }
  cluster.disconnect();
}
