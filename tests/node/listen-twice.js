// Chapter 1 in real Node: two servers on one port (PORT) in one process, on 127.0.0.1; the
// second listens once the first does. Prints the second's error as the mirror prints one.
// Under strace it shows which system call fails (chapters/ch01_listen_twice.rs runs it so):
//
//   PORT=8000 strace -f -e trace=socket,setsockopt,bind,listen node tests/node/listen-twice.js
'use strict';
const net = require('node:net');

const HOST = '127.0.0.1';
const port = Number(process.env.PORT);

const first = net.createServer();
first.listen(port, HOST, () => {
  const second = net.createServer();
  second.on('error', (err) => {
    console.log(`${err.message} (code ${err.code}, syscall ${err.syscall}, errno ${err.errno})`);
    first.close();
  });
  second.listen(port, HOST);
});
