//! The fake host and the fake Kinesis the plugin's tests run against.
#![allow(dead_code)]

pub mod host;
pub mod kinesis;
