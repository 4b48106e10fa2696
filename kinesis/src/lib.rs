//! Kinesis on top of [`kpl_codec`]: a sink that aggregates like Java KPL, but never loses a
//! record or lets KCL drop one after a reshard ([`sink`]), and a source that reads user
//! records back as KCL hands them over, with checkpoints ([`source`]).
#![deny(missing_docs)]

#[cfg(feature = "driver")]
mod aws;
#[cfg(feature = "driver")]
pub mod check;
pub mod explain;

#[cfg(feature = "lambda")]
pub mod lambda;
pub mod sink;
pub mod source;

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
