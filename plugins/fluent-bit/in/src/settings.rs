//! The input's properties, parsed as a pure function of what the host says for each key.

use std::time::{Duration, SystemTime};

use kpl_fluent_bit::props::parse_millis;
use kpl_kinesis::explain::{reword_hints, SettingNames};
use kpl_kinesis::source::{LeaseSettings, StartPosition};

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

/// What becomes of a user record's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON object becomes the record; other data goes as `raw`.
    Json,
    /// The record is `{"data": <the data as a string>}`.
    Raw,
}

/// The parsed properties.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The stream's name or ARN.
    pub stream: String,
    /// Region, empty for the AWS chain.
    pub region: String,
    /// Endpoint URL, empty for AWS.
    pub endpoint: String,
    /// Where shards without a checkpoint start.
    pub start: StartPosition,
    /// Where checkpoints are kept (none: in memory, a restart starts over).
    pub checkpoint_file: Option<String>,
    /// What the data becomes.
    pub format: Format,
    /// The key of the Kinesis metadata in each record.
    pub metadata_key: String,
    /// Pause between GetRecords rounds that found nothing.
    pub poll_interval: Duration,
    /// Most bytes of user records read ahead of Fluent Bit.
    pub buffer_bytes: usize,
    /// How Kinesis records are deaggregated.
    pub policy: kpl_codec::Policy,
    /// With `lease_table`: the stream is shared with other workers (Fluent Bit instances,
    /// KCL applications) through this KCL lease table; checkpoints go to the leases.
    pub leases: Option<LeaseSettings>,
}

/// Properties of other Kinesis plugins users may write here by mistake.
const MISTAKES: &[(&str, &str)] = &[
    ("stream_name", "stream"),
    ("streamname", "stream"),
    ("initial_position", "start"),
    ("shard_iterator_type", "start"),
    ("checkpoint", "checkpoint_file"),
    ("table_name", "lease_table"),
    ("application_name", "lease_table"),
];

/// Reads the properties through `get` (case-insensitive, `None` when unset).
pub fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
    for (wrong, right) in MISTAKES {
        if get(wrong).is_some() {
            return Err(err(wrong, format!("unknown property; use {right}")));
        }
    }
    let prop = |k: &str| {
        get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let stream = prop("stream").ok_or_else(|| {
        err(
            "stream",
            "required: the Kinesis stream's name or ARN".into(),
        )
    })?;
    let endpoint = prop("endpoint").unwrap_or_default();
    if !(endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(err(
            "endpoint",
            format!("expected a URL such as http://127.0.0.1:4568, got {endpoint:?}"),
        ));
    }
    let start = match prop("start")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("trim_horizon") => StartPosition::TrimHorizon,
        Some("latest") => StartPosition::Latest,
        Some("at_timestamp") => {
            let ts = prop("start_timestamp").ok_or_else(|| {
                err(
                    "start_timestamp",
                    "required with start at_timestamp: seconds since the epoch".into(),
                )
            })?;
            let secs: f64 = ts
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    err(
                        "start_timestamp",
                        format!("expected seconds since the epoch, got {ts:?}"),
                    )
                })?;
            StartPosition::AtTimestamp(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
        }
        Some(other) => {
            return Err(err(
                "start",
                format!("expected trim_horizon, latest or at_timestamp, got {other:?}"),
            ))
        }
    };
    let format = match prop("format")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("json") => Format::Json,
        Some("raw") => Format::Raw,
        Some(other) => {
            return Err(err(
                "format",
                format!("expected json or raw, got {other:?}"),
            ))
        }
    };
    let poll_interval = match prop("poll_interval") {
        None => Duration::from_millis(500),
        Some(v) => Duration::from_millis(parse_millis(&v).map_err(|e| err("poll_interval", e))?),
    };
    let buffer_bytes = match prop("buffer_size") {
        None => 16 << 20,
        Some(v) => kpl_fluent_bit::props::parse_size(&v)
            .map_err(|e| err("buffer_size", e))
            .and_then(|n| usize::try_from(n).map_err(|_| err("buffer_size", "too large".into())))?,
    };
    let policy = match prop("policy")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("kcl") => kpl_codec::Policy::Kcl,
        Some("strict") => kpl_codec::Policy::Strict,
        Some(other) => {
            return Err(err(
                "policy",
                format!("expected kcl or strict, got {other:?}"),
            ))
        }
    };
    let leases = match prop("lease_table") {
        None => {
            for other in ["worker_id", "dynamodb_endpoint", "failover_time"] {
                if prop(other).is_some() {
                    return Err(err(other, "needs lease_table".into()));
                }
            }
            None
        }
        Some(table) => {
            if prop("checkpoint_file").is_some() {
                return Err(err(
                    "checkpoint_file",
                    "not with lease_table: the checkpoints are kept in the leases".into(),
                ));
            }
            let worker =
                prop("worker_id").unwrap_or_else(|| LeaseSettings::default_worker_id("fluent-bit"));
            let mut leases = LeaseSettings::new(table, worker);
            if let Some(v) = prop("failover_time") {
                let ms = parse_millis(&v).map_err(|e| err("failover_time", e))?;
                leases.failover_time = Duration::from_millis(ms.max(1));
            }
            if let Some(url) = prop("dynamodb_endpoint") {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(err(
                        "dynamodb_endpoint",
                        format!("expected a URL such as http://127.0.0.1:8000, got {url:?}"),
                    ));
                }
                leases.endpoint = Some(url);
            }
            Some(leases)
        }
    };
    Ok(Settings {
        leases,
        stream,
        region: prop("region").unwrap_or_default(),
        endpoint,
        start,
        checkpoint_file: prop("checkpoint_file"),
        format,
        metadata_key: prop("metadata_key").unwrap_or_else(|| "kinesis".into()),
        poll_interval,
        buffer_bytes,
        policy,
    })
}

fn err(property: &str, message: String) -> SettingError {
    SettingError::new(property, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_map(pairs: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        parse(&move |k: &str| map.get(&k.to_ascii_lowercase()).cloned())
    }

    #[test]
    fn defaults() {
        let s = parse_map(&[("stream", "logs")]).unwrap();
        assert_eq!(s.start, StartPosition::TrimHorizon);
        assert_eq!(s.format, Format::Json);
        assert_eq!(s.metadata_key, "kinesis");
        assert!(s.checkpoint_file.is_none());
    }

    #[test]
    fn leases_are_read_with_their_defaults_and_checked() {
        let s = parse_map(&[("stream", "s"), ("lease_table", "app")]).unwrap();
        let leases = s.leases.expect("leases");
        assert_eq!(leases.table, "app");
        assert_eq!(leases.failover_time, Duration::from_secs(10));
        assert!(leases
            .worker_id
            .ends_with(&format!("-{}", std::process::id())));
        let s = parse_map(&[
            ("stream", "s"),
            ("lease_table", "app"),
            ("worker_id", "fb-1"),
            ("failover_time", "3000"),
            ("dynamodb_endpoint", "http://127.0.0.1:8000"),
        ])
        .unwrap();
        let leases = s.leases.expect("leases");
        assert_eq!(
            (
                leases.worker_id.as_str(),
                leases.failover_time,
                leases.endpoint.as_deref()
            ),
            (
                "fb-1",
                Duration::from_secs(3),
                Some("http://127.0.0.1:8000")
            )
        );
        for (pairs, property) in [
            (vec![("worker_id", "w")], "worker_id"),
            (
                vec![("lease_table", "t"), ("checkpoint_file", "/tmp/c")],
                "checkpoint_file",
            ),
            (
                vec![("lease_table", "t"), ("dynamodb_endpoint", "localhost")],
                "dynamodb_endpoint",
            ),
            (
                vec![("lease_table", "t"), ("failover_time", "soon")],
                "failover_time",
            ),
            (vec![("table_name", "t")], "table_name"),
        ] {
            let mut all = vec![("stream", "s")];
            all.extend(pairs);
            assert_eq!(parse_map(&all).unwrap_err().property, property);
        }
    }

    #[test]
    fn bad_values_name_their_property() {
        for (k, v) in [
            ("start", "oldest"),
            ("format", "xml"),
            ("endpoint", "localhost"),
            ("poll_interval", "soon"),
            ("policy", "lenient"),
            ("stream_name", "x"),
        ] {
            let e = parse_map(&[("stream", "s"), (k, v)]).unwrap_err();
            assert_eq!(e.property, k);
        }
        let e = parse_map(&[("stream", "s"), ("start", "at_timestamp")]).unwrap_err();
        assert_eq!(e.property, "start_timestamp");
        let s = parse_map(&[
            ("stream", "s"),
            ("start", "AT_TIMESTAMP"),
            ("start_timestamp", "1700000000.5"),
        ])
        .unwrap();
        assert_eq!(
            s.start,
            StartPosition::AtTimestamp(
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)
            )
        );
    }
}
