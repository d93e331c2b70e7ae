// Exercise 2.1: `exclusive: true` takes chapter 1's road.
//
// Two cluster workers listen on the same port with `exclusive: true`: each binds a socket
// of its own, as if there were no cluster. Make each worker tell the primary how its
// listen ended, with process.send():
//
//   'listening'                        when its server listens;
//   `${err.code} ${err.syscall}`       when its server fails.
//
// The primary prints one line per worker, `worker <id>: <what it said>`, then stops them.
//
//   PORT=47311 node exercises/ch02/1_exclusive.js
//   cargo run -- check 2.1
'use strict';
const cluster = require('node:cluster');
const net = require('node:net');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 47311);
const WORKERS = 2;

if (cluster.isPrimary) {
  let told = 0;
  for (let i = 0; i < WORKERS; i++) {
    const worker = cluster.fork();
    worker.on('message', (text) => {
      console.log(`worker ${worker.id}: ${text}`);
      // An exclusive server is the worker's own: disconnect() would not close it.
      if (++told === WORKERS) for (const w of Object.values(cluster.workers)) w.kill();
    });
    // Code 1 is a crash (an 'error' nobody handled); null is the kill() above.
    worker.on('exit', (code) => {
      if (code) {
        console.log(`worker ${worker.id} exited with code ${code}`);
        process.exit(1);
      }
    });
  }
} else {
  const server = net.createServer();
  // TODO: tell the primary 'listening' when the server listens, and
  //       `${err.code} ${err.syscall}` when it fails (its 'error' event).
  server.listen({ port: PORT, host: HOST, exclusive: true });
}
