"""aiokpl 0.2.0 (PyPI) at full speed, for benches/e2e/producer-vs-kpl.sh.

    aiokpl_full_speed.py ENDPOINT STREAM FILE

Every line of FILE ("partition key TAB data", from `serve-load gen`) is one user record,
given to ``Producer.put_record`` as fast as it takes it (its own back-pressure:
``max_outstanding_records``, 100,000 by default); then ``flush`` and every outcome awaited.
aiokpl's defaults otherwise (RecordMaxBufferedTime 100 ms, aggregation, rate limit 100 % of a
shard), except RecordTtl 600 s as for the other producers. Prints a one-line summary.
"""
import asyncio
import collections
import sys
import time

from aiokpl.config import Config
from aiokpl.producer import Producer


async def main(endpoint, stream, path):
    config = Config(
        region="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        record_ttl_ms=600_000.0,
    )
    start = time.monotonic()
    outcomes = []
    async with Producer(config) as producer:
        with open(path, "rb") as f:
            for line in f:
                key, data = line.rstrip(b"\n").split(b"\t", 1)
                outcomes.append(await producer.put_record(stream=stream, partition_key=key.decode(), data=data))
        added = time.monotonic() - start
        await producer.flush()
        failures = collections.Counter()
        for outcome in outcomes:
            try:
                result = await outcome.wait()
                if not result.success:
                    failures["failed"] += 1
            except Exception as e:  # noqa: BLE001 (counted and reported)
                failures[type(e).__name__] += 1
    print(f"aiokpl: {len(outcomes)} user records added in {added:.1f} s; "
          f"{len(outcomes) - sum(failures.values())} stored, failures {dict(failures)}; "
          f"all done in {time.monotonic() - start:.1f} s")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
