//! The output's properties: names, defaults, parsing and validation, as a pure function of
//! "what does the host say for this key", so that every rule is unit-tested without a host.

use std::time::Duration;

use kpl_fluent_bit::accessor::Accessor;
use kpl_fluent_bit::json::FormatOptions;
use kpl_fluent_bit::props::{parse_bool, parse_count, parse_millis, parse_size};
use kpl_kinesis::explain::{reword_hints, SettingNames};
use kpl_kinesis::sink::Config;

pub use kpl_fluent_bit::props::PropertyError as SettingError;

/// How kpl-kinesis's hints name the settings to check in this plugin's log lines: by its
/// properties, not by the `kpl` command line's flags.
pub const SETTING_NAMES: SettingNames<'static> = SettingNames {
    stream: "the stream property",
    region: "the region property",
    endpoint: "the endpoint property",
};

/// An error of kpl-kinesis as a log line of this plugin: its hint names the properties.
pub fn log_line(error: &impl std::fmt::Display) -> String {
    reword_hints(&error.to_string(), &SETTING_NAMES)
}

/// Every property the plugin reads, with its default as the README gives it.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("stream", "(required)"),
    ("region", "from the AWS chain, else us-east-1"),
    ("endpoint", "AWS"),
    ("role_arn", "none"),
    ("partition_key", "a random key per record"),
    ("explicit_hash_key", "none"),
    ("log_key", "none: the whole record as JSON"),
    ("time_key", "none"),
    ("time_key_format", "%Y-%m-%dT%H:%M:%S"),
    ("aggregation", "on"),
    ("aggregation_max_size", "51200"),
    ("aggregation_max_count", "4294967295"),
    ("record_max_buffered_time", "100 (ms)"),
    ("record_ttl", "30000 (ms)"),
    ("rate_limit", "150"),
    ("max_record_size", "1M"),
    ("kpl_config", "none"),
    ("exit_grace", "5s"),
];

/// Names users write by mistake, which the host would otherwise accept silently (a proxy
/// plugin cannot list the properties it was given, so it checks these): the options of
/// Fluent Bit's `kinesis_streams` that this plugin does not have, and KPL's names written
/// as one word (property names are case-insensitive, so `AggregationMaxSize` is
/// `aggregationmaxsize`).
const MISTAKES: &[(&str, &str)] = &[
    ("stream_name", "stream"),
    ("streamname", "stream"),
    ("partitionkey", "partition_key"),
    ("explicithashkey", "explicit_hash_key"),
    ("aggregationenabled", "aggregation"),
    ("aggregation_enabled", "aggregation"),
    ("aggregationmaxsize", "aggregation_max_size"),
    ("aggregationmaxcount", "aggregation_max_count"),
    ("recordmaxbufferedtime", "record_max_buffered_time"),
    ("recordttl", "record_ttl"),
    ("ratelimit", "rate_limit"),
    ("maxrecordsize", "max_record_size"),
    ("kinesisendpoint", "endpoint"),
    ("kinesis_endpoint", "endpoint"),
    (
        "simple_aggregation",
        "aggregation (this plugin aggregates the KPL way)",
    ),
    ("compression", "nothing: compress in a filter"),
    (
        "auto_retry_requests",
        "nothing: the plugin retries until record_ttl",
    ),
    ("sts_endpoint", "nothing: set AWS_ENDPOINT_URL_STS"),
    ("external_id", "nothing: not supported"),
    ("profile", "nothing: set AWS_PROFILE"),
];

/// The parsed properties.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The stream's name, or its ARN (`arn:` prefix).
    pub stream: String,
    /// An IAM role to assume for the credentials.
    pub role_arn: Option<String>,
    /// Where each record's partition key comes from; `None`: random.
    pub partition_key: Option<Accessor>,
    /// Where each record's explicit hash key comes from.
    pub explicit_hash_key: Option<Accessor>,
    /// What each record's data is.
    pub format: FormatOptions,
    /// The sink's settings (KPL's), after `kpl_config` and the properties.
    pub sink: Config,
    /// How long Exit waits for what is buffered.
    pub exit_grace: Duration,
}

/// Reads the properties through `get` (the host's `output_get_property`: case-insensitive,
/// `None` when unset) and `read_file` (for `kpl_config`).
pub fn parse(
    get: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Settings, SettingError> {
    for (wrong, right) in MISTAKES {
        if get(wrong).is_some() {
            return Err(err(wrong, format!("unknown property; use {right}")));
        }
    }
    let prop = |name: &str| get(name).map(|v| v.trim().to_owned());
    let stream = prop("stream").filter(|s| !s.is_empty()).ok_or_else(|| {
        err(
            "stream",
            "required: the Kinesis stream's name or ARN".into(),
        )
    })?;

    let mut sink = match prop("kpl_config") {
        None => Config::default(),
        Some(path) => {
            let text = read_file(&path).map_err(|e| err("kpl_config", e))?;
            toml::from_str(&text).map_err(|e| err("kpl_config", format!("{path}: {e}")))?
        }
    };
    if let Some(region) = prop("region") {
        sink.region = region;
    }
    if let Some(endpoint) = prop("endpoint") {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(err(
                "endpoint",
                format!("expected a URL such as https://kinesis.eu-west-1.amazonaws.com or http://127.0.0.1:4568, got {endpoint:?}"),
            ));
        }
        sink.kinesis_endpoint = endpoint;
    }
    let with = |name: &'static str, parse: fn(&str) -> Result<u64, String>| {
        prop(name)
            .map(|v| parse(&v).map_err(|e| err(name, e)))
            .transpose()
    };
    if let Some(v) = prop("aggregation") {
        sink.aggregation_enabled = parse_bool(&v).map_err(|e| err("aggregation", e))?;
    }
    if let Some(v) = with("aggregation_max_size", parse_size)? {
        sink.aggregation_max_size = to_usize("aggregation_max_size", v)?;
    }
    if let Some(v) = with("aggregation_max_count", parse_count)? {
        sink.aggregation_max_count = v;
    }
    if let Some(v) = with("record_max_buffered_time", parse_millis)? {
        sink.record_max_buffered_time = v;
    }
    if let Some(v) = with("record_ttl", parse_millis)? {
        sink.record_ttl = v;
    }
    if let Some(v) = with("rate_limit", parse_count)? {
        sink.rate_limit = v;
    }
    if let Some(v) = with("max_record_size", parse_size)? {
        sink.max_record_size = to_usize("max_record_size", v)?;
        // A stream with larger records takes PutRecords calls at least that large.
        sink.collection_max_size = sink.collection_max_size.max(sink.max_record_size);
    }
    let exit_grace = Duration::from_millis(with("exit_grace", parse_millis)?.unwrap_or(5_000));
    if let Err(e) = sink.validate() {
        let property = property_of_option(e.option);
        return Err(err(property, e.to_string()));
    }

    let accessor = |name: &'static str| {
        prop(name)
            .filter(|v| !v.is_empty())
            .map(|v| Accessor::parse(&v).map_err(|e| err(name, format!("{v:?}: {e}"))))
            .transpose()
    };
    let format = FormatOptions {
        log_key: prop("log_key").filter(|v| !v.is_empty()),
        time_key: prop("time_key").filter(|v| !v.is_empty()),
        time_key_format: prop("time_key_format").filter(|v| !v.is_empty()),
    };
    if let Err(e) = format.validate() {
        let property = if format.log_key.is_some() && format.time_key.is_some() {
            "log_key"
        } else {
            "time_key_format"
        };
        return Err(err(property, e.message));
    }
    Ok(Settings {
        stream,
        role_arn: prop("role_arn").filter(|v| !v.is_empty()),
        partition_key: accessor("partition_key")?,
        explicit_hash_key: accessor("explicit_hash_key")?,
        format,
        sink,
        exit_grace,
    })
}

fn err(property: &str, message: String) -> SettingError {
    SettingError::new(property, message)
}

fn to_usize(property: &str, v: u64) -> Result<usize, SettingError> {
    usize::try_from(v).map_err(|_| err(property, format!("{v} is too large")))
}

/// The plugin property that sets a sink option, for error lines (options only `kpl_config`
/// can set are named as they are written there).
fn property_of_option(option: &str) -> &str {
    match option {
        "AggregationMaxSize" => "aggregation_max_size",
        "AggregationMaxCount" => "aggregation_max_count",
        "RecordMaxBufferedTime" => "record_max_buffered_time",
        "RecordTtl" => "record_ttl",
        "RateLimit" => "rate_limit",
        "MaxRecordSize" => "max_record_size",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_map(pairs: &[(&str, &str)]) -> Result<Settings, SettingError> {
        // The host matches keys case-insensitively.
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        let get = move |k: &str| map.get(&k.to_ascii_lowercase()).cloned();
        parse(&get, &|path| match path {
            "kpl.toml" => Ok("RecordTtl = 60000\nRateLimit = 100\n".into()),
            _ => Err(format!("{path}: no such file")),
        })
    }

    #[test]
    fn defaults_are_kpl_defaults() {
        let s = parse_map(&[("stream", "logs")]).unwrap();
        assert_eq!(s.stream, "logs");
        assert_eq!(s.sink, Config::default());
        assert!(s.partition_key.is_none());
        assert_eq!(s.exit_grace, Duration::from_secs(5));
    }

    #[test]
    fn stream_is_required() {
        let e = parse_map(&[("region", "eu-west-1")]).unwrap_err();
        assert_eq!(e.property, "stream");
    }

    #[test]
    fn bad_values_name_their_property() {
        for (key, value) in [
            ("aggregation", "maybe"),
            ("aggregation_max_size", "1X"),
            ("record_ttl", "soon"),
            ("rate_limit", "-3"),
            ("endpoint", "localhost:4568"),
            ("partition_key", "$a['b"),
            ("aggregation_max_size", "11M"), // over the bound: validate() says so
            ("max_record_size", "11M"),
            ("kpl_config", "missing.toml"),
            ("time_key_format", "%c"),
        ] {
            let e = parse_map(&[("stream", "s"), ("time_key", "t"), (key, value)]).unwrap_err();
            assert_eq!(e.property, key, "{key}={value}: {e}");
        }
    }

    #[test]
    fn log_key_and_time_key_exclude_each_other_as_in_kinesis_streams() {
        let e = parse_map(&[("stream", "s"), ("log_key", "log"), ("time_key", "t")]).unwrap_err();
        assert_eq!(e.property, "log_key");
    }

    #[test]
    fn known_mistakes_are_refused_with_the_right_name() {
        let e = parse_map(&[("stream", "s"), ("AggregationMaxSize", "1000")]).unwrap_err();
        assert_eq!(e.property, "aggregationmaxsize");
        assert!(e.message.contains("aggregation_max_size"), "{e}");
        let e = parse_map(&[("stream", "s"), ("simple_aggregation", "on")]).unwrap_err();
        assert_eq!(e.property, "simple_aggregation");
    }

    #[test]
    fn properties_override_kpl_config() {
        let s = parse_map(&[
            ("stream", "s"),
            ("kpl_config", "kpl.toml"),
            ("rate_limit", "50"),
            ("record_max_buffered_time", "2s"),
            ("max_record_size", "10M"),
            ("aggregation_max_size", "1M"),
            ("endpoint", "http://127.0.0.1:4568"),
            ("Partition_Key", "$kubernetes['pod_name']"),
        ])
        .unwrap();
        assert_eq!(s.sink.record_ttl, 60_000); // from the file
        assert_eq!(s.sink.rate_limit, 50); // the property wins
        assert_eq!(s.sink.record_max_buffered_time, 2_000);
        assert_eq!(s.sink.max_record_size, 10 << 20);
        assert_eq!(s.sink.collection_max_size, 10 << 20);
        assert_eq!(s.sink.aggregation_max_size, 1 << 20);
        assert_eq!(s.sink.kinesis_endpoint, "http://127.0.0.1:4568");
        assert!(s.partition_key.is_some());
    }
}
