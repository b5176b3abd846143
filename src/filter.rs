//! The proxy-wasm glue: reads from Envoy, calls the [`Gate`], applies its decision.
//!
//! Nothing here decides anything. Two SDK traps shape the code: a request header read after
//! the request continued panics (so every header is read once, up front), and the
//! `String` header getters panic on non-UTF-8 bytes (so only the `_bytes` getters are used).
//! The request headers are read as raw bytes by `request_header_map`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

use crate::config;
use crate::gate::{
    Event, Forward, Gate, Identity, Outcome, Pending, RandomUnavailable, Reply, Request, RequestSummary, Step, UpstreamCookie,
};
use crate::heroku::{CalloutResponse, MAX_RESPONSE_BYTES};
use crate::request::FieldSlice;
use crate::used_states;

/// Counter names as Envoy shows them in `/stats`.
const COUNTER_NAMES: [&str; 10] = [
    "heroku_bouncer.login_started",
    "heroku_bouncer.login_succeeded",
    "heroku_bouncer.login_failed",
    "heroku_bouncer.login_forbidden",
    "heroku_bouncer.session_invalid",
    "heroku_bouncer.callout_failed",
    "heroku_bouncer.unauthorized",
    "heroku_bouncer.logout",
    "heroku_bouncer.refresh_succeeded",
    "heroku_bouncer.refresh_rejected",
];

/// Counter ids from `define_metric`, in the order of [`COUNTER_NAMES`].
#[derive(Debug, Default)]
struct Counters {
    ids: Vec<u32>,
}

impl Counters {
    fn define() -> Self {
        let ids = COUNTER_NAMES
            .iter()
            .filter_map(|name| match hostcalls::define_metric(MetricType::Counter, name) {
                Ok(id) => Some(id),
                Err(status) => {
                    warn!("could not define counter {name}: {status:?}");
                    None
                }
            })
            .collect();
        Counters { ids }
    }

    fn increment(&self, index: usize) {
        if let Some(id) = self.ids.get(index) {
            if let Err(status) = hostcalls::increment_metric(*id, 1) {
                warn!("could not increment counter {index}: {status:?}");
            }
        }
    }

    /// Counts and logs one event. Log lines carry emails and reasons, never tokens.
    fn record(&self, event: &Event, context_id: u32) {
        match event {
            Event::LoginStarted => self.increment(0),
            Event::LoginSucceeded { email } => {
                self.increment(1);
                info!("[{context_id}] login succeeded for {email}");
            }
            Event::LoginFailed { reason } => {
                self.increment(2);
                warn!("[{context_id}] login failed: {reason}");
            }
            Event::LoginForbidden { email } => {
                self.increment(3);
                info!("[{context_id}] login forbidden for {email}: not in the allow rule");
            }
            // Debug, not info: any client can send a broken cookie on every request, and the
            // counter already shows the rate.
            Event::SessionInvalid { reason } => {
                self.increment(4);
                debug!("[{context_id}] {reason}; treating the request as not logged in");
            }
            Event::CalloutFailed { endpoint, reason, during_login } => {
                self.increment(5);
                if *during_login {
                    self.increment(2);
                    warn!("[{context_id}] login failed: Heroku {endpoint} request failed: {reason}");
                } else {
                    warn!("[{context_id}] token refresh failed: Heroku {endpoint} request failed: {reason}");
                }
            }
            Event::Unauthorized => self.increment(6),
            Event::LoggedOut => self.increment(7),
            Event::RefreshSucceeded { email } => {
                self.increment(8);
                info!("[{context_id}] token refreshed for {email}");
            }
            Event::RefreshRejected { email, reason } => {
                self.increment(9);
                info!("[{context_id}] session of {email} ended: {reason}");
            }
            Event::TeamsScopeMissing { scope } => {
                warn!(
                    "[{context_id}] Heroku refused to list the user's teams (403): the OAuth scope {scope:?} \
                     cannot read teams, so allow.teams admits nobody; add \"read\" or \"global\" to scope"
                );
            }
        }
    }
}

/// Registers the root context. Called from `proxy_wasm::main!` in `lib.rs`.
pub fn register() {
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}

/// How often each worker VM refreshes the clock that requests read. Session age and token
/// expiry are counted in whole seconds, and a reading at most this old decides them within a
/// tenth of a second. Ten ticks a second cost far less than a clock read on every request.
const CLOCK_TICK: Duration = Duration::from_millis(100);

/// Holds the checked configuration for one VM; `on_configure` runs once per worker VM.
#[derive(Default)]
struct Root {
    gate: Option<Rc<Gate>>,
    counters: Rc<Counters>,
    /// The current time in Unix seconds, refreshed on every tick, so that a request needs no
    /// host call to read the clock. `None` when Envoy refused the tick period: then every
    /// request reads the host clock.
    clock: Option<Rc<Cell<u64>>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        if self.counters.ids.is_empty() {
            self.counters = Rc::new(Counters::define());
        }
        self.start_clock();
        let json = self.get_plugin_configuration().unwrap_or_default();
        match config::parse(&json, &|name| std::env::var(name).ok()) {
            Ok(config) => {
                info!(
                    "heroku-bouncer configured: client {}, callback {}, cookie {}",
                    config.client_id, config.callback_path, config.cookie_name
                );
                self.gate = Some(Rc::new(Gate::new(config)));
                true
            }
            Err(problem) => {
                // Returning false makes Envoy reject the plugin, so nothing ever fails open.
                let message = format!("heroku-bouncer failed to start: {problem}");
                if hostcalls::log(LogLevel::Critical, &message).is_err() {
                    error!("{message}");
                }
                self.gate = None;
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(clock) = &self.clock {
            clock.set(unix_seconds(self.get_current_time()));
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn proxy_wasm::traits::HttpContext>> {
        let gate = self.gate.clone()?;
        Some(Box::new(Stream {
            context_id,
            gate,
            counters: Rc::clone(&self.counters),
            clock: self.clock.clone(),
            pending: None,
            request_headers: Vec::new(),
            response_cookies: Vec::new(),
            replied: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    /// Reads the host clock and sets a tick period of [`CLOCK_TICK`], whose ticks keep the
    /// VM's clock current.
    fn start_clock(&mut self) {
        let now = unix_seconds(self.get_current_time());
        if let Some(clock) = &self.clock {
            clock.set(now);
            return;
        }
        match hostcalls::set_tick_period(CLOCK_TICK) {
            Ok(()) => self.clock = Some(Rc::new(Cell::new(now))),
            Err(status) => warn!("could not set a tick period ({status:?}); every request reads the host clock"),
        }
    }
}

/// Converts a host time to Unix seconds; a time before 1970 reads as 0.
fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0)
}

/// One HTTP request.
struct Stream {
    context_id: u32,
    gate: Rc<Gate>,
    counters: Rc<Counters>,
    /// The VM's clock from [`Root`], read for the request headers.
    clock: Option<Rc<Cell<u64>>>,
    /// Boxed, because a stream that never calls Heroku should not carry its size.
    pending: Option<Box<Pending>>,
    /// The request headers as first read, kept while a callout is pending: once the request
    /// continues, Envoy no longer gives them out.
    request_headers: Vec<(String, Vec<u8>)>,
    /// `Set-Cookie` values to add to the upstream response.
    response_cookies: Vec<String>,
    /// Set once a local reply is queued; Envoy hangs the client if a stream gets two.
    replied: bool,
}

/// Reads randomness through WASI `random_get`, which Envoy serves from BoringSSL.
struct HostRandom;

impl crate::gate::Random for HostRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        getrandom::fill(buf).map_err(|_| RandomUnavailable)
    }
}

impl Stream {
    /// Reads the host clock, for the rare steps of a login or refresh.
    fn now(&self) -> u64 {
        unix_seconds(self.get_current_time())
    }

    /// Returns the VM's clock, refreshed every [`CLOCK_TICK`], so that the authenticated path
    /// makes no host call for the time.
    fn request_time(&self) -> u64 {
        match &self.clock {
            Some(clock) => clock.get(),
            None => self.now(),
        }
    }

    /// Applies a decision. Returns the action for a headers callback; in a callout
    /// callback the glue resumes or has replied, and the action is ignored.
    fn apply(&mut self, outcome: Outcome) -> Action {
        if !outcome.events.is_empty() {
            self.record(&outcome.events);
        }
        match outcome.step {
            Step::Forward(forward) => self.pass(forward),
            step => self.apply_rare(step),
        }
    }

    /// Lets the request go on with the header edits of `forward`.
    fn pass(&mut self, forward: Forward) -> Action {
        self.edit_request(&forward);
        self.response_cookies = forward.response_cookies;
        Action::Continue
    }

    #[cold]
    #[inline(never)]
    fn record(&self, events: &[Event]) {
        for event in events {
            self.counters.record(event, self.context_id);
        }
    }

    /// Applies a reply or a callout, which only logins, logouts and refreshes need.
    #[cold]
    #[inline(never)]
    fn apply_rare(&mut self, step: Step) -> Action {
        match step {
            Step::Forward(forward) => self.pass(forward),
            Step::Reply(reply) => {
                self.reply(&reply);
                Action::Pause
            }
            Step::Callout(callout, pending) => {
                if let Some(digest) = pending.login_state_digest() {
                    if !self.claim_state(digest) {
                        let outcome = self.gate.on_callback_replayed(pending);
                        return self.apply(outcome);
                    }
                }
                let headers: Vec<(&str, &str)> =
                    callout.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
                let sent = self.dispatch_http_call(
                    &callout.cluster,
                    headers,
                    callout.body.as_deref(),
                    vec![],
                    callout.timeout,
                );
                match sent {
                    Ok(_token) => {
                        self.pending = Some(Box::new(pending));
                        Action::Pause
                    }
                    Err(status) => {
                        let reason = format!("{status:?} for cluster {}", callout.cluster);
                        let now = self.now();
                        let headers = std::mem::take(&mut self.request_headers);
                        let outcome = self.gate.on_callout_not_sent(pending, &reason, &Request { headers: &headers }, now);
                        self.request_headers = headers;
                        self.apply(outcome)
                    }
                }
            }
        }
    }

    /// Records a callback's `state` as used in the shared data that all workers see.
    /// Returns false when it was used before. If the shared data cannot be written, the
    /// login goes on: Heroku's single-use codes still stop a replay.
    fn claim_state(&self, digest: &used_states::StateDigest) -> bool {
        let key = used_states::slot_key(digest);
        let now = self.now();
        for _ in 0..2 {
            let (slot, cas) = match hostcalls::get_shared_data(&key) {
                Ok(found) => found,
                Err(status) => {
                    warn!("[{}] could not read used login states: {status:?}", self.context_id);
                    return true;
                }
            };
            if used_states::was_used(slot.as_deref(), digest, now) {
                return false;
            }
            let value = used_states::mark_used(digest, now);
            match self.set_shared_data(&key, Some(&value), cas) {
                Ok(()) => return true,
                // Another worker wrote the slot meanwhile: read it again.
                Err(Status::CasMismatch) => continue,
                Err(status) => {
                    warn!("[{}] could not record a used login state: {status:?}", self.context_id);
                    return true;
                }
            }
        }
        true
    }

    fn edit_request(&self, forward: &Forward) {
        for name in &forward.remove {
            self.remove_http_request_header(name);
        }
        self.set_request_headers(&forward.set, &forward.cookie);
    }

    /// Adds the identity headers and replaces the `cookie` header. In Envoy 1.40 an add costs
    /// about 200 instructions less than a replace. Adding is safe because no identity header
    /// is left by now: the known-session path takes only requests that sent none, and every
    /// other path removes the ones sent.
    fn set_request_headers(&self, identity: &Identity, cookie: &UpstreamCookie) {
        for (name, value) in identity.iter() {
            self.add_http_request_header(name, value);
        }
        if let Some(cookie) = cookie {
            self.set_http_request_header_bytes("cookie", cookie.as_deref());
        }
    }

    fn reply(&mut self, reply: &Reply) {
        if self.replied {
            return;
        }
        self.replied = true;
        let headers: Vec<(&str, &str)> =
            reply.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        self.send_http_response(reply.status, headers, Some(&reply.body));
    }
}

impl Context for Stream {
    fn on_http_call_response(&mut self, _token_id: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let response = if num_headers == 0 {
            CalloutResponse::default()
        } else {
            let headers = self.get_http_call_response_headers_bytes();
            let text = |name: &str| {
                headers
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            };
            let status = text(":status").and_then(|status| status.trim().parse::<u16>().ok());
            let body = if body_size > MAX_RESPONSE_BYTES {
                None
            } else {
                self.get_http_call_response_body(0, body_size)
            };
            let content_type = text("content-type");
            let next_range = text("next-range");
            match body {
                Some(body) => CalloutResponse { status, content_type, next_range, body },
                // An empty body comes back as `None`. An oversized one is treated as no response.
                None if body_size == 0 => CalloutResponse { status, content_type, next_range, body: vec![] },
                None => CalloutResponse::default(),
            }
        };

        let now = self.now();
        let headers = std::mem::take(&mut self.request_headers);
        let request = Request { headers: &headers };
        let outcome = self.gate.on_callout_response(*pending, &response, &request, now, &mut HostRandom);
        self.request_headers = headers;
        // A refreshed request goes on. Its header edits are made before it resumes, because
        // Envoy gives out the request headers only until then.
        if let Action::Continue = self.apply(outcome) {
            self.resume_http_request();
        }
        if self.pending.is_none() {
            self.request_headers = Vec::new();
        }
    }
}

// The Makefile keeps only the callback exports in its BOUNCER_EXPORTS, so a callback added
// here or to the root context must be listed there too, or Envoy never calls it.
impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let serialized = request_header_map::read();
        let now = self.request_time();

        // A browser with a known session takes the short way: one pass over the headers and
        // no decision to build.
        let mut summary = RequestSummary::default();
        for (name, value) in request_header_map::Fields::new(&serialized) {
            self.gate.note_field(&mut summary, name, value);
        }
        if let Some((identity, cookie)) = self.gate.pass_known_session(&summary, now) {
            self.set_request_headers(&identity, &cookie);
            return Action::Continue;
        }

        // The fields usually fit on the stack, which saves an allocation on every request.
        let mut on_stack = [(&[][..], &[][..]); request_header_map::STACK_FIELDS];
        let on_heap;
        let fields = match request_header_map::fields_into(&serialized, &mut on_stack) {
            Some(fields) => fields,
            None => {
                on_heap = request_header_map::fields(&serialized);
                &on_heap[..]
            }
        };
        let outcome = self.gate.on_request(&Request { headers: &FieldSlice(fields) }, now, &mut HostRandom);
        if let Step::Callout(..) = outcome.step {
            self.request_headers = fields
                .iter()
                .map(|(name, value)| (String::from_utf8_lossy(name).into_owned(), value.to_vec()))
                .collect();
        }
        self.apply(outcome)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Added, not set, so the app's own `Set-Cookie` headers stay.
        for cookie in std::mem::take(&mut self.response_cookies) {
            self.add_http_response_header("set-cookie", &cookie);
        }
        Action::Continue
    }
}

/// Reads the request headers in one host call and borrows every field from the returned
/// buffer. The SDK's `get_http_request_headers_bytes` copies each name and value into its own
/// allocation, two per field on every request; this saves those allocations.
mod request_header_map {
    use std::ptr::null_mut;

    use proxy_wasm::types::{MapType, Status};

    // The same import that the SDK's `get_map_bytes` calls.
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(map_type: MapType, return_data: *mut *mut u8, return_size: *mut usize) -> Status;
    }

    /// Returns the request header map as the host serializes it, or an empty buffer when the
    /// host has none to give (for example after the request went on).
    pub fn read() -> Vec<u8> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer and a size into the two out-parameters. The
        // pointer comes from the SDK's `proxy_on_memory_allocate`, a leaked `Box<[u8]>` of
        // exactly `size` bytes, so it is owned here and is rebuilt as a `Vec` with that
        // length and capacity, as the SDK's own `get_map_bytes` does.
        unsafe {
            match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
                Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
                _ => Vec::new(),
            }
        }
    }

    /// Header fields that [`fields_into`] takes on the stack. Requests from browsers and
    /// load generators carry 8 to 20 fields once Envoy has added its own.
    pub const STACK_FIELDS: usize = 32;

    /// Splits a serialized header map like [`fields`], into `storage`. Returns the filled part,
    /// or `None` when the map has more fields than `storage` holds.
    pub fn fields_into<'a, 's>(serialized: &'a [u8], storage: &'s mut [(&'a [u8], &'a [u8])]) -> Option<&'s [(&'a [u8], &'a [u8])]> {
        let count = serialized.get(..4)?.try_into().ok().map(u32::from_le_bytes)? as usize;
        if count > storage.len() {
            return None;
        }
        let mut filled = 0;
        for (slot, field) in storage.iter_mut().zip(Fields::new(serialized)) {
            *slot = field;
            filled += 1;
        }
        storage.get(..filled)
    }

    /// Splits a serialized header map into (name, value) pairs that borrow from it. The
    /// format is a little-endian `u32` count, then a `u32` name length and a `u32` value
    /// length per field, then each name and value followed by a NUL byte. Envoy writes this
    /// buffer itself; a malformed one yields only the fields before the fault, never a panic.
    pub fn fields(serialized: &[u8]) -> Vec<(&[u8], &[u8])> {
        Fields::new(serialized).collect()
    }

    /// Iterates over the fields of a serialized header map, stopping at the first fault.
    pub struct Fields<'a> {
        serialized: &'a [u8],
        count: usize,
        index: usize,
        /// Offset of the next name.
        data: usize,
    }

    impl<'a> Fields<'a> {
        pub fn new(serialized: &'a [u8]) -> Self {
            let count = read_u32(serialized, 0).unwrap_or(0);
            // A count too large for the buffer yields nothing: the first size read fails.
            let data = count.checked_mul(8).and_then(|sizes| sizes.checked_add(4)).unwrap_or(usize::MAX);
            Fields { serialized, count, index: 0, data }
        }
    }

    impl<'a> Iterator for Fields<'a> {
        type Item = (&'a [u8], &'a [u8]);

        fn next(&mut self) -> Option<Self::Item> {
            if self.index >= self.count {
                return None;
            }
            let sizes = self.index.checked_mul(8)?.checked_add(4)?;
            let name_size = read_u32(self.serialized, sizes)?;
            let value_size = read_u32(self.serialized, sizes.checked_add(4)?)?;
            let name = take(self.serialized, &mut self.data, name_size)?;
            let value = take(self.serialized, &mut self.data, value_size)?;
            self.index += 1;
            Some((name, value))
        }
    }

    fn read_u32(serialized: &[u8], at: usize) -> Option<usize> {
        let bytes = serialized.get(at..at.checked_add(4)?)?;
        bytes.try_into().ok().map(u32::from_le_bytes).map(|value| value as usize)
    }

    /// Returns `size` bytes at `*at` and moves `*at` past them and their NUL terminator.
    fn take<'a>(serialized: &'a [u8], at: &mut usize, size: usize) -> Option<&'a [u8]> {
        let end = at.checked_add(size)?;
        let bytes = serialized.get(*at..end)?;
        *at = end.checked_add(1)?;
        Some(bytes)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn serialize(fields: &[(&str, &str)]) -> Vec<u8> {
            let mut bytes = (fields.len() as u32).to_le_bytes().to_vec();
            for (name, value) in fields {
                bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
            }
            for (name, value) in fields {
                bytes.extend_from_slice(name.as_bytes());
                bytes.push(0);
                bytes.extend_from_slice(value.as_bytes());
                bytes.push(0);
            }
            bytes
        }

        #[test]
        fn serialized_map_is_split_into_fields() {
            let bytes = serialize(&[(":path", "/a"), ("cookie", "a=1; b=2"), ("x-empty", "")]);
            let expected: Vec<(&[u8], &[u8])> =
                vec![(b":path", b"/a"), (b"cookie", b"a=1; b=2"), (b"x-empty", b"")];
            assert_eq!(fields(&bytes), expected);
        }

        #[test]
        fn fields_fill_stack_storage() {
            let bytes = serialize(&[(":path", "/a"), ("cookie", "a=1")]);
            let mut storage = [(&[][..], &[][..]); 2];
            let expected: Vec<(&[u8], &[u8])> = vec![(b":path", b"/a"), (b"cookie", b"a=1")];
            assert_eq!(fields_into(&bytes, &mut storage).map(<[_]>::to_vec), Some(expected));

            let mut too_small = [(&[][..], &[][..]); 1];
            assert_eq!(fields_into(&bytes, &mut too_small), None, "a map larger than the storage is not cut");
            assert_eq!(fields_into(&bytes[..bytes.len() - 3], &mut storage).map(<[_]>::len), Some(1));
        }

        #[test]
        fn malformed_map_keeps_complete_fields() {
            let bytes = serialize(&[(":path", "/a"), ("cookie", "a=1")]);
            let cut = &bytes[..bytes.len() - 3];
            let expected: Vec<(&[u8], &[u8])> = vec![(b":path", b"/a")];
            assert_eq!(fields(cut), expected);
            assert!(fields(&[]).is_empty());
            assert!(fields(&[0xff, 0xff, 0xff, 0xff]).is_empty());
        }
    }
}
