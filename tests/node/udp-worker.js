// A UDP worker: cluster always gives UDP sockets the primary's shared socket.
'use strict';
const cluster = require('node:cluster');
const dgram = require('node:dgram');

const socket = dgram.createSocket('udp4');
socket.on('message', (msg, from) => {
  socket.send(`worker ${cluster.worker.id} (pid ${process.pid})\n`, from.port, from.address);
});
socket.bind(Number(process.env.PORT || 0), process.env.HOST || '127.0.0.1');
