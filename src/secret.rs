//! A string that must never reach a log line or a `Debug` dump.

use std::fmt;

/// A client secret, OAuth token or signing key.
///
/// `Debug` prints a fixed placeholder, so a secret can sit in a struct that derives `Debug`
/// without leaking. Code that needs the value calls [`Secret::expose`], which keeps every
/// use easy to find.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Returns the secret value. Never log or format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_redacted() {
        let secret = Secret::new("HRKU-0123-visible-token");
        let printed = format!("{secret:?} {:?}", Some(&secret));
        assert!(!printed.contains("HRKU"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn expose_returns_value() {
        assert_eq!(Secret::new("abc").expose(), "abc");
    }
}
