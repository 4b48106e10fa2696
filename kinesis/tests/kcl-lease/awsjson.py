#!/usr/bin/env python3
"""A tiny AWS JSON-protocol client (standard library only) for the local Kinesis and DynamoDB
of the lease tests: signs each request with SigV4 and fake credentials (kinesis-mock wants a
well-formed signature; dynalite ignores it), prints the answer's JSON on standard output.

  awsjson.py ENDPOINT kinesis|dynamodb OPERATION [BODY-JSON|-]
  awsjson.py ENDPOINT kinesis put-records STREAM COUNT [PREFIX]
      COUNT records with partition keys PREFIX-0, PREFIX-1, ... and data "PREFIX-i",
      500 a request; prints {"put": COUNT, "failed": N, "shards": {shard: n}}
  awsjson.py ENDPOINT kinesis put-aggregated STREAM COUNT PER [PREFIX]
      COUNT user records in KPL aggregates of PER (the aggregated record format:
      shared/docs/format.md); aggregate j holds user records PREFIX-i (data) that all have
      the partition key PREFIX-gj, which is also the Kinesis record's partition key, so
      every user record belongs to the shard the aggregate lands on
  awsjson.py ENDPOINT dynamodb scan-all TABLE
      every item of TABLE (a Scan followed through LastEvaluatedKey), as {"Items": [...]}
      sorted by leaseKey, then by the whole item

Exit status 1 with the answer on standard error when the server refuses the call.
"""
import base64
import datetime
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

ACCESS_KEY = "AKIDTEST"
SECRET_KEY = "secret"
REGION = "us-east-1"
TARGETS = {
    "kinesis": ("Kinesis_20131202", "application/x-amz-json-1.1"),
    "dynamodb": ("DynamoDB_20120810", "application/x-amz-json-1.0"),
}


def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def call(endpoint, service, operation, body):
    """One call; returns the decoded answer or raises RuntimeError with the server's text."""
    prefix, content_type = TARGETS[service]
    payload = json.dumps(body).encode()
    url = urllib.parse.urlsplit(endpoint)
    host = url.netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    target = f"{prefix}.{operation}"
    headers = {
        "content-type": content_type,
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-target": target,
    }
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    scope = f"{day}/{REGION}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    k = _sign(("AWS4" + SECRET_KEY).encode(), day)
    for part in (REGION, service, "aws4_request"):
        k = _sign(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    request = urllib.request.Request(endpoint.rstrip("/") + "/", payload, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            text = answer.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{operation}: HTTP {e.code}: {e.read().decode(errors='replace')}")
    return json.loads(text) if text else {}


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def aggregate(partition_key, datas):
    """A KPL aggregate: magic, AggregatedRecord (one partition key, no explicit hash keys,
    one Record per data), MD5 of the protobuf."""
    body = field(1, partition_key.encode())
    for data in datas:
        body += field(3, b"\x08\x00" + field(3, data))
    return b"\xf3\x89\x9a\xc2" + body + hashlib.md5(body).digest()


def put_records(endpoint, stream, count, prefix, per=None):
    """PutRecords of COUNT user records, raw, or aggregated PER to a Kinesis record."""
    if per:
        kinesis_records = []
        for j, first in enumerate(range(0, count, per)):
            datas = [f"{prefix}-{i}".encode() for i in range(first, min(first + per, count))]
            kinesis_records.append((f"{prefix}-g{j}", aggregate(f"{prefix}-g{j}", datas)))
    else:
        kinesis_records = [(f"{prefix}-{i}", f"{prefix}-{i}".encode()) for i in range(count)]
    put = failed = 0
    shards = {}
    first_error = None
    while put < len(kinesis_records):
        batch = kinesis_records[put : put + 500]
        n = len(batch)
        records = [{"PartitionKey": pk, "Data": base64.b64encode(data).decode()} for pk, data in batch]
        answer = call(endpoint, "kinesis", "PutRecords", {"StreamName": stream, "Records": records})
        for r in answer["Records"]:
            if r.get("ErrorCode"):  # kinesis-mock answers null for a stored record
                failed += 1
                first_error = first_error or f"{r['ErrorCode']}: {r.get('ErrorMessage')}"
            else:
                shards[r["ShardId"]] = shards.get(r["ShardId"], 0) + 1
        put += n
    answer = {"put": put, "failed": failed, "shards": dict(sorted(shards.items()))}
    if per:
        answer["user_records"] = count
    if first_error:
        answer["first_error"] = first_error
    return answer


def scan_all(endpoint, table):
    items = []
    body = {"TableName": table, "ConsistentRead": True}
    while True:
        answer = call(endpoint, "dynamodb", "Scan", body)
        items.extend(answer.get("Items", []))
        if "LastEvaluatedKey" not in answer:
            break
        body["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    items.sort(key=lambda i: (json.dumps(i.get("leaseKey")), json.dumps(i, sort_keys=True)))
    return {"Items": items}


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    endpoint, service, operation = argv[1:4]
    if service not in TARGETS:
        sys.stderr.write(__doc__)
        return 2
    try:
        if service == "kinesis" and operation == "put-records":
            prefix = argv[6] if len(argv) > 6 else "r"
            answer = put_records(endpoint, argv[4], int(argv[5]), prefix)
        elif service == "kinesis" and operation == "put-aggregated":
            prefix = argv[7] if len(argv) > 7 else "g"
            answer = put_records(endpoint, argv[4], int(argv[5]), prefix, int(argv[6]))
        elif service == "dynamodb" and operation == "scan-all":
            answer = scan_all(endpoint, argv[4])
        else:
            raw = argv[4] if len(argv) > 4 else "{}"
            body = json.load(sys.stdin) if raw == "-" else json.loads(raw)
            answer = call(endpoint, service, operation, body)
    except RuntimeError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    json.dump(answer, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
