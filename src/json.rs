//! JSON parsing through `miniserde` into a tree that keeps object members in document
//! order, and writing of flat objects.
//!
//! The filter reads JSON in three places (the plugin configuration, Heroku's responses and
//! the sealed cookies) and decodes each tree by hand. One small parser shared by all of them
//! keeps the wasm module small, where serde would add decoding code for every type.

use std::cell::RefCell;
use std::fmt;
use std::mem;

use miniserde::de::{self, Visitor};

/// The deepest nesting of arrays and objects accepted, the same limit as serde_json's. It
/// also bounds the recursion when a tree is dropped.
pub const MAX_DEPTH: usize = 128;

/// A parsed JSON value.
#[derive(Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A non-negative integer that fits in a `u64`.
    Unsigned(u64),
    /// Any other number: negative, fractional, or too large for a `u64`. The filter reads no
    /// such number, so its value is not kept.
    OtherNumber,
    String(String),
    Array(Vec<Json>),
    /// Members in document order, repeated keys included.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Returns the members of an object, or `None` for any other value.
    pub fn into_object(self) -> Option<Vec<(String, Json)>> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    /// Returns the JSON type with an article, for error messages ("a string", "an array").
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Unsigned(_) | Json::OtherNumber => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl fmt::Debug for Json {
    /// Shows the type only, because a tree may contain tokens and secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// A step on the way from the top-level value to a nested one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Input that is not one well-formed JSON value, nested at most [`MAX_DEPTH`] deep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The keys and indexes of the value being read where parsing stopped, outermost first.
    /// Empty when parsing stopped at the top level or after the top-level value.
    pub path: Vec<PathSegment>,
}

/// Parses `text` as exactly one JSON value, with optional whitespace around it.
pub fn parse(text: &[u8]) -> Result<Json, SyntaxError> {
    let Ok(text) = std::str::from_utf8(text) else {
        return Err(SyntaxError { path: Vec::new() });
    };
    UNFINISHED.with(|unfinished| unfinished.borrow_mut().clear());
    let parsed: Result<Slot, _> = miniserde::json::from_str(text);
    match parsed.ok().and_then(|root| root.value) {
        Some(value) => Ok(value),
        None => {
            let mut path = UNFINISHED.with(|unfinished| mem::take(&mut *unfinished.borrow_mut()));
            path.reverse();
            Err(SyntaxError { path })
        }
    }
}

/// A key that appears more than once in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatedKey;

/// Removes the member `key` from `members` and returns its value, or `None` when there is
/// no such member.
pub fn take_member(members: &mut Vec<(String, Json)>, key: &str) -> Result<Option<Json>, RepeatedKey> {
    let Some(position) = members.iter().position(|(name, _)| name == key) else {
        return Ok(None);
    };
    let (_, value) = members.remove(position);
    if members.iter().skip(position).any(|(name, _)| name == key) {
        return Err(RepeatedKey);
    }
    Ok(Some(value))
}

/// A member that appears more than once or has an unexpected type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidMember;

impl From<RepeatedKey> for InvalidMember {
    fn from(_: RepeatedKey) -> Self {
        InvalidMember
    }
}

/// Takes an optional string member, where null counts as absent.
pub fn take_string(members: &mut Vec<(String, Json)>, key: &str) -> Result<Option<String>, InvalidMember> {
    match take_member(members, key)? {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) => Ok(Some(text)),
        Some(_) => Err(InvalidMember),
    }
}

/// Takes an optional non-negative integer member, where null counts as absent.
pub fn take_unsigned(members: &mut Vec<(String, Json)>, key: &str) -> Result<Option<u64>, InvalidMember> {
    match take_member(members, key)? {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Unsigned(number)) => Ok(Some(number)),
        Some(_) => Err(InvalidMember),
    }
}

/// A member value to write with [`write_object`].
#[derive(Clone, Copy)]
pub enum Field<'a> {
    Str(&'a str),
    Unsigned(u64),
}

/// Writes a JSON object with `members` in order, leaving out those whose value is `None`.
///
/// The output is byte for byte what serde_json writes for the same members, so sealed
/// cookies keep their format. miniserde's writer would bring its float formatting along,
/// which measured about 10 KB of the wasm module, for numbers the filter never writes.
pub fn write_object(members: &[(&str, Option<Field<'_>>)]) -> String {
    let mut out = String::from("{");
    for (key, value) in members.iter().filter_map(|(key, value)| value.map(|value| (key, value))) {
        if out.len() > 1 {
            out.push(',');
        }
        write_string(&mut out, key);
        out.push(':');
        match value {
            Field::Str(text) => write_string(&mut out, text),
            Field::Unsigned(number) => out.push_str(&number.to_string()),
        }
    }
    out.push('}');
    out
}

/// Appends `text` as a JSON string. Like serde_json, it escapes the quote, the backslash
/// and the control characters U+0000 to U+001F, and writes everything else unchanged.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            control if control < ' ' => out.push_str(&format!("\\u{:04x}", u32::from(control))),
            other => out.push(other),
        }
    }
    out.push('"');
}

thread_local! {
    /// The pending key or index of each array and object that miniserde dropped before it
    /// was complete, innermost first. Builders record them while miniserde unwinds after a
    /// syntax error, which it reports without a position, so that [`parse`] can name where
    /// it stopped.
    static UNFINISHED: RefCell<Vec<PathSegment>> = const { RefCell::new(Vec::new()) };
}

fn record_unfinished(segment: PathSegment) {
    UNFINISHED.with(|unfinished| unfinished.borrow_mut().push(segment));
}

/// The place a value is parsed into: the top-level value, an array element or a member value.
struct Slot {
    value: Option<Json>,
    /// Arrays and objects around this value.
    depth: usize,
}

impl miniserde::Deserialize for Slot {
    fn begin(out: &mut Option<Self>) -> &mut dyn Visitor {
        out.insert(Slot::nested(0))
    }
}

impl Slot {
    fn nested(depth: usize) -> Slot {
        Slot { value: None, depth }
    }

    fn set(&mut self, value: Json) -> miniserde::Result<()> {
        self.value = Some(value);
        Ok(())
    }

    fn check_depth(&self) -> miniserde::Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(miniserde::Error);
        }
        Ok(())
    }
}

impl Visitor for Slot {
    fn null(&mut self) -> miniserde::Result<()> {
        self.set(Json::Null)
    }

    fn boolean(&mut self, value: bool) -> miniserde::Result<()> {
        self.set(Json::Bool(value))
    }

    fn string(&mut self, text: &str) -> miniserde::Result<()> {
        self.set(Json::String(text.to_owned()))
    }

    fn negative(&mut self, _: i64) -> miniserde::Result<()> {
        self.set(Json::OtherNumber)
    }

    fn nonnegative(&mut self, number: u64) -> miniserde::Result<()> {
        self.set(Json::Unsigned(number))
    }

    fn float(&mut self, _: f64) -> miniserde::Result<()> {
        self.set(Json::OtherNumber)
    }

    fn seq(&mut self) -> miniserde::Result<Box<dyn de::Seq + '_>> {
        self.check_depth()?;
        let element = Slot::nested(self.depth + 1);
        Ok(Box::new(ArrayBuilder { out: &mut self.value, items: Vec::new(), element, started: false, finished: false }))
    }

    fn map(&mut self) -> miniserde::Result<Box<dyn de::Map + '_>> {
        self.check_depth()?;
        let value = Slot::nested(self.depth + 1);
        Ok(Box::new(ObjectBuilder { out: &mut self.value, members: Vec::new(), key: None, value, finished: false }))
    }
}

struct ArrayBuilder<'a> {
    out: &'a mut Option<Json>,
    items: Vec<Json>,
    /// The element being parsed, which goes into `items` when the next one starts.
    element: Slot,
    started: bool,
    finished: bool,
}

impl ArrayBuilder<'_> {
    fn shift(&mut self) {
        if let Some(item) = self.element.value.take() {
            self.items.push(item);
        }
    }
}

impl de::Seq for ArrayBuilder<'_> {
    fn element(&mut self) -> miniserde::Result<&mut dyn Visitor> {
        self.shift();
        self.started = true;
        Ok(&mut self.element)
    }

    fn finish(&mut self) -> miniserde::Result<()> {
        self.shift();
        *self.out = Some(Json::Array(mem::take(&mut self.items)));
        self.finished = true;
        Ok(())
    }
}

impl Drop for ArrayBuilder<'_> {
    fn drop(&mut self) {
        if self.started && !self.finished {
            record_unfinished(PathSegment::Index(self.items.len()));
        }
    }
}

struct ObjectBuilder<'a> {
    out: &'a mut Option<Json>,
    members: Vec<(String, Json)>,
    /// The key of the member being parsed, whose value is in `value`.
    key: Option<String>,
    value: Slot,
    finished: bool,
}

impl ObjectBuilder<'_> {
    fn shift(&mut self) {
        if let (Some(key), Some(value)) = (self.key.take(), self.value.value.take()) {
            self.members.push((key, value));
        }
    }
}

impl de::Map for ObjectBuilder<'_> {
    fn key(&mut self, key: &str) -> miniserde::Result<&mut dyn Visitor> {
        self.shift();
        self.key = Some(key.to_owned());
        Ok(&mut self.value)
    }

    fn finish(&mut self) -> miniserde::Result<()> {
        self.shift();
        *self.out = Some(Json::Object(mem::take(&mut self.members)));
        self.finished = true;
        Ok(())
    }
}

impl Drop for ObjectBuilder<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(key) = self.key.take() {
            record_unfinished(PathSegment::Key(key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> PathSegment {
        PathSegment::Key(name.to_string())
    }

    #[test]
    fn values_parse_in_document_order() {
        let parsed = parse(br#" {"b":[1,-2,2.5,null,true],"a":{"x":"\u00e9\n"},"b":"again"} "#).unwrap();
        let expected = Json::Object(vec![
            (
                "b".into(),
                Json::Array(vec![Json::Unsigned(1), Json::OtherNumber, Json::OtherNumber, Json::Null, Json::Bool(true)]),
            ),
            ("a".into(), Json::Object(vec![("x".into(), Json::String("é\n".into()))])),
            ("b".into(), Json::String("again".into())),
        ]);
        assert!(parsed == expected);
    }

    #[test]
    fn largest_u64_stays_unsigned() {
        assert!(parse(b"18446744073709551615").unwrap() == Json::Unsigned(u64::MAX));
        assert!(parse(b"18446744073709551616").unwrap() == Json::OtherNumber);
    }

    #[test]
    fn syntax_error_names_its_path() {
        assert_eq!(parse(br#"{"a":"#).unwrap_err().path, vec![key("a")]);
        assert_eq!(parse(br#"{"a":{"b":[1,2,}}"#).unwrap_err().path, vec![key("a"), key("b"), PathSegment::Index(2)]);
        assert_eq!(parse(br#"{"a""#).unwrap_err().path, vec![key("a")]);
        assert_eq!(parse(br#"{"a":"\ud800"}"#).unwrap_err().path, vec![key("a")]);
    }

    #[test]
    fn syntax_error_at_top_level_has_empty_path() {
        for bad in [&b""[..], b"{", b"{} {}", b"[1] x", b"nul", b"\xef\xbb\xbf{}", b"{\"a\":\"\xff\"}"] {
            assert_eq!(parse(bad).unwrap_err().path, Vec::new(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn path_resets_between_parses() {
        assert_eq!(parse(br#"{"a":"#).unwrap_err().path, vec![key("a")]);
        assert_eq!(parse(b"{").unwrap_err().path, Vec::new());
        assert_eq!(parse(b"[").unwrap_err().path, vec![PathSegment::Index(0)]);
        assert!(parse(b"{}").is_ok());
    }

    #[test]
    fn nesting_is_limited() {
        let within = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(within.as_bytes()).is_ok());
        let deeper = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(deeper.as_bytes()).is_err());
        let unclosed = "[{\"a\":".repeat(100_000);
        assert!(parse(unclosed.as_bytes()).is_err());
    }

    #[test]
    fn take_member_rejects_repeats() {
        let mut members = parse(br#"{"a":1,"b":2,"a":3}"#).unwrap().into_object().unwrap();
        assert_eq!(take_member(&mut members, "a"), Err(RepeatedKey));
        assert!(take_member(&mut members, "b").unwrap() == Some(Json::Unsigned(2)));
        assert!(take_member(&mut members, "c").unwrap().is_none());
    }

    #[test]
    fn typed_members_check_their_type() {
        let mut members = parse(br#"{"s":"x","n":7,"z":null,"bad":-1}"#).unwrap().into_object().unwrap();
        assert_eq!(take_string(&mut members, "s"), Ok(Some("x".into())));
        assert_eq!(take_unsigned(&mut members, "n"), Ok(Some(7)));
        assert_eq!(take_string(&mut members, "z"), Ok(None));
        assert_eq!(take_unsigned(&mut members, "bad"), Err(InvalidMember));
        assert_eq!(take_string(&mut members, "missing"), Ok(None));
    }

    #[test]
    fn objects_are_written_in_order_without_none() {
        let written = write_object(&[
            ("e", Some(Field::Str("a\"b\\c\n\u{1}é"))),
            ("n", None),
            ("x", Some(Field::Unsigned(u64::MAX))),
        ]);
        assert_eq!(written, r#"{"e":"a\"b\\c\n\u0001é","x":18446744073709551615}"#);
        assert!(parse(written.as_bytes()).is_ok());
        assert_eq!(write_object(&[]), "{}");
    }

    #[test]
    fn written_strings_match_serde_json() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        for text in ["", "plain", "quote \" backslash \\ slash /", "\u{7f}\u{80}é€😀", "</script>", every_control.as_str()] {
            let written = write_object(&[("k", Some(Field::Str(text)))]);
            let expected = serde_json::json!({ "k": text }).to_string();
            assert_eq!(written, expected);
            let parsed = parse(written.as_bytes()).unwrap();
            assert!(parsed == Json::Object(vec![("k".into(), Json::String(text.into()))]), "{written}");
        }
    }
}
