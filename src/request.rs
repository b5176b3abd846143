//! The request as the gate reads it: headers as bytes, and what they show about the client.

/// Maximum length of the original path (with query) kept as the place to return to after
/// login. A longer one is dropped, not truncated, because a cut path can mean something else.
pub const MAX_RETURN_PATH_BYTES: usize = 2048;

/// Read access to request header fields, whichever way they are stored. Tests and pending
/// callouts keep owned fields. On every request, the filter borrows them from the buffer the
/// host returned, so that no field is copied into an allocation of its own.
pub trait HeaderFields: std::fmt::Debug {
    /// Returns the number of fields.
    fn count(&self) -> usize;
    /// Returns the name and value of the field at `index`.
    fn field(&self, index: usize) -> Option<(&[u8], &[u8])>;
    /// Returns the fields as one slice when they are stored that way, so that a scan over
    /// them makes one dynamic call instead of one per field.
    fn as_pairs(&self) -> Option<&[(&[u8], &[u8])]> {
        None
    }
}

impl HeaderFields for Vec<(String, Vec<u8>)> {
    fn count(&self) -> usize {
        self.len()
    }

    fn field(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.get(index).map(|(name, value)| (name.as_bytes(), value.as_slice()))
    }
}

impl HeaderFields for Vec<(&[u8], &[u8])> {
    fn count(&self) -> usize {
        self.len()
    }

    fn field(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.get(index).copied()
    }

    fn as_pairs(&self) -> Option<&[(&[u8], &[u8])]> {
        Some(self)
    }
}

/// Returns the path of a `:path` value: the part before its query or fragment.
pub(crate) fn path_of(path_and_query: &[u8]) -> &[u8] {
    let end = path_and_query.iter().position(|byte| *byte == b'?' || *byte == b'#').unwrap_or(path_and_query.len());
    path_and_query.get(..end).unwrap_or_default()
}

/// The parts of a request that [`Gate::pass_known_session`](crate::gate::Gate::pass_known_session)
/// reads, gathered in one pass over its header fields by [`Gate::note_field`](crate::gate::Gate::note_field).
#[derive(Clone, Copy, Default)]
pub struct RequestSummary<'a> {
    /// The `:path` pseudo-header, with its query.
    pub path_and_query: &'a [u8],
    /// The value of the last `cookie` header.
    pub cookie: Option<&'a [u8]>,
    /// Number of `cookie` headers.
    pub cookie_headers: usize,
    /// True when a header name spells an identity header, which only the full decision removes.
    pub identity_sent: bool,
}

impl std::fmt::Debug for RequestSummary<'_> {
    /// Shows the cookie header's length only: it carries the sealed session, a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSummary")
            .field("path_and_query", &String::from_utf8_lossy(self.path_and_query))
            .field("cookie_bytes", &self.cookie.map(<[u8]>::len))
            .field("cookie_headers", &self.cookie_headers)
            .field("identity_sent", &self.identity_sent)
            .finish()
    }
}

/// Header fields borrowed as one slice of (name, value) pairs.
pub struct FieldSlice<'a>(pub &'a [(&'a [u8], &'a [u8])]);

impl std::fmt::Debug for FieldSlice<'_> {
    /// Shows header names only: values include session cookies and bearer tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| String::from_utf8_lossy(name))).finish()
    }
}

impl HeaderFields for FieldSlice<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn field(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.0.get(index).copied()
    }

    fn as_pairs(&self) -> Option<&[(&[u8], &[u8])]> {
        Some(self.0)
    }
}

/// The parts of a request the gate reads. Header names are lowercase, as Envoy gives them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub headers: &'a dyn HeaderFields,
}

impl<'a> Request<'a> {
    /// Iterates over the header fields as (name, value) pairs.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let headers = self.headers;
        let pairs = headers.as_pairs();
        let indexed = if pairs.is_some() { 0 } else { headers.count() };
        let from_pairs = pairs.into_iter().flatten().copied();
        from_pairs.chain((0..indexed).filter_map(move |index| headers.field(index)))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.fields().find(|(key, _)| *key == name.as_bytes()).map(|(_, value)| value)
    }

    pub(crate) fn method(&self) -> &'a [u8] {
        self.header(":method").unwrap_or_default()
    }

    /// Returns the `:path` pseudo-header: the path with its query.
    pub(crate) fn path_and_query(&self) -> &'a [u8] {
        self.header(":path").unwrap_or_default()
    }

    pub(crate) fn path(&self) -> &'a [u8] {
        path_of(self.path_and_query())
    }

    pub(crate) fn query(&self) -> &'a [u8] {
        let full = self.path_and_query();
        match full.iter().position(|byte| *byte == b'?') {
            Some(at) => {
                let rest = full.get(at + 1..).unwrap_or_default();
                let end = rest.iter().position(|byte| *byte == b'#').unwrap_or(rest.len());
                rest.get(..end).unwrap_or_default()
            }
            None => &[],
        }
    }

    /// True when Envoy received the request over https (`:scheme`, which Envoy derives from
    /// the connection or a trusted `x-forwarded-proto`).
    pub(crate) fn is_https(&self) -> bool {
        self.header(":scheme").is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"https"))
    }

    pub(crate) fn cookie_headers(&self) -> Vec<&'a [u8]> {
        self.cookie_header_values().collect()
    }

    /// Iterates over the values of the `cookie` headers, without collecting them.
    pub(crate) fn cookie_header_values(&self) -> impl Iterator<Item = &'a [u8]> {
        self.fields().filter(|(name, _)| *name == b"cookie").map(|(_, value)| value)
    }

    /// Decides whether the client is a program that cannot follow a login redirect: any
    /// method but GET and HEAD, an XHR, a fetch that is not a navigation, or an `Accept`
    /// that wants JSON and not HTML.
    pub(crate) fn is_api_client(&self) -> bool {
        let method = self.method();
        if method != b"GET" && method != b"HEAD" {
            return true;
        }
        if self.header("x-requested-with").is_some_and(|value| value.eq_ignore_ascii_case(b"XMLHttpRequest")) {
            return true;
        }
        if self.header("sec-fetch-mode").is_some_and(|mode| !mode.eq_ignore_ascii_case(b"navigate")) {
            return true;
        }
        self.header("accept").is_some_and(wants_json_not_html)
    }
}

/// Reads an `Accept` value: true when some media range names JSON and none names HTML.
/// Ranges with `q=0` are refusals and do not count.
fn wants_json_not_html(accept: &[u8]) -> bool {
    let text = String::from_utf8_lossy(accept).to_ascii_lowercase();
    let mut json = false;
    let mut html = false;
    for range in text.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let refused = parts.any(|param| {
            let param = param.trim();
            param.strip_prefix("q=").is_some_and(|q| is_zero_or_less(q.trim()))
        });
        if refused {
            continue;
        }
        json |= media == "application/json" || media.ends_with("+json");
        html |= media == "text/html" || media == "application/xhtml+xml";
    }
    json && !html
}

/// Returns true when `number` is a decimal number (optional sign, digits with an optional
/// fraction, optional exponent, or an infinity) whose value is zero or less, as a refusing
/// `q=0`, `q=0.000` or `q=-1` is. Anything that is not such a number returns false.
///
/// A small parser instead of `str::parse::<f32>`, whose tables add about 18 KB to the module.
/// Unlike an `f32`, a tiny positive value such as `1e-50` counts as positive, not as 0.
fn is_zero_or_less(number: &str) -> bool {
    let (negative, unsigned) = match number.as_bytes().first() {
        Some(b'-') => (true, number.get(1..).unwrap_or_default()),
        Some(b'+') => (false, number.get(1..).unwrap_or_default()),
        _ => (false, number),
    };
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return negative;
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (unsigned.get(..at).unwrap_or_default(), unsigned.get(at + 1..)),
        None => (unsigned, None),
    };
    let exponent_valid = exponent.is_none_or(|exponent| {
        let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())
    });
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mantissa_valid = !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().chain(fraction.bytes()).all(|byte| byte.is_ascii_digit());
    if !(exponent_valid && mantissa_valid) {
        return false;
    }
    negative || whole.bytes().chain(fraction.bytes()).all(|byte| byte == b'0')
}

/// Returns `path_and_query` when a browser can only resolve it to this origin, else `/`.
///
/// It must start with one `/`: `//host` and `/\host` are read by browsers as another host.
/// Only visible ASCII is kept, because control characters and spaces can change how a
/// browser parses a `Location` header.
pub fn safe_return_path(path_and_query: &[u8]) -> String {
    let plain = path_and_query.len() <= MAX_RETURN_PATH_BYTES
        && path_and_query.first() == Some(&b'/')
        && !matches!(path_and_query.get(1), Some(b'/' | b'\\'))
        && path_and_query.iter().all(|byte| byte.is_ascii_graphic() && *byte != b'\\');
    match (plain, std::str::from_utf8(path_and_query)) {
        (true, Ok(text)) => text.to_string(),
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_qvalues_are_refusals() {
        for zero in ["0", "0.", "0.000", ".0", "+0", "-0", "-1", "0e5", "0.0E-3", "-inf", "-Infinity"] {
            assert!(is_zero_or_less(zero), "{zero}");
        }
        for other in ["1", "0.001", "0.5", "1e-50", "inf", "", ".", "-", "q", "0x0", "nan", "0e", "1.2.3", " 0"] {
            assert!(!is_zero_or_less(other), "{other:?}");
        }
    }

    #[test]
    fn refused_json_does_not_count() {
        assert!(!wants_json_not_html(b"application/json;q=0, text/plain"));
        assert!(wants_json_not_html(b"application/json;q=0.1"));
        assert!(!wants_json_not_html(b"application/json, text/html;q=0.9"));
        assert!(wants_json_not_html(b"application/json, text/html;q=0"));
    }
}
