// Exercise 9.1: two processes, one port, no cluster.
//
// The parent starts two children with child_process.fork(), one after the other. Each
// child listens on PORT on 127.0.0.1 and answers every connection with its pid. The
// second child fails: chapter 1's EADDRINUSE. Change the children's listen() so that
// both listen, each with a socket of its own, and the kernel spreads the connections
// (SO_REUSEPORT; Node 22.12 and later, so run it with Node 24).
//
//   PORT=47311 node exercises/ch09/1_reuse_port.js
//   cargo run -- check 9.1
'use strict';
const { fork } = require('node:child_process');
const net = require('node:net');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 47311);
const CONNECTIONS = 20;

if (process.argv[2] === 'child') {
  const server = net.createServer((socket) => socket.end(`${process.pid}`));
  server.on('error', (err) => process.send(`${err.code} ${err.syscall}`, () => process.exit(1)));
  // TODO: one more option, so that both children can listen on PORT.
  server.listen({ port: PORT, host: HOST }, () => {
    process.send(`listening on ${server.address().port}`);
  });
  process.on('disconnect', () => process.exit(0)); // the parent is gone: so are we
} else {
  main();
}

async function main() {
  const children = [];
  let listening = 0;
  for (let i = 0; i < 2; i++) {
    const child = fork(__filename, ['child']);
    children.push(child);
    const said = await new Promise((resolve) => child.once('message', resolve));
    console.log(`child ${child.pid}: ${said}`);
    if (said.startsWith('listening')) listening++;
  }
  if (listening === 2) {
    const counts = {};
    for (let n = 0; n < CONNECTIONS; n++) {
      const pid = await ask(PORT);
      counts[pid] = (counts[pid] ?? 0) + 1;
    }
    console.log(`answers: ${Object.entries(counts).map(([pid, n]) => `${pid} x${n}`).join(', ')}`);
  }
  for (const child of children) child.kill();
}

/** Connect, read to the end; resolves to what the server said ('-' on an error). */
function ask(port) {
  return new Promise((resolve) => {
    let text = '';
    net.connect(port, HOST)
      .on('data', (chunk) => { text += chunk; })
      .on('end', () => resolve(text))
      .on('error', () => resolve('-'));
  });
}
