//! A local stand-in for Heroku's identity service (id.heroku.com) and the
//! parts of its Platform API (api.heroku.com) that a login gate calls, plus a
//! small upstream app that echoes what it receives.
//!
//! Both run on plain HTTP over loopback and need no network. Tests start a
//! [`Standin`], point the code under test at [`Standin::base_url`], and read
//! back what it received with [`Standin::requests`]. [`Standin::set_fault`]
//! makes an endpoint slow or broken on purpose.
//!
//! ```no_run
//! use heroku_standin::{Config, Standin};
//!
//! let standin = Standin::start(Config::default()).unwrap();
//! let authorize = format!(
//!     "{}/oauth/authorize?client_id=standin-client-id&response_type=code",
//!     standin.base_url()
//! );
//! // GET `authorize`: the reply is a 302 to the registered redirect URI
//! // with a one-time `code`, which `POST /oauth/token` exchanges.
//! # let _ = authorize;
//! ```
//!
//! Wire behaviour follows Heroku's: errors are `{"id","message"}` objects,
//! never RFC 6749 `{"error"}` objects. The token endpoint reads its parameters
//! from the form body or the query string and ignores `client_id`, and the
//! API requires `Accept: application/vnd.heroku+json; version=3` and
//! `Authorization: Bearer <token>` exactly.

mod config;
mod demo_app;
mod faults;
mod http;
mod oauth;
mod pages;
mod platform;
mod range;
mod server;
mod state;

pub use config::{parse_users_json, Approval, Client, Config, User};
pub use demo_app::{DemoApp, APP_SET_COOKIE, SETS_COOKIE_PATH};
pub use server::{Endpoint, Fault, RecordedRequest, Standin};
