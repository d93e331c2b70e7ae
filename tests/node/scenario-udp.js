// UDP as one ordinary Node cluster script: the primary forks 2 workers, waits until both are
// bound, sends 2 datagrams itself (one client socket each, bound to 127.0.0.1:0 as the lab's
// client is), then disconnects. Chapter 10 runs it under strace next to its twin,
// `cluster-walkthrough lab --workers 2 --connections 2 --udp`.
//
//   node tests/node/scenario-udp.js
'use strict';
const cluster = require('node:cluster');
const dgram = require('node:dgram');

const HOST = '127.0.0.1';
const WORKERS = 2;
const REQUESTS = 2;

if (cluster.isPrimary) {
  setTimeout(() => { console.error('scenario-udp.js: timed out'); process.exit(2); }, 10000).unref();
  let listening = 0;
  cluster.on('listening', async (worker, address) => {
    if (++listening < WORKERS) return;
    const answers = [];
    for (let n = 0; n < REQUESTS; n++) answers.push(await ask(address.port));
    console.log(`answered by: ${answers.join(' ')}`);
    cluster.disconnect();
  });
  for (let i = 0; i < WORKERS; i++) cluster.fork();
} else {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, from) => socket.send(`${cluster.worker.id}`, from.port, from.address));
  socket.bind(0, HOST);
}

function ask(port) {
  return new Promise((resolve) => {
    const client = dgram.createSocket('udp4');
    client.on('message', (msg) => { client.close(); resolve(String(msg)); });
    client.bind(0, HOST, () => client.send('ping', port, HOST));
  });
}
