//! What every kpl Fluent Bit plugin shares.
//!
//! - [`abi`]: the Go proxy ABI as Fluent Bit 5.1.1 lays it out (`#[repr(C)]` structs, return
//!   codes), and [`log`]: Fluent Bit's own logger through it;
//! - [`props`]: property values in Fluent Bit's syntax (booleans, sizes, times);
//! - [`msgpack`]: a zero-copy decoder for the chunks `FLBPluginFlushCtx` receives, and
//!   [`pack`]: the writer of the events an input hands to Fluent Bit;
//! - [`accessor`]: record accessors (`$kubernetes['pod_name']`);
//! - [`json`]: a record as the JSON bytes Fluent Bit's `kinesis_streams` output sends.
//!
//! Nothing here panics on input: every decoder returns an error with the byte offset.
#![deny(missing_docs)]

pub mod abi;
pub mod accessor;
pub mod json;
pub mod log;
pub mod msgpack;
pub mod pack;
pub mod props;
