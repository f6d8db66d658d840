//! Return codes: what a scanned string means and whether to take the parcel
//! (SPEC §4).
//!
//! [`parse`] turns raw scanner bytes into a return number (signed token, URL
//! or plain number, in that order) and checks what the bytes alone can tell:
//! shape, signature, station. [`decide`] then weighs the facts the database
//! knows (manifest entry, a parcel already in custody) in the order the spec
//! gives. Both are pure, so every branch is tested table-driven below.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::manifest::{ReturnEntry, ReturnStatus};
pub use crate::return_no::ReturnNo;
use crate::token::{self, RETURN_PREFIX};

/// Inputs longer than this are malformed without further parsing.
pub const MAX_INPUT_BYTES: usize = 2048;

/// Why a code is refused; stable, machine-readable (SPEC §4). Its names
/// (JSON, text, metrics labels) and the list of them come from the derives:
/// a new reason is counted and shown everywhere by itself.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::EnumCount,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    Malformed,
    BadSignature,
    WrongStation,
    Expired,
    Cancelled,
    AlreadyDroppedOff,
    UnknownCode,
    /// The merchant's rules refuse it freight-collect (SPEC §2.5).
    FreightCollect,
}

impl std::error::Error for Reason {}

impl Reason {
    /// Words a clerk can read aloud: (zh-CN, English).
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            Reason::Malformed => ("无法识别的退货码", "This is not a return code"),
            Reason::BadSignature => (
                "退货码签名无效，可能是伪造的",
                "The code's signature is invalid",
            ),
            Reason::WrongStation => (
                "该退货不属于本驿站",
                "This return belongs to another station",
            ),
            Reason::Expired => ("退货码已过期", "The return code has expired"),
            Reason::Cancelled => ("该退货已被商家取消", "The merchant cancelled this return"),
            Reason::AlreadyDroppedOff => {
                ("该退货包裹已经交寄", "This return was already dropped off")
            }
            Reason::UnknownCode => ("未找到该退货单", "Unknown return code"),
            Reason::FreightCollect => (
                "该退货不能到付，请先付运费或联系商家",
                "This return cannot be sent freight-collect: pay the postage or ask the merchant",
            ),
        }
    }
}

/// What to do when a code is neither in the manifest nor a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflinePolicy {
    /// Refuse it (`unknown_code`).
    Reject,
    /// Take it, flagged provisional, and let the platform reconcile it.
    Provisional,
}

/// Platform public keys by key id (`codes.trusted_keys`).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(pub BTreeMap<String, VerifyingKey>);

/// The claims of a verified `YZR1` token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub rn: String,
    pub mid: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ord: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// A scanned code that parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A signed token whose signature and station checked out.
    Token(Claims),
    /// A bare return number (typed, from a URL, or plain).
    Number(ReturnNo),
}

impl Parsed {
    pub fn return_no(&self) -> &str {
        match self {
            Parsed::Token(c) => &c.rn,
            Parsed::Number(n) => n.as_str(),
        }
    }
}

/// Parses scanner input. `station_id` is ours, for the token's `sid`.
pub fn parse(input: &[u8], keys: &TrustedKeys, station_id: &str) -> Result<Parsed, Reason> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(Reason::Malformed);
    }
    let text = std::str::from_utf8(input)
        .map_err(|_| Reason::Malformed)?
        .trim();
    if text.starts_with("YZR1.") {
        return parse_token(text, keys, station_id).map(Parsed::Token);
    }
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return return_no_from_url(text)
            .map(Parsed::Number)
            .ok_or(Reason::Malformed);
    }
    ReturnNo::parse(text)
        .map(Parsed::Number)
        .ok_or(Reason::Malformed)
}

fn parse_token(text: &str, keys: &TrustedKeys, station_id: &str) -> Result<Claims, Reason> {
    let decoded = token::decode(RETURN_PREFIX, text).map_err(|_| Reason::Malformed)?;
    let mut claims: Claims =
        serde_json::from_slice(&decoded.payload).map_err(|_| Reason::Malformed)?;
    claims.rn = ReturnNo::parse(&claims.rn).ok_or(Reason::Malformed)?.into();
    if claims.mid.is_empty() {
        return Err(Reason::Malformed);
    }
    let verified = match &claims.kid {
        Some(kid) => keys.0.get(kid).is_some_and(|k| decoded.verify(k).is_ok()),
        None => keys.0.values().any(|k| decoded.verify(k).is_ok()),
    };
    if !verified {
        return Err(Reason::BadSignature);
    }
    match claims.sid.as_deref() {
        Some(sid) if sid != "*" && sid != station_id => Err(Reason::WrongStation),
        _ => Ok(claims),
    }
}

/// `…?rn=<no>` (query wins) or a last path segment after `/r/`.
fn return_no_from_url(url: &str) -> Option<ReturnNo> {
    let rest = url.split_once("://")?.1;
    let rest = rest.split('#').next().unwrap_or(rest);
    let (path_part, query) = rest.split_once('?').unwrap_or((rest, ""));
    let from_query = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("rn="))
        .filter(|v| !v.is_empty());
    let from_path = || {
        let path = path_part.find('/').map(|i| &path_part[i..])?;
        let tail = path.rsplit_once("/r/")?.1.trim_end_matches('/');
        (!tail.is_empty() && !tail.contains('/')).then_some(tail)
    };
    ReturnNo::parse(from_query.or_else(from_path)?)
}

/// What the database knows about a return number at scan time.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub manifest: Option<ReturnEntry>,
    /// A parcel for this return is already dropped, accepted, held or
    /// handed over.
    pub in_custody: bool,
}

/// Where the acceptance came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Manifest,
    Token,
    /// Neither: accepted provisionally by offline policy.
    Unverified,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manifest => "manifest",
            Source::Token => "token",
            Source::Unverified => "unverified",
        }
    }
}

/// The scan decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept { provisional: bool, source: Source },
    Reject(Reason),
}

/// Decides per SPEC §4 (after `parse` has ruled out malformed, bad
/// signature and wrong station): expired, cancelled, already dropped off,
/// known, then the offline policy. `now` is Unix seconds.
pub fn decide(parsed: &Parsed, facts: &Facts, policy: OfflinePolicy, now: i64) -> Decision {
    let token_exp = match parsed {
        Parsed::Token(c) => Some(c.exp),
        Parsed::Number(_) => None,
    };
    let manifest_exp = facts.manifest.as_ref().and_then(|m| m.expires_at);
    if token_exp
        .into_iter()
        .chain(manifest_exp)
        .any(|exp| exp < now)
    {
        return Decision::Reject(Reason::Expired);
    }
    if facts
        .manifest
        .as_ref()
        .is_some_and(|m| m.status == ReturnStatus::Cancelled)
    {
        return Decision::Reject(Reason::Cancelled);
    }
    if facts.manifest.as_ref().is_some_and(|m| {
        m.rules.freight == Some(crate::manifest::Freight::Collect) && !m.rules.collect_allowed
    }) {
        return Decision::Reject(Reason::FreightCollect);
    }
    if facts.in_custody {
        return Decision::Reject(Reason::AlreadyDroppedOff);
    }
    match (&facts.manifest, parsed) {
        (Some(_), _) => Decision::Accept {
            provisional: false,
            source: Source::Manifest,
        },
        (None, Parsed::Token(_)) => Decision::Accept {
            provisional: false,
            source: Source::Token,
        },
        (None, Parsed::Number(_)) => match policy {
            OfflinePolicy::Reject => Decision::Reject(Reason::UnknownCode),
            OfflinePolicy::Provisional => Decision::Accept {
                provisional: true,
                source: Source::Unverified,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const NOW: i64 = 1_800_000_000;
    const ST: &str = "ST-0001";

    fn number(s: &str) -> ReturnNo {
        ReturnNo::parse(s).expect("a return number")
    }

    fn platform_key() -> SigningKey {
        SigningKey::from_bytes(&[42; 32])
    }

    fn keys() -> TrustedKeys {
        TrustedKeys([("k1".to_owned(), platform_key().verifying_key())].into())
    }

    fn token(json: &str) -> String {
        token::encode_raw(RETURN_PREFIX, json.as_bytes(), &platform_key())
    }

    fn entry(status: ReturnStatus, expires_at: Option<i64>) -> ReturnEntry {
        ReturnEntry {
            return_no: "RT2026112200123".into(),
            merchant_id: "M1".into(),
            order_no: None,
            status,
            expires_at,
            phone_last4: None,
            items: vec![],
            rules: Default::default(),
        }
    }

    #[test]
    fn parse_table() {
        let good = token(r#"{"rn":"rt2026112200123","mid":"M1","exp":1900000000,"kid":"k1"}"#);
        let any_station =
            token(r#"{"rn":"RT2026112200123","mid":"M1","exp":1900000000,"sid":"*"}"#);
        let ours = token(r#"{"rn":"RT2026112200123","mid":"M1","exp":1900000000,"sid":"ST-0001"}"#);
        let theirs = token(r#"{"rn":"RT2026112200123","mid":"M1","exp":1900000000,"sid":"ST-9"}"#);
        let unknown_kid =
            token(r#"{"rn":"RT2026112200123","mid":"M1","exp":1900000000,"kid":"k9"}"#);
        let no_rn = token(r#"{"mid":"M1","exp":1900000000}"#);
        let bad_rn = token(r#"{"rn":"R/1","mid":"M1","exp":1900000000}"#);
        let not_json = token("not json");
        let forged = {
            let other = SigningKey::from_bytes(&[7; 32]);
            token::encode_raw(
                RETURN_PREFIX,
                br#"{"rn":"RT2026112200123","mid":"M1","exp":1900000000}"#,
                &other,
            )
        };
        let tampered = good.replacen("eyJ", "eyK", 1);
        let truncated = good[..good.len() - 10].to_owned();
        let oversized = "A".repeat(MAX_INPUT_BYTES + 1);
        let rn: Result<Parsed, Reason> = Ok(Parsed::Number(number("RT2026112200123")));
        let cases: Vec<(&[u8], Result<&str, Reason>)> = vec![
            (good.as_bytes(), Ok("token")),
            (any_station.as_bytes(), Ok("token")),
            (ours.as_bytes(), Ok("token")),
            (theirs.as_bytes(), Err(Reason::WrongStation)),
            (unknown_kid.as_bytes(), Err(Reason::BadSignature)),
            (forged.as_bytes(), Err(Reason::BadSignature)),
            (tampered.as_bytes(), Err(Reason::Malformed)),
            // A cut-off signature cannot be a signature: damaged, not forged.
            (truncated.as_bytes(), Err(Reason::Malformed)),
            (no_rn.as_bytes(), Err(Reason::Malformed)),
            (bad_rn.as_bytes(), Err(Reason::Malformed)),
            (not_json.as_bytes(), Err(Reason::Malformed)),
            (b"YZR1.", Err(Reason::Malformed)),
            (b"YZR1.e30", Err(Reason::Malformed)),
            (b"rt2026112200123", Ok("number")),
            (b"  RT2026112200123\r\n", Ok("number")),
            (
                b"https://m.example.com/returns?x=1&rn=RT2026112200123",
                Ok("number"),
            ),
            (b"HTTP://m.example.com/r/RT2026112200123", Ok("number")),
            (
                b"https://m.example.com/a/r/RT2026112200123/?x=1#frag",
                Ok("number"),
            ),
            (b"https://m.example.com/r/", Err(Reason::Malformed)),
            (
                b"https://m.example.com/returns?rn=a%20b",
                Err(Reason::Malformed),
            ),
            (
                b"https://m.example.com/other/RT2026112200123",
                Err(Reason::Malformed),
            ),
            (b"ftp://x/r/RT2026112200123", Err(Reason::Malformed)),
            (b"RT12", Err(Reason::Malformed)),
            (b"RT_2026112200123", Err(Reason::Malformed)),
            (b"", Err(Reason::Malformed)),
            (b"\xff\xfe\x00RT2026112200123", Err(Reason::Malformed)),
            (oversized.as_bytes(), Err(Reason::Malformed)),
        ];
        for (input, want) in cases {
            let got = parse(input, &keys(), ST);
            let shown = String::from_utf8_lossy(&input[..input.len().min(60)]).into_owned();
            match (got, want) {
                (Ok(p @ Parsed::Token(_)), Ok("token"))
                | (Ok(p @ Parsed::Number(_)), Ok("number")) => {
                    assert_eq!(p.return_no(), "RT2026112200123", "{shown}");
                    if matches!(p, Parsed::Number(_)) {
                        assert_eq!(Ok(p), rn.clone());
                    }
                }
                (Err(r), Err(w)) => assert_eq!(r, w, "{shown}"),
                (got, want) => panic!("{shown}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn without_trusted_keys_every_token_is_unverifiable() {
        let t = token(r#"{"rn":"RT2026112200123","mid":"M1","exp":1900000000}"#);
        assert_eq!(
            parse(t.as_bytes(), &TrustedKeys::default(), ST),
            Err(Reason::BadSignature)
        );
    }

    #[test]
    fn decide_table() {
        let number = Parsed::Number(number("RT2026112200123"));
        let claims = |exp| {
            Parsed::Token(Claims {
                rn: "RT2026112200123".into(),
                mid: "M1".into(),
                exp,
                sid: None,
                ord: None,
                kid: None,
            })
        };
        let live = Some(entry(ReturnStatus::Authorized, Some(NOW + 10)));
        let facts = |manifest: Option<ReturnEntry>, in_custody| Facts {
            manifest,
            in_custody,
        };
        use Decision::{Accept, Reject};
        use OfflinePolicy::{Provisional as P, Reject as R};
        let cases = [
            (
                claims(NOW - 1),
                facts(None, false),
                R,
                Reject(Reason::Expired),
            ),
            (
                number.clone(),
                facts(Some(entry(ReturnStatus::Authorized, Some(NOW - 1))), false),
                P,
                Reject(Reason::Expired),
            ),
            // expiry is checked before cancellation and custody
            (
                number.clone(),
                facts(Some(entry(ReturnStatus::Cancelled, Some(NOW - 1))), true),
                P,
                Reject(Reason::Expired),
            ),
            (
                number.clone(),
                facts(Some(entry(ReturnStatus::Cancelled, None)), true),
                P,
                Reject(Reason::Cancelled),
            ),
            (
                claims(NOW + 5),
                facts(Some(entry(ReturnStatus::Cancelled, None)), false),
                P,
                Reject(Reason::Cancelled),
            ),
            (
                number.clone(),
                facts(live.clone(), true),
                P,
                Reject(Reason::AlreadyDroppedOff),
            ),
            (
                claims(NOW + 5),
                facts(None, true),
                P,
                Reject(Reason::AlreadyDroppedOff),
            ),
            (
                number.clone(),
                facts(live.clone(), false),
                R,
                Accept {
                    provisional: false,
                    source: Source::Manifest,
                },
            ),
            (
                claims(NOW + 5),
                facts(live, false),
                R,
                Accept {
                    provisional: false,
                    source: Source::Manifest,
                },
            ),
            (
                claims(NOW + 5),
                facts(None, false),
                R,
                Accept {
                    provisional: false,
                    source: Source::Token,
                },
            ),
            (
                number.clone(),
                facts(None, false),
                R,
                Reject(Reason::UnknownCode),
            ),
            (
                number,
                facts(None, false),
                P,
                Accept {
                    provisional: true,
                    source: Source::Unverified,
                },
            ),
        ];
        for (i, (parsed, facts, policy, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(&parsed, &facts, policy, NOW), want, "case {i}");
        }
    }

    #[test]
    fn every_reason_has_words_in_both_languages() {
        use strum::IntoEnumIterator;
        for r in Reason::iter() {
            let (zh, en) = r.words();
            assert!(!zh.is_empty() && !en.is_empty());
            assert_eq!(serde_json::to_value(r).unwrap(), r.to_string());
        }
    }
}
