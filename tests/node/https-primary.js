// A plain Node cluster primary for tests/node/https-worker.js: fork the workers one after
// another (each once the previous one listens, as our lab does), make REQUESTS sequential
// HTTPS requests, print one JSON line (who answered each), disconnect.
//
//   TLS_KEY=key.pem TLS_CERT=cert.pem node tests/node/https-primary.js WORKERS REQUESTS
//
// tests/https.rs runs it under strace to read the bytes Node's primary writes to each worker.
'use strict';
const cluster = require('node:cluster');
const path = require('node:path');
const https = require('node:https');

const [workers, requests] = process.argv.slice(2).map(Number);
setTimeout(() => { console.error('https-primary.js: timed out'); process.exit(2); }, 20000).unref();
cluster.setupPrimary({ exec: path.join(__dirname, 'https-worker.js') });

function get(port) {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', agent: false, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body.trim()));
    });
    req.on('error', (e) => resolve(`error: ${e.code}`));
    req.setTimeout(3000, () => req.destroy());
  });
}

async function main() {
  let port;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    ({ port } = await new Promise((resolve) => w.once('listening', resolve)));
  }
  const answers = [];
  for (let n = 0; n < requests; n++) answers.push(await get(port));
  console.log(JSON.stringify({ answers }));
  cluster.disconnect();
}
main();
