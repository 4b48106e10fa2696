#!/usr/bin/env python3
"""A counting HTTP proxy for kinesis-mock (stdlib only, loopback only).

    python3 benches/e2e/counting_proxy.py LISTEN_PORT UPSTREAM_PORT

Listens on 127.0.0.1:LISTEN_PORT, forwards every request to 127.0.0.1:UPSTREAM_PORT
(kinesis-mock's plain port) and returns its answer unchanged. For each PutRecords call
(JSON 1.1, the protocol of aws-sdk-kinesis and of Fluent Bit's kinesis_streams) it counts,
per stream: the calls, the records sent, the records the answer says were stored, and for
those the bytes of data and partition key and the PUT payload units (one per started
25 KB = 25,600 bytes of each record, counted with and without its partition key).
GET /__stats answers the counts as JSON; everything else goes upstream.
"""

import base64
import http.client
import http.server
import json
import math
import sys
import threading

UNIT = 25 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "content-length"}

lock = threading.Lock()
stats = {}
upstream_port = 0
local = threading.local()


def count(request, answer):
    name = request.get("StreamName") or request.get("StreamARN") or "?"
    sent = request.get("Records") or []  # an answer other than 200 stores nothing
    results = answer.get("Records") or []
    with lock:
        s = stats.setdefault(name, {
            "put_records_calls": 0, "records_sent": 0, "records_stored": 0,
            "data_bytes": 0, "key_bytes": 0, "units_with_key": 0, "units_data_only": 0,
        })
        s["put_records_calls"] += 1
        s["records_sent"] += len(sent)
        for record, result in zip(sent, results):
            if result.get("ErrorCode") or not result.get("SequenceNumber"):
                continue
            data = len(base64.b64decode(record.get("Data", "")))
            key = len(record.get("PartitionKey", "").encode("utf-8"))
            s["records_stored"] += 1
            s["data_bytes"] += data
            s["key_bytes"] += key
            s["units_with_key"] += max(1, math.ceil((data + key) / UNIT))
            s["units_data_only"] += max(1, math.ceil(data / UNIT))


def upstream():
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=600)
        local.conn = conn
    return conn


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/__stats":
            with lock:
                body = json.dumps(stats, sort_keys=True).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.forward()

    def do_POST(self):
        self.forward()

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        for attempt in range(2):
            conn = upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
                break
            except (http.client.HTTPException, OSError):
                # A kept-alive upstream connection that kinesis-mock closed: one new try.
                conn.close()
                local.conn = None
                if attempt == 1:
                    raise
        target = self.headers.get("X-Amz-Target", "")
        if target.endswith(".PutRecords"):
            try:
                count(json.loads(body), json.loads(payload) if answer.status == 200 else {})
            except ValueError:
                count({}, {})
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main():
    global upstream_port
    listen, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", listen), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
