//! Integration tests: each starts the real `yizhan` binary on a real port
//! against its own SQLite file and drives it over HTTP or its CLI.

mod util;

mod bad_input;
mod browser;
mod checkin;
mod cli;
mod codes;
mod corpus;
mod counter;
mod devices;
mod durability;
mod fake_printer;
mod fleet;
mod full_disk;
mod fuzz;
mod hostile;
mod lifecycle;
mod platform;
mod powercut;
mod presence;
mod privacy;
mod rabbit;
mod structure;
mod sync;
mod tls;
