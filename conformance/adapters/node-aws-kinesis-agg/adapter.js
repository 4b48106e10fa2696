// kpl conformance adapter (protocol v1) for the npm package aws-kinesis-agg.
// decode: agg.deaggregate(lambdaStyleRecord, computeChecksums, perRecordCallback, afterRecordCallback)
// encode: agg.aggregate(records, encodedRecordHandler, afterPutAggregatedRecords, errorCallback)
// Requests are served strictly one at a time, in order; each answer is one flushed line.
'use strict';
const fs = require('fs');
const readline = require('readline');
const agg = require('aws-kinesis-agg');
const aggPkg = require('aws-kinesis-agg/package.json');

const SEQ = '49590338271490256608559692538361571095921575989136588898';

function oneLine(e) {
  const s = (e && e.message !== undefined) ? String(e.message) : String(e);
  return ((e && e.name) ? e.name + ': ' : '') + s.replace(/[\r\n]+/g, ' ');
}

function write(obj) {
  return new Promise((resolve) => {
    if (process.stdout.write(JSON.stringify(obj) + '\n')) resolve();
    else process.stdout.once('drain', resolve);
  });
}

function b64(x) {
  if (x === undefined || x === null) return null;
  if (typeof x === 'string') return x; // the peer already hands base64 strings
  return Buffer.from(x).toString('base64');
}

function str(x) { return (x === undefined || x === null) ? null : String(x); }

function lambdaRecord(dataB64, partitionKey) {
  // The shape of event.Records[i].kinesis in a Lambda Kinesis event (the package's v2 format).
  return { kinesisSchemaVersion: '1.0', partitionKey, sequenceNumber: SEQ, data: dataB64,
           approximateArrivalTimestamp: 1545084650.987 };
}

function requestKey(req) {
  if (typeof req.partition_key === 'string') return req.partition_key;
  if (typeof req.partition_key_b64 === 'string') return Buffer.from(req.partition_key_b64, 'base64').toString('utf8');
  return undefined;
}

// deaggregate is synchronous but reports through callbacks, possibly several error calls.
function deaggregateOne(dataB64, pk, verify) {
  const records = [];
  const errors = [];
  agg.deaggregate(lambdaRecord(dataB64, pk), verify,
    (err, u) => { if (err) errors.push(err); else records.push(u); },
    (err) => { if (err) errors.push(err); });
  return { records, errors };
}

function decode(req) {
  const verify = req.verify_md5 === undefined ? true : req.verify_md5 === true;
  const { records, errors } = deaggregateOne(req.data, requestKey(req), verify);
  const out = records.map((u, i) => ({
    partition_key: str(u.partitionKey),
    explicit_hash_key: str(u.explicitPartitionKey),
    data: b64(u.data),
    // a passed-through record carries no subSequenceNumber: that is how the package marks it
    sub_sequence_number: u.subSequenceNumber === undefined ? i : u.subSequenceNumber,
    aggregated: u.subSequenceNumber !== undefined,
  }));
  if (errors.length) {
    return { ok: false, error: errors.map(oneLine).join('; '), records_before_error: out };
  }
  return { ok: true, records: out };
}

function encode(req) {
  return new Promise((resolve) => {
    const input = (req.records || []).map((r) => {
      const rec = { partitionKey: requestKey(r), data: Buffer.from(r.data || '', 'base64') };
      if (r.explicit_hash_key !== undefined && r.explicit_hash_key !== null) rec.explicitHashKey = r.explicit_hash_key;
      return rec;
    });
    const outs = [];
    const errors = [];
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      const krs = outs.map((e) => ({
        partition_key: str(e.partitionKey),
        explicit_hash_key: str(e.ExplicitHashKey !== undefined ? e.ExplicitHashKey : e.explicitHashKey),
        data: b64(e.data),
      }));
      if (errors.length) resolve({ ok: false, error: errors.map(oneLine).join('; '), kinesis_records_before_error: krs });
      else resolve({ ok: true, kinesis_records: krs });
    };
    try {
      agg.aggregate(input,
        (encoded, cb) => { outs.push(encoded); cb(); },
        finish,
        (err) => { errors.push(err); });
    } catch (e) {
      errors.push(e);
      finish();
    }
  });
}

function bench(req) {
  const lines = fs.readFileSync(req.file, 'utf8').split('\n').filter((l) => l.trim());
  const inputs = lines.map((l) => { const r = JSON.parse(l); return lambdaRecord(r.data, r.partition_key || 'a'); });
  const iterations = req.iterations || 1;
  let n = 0;
  let errors = 0;
  const onRecord = (err) => { if (err) errors++; else n++; };
  const after = (err) => { if (err) errors++; };
  const t0 = process.hrtime.bigint();
  for (let it = 0; it < iterations; it++) {
    for (const kr of inputs) agg.deaggregate(kr, true, onRecord, after);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ok: true, seconds, user_records: n, errors };
}

function hello() {
  const deps = {};
  for (const d of ['protobufjs', 'async']) {
    try { deps[d] = require(d + '/package.json').version; } catch (e) { /* not resolvable */ }
  }
  return { ok: true, name: 'aws-kinesis-agg', version: aggPkg.version, language: 'javascript',
           encode: true, decode: true, policies: ['native'], bench: true, shard_range: false,
           limits: false, verify_md5_optional: true, runtime: 'node ' + process.version, deps };
}

async function handle(line) {
  let req;
  try { req = JSON.parse(line); } catch (e) { return { ok: false, error: oneLine(e) }; }
  try {
    switch (req && req.op) {
      case 'hello': return hello();
      case 'decode': return decode(req);
      case 'encode': return await encode(req);
      case 'bench': return bench(req);
      default: return { ok: false, error: 'unsupported op ' + JSON.stringify(req && req.op) };
    }
  } catch (e) {
    return { ok: false, error: oneLine(e) };
  }
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) { // one request at a time, in order
    if (!line.trim()) continue;
    await write(await handle(line));
  }
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
