// Exercise 7.1: a worker that survives a taken port.
//
// Another program holds PORT on 127.0.0.1 (the check holds one; by hand, use
// `python3 -m http.server 47311 --bind 127.0.0.1 &`). Both workers try to listen on it,
// nobody handles the 'error', and each worker crashes.
//
// Handle the server's 'error' in the worker: tell the primary `${err.code} ${err.syscall}`
// with process.send(), and stay up. The primary prints what each worker said, then
// whether it is still alive a moment later. Which syscall does the error name, and
// which process made the call that failed?
//
//   PORT=47311 node exercises/ch07/1_survive.js
//   cargo run -- check 7.1
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
  // TODO: handle 'error': tell the primary `${err.code} ${err.syscall}`, and stay up.
  server.listen(PORT, HOST);
}

/** Say which workers are still alive, then end them all. */
function roll() {
  for (const worker of Object.values(cluster.workers)) {
    console.log(`worker ${worker.id}: ${worker.isDead() ? 'dead' : 'still up'}`);
  }
  cluster.disconnect();
}
