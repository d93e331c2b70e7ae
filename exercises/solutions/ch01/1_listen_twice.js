// Exercise 1.1, solved: listen twice on one port, in one process.
//
//   node exercises/solutions/ch01/1_listen_twice.js
'use strict';
const net = require('node:net');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 0);

const first = net.createServer();
first.listen(PORT, HOST, () => {
  const { port } = first.address();
  console.log(`first server: listening on ${HOST}:${port}`);

  const second = net.createServer();
  second.on('error', (err) => {
    console.log(`${err.code} ${err.syscall}`);
    first.close();
  });
  second.listen(port, HOST);
});
