// Exercise 9.1, solved: two processes, one port, no cluster.
//
//   PORT=47311 node exercises/solutions/ch09/1_reuse_port.js   (Node 22.12 or later)
'use strict';
const { fork } = require('node:child_process');
const net = require('node:net');

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT ?? 47311);
const CONNECTIONS = 20;

if (process.argv[2] === 'child') {
  const server = net.createServer((socket) => socket.end(`${process.pid}`));
  server.on('error', (err) => process.send(`${err.code} ${err.syscall}`, () => process.exit(1)));
  // SO_REUSEPORT on this child's own socket, before its bind.
  server.listen({ port: PORT, host: HOST, reusePort: true }, () => {
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
