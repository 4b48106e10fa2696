#!/usr/bin/env python3
"""A logging HTTP proxy on loopback in front of the local DynamoDB or Kinesis (standard library
only):
forwards every request unchanged and appends one JSON line per exchange to LOG:
  {"ms": epoch ms at the request, "op": "UpdateItem", "agent": "aws-sdk-java/2.41.21"
   (the first word of the User-Agent), "request": {...}, "status": 200,
   "response": {...}, "elapsed_ms": 3}
(request and response are the decoded JSON bodies, or {"non_json_bytes": N} for others).

  log_proxy.py LISTEN_PORT UPSTREAM_URL LOG

Listens on 127.0.0.1 only. HTTP/1.1 with keep-alive (the AWS SDK reuses connections).
"""
import http.client
import http.server
import json
import sys
import threading
import time
import urllib.parse

LOCK = threading.Lock()


def decode(raw):
    """The JSON body decoded; a body that is not JSON (CBOR from the Java SDK's Kinesis
    client) as its size only."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return {"non_json_bytes": len(raw)}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None
    log = None

    def log_message(self, *args):  # the exchanges go to LOG, nothing to stderr
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _forward(self):
        started = time.time()
        body = self._body()
        if not hasattr(self, "conn"):
            self.conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
        headers["Content-Length"] = str(len(body))
        try:
            self.conn.request(self.command, self.path, body, headers)
            answer = self.conn.getresponse()
            payload = answer.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            del self.conn
            self.send_error(502, f"upstream: {e}")
            return
        self.send_response_only(answer.status, answer.reason)
        for k, v in answer.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        target = self.headers.get("X-Amz-Target", "")
        entry = {
            "ms": int(started * 1000),
            "op": target.split(".", 1)[-1],
            "agent": self.headers.get("User-Agent", "").split(" ")[0],
            "request": decode(body),
            "status": answer.status,
            "response": decode(payload),
            "elapsed_ms": int((time.time() - started) * 1000),
        }
        with LOCK:
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")
            self.log.flush()

    do_POST = _forward
    do_GET = _forward


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    Proxy.upstream = urllib.parse.urlsplit(argv[2])
    Proxy.log = open(argv[3], "a", encoding="utf-8")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(argv[1])), Proxy)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
