//! Bad input of every kind: a 4xx in our error shape, never a 5xx.

use serde_json::Value;

use crate::util::{TestStation, png};

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str, what: &str) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert_eq!(body["error"]["code"], want_code, "{what}: {body}");
    assert!(
        !body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{what}: {body}"
    );
}

#[test]
fn malformed_requests_get_4xx_in_the_error_shape() {
    let st = TestStation::start();
    let id = st.draft("RT-BAD-00001", "clerk");
    st.photo(&id, "label", 1);
    let raw = |method: &str, path: &str, body: &[u8]| -> (u16, Value) {
        let req = st
            .client
            .request(method.parse().unwrap(), st.url(path))
            .body(body.to_vec());
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null),
        )
    };
    let big_json = format!(
        "{{\"code\":\"{}\",\"channel\":\"clerk\"}}",
        "A".repeat(200_000)
    );
    let accept = format!("/api/v1/parcels/{id}/accept");
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/scans".into(),
            b"{not json".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/scans".into(),
            b"".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/scans".into(),
            br#"{"code":"RT-000001"}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/scans".into(),
            br#"{"code":"RT-000001","channel":"robot"}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/scans".into(),
            br#"{"code":"RT-000001","channel":"clerk","extra":1}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/scans".into(),
            br#"{"code":7,"channel":"clerk"}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/scans".into(),
            b"\xff\xfe\x00".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/scans".into(),
            big_json.into_bytes(),
            413,
            "body_too_large",
        ),
        (
            "GET",
            "/api/v1/scans".into(),
            vec![],
            405,
            "method_not_allowed",
        ),
        ("GET", "/api/v1/nothing".into(), vec![], 404, "not_found"),
        (
            "GET",
            "/api/v1/parcels/not-a-ulid".into(),
            vec![],
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/parcels/01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            vec![],
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/parcels/01ARZ3NDEKTSV4RRFFQ69G5FAV/drop".into(),
            vec![],
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/parcels?limit=-4".into(),
            vec![],
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/parcels?limit=abc".into(),
            vec![],
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/parcels?bogus=1".into(),
            vec![],
            400,
            "invalid_query",
        ),
        (
            "GET",
            format!("/api/v1/returns?q={}", "9".repeat(65)),
            vec![],
            400,
            "invalid_query",
        ),
        (
            "POST",
            accept.clone(),
            br#"{"waybill_no":"x"}"#.to_vec(),
            422,
            "invalid_waybill",
        ),
        (
            "POST",
            accept.clone(),
            br#"{"waybill_no":"SF123456789012","weight_g":-5}"#.to_vec(),
            422,
            "invalid_weight",
        ),
        (
            "POST",
            accept.clone(),
            br#"{"waybill_no":"ABCDEFGH12"}"#.to_vec(),
            422,
            "unknown_carrier",
        ),
        (
            "POST",
            accept.clone(),
            br#"{"waybill_no":"SF123456789012","condition":"exploded"}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            accept.clone(),
            br#"{"waybill_no":"SF123456789012","items":[{"sku":"NOPE","qty":1}]}"#.to_vec(),
            422,
            "invalid_items",
        ),
        (
            "POST",
            format!("/api/v1/parcels/{id}/photos?kind=selfie"),
            png(8, 8, 1),
            400,
            "invalid_query",
        ),
        (
            "POST",
            format!("/api/v1/parcels/{id}/photos"),
            b"GIF89a not a photo".to_vec(),
            415,
            "unsupported_photo_format",
        ),
        (
            "POST",
            format!("/api/v1/parcels/{id}/photos"),
            vec![],
            422,
            "invalid_photo",
        ),
        (
            "POST",
            format!("/api/v1/parcels/{id}/photos"),
            b"\x89PNG\r\n\x1a\n truncated".to_vec(),
            422,
            "invalid_photo",
        ),
        (
            "POST",
            format!("/api/v1/parcels/{id}/photos"),
            decompression_bomb(),
            422,
            "invalid_photo",
        ),
        (
            "GET",
            format!("/api/v1/parcels/{id}/receipt"),
            vec![],
            404,
            "no_receipt",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, answer) = raw(method, &path, &body);
        assert_error(got, &answer, status, code, &format!("{method} {path:.80}"));
    }

    // A photo above the configured limit is refused before it is read whole.
    let (status, body) = st.post_bytes(
        &format!("/api/v1/parcels/{id}/photos"),
        vec![0u8; 11 * 1024 * 1024],
    );
    assert_error(status, &body, 413, "photo_too_large", "huge photo");

    // None of it was a server error, and the station still works.
    let text = st.get_text("/metrics");
    assert!(
        text.contains("yizhan_http_errors_total{class=\"5xx\"} 0"),
        "{text}"
    );
    st.photo(&id, "parcel", 2);
}

/// A tiny PNG that claims to be 100 000 × 100 000 pixels.
fn decompression_bomb() -> Vec<u8> {
    let mut out = png(1, 1, 0);
    // IHDR width and height live at bytes 16..24; the CRC no longer
    // matches, which a decoder must reject as well.
    out[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    out[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    out
}

#[test]
fn storage_floor_refuses_photos_with_a_clear_error_but_scans_go_on() {
    let st = TestStation::start_with("[storage]\nmin_free_mb = 100000000");
    let id = st.draft("RT-FULL-0001", "clerk");
    let (status, body) = st.post_bytes(&format!("/api/v1/parcels/{id}/photos"), png(16, 16, 3));
    assert_error(status, &body, 507, "storage_full", "photo on a full disk");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("MiB"),
        "{body}"
    );
    assert_eq!(
        st.scan("RT-FULL-0002", "clerk")["decision"],
        "accept_provisional"
    );
}
