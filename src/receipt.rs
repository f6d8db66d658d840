//! Receipts (SPEC §8): proof for the customer that the station took the
//! parcel, as a `YZK1` token signed by the device key, rendered as a QR code.
//!
//! The token is rebuilt from the parcel row whenever it is asked for;
//! Ed25519 signatures are deterministic, so the same parcel always yields
//! the same token and nothing but the row needs storing.

use ed25519_dalek::{SigningKey, VerifyingKey};
use image::{ImageEncoder, Luma};
use qrcode::{EcLevel, QrCode};
use serde::{Deserialize, Serialize};

use crate::token::{self, RECEIPT_PREFIX, TokenError};

/// The signed payload: receipt id, return number, station, device, time,
/// and once a clerk has recorded them the waybill, the weight, and the
/// digest of the photos (`custody::digest` of their SHA-256s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub rid: String,
    pub rn: String,
    pub sid: String,
    pub did: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wb: Option<String>,
    /// Photos: the digest of their SHA-256s, in the order taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ph: Option<String>,
    /// Weight in grams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg: Option<i64>,
    /// The merchant's checks: hex SHA-256 of the `verification` block's
    /// JSON as `parcel.accepted` carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vd: Option<String>,
}

/// Why a receipt could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("receipt does not fit in a QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
    #[error("receipt PNG encoding failed: {0}")]
    Png(#[from] image::ImageError),
}

/// Signs the claims into a `YZK1…` token.
pub fn issue(claims: &Claims, key: &SigningKey) -> String {
    token::encode(RECEIPT_PREFIX, claims, key)
}

/// Verifies a receipt token against the device public key.
pub fn verify(token: &str, key: &VerifyingKey) -> Result<Claims, TokenError> {
    let decoded = token::decode(RECEIPT_PREFIX, token)?;
    decoded.verify(key)?;
    serde_json::from_slice(&decoded.payload).map_err(|_| TokenError::PayloadEncoding)
}

fn qr(token: &str) -> Result<QrCode, RenderError> {
    // Medium error correction survives a scuffed thermal printout.
    Ok(QrCode::with_error_correction_level(
        token.as_bytes(),
        EcLevel::M,
    )?)
}

/// The receipt QR as a PNG (8 px modules, quiet zone included).
pub fn render_png(token: &str) -> Result<Vec<u8>, RenderError> {
    let img = qr(token)?
        .render::<Luma<u8>>()
        .module_dimensions(8, 8)
        .build();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::L8,
    )?;
    Ok(out)
}

/// The receipt QR as an SVG document.
pub fn render_svg(token: &str) -> Result<String, RenderError> {
    Ok(qr(token)?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn decode_png(png: &[u8]) -> String {
        let img = image::load_from_memory(png).unwrap().to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    proptest! {
        #[test]
        fn token_round_trips(rn in "[A-Z0-9-]{6,40}", wb in proptest::option::of("[A-Z0-9]{8,20}"), wg in proptest::option::of(0i64..100_000)) {
            let ph = wg.map(|g| crate::custody::digest([g.to_string().as_str()]));
            let claims = Claims { rid: "01JD".into(), rn, sid: "ST-1".into(), did: "k".into(), at: "2026-11-22T10:00:00.000Z".into(), wb, ph, wg, vd: None };
            let t = issue(&claims, &key());
            prop_assert_eq!(verify(&t, &key().verifying_key()).unwrap(), claims);
            prop_assert!(verify(&t, &SigningKey::from_bytes(&[8; 32]).verifying_key()).is_err());
        }
    }

    #[test]
    fn rendered_png_decodes_back_to_a_verifying_token() {
        let claims = Claims {
            rid: ulid::Ulid::new().to_string(),
            rn: "RT2026112200123".into(),
            sid: "ST-0001".into(),
            did: "kiosk-a".into(),
            at: "2026-11-22T10:00:00.123Z".into(),
            wb: Some("SF1234567890123".into()),
            // Twelve photos and a weight: the receipt still prints as one
            // QR code that reads back.
            ph: Some(crate::custody::digest(["0"; 12])),
            wg: Some(12_345),
            vd: Some(crate::custody::digest(["{}"])),
        };
        let t = issue(&claims, &key());
        let scanned = decode_png(&render_png(&t).unwrap());
        assert_eq!(scanned, t);
        assert_eq!(verify(&scanned, &key().verifying_key()).unwrap(), claims);
        let svg = render_svg(&t).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
    }
}
