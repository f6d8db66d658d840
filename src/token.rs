//! Signed tokens `<PREFIX>.<payload>.<sig>` (SPEC §4, §8).
//!
//! `payload` is base64url without padding of a JSON object; `sig` is
//! base64url without padding of the Ed25519 signature over the ASCII bytes
//! `<PREFIX>.<payload>`. Return codes use `YZR1` (signed by the platform),
//! receipts `YZK1` (signed by the device).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;

/// Return codes issued by the merchant platform.
pub const RETURN_PREFIX: &str = "YZR1";
/// Receipts issued by this device.
pub const RECEIPT_PREFIX: &str = "YZK1";

/// Why a token is not a good one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a {0} token")]
    WrongPrefix(&'static str),
    #[error("token is not three dot-separated parts")]
    Shape,
    #[error("token payload is not base64url")]
    PayloadEncoding,
    #[error("token signature is not base64url")]
    SignatureEncoding,
    #[error("token signature does not verify")]
    BadSignature,
}

/// Signs `payload` (serialised as JSON) into a token.
pub fn encode<T: Serialize>(prefix: &str, payload: &T, key: &SigningKey) -> String {
    // A derived Serialize on plain structs cannot fail to produce JSON.
    let json = serde_json::to_vec(payload).expect("token payloads serialise");
    encode_raw(prefix, &json, key)
}

/// Signs raw payload bytes into a token (tests use it to forge odd payloads).
pub fn encode_raw(prefix: &str, payload: &[u8], key: &SigningKey) -> String {
    let signed = format!("{prefix}.{}", URL_SAFE_NO_PAD.encode(payload));
    let sig = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// A token split and decoded but not yet verified.
#[derive(Debug)]
pub struct Decoded<'a> {
    signed: &'a str,
    /// The payload bytes (JSON, not yet parsed).
    pub payload: Vec<u8>,
    sig: Vec<u8>,
}

/// Splits and decodes a token with the given prefix.
pub fn decode<'a>(prefix: &'static str, token: &'a str) -> Result<Decoded<'a>, TokenError> {
    let (signed, sig) = token.rsplit_once('.').ok_or(TokenError::Shape)?;
    let (head, payload) = signed.split_once('.').ok_or(TokenError::Shape)?;
    if head != prefix {
        return Err(TokenError::WrongPrefix(prefix));
    }
    if payload.contains('.') {
        return Err(TokenError::Shape);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::PayloadEncoding)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::SignatureEncoding)?;
    // A signature of the wrong length is a damaged or truncated code, not
    // a forgery: the caller reports it as malformed.
    if sig.len() != ed25519_dalek::SIGNATURE_LENGTH {
        return Err(TokenError::SignatureEncoding);
    }
    Ok(Decoded {
        signed,
        payload,
        sig,
    })
}

impl Decoded<'_> {
    /// Checks the signature against `key` (strict verification: no
    /// malleable or small-order signatures).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), TokenError> {
        let sig = Signature::from_slice(&self.sig).map_err(|_| TokenError::BadSignature)?;
        key.verify_strict(self.signed.as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)
    }
}

/// Decodes a base64 (standard or url-safe, padded or not) 32-byte Ed25519
/// public key, as `codes.trusted_keys` and `yizhan identity` write them.
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, String> {
    let bytes = decode_any_base64(b64.trim()).ok_or("not base64")?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, expected 32", b.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_owned())
}

fn decode_any_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

/// The base64 (standard, padded) form of a public key.
pub fn public_key_base64(key: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    proptest! {
        #[test]
        fn round_trips_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..300), k in 1u8..5) {
            let token = encode_raw(RETURN_PREFIX, &payload, &key(k));
            let decoded = decode(RETURN_PREFIX, &token).unwrap();
            prop_assert_eq!(&decoded.payload, &payload);
            prop_assert!(decoded.verify(&key(k).verifying_key()).is_ok());
            prop_assert_eq!(decoded.verify(&key(k + 1).verifying_key()), Err(TokenError::BadSignature));
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        let good = encode_raw(RETURN_PREFIX, b"{}", &key(1));
        let cases: [(&str, TokenError); 5] = [
            ("YZR1", TokenError::Shape),
            ("YZK1.e30.AAAA", TokenError::WrongPrefix(RETURN_PREFIX)),
            ("YZR1.e30.x.y", TokenError::Shape),
            ("YZR1.!!!.AAAA", TokenError::PayloadEncoding),
            ("YZR1.e30.@@", TokenError::SignatureEncoding),
        ];
        for (input, want) in cases {
            assert_eq!(decode(RETURN_PREFIX, input).unwrap_err(), want, "{input}");
        }
        // 80 of the 86 signature characters: still base64, but not 64 bytes.
        let truncated = &good[..good.len() - 6];
        assert_eq!(
            decode(RETURN_PREFIX, truncated).unwrap_err(),
            TokenError::SignatureEncoding
        );
    }

    #[test]
    fn public_keys_parse_in_any_base64() {
        let vk = key(7).verifying_key();
        let std = public_key_base64(&vk);
        assert_eq!(parse_public_key(&std).unwrap(), vk);
        assert_eq!(
            parse_public_key(&URL_SAFE_NO_PAD.encode(vk.as_bytes())).unwrap(),
            vk
        );
        assert!(
            parse_public_key("AAAA")
                .unwrap_err()
                .contains("expected 32")
        );
        assert!(parse_public_key("???").is_err());
    }
}
