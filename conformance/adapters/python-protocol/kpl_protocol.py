"""The kpl adapter protocol (conformance/PROTOCOL.md) for Python adapters: the request
loop and the small helpers every adapter needs. An adapter defines one function per op
and calls serve({"hello": hello, "decode": decode, ...})."""
import base64
import json
import sys


def answer(obj):
    """Writes one answer line and flushes it."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def one_line(e):
    """An exception as a one-line error message (unwrapping single-exception groups,
    as anyio task groups wrap the peer's exception)."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return (type(e).__name__ + ": " + str(e)).replace("\r", " ").replace("\n", " ")


def b64(data):
    """Standard base64 of bytes (a str is taken as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def serve(ops):
    """Answers each request line on stdin with ops[op](request), in order; an exception
    the peer raises is an error answer, never the end of the adapter."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = ops.get(req.get("op"))
            if op is None:
                answer({"ok": False, "error": "unsupported op %r" % (req.get("op"),)})
                continue
            answer(op(req))
        except Exception as e:  # the peer raised: an error is a result
            answer({"ok": False, "error": one_line(e)})
