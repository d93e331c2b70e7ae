// Exercise 2.2, solved: a worker that cluster.fork() did not start.
//
//   node exercises/solutions/ch02/2_fake_worker.js
'use strict';
const cluster = require('node:cluster');
const { fork } = require('node:child_process');
const net = require('node:net');

const HOST = '127.0.0.1';

if (process.argv[2] !== 'child') {
  console.log(`parent: isPrimary=${cluster.isPrimary}`);
  // cluster.isPrimary is only `!('NODE_UNIQUE_ID' in process.env)`.
  const env = { ...process.env, NODE_UNIQUE_ID: '1' };
  const child = fork(__filename, ['child'], { env });
  child.on('message', (text) => console.log(`child: ${text}`));
} else {
  process.send(`isPrimary=${cluster.isPrimary} id=${cluster.worker?.id}`);
  const server = net.createServer().listen(0, HOST);
  setTimeout(() => {
    // Once the message is written, end (the server would keep us alive).
    process.send(`listening after 1 s: ${server.listening}`, () => process.exit(0));
  }, 1000);
}
