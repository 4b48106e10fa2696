"""boto3's own PutRecords, for cli/tests/serve_clients.rs.

Usage: boto3_put.py ENDPOINT STREAM INPUT BATCH
INPUT has one record a line, `PARTITION_KEY<TAB>DATA` (text). The records go out with
Kinesis.Client.put_records in batches of BATCH, in order; records a call answers with an
ErrorCode are put again (with the next batch's call), as a producer using boto3 does, at most
ATTEMPTS times. Before them, one put to STREAM-missing, which does not exist, prints
{"MissingStream": the error code of the typed exception boto3 raised, "Status"}. Prints JSON
lines: one per call {"Call", "Records", "FailedRecordCount"},
one per failed attempt {"Index", "ErrorCode", "ErrorMessage"} and one per stored record
{"Index", "ShardId", "SequenceNumber"}. Credentials and region come from the environment.
"""

import json
import sys
import time

import boto3
import botocore
from botocore.config import Config

ATTEMPTS = 10


def main():
    endpoint, stream, path, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with open(path, encoding="utf-8") as f:
        records = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    client = boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        config=Config(
            retries={"max_attempts": 3, "mode": "standard"},
            read_timeout=120,
            connect_timeout=10,
        ),
    )
    print(json.dumps({"Client": "boto3", "Version": boto3.__version__,
                      "Botocore": botocore.__version__}), flush=True)
    # First a put to a stream that does not exist: boto3 must raise its typed exception.
    try:
        client.put_records(StreamName=stream + "-missing",
                           Records=[{"PartitionKey": "k", "Data": b"never stored"}])
        print(json.dumps({"MissingStream": None}))
    except client.exceptions.ResourceNotFoundException as e:
        print(json.dumps({"MissingStream": e.response["Error"]["Code"],
                          "Status": e.response["ResponseMetadata"]["HTTPStatusCode"]}))
    except botocore.exceptions.ClientError as e:
        print(json.dumps({"MissingStream": "ClientError " + e.response["Error"]["Code"]}))
    attempts = [0] * len(records)
    pending = list(range(len(records)))
    calls = 0
    while pending:
        indexes, pending = pending[:batch], pending[batch:]
        answer = client.put_records(
            StreamName=stream,
            Records=[
                {"PartitionKey": records[i][0], "Data": records[i][1].encode("utf-8")}
                for i in indexes
            ],
        )
        calls += 1
        print(json.dumps({"Call": calls, "Records": len(indexes),
                          "FailedRecordCount": answer.get("FailedRecordCount", 0)}))
        retry = []
        for i, result in zip(indexes, answer["Records"]):
            if "ErrorCode" in result:
                print(json.dumps({"Index": i, "ErrorCode": result["ErrorCode"],
                                  "ErrorMessage": result.get("ErrorMessage")}))
                attempts[i] += 1
                if attempts[i] >= ATTEMPTS:
                    sys.exit(f"record {i} failed {ATTEMPTS} times")
                retry.append(i)
            else:
                print(json.dumps({"Index": i, "ShardId": result.get("ShardId"),
                                  "SequenceNumber": result.get("SequenceNumber")}))
        if retry:
            time.sleep(0.1)
            pending = retry + pending
    sys.stdout.flush()


if __name__ == "__main__":
    main()
