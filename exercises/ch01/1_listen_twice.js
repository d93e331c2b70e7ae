// Exercise 1.1: listen twice on one port, in one process.
//
// The first server below listens on 127.0.0.1 (on PORT, or a port the kernel picks).
// Start a second server on the same host and port, catch its 'error' event, and print
// the error's `code` and `syscall`, separated by one space. Then close the first server,
// so that the program ends by itself.
//
//   node exercises/ch01/1_listen_twice.js
//   cargo run -- check 1.1
'use strict';
const net = require('node:net');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 0);

const first = net.createServer();
first.listen(PORT, HOST, () => {
  const { port } = first.address();
  console.log(`first server: listening on ${HOST}:${port}`);

  // TODO: a second server on HOST and `port`. On its 'error', print
  //       `${err.code} ${err.syscall}` and close the first server.

  first.close();
});
