// Exercise 3.1: which sockets does a worker hold?
//
// Write sockets(): the numbers of this process's file descriptors that are sockets,
// smallest first. Each entry of the directory /proc/self/fd is an fd number, and
// fs.readlinkSync() of it says what the fd is: `socket:[123456]`, `pipe:[...]`,
// `/dev/null`, `anon_inode:[eventpoll]`...
//
// The worker prints its sockets before and after its server listens. Predict both lines
// under round robin, then under SCHED_NONE:
//
//   node exercises/ch03/1_worker_fds.js
//   NODE_CLUSTER_SCHED_POLICY=none node exercises/ch03/1_worker_fds.js
//   cargo run -- check 3.1
'use strict';
const cluster = require('node:cluster');
const fs = require('node:fs');
const net = require('node:net');

const HOST = '127.0.0.1';

function sockets() {
  // TODO: the fds in /proc/self/fd whose link starts with 'socket:', as numbers,
  //       smallest first. (One entry, the directory being read, is gone before you
  //       readlink it: skip entries whose readlink throws.)
  return [];
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
