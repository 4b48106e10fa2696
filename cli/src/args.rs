//! The command line: subcommands, options and their `--help` text (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kpl_codec::HashRange;

const INPUT_FORMATS: &str = "\
INPUT FORMATS (--from):
  raw          The whole input is the data of ONE Kinesis record, byte for byte (default).
  base64       The same, as base64 text (standard alphabet; padding optional). Whitespace
               around it and line breaks inside it (as `base64` wraps) are ignored.
  hex          The same, as hex digits (upper or lower case). Whitespace is ignored.
  lambda       An AWS Lambda KinesisEvent JSON:
                 {\"Records\":[{\"kinesis\":{\"partitionKey\":\"..\",\"data\":\"<base64>\",
                   \"sequenceNumber\":\"..\",...},\"eventID\":\"..\",...}]}
               Every record in it is read, in order.
  get-records  The JSON printed by `aws kinesis get-records`:
                 {\"Records\":[{\"SequenceNumber\":\"..\",\"ApproximateArrivalTimestamp\":..,
                   \"Data\":\"<base64>\",\"PartitionKey\":\"..\"}],\"NextShardIterator\":\"..\"}
               Every record in it is read, in order.
  For raw, base64 and hex input the Kinesis record's own partition key is not part of the
  input: give it with --partition-key (default: the empty string). It is the key reported
  for a plain (not aggregated) record.";

const DECODE_AFTER: &str = "\
OUTPUT (NDJSON, one line per user record, in order):
  {\"PartitionKey\":\"..\",\"ExplicitHashKey\":\"..\"|null,\"Data\":\"<base64>\",
   \"SubSequenceNumber\":0,\"Aggregated\":true,\"SequenceNumber\":\"..\"}
  SequenceNumber is present only when the input record carried one (lambda, get-records).
  Aggregated is false for a plain record passed through as it is.
  Keys that are not valid UTF-8 are printed losslessly: PartitionKey then holds the lossy
  text (each bad sequence replaced by U+FFFD) and an extra field PartitionKeyBase64 holds
  the exact bytes, in base64. PartitionKeyBase64 is present only in that case. The same
  goes for ExplicitHashKey and ExplicitHashKeyBase64.

POLICIES (--policy):
  kcl     Exactly what the Kinesis Client Library does (default): anything that is not a
          valid aggregate (no magic, 16 bytes or fewer after it, MD5 mismatch, protobuf
          that does not parse) is passed through as one plain record; an index outside its
          table keeps the user records already emitted and drops the rest; a hash key
          outside the shard's range drops the whole aggregate. Never an error.
  strict  Anything wrong after the magic is an error naming the defect and its byte offset:
          `kpl` stops there with exit code 1 (the user records of earlier Kinesis records
          are already printed). A record without the magic is a plain record.

EXIT CODES:
  0 success; 1 a defect under --policy strict; 2 bad usage or bad input.";

const ENCODE_AFTER: &str = "\
INPUT (NDJSON, one user record per line, blank lines skipped):
  {\"PartitionKey\":\"..\",\"ExplicitHashKey\":\"..\",\"Data\":\"<base64>\"}
  PartitionKey: 1 to 256 characters (UTF-16 code units). ExplicitHashKey: optional (may be
  null), decimal digits, value at most 2^128-1. Data: base64 (may be empty). Any other
  field is an error, so that a typo is never silently ignored.

OUTPUT (NDJSON, one line per Kinesis record, exactly as Java KPL would put them):
  {\"PartitionKey\":\"..\",\"ExplicitHashKey\":\"..\",\"Data\":\"<base64>\"}
  Two or more user records become one aggregate (magic, protobuf, MD5) under the
  partition key \"a\" and the first user record's hash key; a lone user record is put as it
  is, with its own partition key and its hash key. Records are split where KPL splits
  (AggregationMaxSize, AggregationMaxCount) and never reordered; everything still waiting
  is flushed at the end of the input.

EXIT CODES:
  0 success; 2 bad usage, bad input (the message names the line) or bad limits.";

const INSPECT_AFTER: &str = "\
OUTPUT (for people, not for parsing): for each Kinesis record its length; whether the
magic is there and how the record is framed; for an aggregate the protobuf length, the MD5
stored and computed and whether they match, both key tables (index, byte offset, length,
text, escaped when not UTF-8) and every record (byte offset, size, key indices, data length
and a preview of the first 16 bytes of its data); then the verdict under both policies:
what KCL does with it (aggregated with N user records, passed through and why, records
dropped and why) and whether a strict decoder accepts it (or the defect and its offset).
Byte offsets count from the start of the Kinesis record's data (the magic is at byte 0).

EXIT CODES:
  0 the records were inspected (whatever their verdict); 2 bad usage or bad input.";

/// `kpl`: decode, encode and inspect records in the Kinesis Producer Library (KPL)
/// aggregated record format.
#[derive(Debug, Parser)]
#[command(name = "kpl", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deaggregate Kinesis records into user records, as NDJSON.
    #[command(
        after_help = "Run `kpl decode --help` for the input formats, the output, the policies and the exit codes.",
        after_long_help = format!("{INPUT_FORMATS}\n\n{DECODE_AFTER}")
    )]
    Decode(DecodeArgs),
    /// Aggregate NDJSON user records into Kinesis records, exactly as KPL would put them.
    #[command(
        after_help = "Run `kpl encode --help` for the input and output formats and the exit codes.",
        after_long_help = ENCODE_AFTER
    )]
    Encode(EncodeArgs),
    /// Explain, byte by byte, what is in Kinesis records and how each policy reads them.
    #[command(
        after_help = "Run `kpl inspect --help` for the input formats, what is shown and the exit codes.",
        after_long_help = format!("{INPUT_FORMATS}\n\n{INSPECT_AFTER}")
    )]
    Inspect(InspectArgs),
    /// Check implementations against the golden test vectors and print the matrix.
    #[command(after_long_help = CONFORMANCE_AFTER)]
    Conformance(ConformanceArgs),
    /// Put user records into a Kinesis stream, aggregated per shard like KPL, and summarise.
    #[command(after_long_help = PUT_AFTER)]
    Put(PutArgs),
    /// Print a stream's user records as NDJSON, deaggregated as KCL does, from every shard.
    #[command(after_long_help = TAIL_AFTER)]
    Tail(TailArgs),
    /// Serve the Kinesis API, aggregating PutRecords/PutRecord like KPL into the upstream.
    #[command(after_long_help = SERVE_AFTER)]
    Serve(ServeArgs),
}

const SERVE_AFTER: &str = "\
Point any AWS SDK, the AWS CLI, Vector or Fluent Bit at it as their Kinesis endpoint.
PutRecords and PutRecord (JSON 1.1 and CBOR 1.1) go into one kpl-kinesis sink per stream:
aggregated per shard exactly like KPL, and answered per record, once stored, with the
upstream's ShardId and SequenceNumber (every user record of one aggregate shares its
sequence number), or ProvisionedThroughputExceededException when the buffer stays full for
--admission-wait, or InternalFailure when RecordTtl passed. Every other operation
(DescribeStream, ListShards, GetRecords, ...) is forwarded to the upstream, signed with this
server's credentials (the standard AWS chain).

It does not check callers' signatures: it listens on loopback unless --allow-remote.
GET /metrics gives Prometheus counters. SIGTERM or Ctrl-C: stop accepting, answer the
requests in flight, flush every sink, print a summary, exit 0.";

const TAIL_AFTER: &str = "\
Reads every shard with GetRecords (children after their parents when the stream was
resharded) and prints each user record as a line of NDJSON: the `kpl decode` shape plus
ShardId and SequenceNumber, e.g.
{\"PartitionKey\":\"user-1\",\"ExplicitHashKey\":null,\"Data\":\"aGVsbG8=\",\"SubSequenceNumber\":0,
 \"Aggregated\":true,\"SequenceNumber\":\"4959...\",\"ShardId\":\"shardId-000000000000\"}

Aggregates are read with KCL's policy and each shard's hash-range filter, as a KCL consumer
sees them (--no-range-filter shows what Lambda and most libraries see instead, including
aggregates a reshard made land on the wrong shard). --from trim-horizon (default) starts at
the oldest record kept, latest at what comes next, a sequence number at that record in the
shard holding it (only that shard and its descendants are read).

Without --follow, exits once every shard has been read to its current end; with --follow,
keeps reading new records and new shards until Ctrl-C. Credentials and region come from the
standard AWS chain; --endpoint points at a local server.

Exit codes: 0 done (or stopped with Ctrl-C); 2 bad usage or a Kinesis error.";

const PUT_AFTER: &str = "\
Input: NDJSON user records, one per line, the `kpl encode` shape
({\"PartitionKey\": \"..\", \"ExplicitHashKey\": \"..\", \"Data\": \"<base64>\"}), or with --lines
each line of text as one record's data (without its line break), keyed by
--partition-key-field (a field of the line parsed as JSON) or else by a random key.

Records go through the kpl-kinesis sink: aggregated per predicted shard exactly as Java KPL
aggregates, batched into PutRecords, rate-limited per shard, retried with backoff until
RecordTtl, and re-sent if a reshard makes an aggregate land on a shard that would make KCL
drop it. AWS credentials and region come from the standard chain (environment, profile,
instance role); --endpoint points at a local server (e.g. kinesis-mock,
http://127.0.0.1:4568). --config reads sink options with KPL's names (TOML, or JSON for a
.json file), e.g. `AggregationMaxSize = 102400`, `RecordMaxBufferedTime = 200`.

Prints a summary (user records, Kinesis records and aggregation ratio, PutRecords calls,
retries by error code, failures, throughput); a progress line on standard error when it is a
terminal.

Exit codes: 0 every record stored; 1 some records failed (each listed with its line and
reason); 2 bad usage, bad input or configuration.";

const CONFORMANCE_AFTER: &str = "\
Runs every vector of the golden corpus (vectors/corpus: encode, decode, malformed and hash-key
vectors) against kpl-codec, under both deaggregation policies, and prints a Markdown matrix:
rows are implementations, columns are vector categories, cells are passed/total, followed by
the failing vectors with a one-line reason each.

With --adapter NAME=COMMAND, the implementation behind each adapter is checked too (columns:
encode byte-identical to KPL, encode decodable by KCL, limits, shard safety when encoding for
a stream of 4 shards (rows `NAME (4 shards)`), decode of valid and malformed input and
explicit hash key attribution, against what KCL does), and compared with its expectations
file: a result that differs from it in either direction is reported. Each decode answer is
also compared with the adapter's stored capture (vectors/captured/decoders/NAME.json, when
there is one): any difference is reported, as is a different name or version.

With --capture-decoders DIR, nothing is checked: every decode vector is sent to every adapter
that decodes, and DIR/NAME.json records each answer (records, error text, crash, timeout) with
the adapter's hello and the date; DIR/kpl-codec.json records kpl-codec's kcl and strict
policies (vectors/FORMAT.md). vectors/capture/decoders/capture.sh runs this for every adapter.

Exit codes: 0 every check passed or failed as expected; 1 a built-in check failed or an
adapter's result differs from its expectations; 2 the corpus or an expectations file could
not be read, or an adapter did not answer hello.";

/// Arguments of `kpl conformance`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConformanceArgs {
    /// The corpus directory (default: the vectors/corpus this kpl was built from).
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<std::path::PathBuf>,
    /// Also check an implementation behind an adapter (conformance/PROTOCOL.md), started
    /// as `sh -c COMMAND`. Repeat for several. Its known divergences are read from
    /// `<expectations>/<NAME>.json`.
    #[arg(long = "adapter", value_name = "NAME=COMMAND")]
    pub adapters: Vec<String>,
    /// Seconds to wait for each adapter answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub timeout: u64,
    /// Time decoding instead: kpl-codec and every adapter decode the benchmarks' `small`
    /// corpus (about 2 MB, 100 user records of 100 bytes per aggregate) and the table of
    /// MB/s, user records/s and the ratio to kpl-codec is printed.
    #[arg(long)]
    pub bench: bool,
    /// Times each implementation decodes the corpus with --bench.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub iterations: u64,
    /// Also write `REPORT.md` (the matrix, the implementations' versions, the date) and
    /// `report.json` (every outcome) into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,
    /// Directory of the per-adapter expectations files (default: conformance/expectations
    /// of this source tree).
    #[arg(long, value_name = "DIR")]
    pub expectations: Option<std::path::PathBuf>,
    /// Record every decode answer instead of checking: writes `DIR/NAME.json` per decoding
    /// adapter and DIR/kpl-codec.json for the built-in policies.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["bench", "report"])]
    pub capture_decoders: Option<std::path::PathBuf>,
    /// Directory of the stored decoder captures the live answers are compared with
    /// (default: vectors/captured/decoders of this source tree; not used with --corpus).
    #[arg(long, value_name = "DIR")]
    pub captures: Option<std::path::PathBuf>,
}

/// How the input holds the Kinesis record(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// The whole input is one Kinesis record's data.
    Raw,
    /// One Kinesis record's data as base64 text.
    Base64,
    /// One Kinesis record's data as hex text.
    Hex,
    /// An AWS Lambda KinesisEvent JSON (every record in it).
    Lambda,
    /// The JSON of `aws kinesis get-records` (every record in it).
    GetRecords,
}

/// The deaggregation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Exactly what KCL does: passthrough, keep-then-drop, never an error.
    Kcl,
    /// Any defect after the magic is an error (exit code 1).
    Strict,
}

/// Where the Kinesis records come from (shared by `decode` and `inspect`).
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// Input file; standard input when absent or `-`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Input format (see INPUT FORMATS in --help).
    #[arg(long, value_enum, default_value_t = InputFormat::Raw, value_name = "FORMAT")]
    pub from: InputFormat,

    /// The Kinesis record's own partition key, for raw, base64 and hex input (default:
    /// empty). Reported for a plain record.
    #[arg(long, value_name = "PK")]
    pub partition_key: Option<String>,

    /// The shard's hash range, two decimal hash keys START-END (inclusive, START <= END):
    /// KCL drops a whole aggregate when any of its user records hashes outside it.
    #[arg(
        long,
        value_name = "START-END",
        value_parser = shard_range,
        allow_hyphen_values = true
    )]
    pub shard_range: Option<HashRange>,
}

/// Options of `kpl decode`.
#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// Where the records come from.
    #[command(flatten)]
    pub source: Source,

    /// Deaggregation policy.
    #[arg(long, value_enum, default_value_t = PolicyArg::Kcl)]
    pub policy: PolicyArg,

    /// Do not check the MD5 of aggregates (trusted input only).
    #[arg(long)]
    pub no_verify: bool,
}

/// Options of `kpl encode`.
#[derive(Debug, Clone, Args)]
pub struct EncodeArgs {
    /// Input file of NDJSON user records; standard input when absent or `-`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// KPL's AggregationMaxSize: largest aggregate, 20 + protobuf bytes (64..=10485760;
    /// default 51200).
    #[arg(long, value_name = "BYTES")]
    pub max_size: Option<usize>,

    /// KPL's AggregationMaxCount: most user records per aggregate (1..=4294967295; default
    /// 4294967295).
    #[arg(long, value_name = "N")]
    pub max_count: Option<u64>,

    /// The stream's Kinesis record limit, data plus partition key (64..=10485760; default
    /// 1048576).
    #[arg(long, value_name = "BYTES")]
    pub max_record_size: Option<usize>,
}

/// The stream `kpl put` and `kpl tail` talk to.
#[derive(Debug, Clone, Args)]
pub struct StreamTarget {
    /// The stream's name, or its ARN (`arn:aws:kinesis:...`).
    #[arg(long, value_name = "NAME")]
    pub stream: String,

    /// Kinesis endpoint URL, for a local server (`http://127.0.0.1:4568`).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// AWS region (default: the standard chain, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Errors with their raw code and message too (AWS SDK and connection detail); with
    /// `kpl tail --follow`, a status line on standard error every 10 s.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Options of `kpl put`.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// Input file; standard input when absent or `-`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// The stream and how to reach it.
    #[command(flatten)]
    pub target: StreamTarget,

    /// Sink options with KPL's names, TOML (or JSON for a `.json` file).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Each text line is one record's data (instead of NDJSON user records).
    #[arg(long)]
    pub lines: bool,

    /// With --lines: the partition key is this field of the line read as JSON (default: a
    /// random key per line).
    #[arg(long, value_name = "FIELD", requires = "lines")]
    pub partition_key_field: Option<String>,

    /// No progress line on standard error (it is shown only when that is a terminal).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Options of `kpl serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the line `listening on URL` says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4580")]
    pub listen: String,

    /// Upstream Kinesis endpoint URL (default: AWS in --region).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Upstream AWS region (default: the standard chain, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Sink options with KPL's names, TOML (or JSON for a `.json` file).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Allow listening on an address other than loopback (callers are not authenticated).
    #[arg(long)]
    pub allow_remote: bool,

    /// How long a put waits for buffer room before answering
    /// ProvisionedThroughputExceededException for the records left, in ms.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub admission_wait: u64,

    /// Most connections open at once; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_connections: usize,
}

/// Options of `kpl tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// The stream and how to reach it.
    #[command(flatten)]
    pub target: StreamTarget,

    /// Where to start: trim-horizon, latest, or a sequence number.
    #[arg(long, value_name = "POSITION", default_value = "trim-horizon")]
    pub from: String,

    /// Keep reading new records and new shards until Ctrl-C.
    #[arg(long)]
    pub follow: bool,

    /// Do not apply each shard's hash-range filter (KCL applies it).
    #[arg(long)]
    pub no_range_filter: bool,

    /// Share the stream with other workers through this KCL lease table in DynamoDB
    /// (made if missing): read only the shards whose leases this worker holds,
    /// checkpoint each record printed in its lease. Implies --follow.
    #[arg(long, value_name = "TABLE")]
    pub lease_table: Option<String>,

    /// This worker's name in the lease table (default: host name and process id).
    #[arg(long, value_name = "NAME", requires = "lease_table")]
    pub worker_id: Option<String>,

    /// A DynamoDB endpoint URL for the lease table (a local server).
    #[arg(long, value_name = "URL", requires = "lease_table")]
    pub dynamodb_endpoint: Option<String>,

    /// Milliseconds a lease may go unrenewed before another worker takes it.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 10_000,
        requires = "lease_table"
    )]
    pub failover_ms: u64,
}

/// Options of `kpl inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Where the records come from.
    #[command(flatten)]
    pub source: Source,
}

/// `--shard-range`: a [`HashRange`] as its `FromStr` reads it, spaces around it allowed; a
/// refusal says what is expected.
fn shard_range(text: &str) -> Result<HashRange, String> {
    text.trim().parse().map_err(|e| {
        format!("{e}; expected START-END, two decimal hash keys in [0, 2^128-1] with START <= END")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn shard_ranges() {
        // The syntax is HashRange's (tested in kpl-codec); the CLI adds the spaces it
        // tolerates and the hint.
        assert_eq!(shard_range(" 0-0\n"), Ok(HashRange::new(0, 0)));
        assert_eq!(
            shard_range("2-1"),
            Err(
                "START 2 is greater than END 1; expected START-END, two decimal hash keys \
                 in [0, 2^128-1] with START <= END"
                    .into()
            )
        );
    }
}
