//! Secret values that cannot leak through `Debug`, `Display` or serialisation by accident.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A secret string (provider key, admin token, encryption key). `Debug` prints `[redacted]`;
/// there is deliberately no `Display` and no `Serialize`. Read it with [`SecretString::expose`]
/// at the one place that must send it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Every call site is a place where the secret leaves the process or is
    /// hashed/encrypted; keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A preview safe to show an operator: see [`mask`].
    pub fn preview(&self) -> String {
        mask(&self.0)
    }

    /// True when the secret is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretString)
    }
}

/// Masks a secret for display: the first 4 and last 4 characters around `…`, or `****` for
/// anything of 12 characters or fewer (so that at most a third of a short key is ever shown).
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 12 {
        return "****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// `text` with every occurrence of `secret` replaced by `[redacted]`, for upstream text that may
/// echo the credential it was sent (some providers quote the key in an error message). Secrets
/// shorter than 8 characters are left alone: replacing them would mangle ordinary words.
pub fn redact<'a>(text: &'a str, secret: &str) -> std::borrow::Cow<'a, str> {
    if secret.len() < 8 || !text.contains(secret) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.replace(secret, "[redacted]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = SecretString::new("sk-live-very-secret-value");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret)), "Some([redacted])");
    }

    #[test]
    fn mask_shows_at_most_eight_characters() {
        assert_eq!(mask("sk-live-very-secret-value"), "sk-l…alue");
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("exactly12chr"), "****");
    }

    #[test]
    fn redact_removes_every_echo_of_the_secret() {
        let key = "sk-live-very-secret-value";
        assert_eq!(
            redact(&format!("bad key {key}; again {key}"), key),
            "bad key [redacted]; again [redacted]"
        );
        assert_eq!(redact("nothing here", key), "nothing here");
        assert_eq!(redact("a short key abc", "abc"), "a short key abc");
    }
}
