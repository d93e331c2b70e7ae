// Exercise 2.2: a worker that cluster.fork() did not start.
//
// This script starts itself again as a child with child_process.fork(), which gives the
// child an IPC channel, as cluster.fork() would. The child prints what it thinks it is,
// and whether its server listens one second after listen().
//
// Change how the parent forks the child (one option of fork()) so that the child believes
// it is cluster worker 1. What happens to its listen(), with no real primary to answer?
//
//   node exercises/ch02/2_fake_worker.js
//   cargo run -- check 2.2
'use strict';
const cluster = require('node:cluster');
const { fork } = require('node:child_process');
const net = require('node:net');

const HOST = '127.0.0.1';

if (process.argv[2] !== 'child') {
  console.log(`parent: isPrimary=${cluster.isPrimary}`);
  // TODO: fork the child so that it believes it is cluster worker 1.
  const child = fork(__filename, ['child']);
  child.on('message', (text) => console.log(`child: ${text}`));
} else {
  process.send(`isPrimary=${cluster.isPrimary} id=${cluster.worker?.id}`);
  const server = net.createServer().listen(0, HOST);
  setTimeout(() => {
    // Once the message is written, end (the server would keep us alive).
    process.send(`listening after 1 s: ${server.listening}`, () => process.exit(0));
  }, 1000);
}
