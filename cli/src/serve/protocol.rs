//! The Kinesis wire protocols `kpl serve` speaks, as pure functions: requests of the
//! operations it answers itself (`PutRecords`, `PutRecord`) decoded from JSON 1.1 or CBOR
//! 1.1 and checked as Kinesis checks them, and answers and errors encoded in the
//! protocol the client used, with Kinesis's shapes (`__type`, `message`) and statuses.

use base64::Engine as _;
use ciborium::value::Value as Cbor;
use serde_json::{json, Value as Json};

/// Most records in one PutRecords call.
pub const MAX_RECORDS: usize = 500;
/// Most bytes (data plus partition keys) in one PutRecords call.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// Longest partition key, in characters.
pub const MAX_PARTITION_KEY: usize = 256;

/// The protocol of a request, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `application/x-amz-json-1.1` (boto3, the AWS CLI, Go, Rust, Vector, Fluent Bit).
    Json,
    /// `application/x-amz-cbor-1.1` (the Java SDKs and KCL by default).
    Cbor,
}

impl Protocol {
    /// The protocol of a `Content-Type` value; JSON when absent or unknown (what Kinesis
    /// assumes for `application/json` and friends).
    pub fn of(content_type: Option<&str>) -> Protocol {
        match content_type {
            Some(t)
                if t.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/x-amz-cbor") =>
            {
                Protocol::Cbor
            }
            _ => Protocol::Json,
        }
    }

    /// The `Content-Type` of answers.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.1",
            Protocol::Cbor => "application/x-amz-cbor-1.1",
        }
    }
}

/// An error answer: HTTP status, Kinesis error code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `__type`: `ValidationException`, `SerializationException`, ...
    pub code: &'static str,
    /// `message`.
    pub message: String,
}

impl ApiError {
    /// A 400 `ValidationException`.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "ValidationException",
            message: message.into(),
        }
    }

    /// A 400 `SerializationException` (the body does not parse).
    pub fn serialization(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "SerializationException",
            message: message.into(),
        }
    }

    /// A 400 `InvalidArgumentException`.
    pub fn invalid_argument(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "InvalidArgumentException",
            message: message.into(),
        }
    }
}

/// The stream a request names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamRef {
    /// `StreamName`.
    Name(String),
    /// `StreamARN`.
    Arn(String),
}

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    /// The payload.
    pub data: Vec<u8>,
    /// Its partition key.
    pub partition_key: String,
    /// Its explicit hash key.
    pub explicit_hash_key: Option<String>,
}

/// A decoded `PutRecords` or `PutRecord`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRequest {
    /// The stream.
    pub stream: StreamRef,
    /// The records, in order (one for `PutRecord`).
    pub records: Vec<PutEntry>,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryAnswer {
    /// Stored.
    Stored {
        /// The shard.
        shard_id: String,
        /// The Kinesis record's sequence number.
        sequence_number: String,
    },
    /// Not stored.
    Failed {
        /// `ProvisionedThroughputExceededException` or `InternalFailure`, as Kinesis.
        code: String,
        /// Why.
        message: String,
    },
}

/// A request body as a tree, whatever its protocol.
enum Tree {
    Json(Json),
    Cbor(Cbor),
}

fn parse(protocol: Protocol, body: &[u8]) -> Result<Tree, ApiError> {
    match protocol {
        Protocol::Json => serde_json::from_slice(body)
            .map(Tree::Json)
            .map_err(|e| ApiError::serialization(format!("malformed JSON: {e}"))),
        Protocol::Cbor => ciborium::de::from_reader_with_recursion_limit(body, 64)
            .map(Tree::Cbor)
            .map_err(|e| ApiError::serialization(format!("malformed CBOR: {e}"))),
    }
}

/// A field of an object, as the Kinesis types it can be.
enum Field<'a> {
    Absent,
    Text(&'a str),
    Bytes(&'a [u8]),
    List(Vec<Node<'a>>),
    Other,
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Json(&'a Json),
    Cbor(&'a Cbor),
}

impl<'a> Node<'a> {
    fn is_object(self) -> bool {
        match self {
            Node::Json(j) => j.is_object(),
            Node::Cbor(c) => c.is_map(),
        }
    }

    fn field(self, name: &str) -> Field<'a> {
        match self {
            Node::Json(j) => match j.get(name) {
                None | Some(Json::Null) => Field::Absent,
                Some(Json::String(s)) => Field::Text(s),
                Some(Json::Array(a)) => Field::List(a.iter().map(Node::Json).collect()),
                Some(_) => Field::Other,
            },
            Node::Cbor(c) => {
                let Some(map) = c.as_map() else {
                    return Field::Absent;
                };
                let value = map
                    .iter()
                    .find(|(k, _)| k.as_text() == Some(name))
                    .map(|(_, v)| v);
                match value {
                    None | Some(Cbor::Null) => Field::Absent,
                    Some(Cbor::Text(s)) => Field::Text(s),
                    Some(Cbor::Bytes(b)) => Field::Bytes(b),
                    Some(Cbor::Array(a)) => Field::List(a.iter().map(Node::Cbor).collect()),
                    Some(_) => Field::Other,
                }
            }
        }
    }
}

fn root(tree: &Tree) -> Node<'_> {
    match tree {
        Tree::Json(j) => Node::Json(j),
        Tree::Cbor(c) => Node::Cbor(c),
    }
}

fn text<'a>(node: Node<'a>, name: &str, at: &str) -> Result<Option<&'a str>, ApiError> {
    match node.field(name) {
        Field::Absent => Ok(None),
        Field::Text(s) => Ok(Some(s)),
        _ => Err(ApiError::serialization(format!(
            "{at}{name} must be a string"
        ))),
    }
}

fn stream_of(node: Node<'_>) -> Result<StreamRef, ApiError> {
    let name = text(node, "StreamName", "")?;
    let arn = text(node, "StreamARN", "")?;
    match (name, arn) {
        (Some(n), _) if !n.is_empty() => {
            if n.len() > 128 {
                return Err(ApiError::validation(
                    "1 validation error detected: Value at 'streamName' failed to satisfy constraint: Member must have length less than or equal to 128",
                ));
            }
            Ok(StreamRef::Name(n.to_owned()))
        }
        (_, Some(a)) if !a.is_empty() => Ok(StreamRef::Arn(a.to_owned())),
        _ => Err(ApiError::validation(
            "Either StreamName or StreamARN must be provided",
        )),
    }
}

fn entry(node: Node<'_>, at: &str) -> Result<PutEntry, ApiError> {
    if !node.is_object() {
        return Err(ApiError::serialization(format!("{at} must be an object")));
    }
    let data = match node.field("Data") {
        Field::Bytes(b) => b.to_vec(),
        Field::Text(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| ApiError::serialization(format!("{at}.Data is not valid base64: {e}")))?,
        Field::Absent => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value null at '{at}.data' failed to satisfy constraint: Member must not be null"
            )))
        }
        _ => return Err(ApiError::serialization(format!("{at}.Data must be a blob"))),
    };
    let Some(partition_key) = text(node, "PartitionKey", &format!("{at}."))? else {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value null at '{at}.partitionKey' failed to satisfy constraint: Member must not be null"
        )));
    };
    let chars = partition_key.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at '{at}.partitionKey' failed to satisfy constraint: Member must have length between 1 and 256 (it has {chars})"
        )));
    }
    let explicit_hash_key = text(node, "ExplicitHashKey", &format!("{at}."))?;
    if let Some(ehk) = explicit_hash_key {
        if kpl_codec::parse_explicit_hash_key(ehk).is_err() {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{ehk}' at '{at}.explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}})"
            )));
        }
    }
    Ok(PutEntry {
        data,
        partition_key: partition_key.to_owned(),
        explicit_hash_key: explicit_hash_key.map(str::to_owned),
    })
}

fn check_sizes(records: &[PutEntry], max_record_size: usize) -> Result<(), ApiError> {
    let mut total = 0usize;
    for (i, r) in records.iter().enumerate() {
        let size = r.data.len() + r.partition_key.len();
        if r.data.len() > max_record_size {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value at 'records.{}.member.data' failed to satisfy constraint: Member must have length less than or equal to {max_record_size}",
                i + 1
            )));
        }
        total += size;
    }
    if total > MAX_REQUEST_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "Records size exceeds 5 MB limit ({total} bytes of data and partition keys)"
        )));
    }
    Ok(())
}

/// Decodes and checks a `PutRecords` request.
///
/// ```
/// use kpl_cli::serve::protocol::{decode_put_records, Protocol, StreamRef};
/// let body = br#"{"StreamName":"logs","Records":[{"Data":"aGk=","PartitionKey":"k"}]}"#;
/// let request = decode_put_records(Protocol::Json, body, 1 << 20).unwrap();
/// assert_eq!(request.stream, StreamRef::Name("logs".into()));
/// assert_eq!(request.records[0].data, b"hi");
/// ```
pub fn decode_put_records(
    protocol: Protocol,
    body: &[u8],
    max_record_size: usize,
) -> Result<PutRequest, ApiError> {
    let tree = parse(protocol, body)?;
    let node = root(&tree);
    if !node.is_object() {
        return Err(ApiError::serialization("the body must be an object"));
    }
    let stream = stream_of(node)?;
    let list = match node.field("Records") {
        Field::List(list) => list,
        Field::Absent => Vec::new(),
        _ => return Err(ApiError::serialization("Records must be a list")),
    };
    if list.is_empty() || list.len() > MAX_RECORDS {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length between 1 and 500 (it has {})",
            list.len()
        )));
    }
    let records = list
        .into_iter()
        .enumerate()
        .map(|(i, n)| entry(n, &format!("records.{}.member", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    check_sizes(&records, max_record_size)?;
    Ok(PutRequest { stream, records })
}

/// Decodes and checks a `PutRecord` request.
pub fn decode_put_record(
    protocol: Protocol,
    body: &[u8],
    max_record_size: usize,
) -> Result<PutRequest, ApiError> {
    let tree = parse(protocol, body)?;
    let node = root(&tree);
    if !node.is_object() {
        return Err(ApiError::serialization("the body must be an object"));
    }
    let stream = stream_of(node)?;
    let record = entry(node, "record")?;
    let records = vec![record];
    check_sizes(&records, max_record_size)?;
    Ok(PutRequest { stream, records })
}

fn encode(protocol: Protocol, value: Json) -> Vec<u8> {
    match protocol {
        Protocol::Json => value.to_string().into_bytes(),
        Protocol::Cbor => {
            let mut out = Vec::new();
            // Serializing a JSON tree into a Vec cannot fail.
            let _ = ciborium::ser::into_writer(&json_to_cbor(&value), &mut out);
            out
        }
    }
}

fn json_to_cbor(value: &Json) -> Cbor {
    match value {
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Cbor::Text(s.clone()),
        Json::Array(a) => Cbor::Array(a.iter().map(json_to_cbor).collect()),
        Json::Object(o) => Cbor::Map(
            o.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), json_to_cbor(v)))
                .collect(),
        ),
    }
}

/// The answer to a `PutRecords`: `FailedRecordCount` and one entry per record, in order.
pub fn encode_put_records(protocol: Protocol, answers: &[EntryAnswer]) -> Vec<u8> {
    let failed = answers
        .iter()
        .filter(|a| matches!(a, EntryAnswer::Failed { .. }))
        .count();
    let records: Vec<Json> = answers
        .iter()
        .map(|a| match a {
            EntryAnswer::Stored {
                shard_id,
                sequence_number,
            } => json!({"SequenceNumber": sequence_number, "ShardId": shard_id}),
            EntryAnswer::Failed { code, message } => {
                json!({"ErrorCode": code, "ErrorMessage": message})
            }
        })
        .collect();
    encode(
        protocol,
        json!({"FailedRecordCount": failed, "Records": records, "EncryptionType": "NONE"}),
    )
}

/// The answer to a `PutRecord` that stored its record.
pub fn encode_put_record(protocol: Protocol, shard_id: &str, sequence_number: &str) -> Vec<u8> {
    encode(
        protocol,
        json!({"ShardId": shard_id, "SequenceNumber": sequence_number, "EncryptionType": "NONE"}),
    )
}

/// An error body.
pub fn encode_error(protocol: Protocol, error: &ApiError) -> Vec<u8> {
    encode(
        protocol,
        json!({"__type": error.code, "message": error.message}),
    )
}

/// The status Kinesis answers for an error code of a failed `PutRecord`.
pub fn status_of(code: &str) -> u16 {
    match code {
        "InternalFailure" | "InternalFailureException" | "ServiceUnavailable" => 500,
        _ => 400,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor(value: &Cbor) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).unwrap();
        out
    }

    #[test]
    fn cbor_requests_carry_data_as_bytes() {
        let body = cbor(&Cbor::Map(vec![
            (Cbor::Text("StreamName".into()), Cbor::Text("s".into())),
            (
                Cbor::Text("Records".into()),
                Cbor::Array(vec![Cbor::Map(vec![
                    (Cbor::Text("Data".into()), Cbor::Bytes(vec![0, 1, 2])),
                    (Cbor::Text("PartitionKey".into()), Cbor::Text("k".into())),
                    (
                        Cbor::Text("ExplicitHashKey".into()),
                        Cbor::Text("42".into()),
                    ),
                ])]),
            ),
        ]));
        let r = decode_put_records(Protocol::Cbor, &body, 1 << 20).unwrap();
        assert_eq!(r.records[0].data, vec![0, 1, 2]);
        assert_eq!(r.records[0].explicit_hash_key.as_deref(), Some("42"));
    }

    #[test]
    fn kinesis_rules_give_kinesis_errors() {
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "SerializationException"),
            (r#"{"Records":[{"Data":"aGk=","PartitionKey":"k"}]}"#.into(), "ValidationException"),
            (r#"{"StreamName":"s","Records":[]}"#.into(), "ValidationException"),
            (r#"{"StreamName":"s","Records":[{"Data":"!!!","PartitionKey":"k"}]}"#.into(), "SerializationException"),
            (r#"{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":""}]}"#.into(), "ValidationException"),
            (r#"{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":"k","ExplicitHashKey":"-1"}]}"#.into(), "ValidationException"),
            (r#"{"StreamName":"s","Records":[{"PartitionKey":"k"}]}"#.into(), "ValidationException"),
            (r#"{"StreamName":"s","Records":"x"}"#.into(), "SerializationException"),
            (
                format!(
                    r#"{{"StreamName":"s","Records":[{}]}}"#,
                    vec![r#"{"Data":"aGk=","PartitionKey":"k"}"#; 501].join(",")
                ),
                "ValidationException",
            ),
        ];
        for (body, code) in cases {
            let e = decode_put_records(Protocol::Json, body.as_bytes(), 1 << 20).unwrap_err();
            assert_eq!(e.code, code, "{body:.80}: {e:?}");
            assert_eq!(e.status, 400);
        }
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 1100]);
        let body =
            format!(r#"{{"StreamName":"s","Records":[{{"Data":"{big}","PartitionKey":"k"}}]}}"#);
        let e = decode_put_records(Protocol::Json, body.as_bytes(), 1024).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        let body = format!(
            r#"{{"StreamName":"s","Records":[{}]}}"#,
            vec![
                format!(
                    r#"{{"Data":"{}","PartitionKey":"k"}}"#,
                    base64::engine::general_purpose::STANDARD.encode(vec![0u8; 1 << 20])
                );
                6
            ]
            .join(",")
        );
        let e = decode_put_records(Protocol::Json, body.as_bytes(), 1 << 20).unwrap_err();
        assert_eq!(e.code, "InvalidArgumentException");
    }

    #[test]
    fn answers_round_trip_in_both_protocols() {
        let answers = vec![
            EntryAnswer::Stored {
                shard_id: "shardId-000000000001".into(),
                sequence_number: "4959".into(),
            },
            EntryAnswer::Failed {
                code: "ProvisionedThroughputExceededException".into(),
                message: "slow down".into(),
            },
        ];
        let j: Json =
            serde_json::from_slice(&encode_put_records(Protocol::Json, &answers)).unwrap();
        assert_eq!(j["FailedRecordCount"], 1);
        assert_eq!(j["Records"][0]["ShardId"], "shardId-000000000001");
        assert_eq!(
            j["Records"][1]["ErrorCode"],
            "ProvisionedThroughputExceededException"
        );
        let c: Cbor =
            ciborium::de::from_reader(&encode_put_records(Protocol::Cbor, &answers)[..]).unwrap();
        let map = c.as_map().unwrap();
        assert!(map
            .iter()
            .any(|(k, v)| k.as_text() == Some("FailedRecordCount")
                && v.as_integer() == Some(1.into())));
    }
}
