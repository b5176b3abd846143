//! Request header helpers: identity header spellings and the `cookie` header.
//!
//! Everything here works on bytes, because a client can send any bytes in a header and the
//! filter must pass an app's own cookies upstream unchanged.

/// Returns a header name in the form that app servers see it: lowercase, with `_` read as
/// `-`. WSGI, Rack and CGI map both to the same variable, so `X_Heroku_User_Email` must
/// count as a spelling of `x-heroku-user-email`.
pub fn canonical_name(name: &[u8]) -> Vec<u8> {
    name.iter()
        .map(|byte| match byte {
            b'_' => b'-',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// Returns true when `name` is a spelling of `canonical`, a name as [`canonical_name`]
/// returns it: the same bytes up to ASCII case, with `_` read as `-`.
pub fn is_spelling_of(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name.iter().zip(canonical).all(|(byte, expected)| {
            let folded = if *byte == b'_' { b'-' } else { byte.to_ascii_lowercase() };
            folded == *expected
        })
}

/// Iterates over the `name=value` pairs of one `cookie` header value.
///
/// Pairs are separated by `;` and trimmed of spaces and tabs. A pair without `=` has an
/// empty name, as browsers treat it.
pub fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    raw_pairs(header).map(split_pair)
}

/// Iterates over the trimmed, non-empty `;`-separated pairs of a `cookie` header, as sent.
fn raw_pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_at_semicolons(header).map(trim).filter(|pair| !pair.is_empty())
}

fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match pair.iter().position(|byte| *byte == b'=') {
        Some(at) => (trim(pair.get(..at).unwrap_or_default()), trim(pair.get(at + 1..).unwrap_or_default())),
        None => (&[][..], pair),
    }
}

/// Splits like `header.split(|byte| *byte == b';')`, but finds each `;` eight bytes at a
/// time: a session cookie value is several hundred bytes long, and every authenticated
/// request scans it.
fn split_at_semicolons(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let current = rest?;
        match find_byte(b';', current) {
            Some(at) => {
                rest = current.get(at + 1..);
                current.get(..at)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Returns the index of the first `needle` in `haystack`. Whole 8-byte words are tested with
/// the classic "has zero byte" bit trick on `word ^ needle * 0x01..01`, which wasm runs as
/// single 64-bit operations. The word with a match and the tail are searched byte by byte.
fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let repeated = LOW_BITS * u64::from(needle);
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in words.by_ref() {
        let word = chunk.try_into().map(u64::from_le_bytes).unwrap_or(0) ^ repeated;
        if word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS != 0 {
            break;
        }
        offset += 8;
    }
    let rest = haystack.get(offset..).unwrap_or_default();
    rest.iter().position(|byte| *byte == needle).map(|at| offset + at)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|byte| *byte != b' ' && *byte != b'\t').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|byte| *byte != b' ' && *byte != b'\t').map_or(start, |at| at + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// Builds the `cookie` header to send upstream without the cookies that `is_own` picks.
///
/// Returns `None` when nothing needs to change: exactly one header was sent and none of its
/// cookies is the filter's. Returns `Some(None)` when no cookie is left, so the header
/// should be removed. Several `cookie` headers are joined into one, as RFC 6265 requires
/// of clients. Kept pairs are copied as sent, so `=a=b` stays a nameless cookie and does
/// not turn into a cookie named `a`.
pub fn cookie_header_without(headers: &[&[u8]], is_own: impl Fn(&[u8]) -> bool) -> Option<Option<Vec<u8>>> {
    let mut kept: Vec<u8> = Vec::with_capacity(headers.iter().map(|header| header.len() + 2).sum());
    let mut removed_any = false;
    for header in headers {
        for pair in raw_pairs(header) {
            let (name, _) = split_pair(pair);
            if is_own(name) {
                removed_any = true;
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    if !removed_any && headers.len() <= 1 {
        return None;
    }
    Some(if kept.is_empty() { None } else { Some(kept) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_name_folds_case_and_underscore() {
        assert_eq!(canonical_name(b"X_Heroku-USER_email"), b"x-heroku-user-email".to_vec());
    }

    #[test]
    fn spellings_match_their_canonical_name() {
        assert!(is_spelling_of(b"X_Heroku-USER_email", b"x-heroku-user-email"));
        assert!(is_spelling_of(b"x-heroku-user-email", b"x-heroku-user-email"));
        assert!(!is_spelling_of(b"x-heroku-user-emails", b"x-heroku-user-email"));
        assert!(!is_spelling_of(b"x-heroku-user-id", b"x-heroku-user-email"));
    }

    #[test]
    fn find_byte_finds_first_match() {
        let text = b"0123456789abcdef;ghij;";
        for end in 0..=text.len() {
            let haystack = &text[..end];
            assert_eq!(find_byte(b';', haystack), haystack.iter().position(|byte| *byte == b';'), "{end}");
        }
        for at in 0..20 {
            let mut haystack = vec![b'x'; 20];
            haystack[at] = b';';
            assert_eq!(find_byte(b';', &haystack), Some(at));
        }
        assert_eq!(find_byte(b';', &[0x3b + 0x80; 16]), None, "bytes with the high bit set do not match");
        assert_eq!(find_byte(0, &[1, 1, 1, 1, 1, 1, 1, 1, 0]), Some(8));
    }

    #[test]
    fn cookie_pairs_trim_and_skip_empty() {
        let pairs: Vec<_> = cookie_pairs(b" a=1;;b = 2 ; flag ;c=x=y").collect();
        assert_eq!(
            pairs,
            vec![
                (&b"a"[..], &b"1"[..]),
                (&b"b"[..], &b"2"[..]),
                (&b""[..], &b"flag"[..]),
                (&b"c"[..], &b"x=y"[..]),
            ]
        );
    }

    #[test]
    fn cookie_pairs_accept_any_bytes() {
        let pairs: Vec<_> = cookie_pairs(b"\xff\xfe=\x80; =; =x").collect();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0], (&b"\xff\xfe"[..], &b"\x80"[..]));
    }

    #[test]
    fn own_cookies_are_removed() {
        let result = cookie_header_without(&[b"app=1; sess=secret; other=\xff"], |name| name == b"sess");
        assert_eq!(result, Some(Some(b"app=1; other=\xff".to_vec())));
    }

    #[test]
    fn header_removed_when_nothing_left() {
        assert_eq!(cookie_header_without(&[b"sess=1"], |name| name == b"sess"), Some(None));
    }

    #[test]
    fn untouched_header_needs_no_change() {
        assert_eq!(cookie_header_without(&[b"app=1"], |name| name == b"sess"), None);
        assert_eq!(cookie_header_without(&[], |name| name == b"sess"), None);
    }

    #[test]
    fn kept_cookies_mean_what_client_sent() {
        // Each kept pair must parse the same upstream: `=a=b` is a nameless cookie, not `a`.
        let headers: [&[u8]; 2] = [b"=a=b; flag; =; sess=1; x = y", b"c=d"];
        let result = cookie_header_without(&headers, |name| name == b"sess").unwrap().unwrap();
        let before: Vec<_> = headers.iter().flat_map(|header| cookie_pairs(header)).filter(|(name, _)| *name != b"sess").collect();
        let after: Vec<_> = cookie_pairs(&result).collect();
        assert_eq!(after, before);
    }

    #[test]
    fn split_headers_are_joined() {
        let result = cookie_header_without(&[b"a=1", b"sess=2; b=3"], |name| name == b"sess");
        assert_eq!(result, Some(Some(b"a=1; b=3".to_vec())));
    }
}
