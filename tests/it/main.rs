//! Integration tests: one binary, a module per area. Every test starts its own
//! servers on 127.0.0.1:0 and touches nothing else.

// Chromium is driven over a pipe pair (Unix file descriptors).
#[cfg(unix)]
mod browser;
mod compare;
mod dataset;
mod dataset_settings;
mod dns;
mod engine;
mod faults;
mod filter;
mod get;
mod http2;
mod layers;
mod logins;
mod names;
mod progress;
mod proxy;
mod queue;
mod recipes;
mod requests;
mod resume;
mod room;
mod scale;
mod serve;
mod socks;
mod split;
mod storage;
mod support;
mod tls;
mod verify;
