// A plain Node cluster primary for tests/node/pipe-worker.js: fork the workers one after
// another (each once the previous one listens, as our lab does), note the socket file's mode,
// make REQUESTS sequential HTTP requests over the unix socket, disconnect. Prints one JSON
// line: who answered each request, the file's mode while listening (octal; null for an
// abstract name), and whether the file is still there once every worker has gone.
//
//   SOCKET_PATH=/dir/app.sock node tests/node/pipe-primary.js WORKERS REQUESTS
//
// tests/pipe.rs runs it next to our lab (and under strace, to read the bytes it writes).
'use strict';
const cluster = require('node:cluster');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const [workers, requests] = process.argv.slice(2).map(Number);
const socketPath = process.env.SOCKET_PATH.replace(/^@/, '\0');
setTimeout(() => { console.error('pipe-primary.js: timed out'); process.exit(2); }, 20000).unref();
cluster.setupPrimary({ exec: path.join(__dirname, 'pipe-worker.js') });

function get() {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body.trim()));
    });
    req.on('error', (e) => resolve(`error: ${e.code}`));
    req.setTimeout(3000, () => req.destroy());
  });
}

async function main() {
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    await new Promise((resolve) => w.once('listening', resolve));
  }
  const abstract = socketPath[0] === '\0';
  const mode = abstract ? null : (fs.statSync(socketPath).mode & 0o777).toString(8);
  const answers = [];
  for (let n = 0; n < requests; n++) answers.push(await get());
  cluster.disconnect(() => {
    const left = abstract ? null : fs.existsSync(socketPath);
    console.log(JSON.stringify({ answers, mode, left }));
  });
}
main();
