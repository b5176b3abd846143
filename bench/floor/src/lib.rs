//! A trivial proxy-wasm HTTP filter: it reads the `cookie` request header and sets one request
//! header. `make bench` runs it as the floor, the least any proxy-wasm filter costs per request
//! on Envoy's V8 runtime (a VM call per callback, one header read, one header write).

// Only the wasm build registers the contexts; a host build (as in `cargo clippy
// --workspace`) compiles them unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream))
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

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}
