//! Return numbers (SPEC §4.1): 6–40 of `A-Z a-z 0-9 -`, kept upper case.
//!
//! A leaf: the code parser and the manifest both build on it, so neither
//! needs the other to know what a return number is.

use std::fmt;

/// A checked return number, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReturnNo(String);

impl ReturnNo {
    /// `s` as a return number, or `None` if it is not one.
    pub fn parse(s: &str) -> Option<ReturnNo> {
        let ok = (6..=40).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then(|| ReturnNo(s.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReturnNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ReturnNo {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<ReturnNo> for String {
    fn from(n: ReturnNo) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_numbers_are_checked_and_upper_cased() {
        assert_eq!(
            ReturnNo::parse("rt-2026-0001").map(String::from),
            Some("RT-2026-0001".to_owned())
        );
        for bad in ["", "RT1", "RT 2026 0001", "RT_2026_0001", &"A".repeat(41)] {
            assert_eq!(ReturnNo::parse(bad), None, "{bad:?}");
        }
        assert!(ReturnNo::parse(&"A".repeat(40)).is_some());
    }
}
