use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must never reach logs, errors or responses: tokens, client secrets, API keys.
///
/// `Debug` and `Display` print a placeholder; the value is read only through [`Secret::expose`],
/// so every place that handles the real value is easy to find.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("pat-na1-abc");
        assert!(!format!("{s:?} {s}").contains("pat-na1-abc"));
        assert_eq!(s.expose(), "pat-na1-abc");
    }
}
