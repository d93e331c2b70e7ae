// A cluster script whose one worker listens twice on the same fixed port (PORT), on
// 127.0.0.1. Prints what the second listen gave, then the worker's exit: the question of the
// source article asked one level down, whose answer changed in Node 22.
'use strict';
const cluster = require('node:cluster');
const net = require('node:net');

const port = Number(process.env.PORT);
if (cluster.isPrimary) {
  const worker = cluster.fork();
  worker.on('message', (m) => console.log(`second listen: ${m}`));
  worker.on('exit', (code) => console.log(`worker exit code ${code}`));
} else {
  net.createServer().listen(port, '127.0.0.1', () => {
    const second = net.createServer();
    second.on('error', (e) => {
      process.send(`${e.code} ${e.syscall}`, () => process.exit(0));
    });
    second.listen(port, '127.0.0.1', () => process.send('listening', () => process.exit(0)));
  });
}
