#!/usr/bin/env python3
"""A Fluentd forward-protocol sink for capture.sh (test tooling, stdlib only): listens on
127.0.0.1 (an ephemeral port, written to PORT_FILE once listening), never acknowledges, and
appends every byte it receives, in arrival order, to OUT_FILE.

usage: forward_receiver.py PORT_FILE OUT_FILE
"""
import os
import socketserver
import sys
import threading


def main():
    port_file, out_file = sys.argv[1:3]
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                with lock, open(out_file, "ab") as out:
                    out.write(data)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
