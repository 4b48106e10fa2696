//! Kinesis on top of [`kpl_codec`]: a sink that aggregates like Java KPL, but never loses a
//! record or lets KCL drop one after a reshard ([`sink`]).
#![deny(missing_docs)]

pub mod sink;
