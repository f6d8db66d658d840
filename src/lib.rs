//! yizhan: the edge agent of a parcel drop-off station for e-commerce
//! returns. See `SPEC.md` (shared) for the product contract.
//!
//! The binary (`src/main.rs`) only parses the command line and maps errors
//! to exit codes; everything else lives here so tests and benchmarks can
//! drive the real thing.

pub mod api;
pub mod backoff;
pub mod carrier;
pub mod checkin;
pub mod clerk;
pub mod cli;
pub mod clock;
pub mod code;
pub mod config;
pub mod counter;
pub mod custody;
pub mod daemon;
pub mod db;
pub mod decode;
pub mod durable;
pub mod hardware;
pub mod identity;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod notice;
pub mod outbox;
pub mod parcel;
pub mod photo;
pub mod pool;
pub mod print;
pub mod receipt;
pub mod return_no;
pub mod station;
pub mod sync;
pub mod systemd;
pub mod token;
