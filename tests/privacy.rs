//! What an anonymous customer screen may see and do (issue 24): each test
//! is a row of the table, and failed on the `main` before it.

use serde_json::{Value, json};

use crate::devices::EventStream;
use crate::platform::free_port;
use crate::util::{TestStation, png};

fn anon_scan(st: &TestStation, code: &str) -> (u16, Value) {
    st.request_as(
        None,
        "POST",
        "/api/v1/scans",
        Some(json!({"code": code, "channel": "self"})),
    )
}

/// A self-service answer shows the customer the return number, a masked
/// order number and, if the merchant allows, the items' names: never the
/// merchant or SKUs. A reject says why, nothing about the return.
#[test]
fn a_customer_sees_only_what_they_already_know() {
    let st = TestStation::start();
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-PRIV-0001", "merchant_id": "M-SECRET", "order_no": "ORD-20261122-7788",
         "status": "authorized", "items": [{"sku": "SKU-HIDDEN", "name": "Shoes", "qty": 1}]},
        {"return_no": "RT-PRIV-0002", "merchant_id": "M-SECRET", "order_no": "O-1",
         "status": "authorized", "customer_sees_items": true,
         "items": [{"sku": "SKU-HIDDEN", "name": "Shoes", "qty": 1}]},
        {"return_no": "RT-PRIV-0003", "merchant_id": "M-SECRET", "order_no": "ORD-99",
         "status": "cancelled", "items": [{"sku": "SKU-HIDDEN", "name": "Belt", "qty": 1}]}
    ]}));
    let (code, a) = anon_scan(&st, "RT-PRIV-0001");
    assert_eq!(code, 200);
    let text = a.to_string();
    for secret in [
        "M-SECRET",
        "SKU-HIDDEN",
        "ORD-20261122",
        "Shoes",
        "merchant_id",
        "expires_at",
    ] {
        assert!(!text.contains(secret), "{secret} shown to a customer: {a}");
    }
    assert_eq!(a["return"]["return_no"], "RT-PRIV-0001");
    assert_eq!(a["return"]["order_no"], "*************7788");
    let (_, b) = anon_scan(&st, "RT-PRIV-0002");
    assert_eq!(
        b["return"]["items"],
        json!([{"name": "Shoes", "qty": 1}]),
        "{b}"
    );
    assert!(!b.to_string().contains("SKU-HIDDEN"));
    // A reject: the reason, and nothing about the return.
    let (_, r) = anon_scan(&st, "RT-PRIV-0003");
    assert_eq!(r["decision"], "reject");
    assert_eq!(r["reason"], "cancelled");
    assert!(r.get("return").is_none(), "{r}");
    // A clerk sees everything.
    let (_, c) = st.post(
        "/api/v1/scans",
        json!({"code": "RT-PRIV-0001", "channel": "clerk"}),
    );
    assert_eq!(c["return"]["merchant_id"], "M-SECRET");
    assert_eq!(c["return"]["items"][0]["sku"], "SKU-HIDDEN");
}

/// Scanning the same code again reuses its draft; open self-service drafts
/// are capped.
#[test]
fn anonymous_drafts_are_bounded() {
    let st = TestStation::start_with("[station]\nmax_self_drafts = 3\n");
    let ids: Vec<String> = (0..3)
        .map(|_| {
            anon_scan(&st, "RT-FLOOD-0001").1["parcel_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one draft per return: {ids:?}"
    );
    let drafts: i64 = st
        .db()
        .query_row(
            "SELECT COUNT(*) FROM parcels WHERE state = 'draft'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(drafts, 1);
    for n in 2..=3 {
        assert_eq!(anon_scan(&st, &format!("RT-FLOOD-000{n}")).0, 200);
    }
    let (code, v) = anon_scan(&st, "RT-FLOOD-0004");
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (429, Some("too_many_drafts")),
        "{v}"
    );
    // A clerk is not held back by the customers' cap.
    assert_eq!(
        st.scan("RT-FLOOD-0005", "clerk")["decision"],
        "accept_provisional"
    );
}

/// The stream without a clerk session carries no parcel ids; a receipt by
/// parcel id needs the draft's key or the receipt token.
#[test]
fn an_anonymous_stream_and_receipt_ids_reveal_nothing() {
    let st = TestStation::start();
    let stream = EventStream::open(&st);
    let (_, a) = anon_scan(&st, "RT-STREAM-0001");
    let (id, key) = (a["parcel_id"].as_str().unwrap(), a["key"].as_str().unwrap());
    let photo = st
        .anon
        .post(st.url(&format!(
            "/api/v1/parcels/{id}/photos?kind=parcel&key={key}"
        )))
        .body(png(30, 20, 1))
        .send()
        .unwrap();
    assert_eq!(photo.status(), 201);
    // Without the key the draft cannot be touched by its id.
    let (code, _) = st.request_as(None, "POST", &format!("/api/v1/parcels/{id}/drop"), None);
    assert_eq!(code, 401);
    let (code, _) = st.request_as(
        None,
        "POST",
        &format!("/api/v1/parcels/{id}/drop?key=wrong"),
        None,
    );
    assert_eq!(code, 404);
    let (code, receipt) = st.request_as(
        None,
        "POST",
        &format!("/api/v1/parcels/{id}/drop?key={key}"),
        None,
    );
    assert_eq!(code, 200, "{receipt}");
    // Someone else's scan: also an event, also without ids.
    st.checkin("RT-STREAM-0002", "SF1234567890123");
    let scans = stream.wait_for("scan", 2);
    for s in &scans {
        assert!(s.get("parcel_id").is_none(), "{s}");
    }
    assert!(
        stream.named("parcel").is_empty(),
        "no state changes with ids"
    );
    // The receipt: not by id alone; with the key, or the token, yes.
    for (path, want) in [
        (format!("/api/v1/parcels/{id}/receipt"), 401),
        (format!("/api/v1/parcels/{id}/receipt.png"), 401),
        (format!("/api/v1/parcels/{id}/receipt?key={key}"), 200),
        (
            format!(
                "/api/v1/parcels/{id}/receipt?token={}",
                receipt["token"].as_str().unwrap()
            ),
            200,
        ),
        (
            format!("/api/v1/parcels/{id}/receipt?token=YZK1.forged.sig"),
            404,
        ),
    ] {
        let (code, body) = st.request_as(None, "GET", &path, None);
        assert_eq!(code, want, "{path}: {body}");
    }
    // The drop answer's picture links carry the token: they open.
    let svg = st
        .anon
        .get(st.url(receipt["svg"].as_str().unwrap()))
        .send()
        .unwrap();
    assert_eq!(svg.status(), 200);
}

/// Disabling a clerk ends their sessions at once; logging out without a
/// session is a 401 like every clerk endpoint.
#[test]
fn a_disabled_clerk_is_out_at_once() {
    // A fixed port: the CLI tells the running daemon.
    let st = TestStation::start_with(&format!("[api]\nlisten = \"127.0.0.1:{}\"\n", free_port()));
    st.add_clerk("li", "Li Na", "1357");
    let (_, login) = st.login("li", "1357");
    let token = login["token"].as_str().unwrap().to_owned();
    let (code, _) = st.request_as(Some(&token), "POST", "/api/v1/bags", Some(json!({})));
    assert_eq!(code, 201);
    let out = st.cli_json(&["clerk", "disable", "li"]);
    assert_eq!(out["sessions_ended"], true, "{out}");
    for (method, path, body) in [
        ("POST", "/api/v1/bags", Some(json!({}))),
        ("GET", "/api/v1/parcels", None),
    ] {
        let (code, _) = st.request_as(Some(&token), method, path, body);
        assert_eq!(code, 401, "{method} {path}: the next request");
    }
    let (code, v) = st.request_as(None, "DELETE", "/api/v1/sessions/current", None);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (401, Some("clerk_session_required"))
    );
}
