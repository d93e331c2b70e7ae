// One worker listens with `reusePort: true` on PORT. The primary then says whether it holds a
// listening socket itself: under round robin it does when the worker went through
// queryServer (Node 20, which ignores reusePort), and does not when the worker bound its own
// socket (Node 22.23.5+, where reusePort implies exclusive).
'use strict';
const cluster = require('node:cluster');
const net = require('node:net');

const port = Number(process.env.PORT);
if (cluster.isPrimary) {
  const worker = cluster.fork();
  worker.on('message', () => {
    const held = process._getActiveHandles().some((h) => h instanceof net.Server);
    console.log(`primary holds a listening socket: ${held}`);
    worker.kill();
  });
} else {
  net.createServer().listen({ port, host: '127.0.0.1', reusePort: true }, () => process.send('up'));
}
