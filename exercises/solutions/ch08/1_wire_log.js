// Exercise 8.1, solved: read the wire log.
//
//   cargo run -q -- lab --workers 3 --connections 5 --json --trace-wire | node exercises/solutions/ch08/1_wire_log.js
'use strict';
const fs = require('node:fs');

// The log: the file named on the command line, or stdin.
const text = fs.readFileSync(process.argv[2] ?? 0, 'utf8');
const events = text.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));

let messages = 0;
const newconnTo = [];
for (const event of events) {
  if (event.event !== 'wire') continue;
  const message = JSON.parse(event.message);
  if ('lab' in message) continue;
  messages++;
  if (message.cmd === 'NODE_HANDLE' && message.msg?.act === 'newconn') {
    newconnTo.push(event.direction.match(/worker (\d+)/)[1]);
  }
}

console.log(`messages: ${messages}`);
console.log(`newconn to: ${newconnTo.join(' ')}`);
