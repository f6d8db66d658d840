//! Every scan decision of SPEC §4, through the API.

use serde_json::json;

use crate::util::{TestStation, platform_key, yzr1};

const FUTURE: i64 = 4_102_444_800; // 2100-01-01
const PAST: i64 = 1_600_000_000; // 2020-09-13

#[test]
fn every_scan_decision_through_the_api() {
    let st = TestStation::start();
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-OK-000001", "merchant_id": "M1", "status": "authorized"},
        {"return_no": "RT-CANCEL-01", "merchant_id": "M1", "status": "cancelled"},
        {"return_no": "RT-OLD-00001", "merchant_id": "M1", "status": "authorized", "expires_at": "2020-01-01T00:00:00Z"},
        {"return_no": "RT-INUSE-001", "merchant_id": "M1", "status": "authorized"},
    ]}));
    st.checkin("RT-INUSE-001", "SF9000000000001");
    let key = platform_key();
    let forger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let good = yzr1(
        json!({"rn": "RT-TOKEN-001", "mid": "M1", "exp": FUTURE, "sid": "ST-0001"}),
        &key,
    );
    let mut tampered = good.clone();
    let at = good.len() - 20; // inside the signature
    tampered.replace_range(at..=at, if &good[at..=at] == "A" { "B" } else { "A" });

    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("RT-OK-000001".into(), "accept", None),
        (
            "https://returns.example.com/r/RT-OK-000001".into(),
            "accept",
            None,
        ),
        (
            "https://returns.example.com/app?x=1&rn=rt-ok-000001".into(),
            "accept",
            None,
        ),
        (good.clone(), "accept", None),
        (
            yzr1(
                json!({"rn": "RT-TOKEN-002", "mid": "M1", "exp": FUTURE, "kid": "k1"}),
                &key,
            ),
            "accept",
            None,
        ),
        ("RT-NEVER-SEEN".into(), "accept_provisional", None),
        ("RT-CANCEL-01".into(), "reject", Some("cancelled")),
        ("RT-OLD-00001".into(), "reject", Some("expired")),
        ("RT-INUSE-001".into(), "reject", Some("already_dropped_off")),
        (
            yzr1(
                json!({"rn": "RT-TOKEN-003", "mid": "M1", "exp": PAST}),
                &key,
            ),
            "reject",
            Some("expired"),
        ),
        (
            yzr1(
                json!({"rn": "RT-TOKEN-004", "mid": "M1", "exp": FUTURE, "sid": "ST-9999"}),
                &key,
            ),
            "reject",
            Some("wrong_station"),
        ),
        (
            yzr1(
                json!({"rn": "RT-TOKEN-005", "mid": "M1", "exp": FUTURE}),
                &forger,
            ),
            "reject",
            Some("bad_signature"),
        ),
        (
            yzr1(
                json!({"rn": "RT-TOKEN-006", "mid": "M1", "exp": FUTURE, "kid": "k-unknown"}),
                &key,
            ),
            "reject",
            Some("bad_signature"),
        ),
        (tampered, "reject", Some("bad_signature")),
        (
            good[..good.len() - 10].to_owned(),
            "reject",
            Some("malformed"),
        ),
        ("YZR1.".into(), "reject", Some("malformed")),
        (
            yzr1(json!({"rn": "x", "mid": "M1", "exp": FUTURE}), &key),
            "reject",
            Some("malformed"),
        ),
        (
            yzr1(json!({"mid": "M1", "exp": FUTURE}), &key),
            "reject",
            Some("malformed"),
        ),
        ("hello world".into(), "reject", Some("malformed")),
        ("12345".into(), "reject", Some("malformed")),
        (
            "https://example.com/no/number".into(),
            "reject",
            Some("malformed"),
        ),
        ("A".repeat(5000), "reject", Some("malformed")),
        ("退货单号".into(), "reject", Some("malformed")),
        ("".into(), "reject", Some("malformed")),
    ];
    for (code, decision, reason) in cases {
        let answer = st.scan(&code, "clerk");
        assert_eq!(answer["decision"], decision, "{code:.60}: {answer}");
        assert_eq!(answer["reason"].as_str(), reason, "{code:.60}: {answer}");
        if decision == "reject" {
            assert!(answer["parcel_id"].is_null());
            assert!(!answer["message"]["zh"].as_str().unwrap().is_empty());
            assert!(!answer["message"]["en"].as_str().unwrap().is_empty());
        } else {
            assert!(answer["parcel_id"].is_string());
        }
    }
    let (_, provisional) = st.get("/api/v1/parcels?state=draft");
    let unverified = provisional["parcels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["return_no"] == "RT-NEVER-SEEN")
        .unwrap();
    assert_eq!(unverified["provisional"], true);
    assert_eq!(unverified["source"], "unverified");
}

#[test]
fn offline_policy_reject_refuses_unknown_numbers_but_not_tokens() {
    let st = TestStation::start_with("[codes]\noffline_policy = \"reject\"");
    let answer = st.scan("RT-UNKNOWN-01", "self");
    assert_eq!(answer["decision"], "reject");
    assert_eq!(answer["reason"], "unknown_code");
    let token = yzr1(
        json!({"rn": "RT-SIGNED-01", "mid": "M1", "exp": FUTURE}),
        &platform_key(),
    );
    assert_eq!(st.scan(&token, "self")["decision"], "accept");
}
