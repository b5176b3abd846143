//! heroku-bouncer for Envoy: a proxy-wasm HTTP filter that puts Heroku OAuth in front of
//! any HTTP app.
//!
//! Every request without a valid session goes through Heroku's login. After login the
//! upstream app receives the user's identity in request headers, and allow rules decide who
//! gets in. The modules below [`filter`] are pure and tested on the host; [`filter`] is the
//! thin layer that talks to Envoy.

// Request input must never panic the filter: a panic kills the worker's VM and fails every
// later request on it. Tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod allow;
pub mod config;
pub mod filter;
pub mod gate;
pub mod headers;
pub mod heroku;
pub mod json;
pub mod pages;
pub mod paths;
pub mod refresh;
pub mod request;
#[cfg(feature = "schema")]
pub mod schema;
pub mod seal;
pub mod secret;
pub mod session;
pub mod used_states;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    filter::register();
}}
