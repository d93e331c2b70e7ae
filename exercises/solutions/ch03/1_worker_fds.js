// Exercise 3.1, solved: which sockets does a worker hold?
//
//   node exercises/solutions/ch03/1_worker_fds.js
//   NODE_CLUSTER_SCHED_POLICY=none node exercises/solutions/ch03/1_worker_fds.js
'use strict';
const cluster = require('node:cluster');
const fs = require('node:fs');
const net = require('node:net');

const HOST = '127.0.0.1';

function sockets() {
  const fds = [];
  for (const name of fs.readdirSync('/proc/self/fd')) {
    let link;
    try {
      link = fs.readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // the fd readdirSync used for the directory, closed already
    }
    if (link.startsWith('socket:')) fds.push(Number(name));
  }
  return fds.sort((a, b) => a - b);
}

if (cluster.isPrimary) {
  cluster.fork().on('exit', (code) => process.exit(code));
} else {
  console.log(`before listen: ${sockets().join(' ')}`);
  net.createServer().listen(0, HOST, () => {
    console.log(`after listen: ${sockets().join(' ')}`);
    process.exit(0);
  });
}
