// Exercise 8.1: read the wire log.
//
// `lab --json --trace-wire` prints one JSON object per event. Each message that crosses a
// channel is an event like this (one line in the log):
//
//   {"process":"primary", ..., "event":"wire", "direction":"-> worker 2 [fd 7]",
//    "message":"{\"cmd\":\"NODE_HANDLE\",...,\"msg\":{...\"act\":\"newconn\",...}}"}
//
// `message` is the message itself, as a string of JSON. Read the log and print two lines:
//
//   messages: <how many of Node's messages crossed a channel>
//   newconn to: <the worker each connection was handed to, in order, joined by spaces>
//
// Node's messages are all the wire events except the lab's own, whose message has a
// "lab" key ({"lab":"ready",...}). A connection is handed over in a NODE_HANDLE message
// whose inner `msg` has "act":"newconn"; `direction` says to which worker.
//
//   cargo run -q -- lab --workers 3 --connections 5 --json --trace-wire | node exercises/ch08/1_wire_log.js
//   cargo run -- check 8.1
'use strict';
const fs = require('node:fs');

// The log: the file named on the command line, or stdin.
const text = fs.readFileSync(process.argv[2] ?? 0, 'utf8');
const events = text.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));

// TODO: count Node's messages among `events`, and find where each newconn went.
let messages = 0;
const newconnTo = [];

console.log(`messages: ${messages}`);
console.log(`newconn to: ${newconnTo.join(' ')}`);
