//! Couriers and their waybill numbers (SPEC §2.1 step 4): the carrier is
//! detected from the number's pattern, first match wins (`[[carriers]]`).

use regex::Regex;
use serde::Serialize;

/// One courier company.
#[derive(Debug, Clone)]
pub struct Carrier {
    pub code: String,
    pub name: String,
    pub pattern: Regex,
}

/// The configured couriers, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct Carriers(Vec<Carrier>);

/// A carrier as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct CarrierInfo {
    pub code: String,
    pub name: String,
}

impl Carriers {
    pub fn new(list: Vec<Carrier>) -> Carriers {
        Carriers(list)
    }

    /// The carrier whose pattern matches `waybill_no`, if any.
    pub fn detect(&self, waybill_no: &str) -> Option<&Carrier> {
        self.0.iter().find(|c| c.pattern.is_match(waybill_no))
    }

    /// The carrier with this code (case-insensitive), if configured.
    pub fn by_code(&self, code: &str) -> Option<&Carrier> {
        self.0.iter().find(|c| c.code.eq_ignore_ascii_case(code))
    }

    /// A carrier code as given, spelled as configured (or upper case when
    /// no configured carrier has it).
    pub fn code_of(&self, given: &str) -> String {
        self.by_code(given)
            .map_or_else(|| given.to_ascii_uppercase(), |c| c.code.clone())
    }

    pub fn list(&self) -> Vec<CarrierInfo> {
        self.0
            .iter()
            .map(|c| CarrierInfo {
                code: c.code.clone(),
                name: c.name.clone(),
            })
            .collect()
    }
}

/// A waybill number as scanned or typed: 8–32 of `A-Z 0-9`, upper-cased.
/// Spaces and dashes a clerk types to group digits are dropped.
pub fn normalise_waybill(s: &str) -> Option<String> {
    if s.len() > 64 {
        return None;
    }
    let s: String = s
        .chars()
        .filter(|c| !(c.is_whitespace() || *c == '-'))
        .collect();
    let ok = (8..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| s.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn default_carriers_detect_by_pattern() {
        let c = Config::defaults().unwrap().carriers;
        let cases = [
            ("SF1234567890123", Some("SF")),
            ("JDVA12345678901", Some("JD")),
            ("YT1234567890123", Some("YTO")),
            ("EA123456789CN", Some("EMS")),
            ("773456789012345", Some("STO")),
            ("731234567890", Some("ZTO")),
            ("4312345678901", Some("YUNDA")),
            ("ZZ99", None),
        ];
        for (wb, want) in cases {
            assert_eq!(c.detect(wb).map(|c| c.code.as_str()), want, "{wb}");
        }
        assert_eq!(c.by_code("sf").map(|c| c.code.as_str()), Some("SF"));
    }

    #[test]
    fn waybills_normalise() {
        assert_eq!(
            normalise_waybill(" sf1234567890123\r\n").as_deref(),
            Some("SF1234567890123")
        );
        assert_eq!(
            normalise_waybill("sf 1234-5678 9012").as_deref(),
            Some("SF123456789012")
        );
        for bad in [
            "",
            "SF12",
            "SF_1234567890",
            "SF12345678９０",
            &"9".repeat(33),
        ] {
            assert!(normalise_waybill(bad).is_none(), "{bad}");
        }
    }
}
