#!/usr/bin/env python3
"""A worker that misbehaves on purpose, to test the primary against hostile channel input.

    cluster-walkthrough lab ... --exec-workers 2 --exec python3 tests/fake_worker.py CASE

It speaks just enough of Node's protocol (online, queryServer, NODE_HANDLE_ACK, accepted) to
be a round-robin worker, after first doing CASE: something a broken or hostile peer might send.
The `nack` case misbehaves later: it answers its first `newconn` with NODE_HANDLE_NACK, as a
Node worker does when no fd came with the line, and says so on stderr. So does `hold-conns`:
it ACKs every `newconn` and keeps the connection, but never says whether it accepted it.
"""
import json
import os
import socket
import sys
import time

CASE = sys.argv[1] if len(sys.argv) > 1 else "none"
chan = socket.socket(fileno=int(os.environ["NODE_CHANNEL_FD"]))
seq = 0


def send(msg, fds=()):
    line = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
    if fds:
        socket.send_fds(chan, [line], list(fds))
    else:
        chan.sendall(line)


def cluster(**fields):
    global seq
    msg = {"cmd": "NODE_CLUSTER", **fields, "seq": seq}
    seq += 1
    send(msg)
    return msg["seq"]


def misbehave():
    """Do CASE. Returns False when there is nothing more to do (the primary drops us)."""
    if CASE == "not-json":
        chan.sendall(b"hello, this is not json\n")
    elif CASE == "unknown-act":
        cluster(act="frobnicate")
    elif CASE == "unknown-cmd":
        send({"cmd": "NODE_SOMETHING_ELSE"})
    elif CASE == "stray-ack":
        cluster(ack=99999, accepted=True)
    elif CASE == "handle-without-fd":
        send({"cmd": "NODE_HANDLE", "type": "net.Native", "msg": {"cmd": "NODE_CLUSTER", "act": "x"}})
    elif CASE == "stray-fds":
        # Fds that pile up on a line that never ends: more than a handle line could take.
        r, w = os.pipe()
        for _ in range(6):
            socket.send_fds(chan, [b"{"], [r])
    elif CASE == "fd-on-message":
        # A user message with an fd it should not have; we keep the pipe's other end, to see
        # whether the primary closed its copy (see check_fd_closed).
        global held_pipe
        r, held_pipe = os.pipe()
        send({"hello": "a user message, with an fd it should not have"}, fds=[r])
        os.close(r)
    elif CASE == "ctrunc":
        # Five fds in one sendmsg, one more than a read of the primary has room for.
        r, w = os.pipe()
        sys.stderr.write(f"fake worker: sends five copies of pipe:[{os.fstat(r).st_ino}]\n")
        sys.stderr.flush()
        send({"hello": "five fds on one line"}, fds=[r] * 5)
    elif CASE == "huge-line":
        send({"cmd": "NODE_CLUSTER", "act": "x", "pad": "y" * (3 << 20)})
    elif CASE == "endless-line":
        chan.sendall(b'{"cmd":"' + b"z" * (2 << 20))
    elif CASE == "ack-flood":
        # exitedAfterDisconnect asks for an {ack}; ask 1M times (~66 MB) and never read one.
        lines = [json.dumps({"cmd": "NODE_CLUSTER", "act": "exitedAfterDisconnect", "seq": s},
                            separators=(",", ":")) for s in range(10_000)]
        chunk = ("\n".join(lines) + "\n").encode()
        for _ in range(100):
            chan.sendall(chunk)
    elif CASE == "act-flood":
        # 100,000 acts the primary has no method for (~6 MB), then an honest worker's life.
        global seq
        lines = [json.dumps({"cmd": "NODE_CLUSTER", "act": f"frobnicate-{n}", "seq": seq + n},
                            separators=(",", ":")) for n in range(100_000)]
        seq += 100_000
        chan.sendall(("\n".join(lines) + "\n").encode())
    elif CASE == "hold-conns":
        pass  # misbehaves later: it takes every newconn and never answers one
    elif CASE == "mid-line-close":
        chan.sendall(b'{"cmd":"NODE_CLUS')
        os._exit(0)
    else:
        return True
    return CASE in ("unknown-act", "unknown-cmd", "stray-ack", "handle-without-fd", "act-flood",
                    "fd-on-message", "hold-conns")


held_pipe = None  # the fd-on-message case: the write end of the pipe whose read end we sent


def check_fd_closed():
    """The fd-on-message case, once the primary answered a later line: if it closed the read
    end we sent, nobody reads the pipe any more and a write fails with EPIPE."""
    try:
        os.write(held_pipe, b"x")
        sys.stderr.write("fake worker: the primary still holds the fd it was sent\n")
    except BrokenPipeError:
        sys.stderr.write("fake worker: the primary closed the fd it was sent\n")


# Queries a primary must refuse, by case: beyond loopback, privileged, not an IP at all, a
# socket file where the primary may not make one.
BAD_QUERIES = {
    "any-address": {"address": "0.0.0.0", "index": 7},
    "privileged-port": {"port": 80, "index": 7},
    "path-address": {"address": "/tmp/not-an-ip.sock", "index": 7},
    # A pipe, as Node sends one (port and addressType -1), outside any directory the lab gave.
    "pipe-outside": {"address": "/tmp/cw-outside.sock", "port": -1, "addressType": -1, "index": 7},
}


def serve(fd):
    conn = socket.socket(fileno=fd)
    conn.setblocking(True)
    conn.settimeout(2)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        body = f"worker {os.environ.get('NODE_UNIQUE_ID', '?')} (fake)\n"
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode())
    except OSError:
        pass
    conn.close()


def main():
    deadline = time.monotonic() + 20
    cluster(act="online")
    if not misbehave():
        time.sleep(20)  # the primary should drop (kill) us long before this
        return
    query = dict(act="queryServer", index=0, data=None, address=os.environ.get("HOST", "127.0.0.1"),
                 port=int(os.environ.get("PORT", "0")), addressType=4, flags=0, backlog=0)
    if CASE in BAD_QUERIES:
        # Ask for what the primary must refuse; then ask as an honest worker would.
        cluster(**{**query, **BAD_QUERIES[CASE]})
    if CASE == "query-flood":
        for i in range(200):
            cluster(**{**query, "index": 1000 + i})
    asked = cluster(**query)
    nacked = []  # the nack case: the seq of the newconn it answered NODE_HANDLE_NACK
    held = []  # the hold-conns case: the connections it took and never answered
    buf = b""
    while time.monotonic() < deadline:
        chan.settimeout(1)
        try:
            data, fds, _flags, _addr = socket.recv_fds(chan, 65536, 4)
        except socket.timeout:
            continue
        if not data:
            return  # the primary is gone: exit 0, as a Node worker does
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = json.loads(line)
            if msg.get("cmd") == "NODE_HANDLE" and CASE == "nack" and not nacked:
                # As if the fd had not arrived: NACK, no {accepted}, and our copy closed.
                send({"cmd": "NODE_HANDLE_NACK"})
                os.close(fds.pop(0))
                nacked.append(msg["msg"]["seq"])
                sys.stderr.write(f"fake worker: NACKed newconn seq {nacked[0]}\n")
            elif msg.get("cmd") == "NODE_HANDLE" and CASE == "hold-conns":
                # Take the fd, and never say whether we accepted: we stay busy for ever.
                send({"cmd": "NODE_HANDLE_ACK"})
                held.append(fds.pop(0))
            elif msg.get("cmd") == "NODE_HANDLE":
                if msg["msg"].get("seq") in nacked:
                    sys.stderr.write("fake worker: the NACKed newconn came again\n")
                send({"cmd": "NODE_HANDLE_ACK"})
                inner = msg["msg"]
                cluster(ack=inner["seq"], accepted=True)
                serve(fds.pop(0))
            elif msg.get("ack") == asked and msg.get("errno"):
                return  # refused (the flood case): nothing to serve
            elif msg.get("ack") == asked:
                if held_pipe is not None:
                    check_fd_closed()
                cluster(**{**query, "act": "listening", "port": msg["sockname"]["port"]})
            elif msg.get("act") == "disconnect":
                return


main()
