//! Checks on request paths before a rule lets them pass without a login.

/// Decides whether `path` (without its query) means the same to every server behind
/// Envoy, so that a `skip_paths` prefix may match it.
///
/// Envoy's `normalize_path` resolves `.` and `..` segments and decodes `%2E`, but it
/// keeps `%2F` and `%5C` as they are by default, and it does not know that Java servlet
/// containers read `..;x` as `..`. An app that decodes or strips these after Envoy would
/// see `/public/..%2Fadmin` or `/public/..;/admin` as `/admin`. This returns false for
/// such paths, so they need a login like any other path:
/// - a backslash, or `%2F`, `%5C` or `%2E` in any case;
/// - a segment that is `.` or `..`, alone or followed by `;` and path parameters.
pub fn is_unambiguous(path: &[u8]) -> bool {
    if path.contains(&b'\\') {
        return false;
    }
    let encoded_separator = path.windows(3).any(|window| {
        let [percent, high, low] = window else {
            return false;
        };
        *percent == b'%'
            && matches!(
                (high, low.to_ascii_uppercase()),
                (b'2', b'F') | (b'5', b'C') | (b'2', b'E')
            )
    });
    if encoded_separator {
        return false;
    }
    path.split(|byte| *byte == b'/').all(|segment| {
        let name = segment.split(|byte| *byte == b';').next().unwrap_or_default();
        name != b"." && name != b".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_unambiguous() {
        for path in ["/", "/public/logo.png", "/public/a.b/c..d/.well-known", "/x;v=1/y", "/%7Euser", "/a//b"] {
            assert!(is_unambiguous(path.as_bytes()), "{path}");
        }
    }

    #[test]
    fn dot_segments_and_encoded_separators_are_ambiguous() {
        for path in [
            "/public/../admin",
            "/public/./x",
            "/public/..",
            "/public/..;/admin",
            "/public/.;x/admin",
            "/public/..%2Fadmin",
            "/public/..%2fadmin",
            "/public/%2E%2E/admin",
            "/public/%2e./admin",
            "/public/..%5Cadmin",
            "/public/..%5cadmin",
            "/public\\..\\admin",
        ] {
            assert!(!is_unambiguous(path.as_bytes()), "{path}");
        }
    }

    #[test]
    fn non_utf8_bytes_are_read_as_bytes() {
        assert!(is_unambiguous(b"/public/\xff\xfe"));
        assert!(!is_unambiguous(b"/public/\xff/../x"));
    }
}
