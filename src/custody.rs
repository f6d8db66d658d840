//! The custody chain anyone can check offline: the station's signed tokens
//! and what each one proves.
//!
//! - `YZK1` receipts (SPEC §8, [`crate::receipt`]): the station took a
//!   return into custody; they also sign the digest of its photos and its
//!   weight.
//! - `YZH1` handovers: the station gave these waybills to this courier.
//!
//! Both are `<PREFIX>.<payload>.<sig>` ([`crate::token`]) signed with the
//! device key (`yizhan identity` shows the public half), so the platform, or
//! anyone settling a dispute, verifies them without asking the station
//! (docs/PROTOCOL.md, "Custody tokens").

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::receipt;
use crate::token::{self, RECEIPT_PREFIX, RETURN_PREFIX, TokenError};

/// Courier handovers signed by this device.
pub const HANDOVER_PREFIX: &str = "YZH1";

/// Largest handover payload (JSON bytes) that lists its waybills one by
/// one: about 28 waybills of 15 characters with short names. Its token's
/// QR code then still prints at 3 dots a module on 58 mm paper (384 dots);
/// above, the token carries the waybills' digest and count instead, and
/// the slip lists them in text.
pub const LISTED_JSON: usize = 660;

/// What a handover token signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverClaims {
    /// Handover id.
    pub hid: String,
    pub sid: String,
    pub did: String,
    /// Courier.
    pub cr: String,
    /// Carrier.
    pub ca: String,
    pub at: String,
    /// How many parcels (waybills) left.
    pub n: usize,
    /// Every waybill, sorted (while the payload stays within
    /// [`LISTED_JSON`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wb: Option<Vec<String>>,
    /// Above that: [`digest`] of the sorted waybills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wd: Option<String>,
}

impl HandoverClaims {
    /// The claims of a handover of `waybills` (in any order: they are
    /// signed sorted, so a handover read back signs the same).
    pub fn new(
        hid: &str,
        (sid, did): (&str, &str),
        (courier, carrier): (&str, &str),
        at: &str,
        mut waybills: Vec<String>,
    ) -> HandoverClaims {
        waybills.sort_unstable();
        let mut claims = HandoverClaims {
            hid: hid.to_owned(),
            sid: sid.to_owned(),
            did: did.to_owned(),
            cr: courier.to_owned(),
            ca: carrier.to_owned(),
            at: at.to_owned(),
            n: waybills.len(),
            wb: None,
            wd: Some(digest(waybills.iter().map(String::as_str))),
        };
        let listed = HandoverClaims {
            wb: Some(waybills),
            wd: None,
            ..claims.clone()
        };
        // Plain strings and numbers: serialising cannot fail.
        let size = serde_json::to_vec(&listed).map_or(usize::MAX, |j| j.len());
        if size <= LISTED_JSON {
            claims = listed;
        }
        claims
    }
}

/// Signs a handover's claims into a `YZH1…` token.
pub fn issue_handover(claims: &HandoverClaims, key: &SigningKey) -> String {
    token::encode(HANDOVER_PREFIX, claims, key)
}

/// The digest a token signs in place of a list: lowercase hex SHA-256 of
/// the items joined by `\n` (no trailing newline). Photos are listed by
/// their own SHA-256 (hex) in the order they were taken; waybills sorted.
pub fn digest<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(item.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The digest a receipt signs of the merchant's checks: hex SHA-256 of
/// the `verification` block as `parcel.accepted` carries it (serde_json's
/// compact form, keys sorted).
pub fn verification_digest(v: &crate::parcel::verification::Verification) -> String {
    // Plain data: serialising cannot fail; sorted keys through a Value.
    let json = serde_json::to_value(v).map_or_else(|_| String::new(), |v| v.to_string());
    digest([json.as_str()])
}

/// What a good token proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "claims", rename_all = "snake_case")]
pub enum Proof {
    Receipt(receipt::Claims),
    Handover(HandoverClaims),
}

impl Proof {
    /// The proof in words, one fact a line.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Proof::Receipt(c) => {
                let mut out = vec![
                    format!("receipt {}", c.rid),
                    format!(
                        "station {} (device {}) took return {} into custody at {}",
                        c.sid, c.did, c.rn, c.at
                    ),
                ];
                if let Some(wb) = &c.wb {
                    out.push(format!("courier waybill {wb}"));
                }
                if let Some(ph) = &c.ph {
                    out.push(format!("photos: SHA-256 of their hashes {ph}"));
                }
                if let Some(wg) = c.wg {
                    out.push(format!("weight {wg} g"));
                }
                if let Some(vd) = &c.vd {
                    out.push(format!(
                        "merchant's checks: SHA-256 of the verification {vd}"
                    ));
                }
                out
            }
            Proof::Handover(c) => {
                let mut out = vec![
                    format!("handover {}", c.hid),
                    format!(
                        "station {} (device {}) handed {} parcel(s) to courier {} of {} at {}",
                        c.sid, c.did, c.n, c.cr, c.ca, c.at
                    ),
                ];
                if let Some(wb) = &c.wb {
                    out.push(format!("waybills: {}", wb.join(", ")));
                }
                if let Some(wd) = &c.wd {
                    out.push(format!("waybills: SHA-256 of the list {wd}"));
                }
                out
            }
        }
    }
}

/// Why a token proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("a return code signed by the platform, not a token of this station")]
    ReturnCode,
    #[error("not a token of this station (receipts start with YZK1., handovers with YZH1.)")]
    UnknownKind,
    #[error("damaged or truncated: {0}")]
    Damaged(TokenError),
    #[error("signed for station {found}, not this one ({ours}): verify it with that station's key")]
    WrongStation { found: String, ours: String },
    #[error("the signature does not verify: the token was altered, or another key signed it")]
    BadSignature,
}

impl VerifyError {
    /// The reason's stable code (the API's `reason`, the CLI's `--json`).
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::ReturnCode | VerifyError::UnknownKind => "unknown_token",
            VerifyError::Damaged(_) => "malformed",
            VerifyError::WrongStation { .. } => "wrong_station",
            VerifyError::BadSignature => "bad_signature",
        }
    }
}

/// Checks one of this station's tokens against its key: the kind by its
/// prefix, the station it names, then the signature.
pub fn verify(token: &str, key: &VerifyingKey, station_id: &str) -> Result<Proof, VerifyError> {
    let token = token.trim();
    let prefix = token.split('.').next().unwrap_or_default();
    match prefix {
        RECEIPT_PREFIX => {
            let (claims, decoded) = parse::<receipt::Claims>(RECEIPT_PREFIX, token)?;
            same_station(&claims.sid, station_id)?;
            decoded.verify(key).map_err(|_| VerifyError::BadSignature)?;
            Ok(Proof::Receipt(claims))
        }
        HANDOVER_PREFIX => {
            let (claims, decoded) = parse::<HandoverClaims>(HANDOVER_PREFIX, token)?;
            same_station(&claims.sid, station_id)?;
            decoded.verify(key).map_err(|_| VerifyError::BadSignature)?;
            Ok(Proof::Handover(claims))
        }
        RETURN_PREFIX => Err(VerifyError::ReturnCode),
        _ => Err(VerifyError::UnknownKind),
    }
}

/// The answer of `yizhan verify` and `GET /api/v1/verify`:
/// `{"valid":true,"kind","claims","proves":[…]}` or
/// `{"valid":false,"reason","message"}`.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub valid: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proves: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<Result<Proof, VerifyError>> for Verdict {
    fn from(r: Result<Proof, VerifyError>) -> Verdict {
        match r {
            Ok(proof) => Verdict {
                valid: true,
                proves: proof.lines(),
                proof: Some(proof),
                reason: None,
                message: None,
            },
            Err(e) => Verdict {
                valid: false,
                proof: None,
                proves: Vec::new(),
                reason: Some(e.code()),
                message: Some(e.to_string()),
            },
        }
    }
}

fn parse<'a, T: serde::de::DeserializeOwned>(
    prefix: &'static str,
    token: &'a str,
) -> Result<(T, token::Decoded<'a>), VerifyError> {
    let decoded = token::decode(prefix, token).map_err(VerifyError::Damaged)?;
    let claims = serde_json::from_slice(&decoded.payload)
        .map_err(|_| VerifyError::Damaged(TokenError::PayloadEncoding))?;
    Ok((claims, decoded))
}

fn same_station(found: &str, ours: &str) -> Result<(), VerifyError> {
    if found == ours {
        Ok(())
    } else {
        Err(VerifyError::WrongStation {
            found: found.to_owned(),
            ours: ours.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn handover(n: usize) -> HandoverClaims {
        let waybills = (0..n).map(|i| format!("SF{i:013}")).collect();
        HandoverClaims::new(
            "01JDHANDOVER0000000000000",
            ("ST-1", "kiosk-a"),
            ("王师傅", "SF"),
            "2026-12-01T10:00:00Z",
            waybills,
        )
    }

    fn receipt() -> receipt::Claims {
        receipt::Claims {
            rid: "01JDRECEIPT00000000000000".into(),
            rn: "RT-1".into(),
            sid: "ST-1".into(),
            did: "kiosk-a".into(),
            at: "2026-12-01T09:00:00Z".into(),
            wb: Some("SF1234567890123".into()),
            ph: Some(digest(["ab", "cd"])),
            wg: Some(850),
            vd: None,
        }
    }

    #[test]
    fn good_tokens_prove_what_they_sign() {
        let k = key(1);
        let h = handover(2);
        let t = issue_handover(&h, &k);
        assert!(t.starts_with("YZH1."));
        let proof = verify(&t, &k.verifying_key(), "ST-1").unwrap();
        assert_eq!(proof, Proof::Handover(h));
        let text = proof.lines().join("\n");
        assert!(
            text.contains("handed 2 parcel(s) to courier 王师傅 of SF"),
            "{text}"
        );
        assert!(text.contains("SF0000000000000, SF0000000000001"), "{text}");

        let r = receipt();
        let t = receipt::issue(&r, &k);
        let proof = verify(&format!(" {t}\n"), &k.verifying_key(), "ST-1").unwrap();
        assert_eq!(proof, Proof::Receipt(r));
        let text = proof.lines().join("\n");
        assert!(
            text.contains("weight 850 g") && text.contains("took return RT-1"),
            "{text}"
        );
    }

    /// Modules a side of the token's QR code, quiet zone included.
    fn qr_span(token: &str) -> usize {
        qrcode::QrCode::new(token.as_bytes()).unwrap().width() + 8
    }

    #[test]
    fn a_long_handover_signs_the_digest_of_its_waybills() {
        // 15-character waybills, short names: 28 listed, 50 as a digest.
        assert!(handover(28).wb.is_some());
        let h = handover(50);
        assert_eq!((h.wb.as_ref(), h.n), (None, 50));
        let list: Vec<String> = (0..50).map(|i| format!("SF{i:013}")).collect();
        assert_eq!(
            h.wd.as_deref(),
            Some(digest(list.iter().map(String::as_str)).as_str())
        );
        // The longest token either way still prints at 3 dots a module on
        // 58 mm paper (384 dots), with the longest names and waybills.
        let longest = |n: usize, len: usize| {
            let waybills = (0..n).map(|i| format!("{i:0>len$}")).collect();
            let station = "S".repeat(64);
            let claims = HandoverClaims::new(
                "01JDHANDOVER0000000000000",
                (&station, &station),
                (&"师".repeat(64), &"C".repeat(32)),
                "2026-12-01T10:00:00.000Z",
                waybills,
            );
            issue_handover(&claims, &key(1))
        };
        for (n, len) in [(1, 32), (10, 32), (20, 8), (60, 8), (2000, 32)] {
            let t = longest(n, len);
            assert!(
                qr_span(&t) * 3 <= 384,
                "{n}×{len}: {} bytes, {} modules",
                t.len(),
                qr_span(&t)
            );
        }
    }

    #[test]
    fn verdicts_say_valid_or_why_not() {
        let k = key(1);
        let t = issue_handover(&handover(1), &k);
        let good =
            serde_json::to_value(Verdict::from(verify(&t, &k.verifying_key(), "ST-1"))).unwrap();
        assert_eq!(good["valid"], true);
        assert_eq!(good["kind"], "handover");
        assert_eq!(good["claims"]["hid"], "01JDHANDOVER0000000000000");
        assert!(
            good["proves"][1]
                .as_str()
                .unwrap()
                .contains("handed 1 parcel(s)"),
            "{good}"
        );
        assert!(good.get("reason").is_none());
        let bad = serde_json::to_value(Verdict::from(verify(&t, &key(2).verifying_key(), "ST-1")))
            .unwrap();
        assert_eq!(bad["valid"], false);
        assert_eq!(bad["reason"], "bad_signature");
        assert!(
            bad.get("kind").is_none() && bad.get("proves").is_none(),
            "{bad}"
        );
    }

    #[test]
    fn digest_is_sha256_of_the_lines() {
        // printf 'ab\ncd' | sha256sum
        assert_eq!(
            digest(["ab", "cd"]),
            "41b72d4bfcbee9afefc1319dc198260e7dfd43b16d45f56b3bdded5e8427fea7"
        );
    }

    #[test]
    fn bad_tokens_are_refused_with_their_reason() {
        let k = key(1);
        let vk = k.verifying_key();
        let good = issue_handover(&handover(3), &k);
        let (signed, _) = good.rsplit_once('.').unwrap();

        // Tampered: another payload under the old signature.
        let mut other = handover(3);
        other.cr = "李师傅".into();
        let forged = issue_handover(&other, &key(9));
        let (_, forged_payload_sig) = forged.split_once('.').unwrap();
        let (forged_payload, _) = forged_payload_sig.split_once('.').unwrap();
        let (_, sig) = good.rsplit_once('.').unwrap();
        let tampered = format!("YZH1.{forged_payload}.{sig}");
        let cases: Vec<(String, &str)> = vec![
            (tampered, "bad_signature"),
            (issue_handover(&handover(3), &key(2)), "bad_signature"),
            (good[..good.len() - 10].to_owned(), "malformed"),
            (signed.to_owned(), "malformed"),
            (
                "YZH1.bm90IGpzb24.".to_owned() + &"A".repeat(86),
                "malformed",
            ),
            ("YZR1.e30.AAAA".to_owned(), "unknown_token"),
            ("hello".to_owned(), "unknown_token"),
        ];
        for (t, want) in cases {
            let err = verify(&t, &vk, "ST-1").unwrap_err();
            assert_eq!(err.code(), want, "{t}: {err}");
        }
        let err = verify(&good, &vk, "ST-2").unwrap_err();
        assert_eq!(err.code(), "wrong_station");
        assert!(err.to_string().contains("station ST-1"), "{err}");
    }
}
