#!/usr/bin/env python3
"""A minimal Kinesis endpoint for capture.sh (test tooling, stdlib only).

Serves HTTPS on 127.0.0.1 (an ephemeral port, written to PORT_FILE once listening) with the
given certificate, answers PutRecords as a stream that stores everything and ListShards with
one shard, and appends each PutRecords request body, as received, as one JSON line
({"target": ..., "body": <the body, text>}) to OUT_FILE.

usage: kinesis_mock.py CERT_PEM KEY_PEM PORT_FILE OUT_FILE
"""
import http.server
import json
import ssl
import sys
import threading


def main():
    cert, key, port_file, out_file = sys.argv[1:5]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            target = self.headers.get("X-Amz-Target", "")
            if target.endswith(".PutRecords"):
                request = json.loads(body)
                with lock, open(out_file, "a", encoding="utf-8") as out:
                    out.write(json.dumps({"target": target, "body": body.decode("utf-8")}) + "\n")
                records = [
                    {"SequenceNumber": str(i + 1), "ShardId": "shardId-000000000000"}
                    for i in range(len(request.get("Records", [])))
                ]
                answer = {"FailedRecordCount": 0, "Records": records}
            elif target.endswith(".ListShards"):
                answer = {
                    "Shards": [
                        {
                            "ShardId": "shardId-000000000000",
                            "HashKeyRange": {
                                "StartingHashKey": "0",
                                "EndingHashKey": str(2**128 - 1),
                            },
                            "SequenceNumberRange": {"StartingSequenceNumber": "1"},
                        }
                    ]
                }
            else:
                answer = {}
            payload = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    import os

    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
