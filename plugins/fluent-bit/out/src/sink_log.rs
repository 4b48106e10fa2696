//! The sink's own diagnostics (`tracing` events: a ListShards that keeps failing, a
//! request task that died) in Fluent Bit's log, through the instance's logger. Installed
//! as the default subscriber of the instance's thread only, so that two instances (or a
//! host application with its own subscriber) keep their lines apart.

use std::fmt::Write as _;

use kpl_fluent_bit::abi::Level as FlbLevel;
use kpl_fluent_bit::log::Logger;
use kpl_kinesis::explain::reword_hints;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::settings::SETTING_NAMES;

/// Forwards events at INFO and above (WARN and ERROR as Fluent Bit's warn and error).
pub struct SinkLog {
    log: Logger,
}

impl SinkLog {
    /// A subscriber writing to `log`.
    pub fn new(log: Logger) -> SinkLog {
        SinkLog { log }
    }
}

fn flb_level(level: &Level) -> FlbLevel {
    match *level {
        Level::ERROR => FlbLevel::Error,
        Level::WARN => FlbLevel::Warn,
        Level::INFO => FlbLevel::Info,
        Level::DEBUG => FlbLevel::Debug,
        Level::TRACE => FlbLevel::Trace,
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for SinkLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.log.enabled(flb_level(metadata.level()))
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::from("sink: "));
        event.record(&mut fields);
        let line = reword_hints(&fields.0, &SETTING_NAMES);
        self.log.log(flb_level(event.metadata().level()), &line);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
