// A plain Node cluster primary with two tests/node/exit-note-worker.js workers: prints `ready`
// once both listen, then waits to be killed (tests/reliability.rs sends it SIGKILL).
'use strict';
const cluster = require('node:cluster');
const path = require('node:path');

cluster.setupPrimary({ exec: path.join(__dirname, 'exit-note-worker.js') });
let listening = 0;
for (let i = 0; i < 2; i++) {
  cluster.fork().on('listening', () => { if (++listening === 2) console.log('ready'); });
}
setTimeout(() => process.exit(2), 30000);
