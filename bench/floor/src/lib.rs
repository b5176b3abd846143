//! A trivial proxy-wasm HTTP filter: it reads the `cookie` request header and sets one request
//! header. `make bench` runs it as the floor, the least any proxy-wasm filter costs per request
//! on Envoy's V8 runtime. Envoy calls into the VM four times per request: to create the
//! context, with the request headers, to allocate the copy of the `cookie` value, and to
//! delete the context. The Makefile removes the SDK's other callback exports, as it does for
//! heroku-bouncer.
//!
//! With the plugin configuration `"four-writes"`, it makes the same four request header writes
//! as heroku-bouncer on the authenticated path instead: three identity headers and a new
//! `cookie` header. The bench reports it beside the floor, to show what those writes cost on
//! their own.

// Only the wasm build registers the contexts; a host build (as in `cargo clippy
// --workspace`) compiles them unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

/// The plugin configuration that selects [`FourWrites`].
const FOUR_WRITES: &[u8] = b"four-writes";

#[derive(Default)]
struct Root {
    four_writes: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.four_writes = self.get_plugin_configuration().is_some_and(|configuration| configuration == FOUR_WRITES);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Both streams are zero-sized, so neither costs an allocation.
        if self.four_writes {
            Some(Box::new(FourWrites))
        } else {
            Some(Box::new(Stream))
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream;

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let has_cookie = self.get_http_request_header_bytes("cookie").is_some_and(|value| !value.is_empty());
        self.set_http_request_header("x-floor-cookie", Some(if has_cookie { "1" } else { "0" }));
        Action::Continue
    }
}

/// Makes heroku-bouncer's writes for the bench's user, with values of the same lengths: it
/// adds the three identity headers and replaces the `cookie` header.
struct FourWrites;

impl Context for FourWrites {}

impl HttpContext for FourWrites {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let has_cookie = self.get_http_request_header_bytes("cookie").is_some_and(|value| !value.is_empty());
        self.add_http_request_header("x-heroku-user-email", "ada@example.com");
        self.add_http_request_header("x-heroku-user-id", "6a4dbed3-6f0a-5d0e-9c55-0c3b0d9a8f2e");
        self.add_http_request_header("x-heroku-user-name", "Ada Lovelace");
        self.set_http_request_header("cookie", Some(if has_cookie { "app_pref=dark" } else { "" }));
        Action::Continue
    }
}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}
