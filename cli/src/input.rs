//! Reading the inputs: files or standard input, the five formats of Kinesis records
//! (`raw`, `base64`, `hex`, `lambda`, `get-records`) and the NDJSON user records of
//! `kpl encode`.

use std::io::{BufRead, Read};
use std::path::Path;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::Value;

use crate::args::InputFormat;
use crate::error::CliError;

/// Base64 as read from inputs: standard alphabet, padding optional.
pub const BASE64_IN: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One Kinesis record read from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisInput {
    /// The record's data.
    pub data: Vec<u8>,
    /// The record's own partition key (from the event, or `--partition-key`).
    pub partition_key: String,
    /// The record's sequence number, when the input carried one.
    pub sequence_number: Option<String>,
}

impl KinesisInput {
    /// How messages name the record: `record 3` or `record 3 (sequence number 4959...)`.
    pub fn label(&self, index: usize) -> String {
        match &self.sequence_number {
            Some(seq) => format!("record {index} (sequence number {seq})"),
            None => format!("record {index}"),
        }
    }
}

/// `file` to read line by line, or `stdin` when `file` is absent or `-`.
fn open_lines<'a>(
    file: Option<&Path>,
    stdin: &'a mut dyn Read,
) -> Result<std::io::BufReader<Box<dyn Read + 'a>>, CliError> {
    let input: Box<dyn Read + 'a> = match file {
        Some(path) if path.as_os_str() != "-" => Box::new(
            std::fs::File::open(path)
                .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))?,
        ),
        _ => Box::new(stdin),
    };
    Ok(std::io::BufReader::new(input))
}

/// An input read line by line, each line numbered from 1 and without its `\n`.
pub struct NumberedLines<'a> {
    reader: std::io::BufReader<Box<dyn Read + 'a>>,
    line: Vec<u8>,
    number: usize,
}

impl<'a> NumberedLines<'a> {
    /// `file`, or `stdin` when `file` is absent or `-`.
    pub fn open(file: Option<&Path>, stdin: &'a mut dyn Read) -> Result<Self, CliError> {
        Ok(NumberedLines {
            reader: open_lines(file, stdin)?,
            line: Vec::new(),
            number: 0,
        })
    }

    /// Whether a whole next line is already read in: `next_line` would not wait for the
    /// input (a pipe that is slow to write, say).
    pub fn line_ready(&self) -> bool {
        self.reader.buffer().contains(&b'\n')
    }

    /// The next line and its number, `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<(usize, &[u8])>, CliError> {
        self.line.clear();
        let read = self
            .reader
            .read_until(b'\n', &mut self.line)
            .map_err(|e| CliError::input(format!("cannot read the input: {e}")))?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        let content = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        Ok(Some((self.number, content)))
    }
}

/// Reads the whole of `file`, or of `stdin` when `file` is absent or `-`.
pub fn read_all(file: Option<&Path>, stdin: &mut dyn Read) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    match file {
        Some(path) if path.as_os_str() != "-" => {
            return std::fs::read(path)
                .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())));
        }
        _ => stdin
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::input(format!("cannot read standard input: {e}")))?,
    };
    Ok(bytes)
}

/// Reads the Kinesis records that `source` (file or standard input, format, outer key)
/// names.
pub fn read_kinesis_records(
    source: &crate::args::Source,
    stdin: &mut dyn Read,
) -> Result<Vec<KinesisInput>, CliError> {
    let bytes = read_all(source.file.as_deref(), stdin)?;
    parse_kinesis_records(&bytes, source.from, source.partition_key.as_deref())
}

/// Turns the input's bytes into Kinesis records, as `format` says.
///
/// `partition_key` is the outer key of raw, base64 and hex input (`--partition-key`);
/// it must be `None` for the JSON formats, which carry their own keys.
pub fn parse_kinesis_records(
    bytes: &[u8],
    format: InputFormat,
    partition_key: Option<&str>,
) -> Result<Vec<KinesisInput>, CliError> {
    let single = |data: Vec<u8>| {
        vec![KinesisInput {
            data,
            partition_key: partition_key.unwrap_or_default().to_owned(),
            sequence_number: None,
        }]
    };
    match format {
        InputFormat::Raw => Ok(single(bytes.to_vec())),
        InputFormat::Base64 => Ok(single(decode_base64_text(bytes)?)),
        InputFormat::Hex => Ok(single(decode_hex_text(bytes)?)),
        InputFormat::Lambda | InputFormat::GetRecords => {
            if partition_key.is_some() {
                return Err(CliError::input(
                    "--partition-key applies to raw, base64 and hex input only: lambda and \
                     get-records input carry each record's partition key",
                ));
            }
            if format == InputFormat::Lambda {
                parse_lambda_event(bytes)
            } else {
                parse_get_records(bytes)
            }
        }
    }
}

/// Decodes base64 text; ASCII whitespace anywhere in it is ignored.
pub fn decode_base64_text(bytes: &[u8]) -> Result<Vec<u8>, CliError> {
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    BASE64_IN
        .decode(&compact)
        .map_err(|e| CliError::input(format!("base64 input is not valid base64: {e}")))
}

/// Decodes hex text (either case); ASCII whitespace anywhere in it is ignored.
pub fn decode_hex_text(bytes: &[u8]) -> Result<Vec<u8>, CliError> {
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut high: Option<u8> = None;
    for (position, &byte) in bytes.iter().enumerate() {
        if byte.is_ascii_whitespace() {
            continue;
        }
        let Some(nibble) = (byte as char).to_digit(16) else {
            return Err(CliError::input(format!(
                "hex input: {} at byte {position} is not a hex digit",
                escape_byte(byte)
            )));
        };
        let nibble = nibble as u8;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
    }
    if high.is_some() {
        return Err(CliError::input("hex input has an odd number of hex digits"));
    }
    Ok(out)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

fn escape_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("'{}'", byte as char)
    } else {
        format!("byte 0x{byte:02x}")
    }
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value, CliError> {
    serde_json::from_slice(bytes)
        .map_err(|e| CliError::input(format!("{what} is not valid JSON: {e}")))
}

fn records_array<'v>(root: &'v Value, what: &str) -> Result<&'v Vec<Value>, CliError> {
    match root.get("Records") {
        Some(Value::Array(records)) => Ok(records),
        Some(_) => Err(CliError::input(format!(
            "{what}: \"Records\" is not an array"
        ))),
        None => Err(CliError::input(format!("{what} has no \"Records\" array"))),
    }
}

fn string_field<'v>(
    object: &'v Value,
    name: &str,
    place: &str,
) -> Result<Option<&'v str>, CliError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CliError::input(format!("{place}.{name} is not a string"))),
    }
}

fn required_string<'v>(object: &'v Value, name: &str, place: &str) -> Result<&'v str, CliError> {
    string_field(object, name, place)?
        .ok_or_else(|| CliError::input(format!("{place} has no \"{name}\" string")))
}

fn base64_field(object: &Value, name: &str, place: &str) -> Result<Vec<u8>, CliError> {
    let text = required_string(object, name, place)?;
    BASE64_IN
        .decode(text)
        .map_err(|e| CliError::input(format!("{place}.{name} is not valid base64: {e}")))
}

/// Reads an AWS Lambda `KinesisEvent`: every `Records[i].kinesis` record.
pub fn parse_lambda_event(bytes: &[u8]) -> Result<Vec<KinesisInput>, CliError> {
    let what = "lambda event";
    let root = parse_json(bytes, what)?;
    let records = records_array(&root, what)?;
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let place = format!("lambda event Records[{i}]");
        let kinesis = match record.get("kinesis") {
            Some(k @ Value::Object(_)) => k,
            _ => {
                let hint = if record.get("Data").is_some() {
                    " (this looks like get-records output: use --from get-records)"
                } else {
                    ""
                };
                return Err(CliError::input(format!(
                    "{place} has no \"kinesis\" object{hint}"
                )));
            }
        };
        let place = format!("{place}.kinesis");
        out.push(KinesisInput {
            data: base64_field(kinesis, "data", &place)?,
            partition_key: required_string(kinesis, "partitionKey", &place)?.to_owned(),
            sequence_number: string_field(kinesis, "sequenceNumber", &place)?.map(str::to_owned),
        });
    }
    Ok(out)
}

/// Reads the output of `aws kinesis get-records`: every `Records[i]`.
pub fn parse_get_records(bytes: &[u8]) -> Result<Vec<KinesisInput>, CliError> {
    let what = "get-records output";
    let root = parse_json(bytes, what)?;
    let records = records_array(&root, what)?;
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let place = format!("get-records Records[{i}]");
        if !record.is_object() {
            return Err(CliError::input(format!("{place} is not an object")));
        }
        if record.get("Data").is_none() && record.get("kinesis").is_some() {
            return Err(CliError::input(format!(
                "{place} has no \"Data\" string (this looks like a lambda event: use --from lambda)"
            )));
        }
        out.push(KinesisInput {
            data: base64_field(record, "Data", &place)?,
            partition_key: required_string(record, "PartitionKey", &place)?.to_owned(),
            sequence_number: string_field(record, "SequenceNumber", &place)?.map(str::to_owned),
        });
    }
    Ok(out)
}

/// A user record read from one NDJSON line, data decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecordInput {
    /// The partition key.
    pub partition_key: String,
    /// The explicit hash key, as given.
    pub explicit_hash_key: Option<String>,
    /// The data.
    pub data: Vec<u8>,
}

/// Parses one NDJSON line of user records (`line_number` counts from 1, for messages).
/// Returns `None` for a blank line.
pub fn parse_user_record_line(
    line: &[u8],
    line_number: usize,
) -> Result<Option<UserRecordInput>, CliError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = std::str::from_utf8(line)
        .map_err(|e| CliError::input(format!("line {line_number}: not valid UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| CliError::input(format!("line {line_number}: not valid JSON: {e}")))?;
    let object = match &value {
        Value::Object(object) => object,
        other => {
            return Err(CliError::input(format!(
                "line {line_number}: expected a JSON object {{\"PartitionKey\":..,\"Data\":..}}, found {}",
                json_kind(other)
            )))
        }
    };
    let mut partition_key = None;
    let mut explicit_hash_key = None;
    let mut data = None;
    for (name, field) in object {
        let bad_type = |expected: &str| {
            CliError::input(format!(
                "line {line_number}: {name} must be {expected}, not {}",
                json_kind(field)
            ))
        };
        match (name.as_str(), field) {
            ("PartitionKey", Value::String(s)) => partition_key = Some(s.clone()),
            ("PartitionKey", _) => return Err(bad_type("a string")),
            ("ExplicitHashKey", Value::String(s)) => explicit_hash_key = Some(s.clone()),
            ("ExplicitHashKey", Value::Null) => {}
            ("ExplicitHashKey", _) => return Err(bad_type("a string or null")),
            ("Data", Value::String(s)) => data = Some(s.as_str()),
            ("Data", _) => return Err(bad_type("a base64 string")),
            _ => {
                return Err(CliError::input(format!(
                    "line {line_number}: unknown field {name:?} (expected PartitionKey, \
                     ExplicitHashKey, Data)"
                )))
            }
        }
    }
    let Some(partition_key) = partition_key else {
        return Err(CliError::input(format!(
            "line {line_number}: missing field \"PartitionKey\""
        )));
    };
    let Some(data) = data else {
        return Err(CliError::input(format!(
            "line {line_number}: missing field \"Data\""
        )));
    };
    let data = BASE64_IN.decode(data).map_err(|e| {
        CliError::input(format!("line {line_number}: Data is not valid base64: {e}"))
    })?;
    Ok(Some(UserRecordInput {
        partition_key,
        explicit_hash_key,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_text() {
        assert_eq!(decode_hex_text(b" 0aFf\n10 "), Ok(vec![0x0a, 0xff, 0x10]));
        assert_eq!(decode_hex_text(b""), Ok(vec![]));
        assert!(decode_hex_text(b"0a0").is_err());
        assert!(decode_hex_text(b"0x10").is_err());
    }

    #[test]
    fn base64_text() {
        assert_eq!(decode_base64_text(b"\n eA==\n"), Ok(b"x".to_vec()));
        assert_eq!(decode_base64_text(b"eA"), Ok(b"x".to_vec()));
        assert!(decode_base64_text(b"e-A=").is_err());
    }

    #[test]
    fn user_record_lines() {
        assert_eq!(parse_user_record_line(b"  \r", 1), Ok(None));
        let record = parse_user_record_line(
            br#"{"PartitionKey":"p","ExplicitHashKey":null,"Data":"eA=="}"#,
            1,
        );
        assert_eq!(
            record,
            Ok(Some(UserRecordInput {
                partition_key: "p".to_owned(),
                explicit_hash_key: None,
                data: b"x".to_vec(),
            }))
        );
        let error = parse_user_record_line(br#"{"PartitionKey":"p","data":"eA=="}"#, 7);
        assert!(error.is_err_and(|e| e.message.contains("line 7") && e.message.contains("data")));
    }
}
