// Exercise 2.1, solved: `exclusive: true` takes chapter 1's road.
//
//   PORT=47311 node exercises/solutions/ch02/1_exclusive.js
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
  server.on('listening', () => process.send('listening'));
  server.on('error', (err) => process.send(`${err.code} ${err.syscall}`));
  server.listen({ port: PORT, host: HOST, exclusive: true });
}
