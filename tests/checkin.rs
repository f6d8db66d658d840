//! The check-in path end to end: scan → photos → accept or drop → receipt.

use serde_json::{Value, json};

use crate::util::{TestStation, manifest_of, png, wait_until};

fn events(st: &TestStation) -> Vec<(i64, String, Option<String>)> {
    let db = st.db();
    let mut stmt = db
        .prepare("SELECT seq, type, parcel_id FROM events ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn clerk_checkin_with_manifest_partial_items_and_verifiable_receipt() {
    let st = TestStation::start();
    st.import_manifest(json!({"returns": [{
        "return_no": "RT-20261122-0001", "merchant_id": "M1", "order_no": "ORD-778",
        "status": "authorized", "phone_last4": "4321",
        "items": [{"sku": "SKU-A", "name": "Shoes", "qty": 2}, {"sku": "SKU-B", "name": "Belt", "qty": 1}]
    }]}));

    let answer = st.scan("rt-20261122-0001", "clerk");
    assert_eq!(answer["decision"], "accept", "{answer}");
    assert_eq!(answer["return"]["return_no"], "RT-20261122-0001");
    assert_eq!(answer["return"]["items"].as_array().unwrap().len(), 2);
    let id = answer["parcel_id"].as_str().unwrap().to_owned();

    // A draft carries no event: nothing is promised yet.
    assert!(events(&st).is_empty());

    st.photo(&id, "label", 1);
    st.photo(&id, "parcel", 2);
    let (status, receipt) = st.post(
        &format!("/api/v1/parcels/{id}/accept"),
        json!({
            "waybill_no": "sf 1234 5678 9012", "weight_g": 850, "condition": "intact",
            "items": [{"sku": "SKU-A", "qty": 1}, {"sku": "SKU-B", "qty": 1}],
            "clerk_id": "c-07"
        }),
    );
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["waybill_no"], "SF123456789012");

    let (status, parcel) = st.get(&format!("/api/v1/parcels/{id}"));
    assert_eq!(status, 200);
    assert_eq!(parcel["state"], "accepted");
    assert_eq!(
        parcel["carrier"], "SF",
        "carrier detected from the waybill: {parcel}"
    );
    assert_eq!(
        parcel["partial"], true,
        "one of two shoes is missing: {parcel}"
    );
    assert_eq!(parcel["photos"].as_array().unwrap().len(), 2);

    // The accept event is on disk, with seq 1 and the photos in the body.
    let evs = events(&st);
    assert_eq!(
        evs,
        vec![(1, "parcel.accepted".to_owned(), Some(id.clone()))]
    );

    // The receipt QR decodes back to the token, which verifies with the
    // device key `yizhan identity` prints.
    let png_bytes = st
        .client
        .get(st.url(&format!("/api/v1/parcels/{id}/receipt.png")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let img = image::load_from_memory(&png_bytes).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, decoded) = grids[0].decode().unwrap();
    assert_eq!(decoded, receipt["token"].as_str().unwrap());

    let identity = st.cli_json(&["identity"]);
    let key =
        yizhan::token::parse_public_key(identity["receipt_public_key"].as_str().unwrap()).unwrap();
    let claims = yizhan::receipt::verify(&decoded, &key).expect("receipt verifies");
    assert_eq!(claims.rn, "RT-20261122-0001");
    assert_eq!(claims.wb.as_deref(), Some("SF123456789012"));

    let svg = st
        .client
        .get(st.url(&format!("/api/v1/parcels/{id}/receipt.svg")))
        .send()
        .unwrap();
    assert_eq!(svg.status(), 200);
    assert!(svg.text().unwrap().contains("<svg"));

    // A forged receipt does not verify.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    assert!(yizhan::receipt::verify(&decoded, &other.verifying_key()).is_err());
}

#[test]
fn self_service_drop_then_clerk_accepts() {
    let st = TestStation::start();
    st.import_manifest(manifest_of(&["RT-SELF-0001"]));
    let id = st.draft("RT-SELF-0001", "self");
    st.photo(&id, "parcel", 9);
    let (status, receipt) = st.post(&format!("/api/v1/parcels/{id}/drop"), json!({}));
    assert_eq!(status, 200, "{receipt}");
    assert!(receipt["token"].as_str().unwrap().starts_with("YZK1."));
    assert!(receipt["waybill_no"].is_null());

    // The same return cannot be dropped twice.
    let again = st.scan("RT-SELF-0001", "self");
    assert_eq!(again["decision"], "reject");
    assert_eq!(again["reason"], "already_dropped_off");

    let (status, body) = st.post(
        &format!("/api/v1/parcels/{id}/accept"),
        json!({"waybill_no": "JD0012345678901"}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, parcel) = st.get(&format!("/api/v1/parcels/{id}"));
    assert_eq!(parcel["state"], "accepted");
    assert_eq!(parcel["carrier"], "JD");
    let types: Vec<String> = events(&st).into_iter().map(|e| e.1).collect();
    assert_eq!(types, ["parcel.dropped", "parcel.accepted"]);
}

#[test]
fn clerk_drafts_are_accepted_not_dropped() {
    let st = TestStation::start();
    let id = st.draft("RT-CLERK-0001", "clerk");
    st.photo(&id, "parcel", 1);
    let (status, body) = st.post(&format!("/api/v1/parcels/{id}/drop"), json!({}));
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "wrong_channel");
}

#[test]
fn photos_are_required_before_custody() {
    let st = TestStation::start_with("[station]\nmin_photos = 2");
    let id = st.draft("RT-PHOTO-0001", "clerk");
    st.photo(&id, "label", 1);
    let (status, body) = st.post(
        &format!("/api/v1/parcels/{id}/accept"),
        json!({"waybill_no": "YT1234567890123"}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "photos_required");
    assert!(events(&st).is_empty(), "a refused accept leaves no event");
    st.photo(&id, "parcel", 2);
    let (status, _) = st.post(
        &format!("/api/v1/parcels/{id}/accept"),
        json!({"waybill_no": "YT1234567890123"}),
    );
    assert_eq!(status, 200);
}

#[test]
fn one_parcel_in_custody_per_return_and_per_waybill() {
    let st = TestStation::start();
    st.checkin("RT-DUP-0001", "SF1000000000001");

    // Same return again: refused at the scan.
    let answer = st.scan("RT-DUP-0001", "clerk");
    assert_eq!(answer["reason"], "already_dropped_off", "{answer}");

    // Another return with a waybill already in custody: refused at accept.
    let id = st.draft("RT-DUP-0002", "clerk");
    st.photo(&id, "label", 3);
    let (status, body) = st.post(
        &format!("/api/v1/parcels/{id}/accept"),
        json!({"waybill_no": "sf1000000000001"}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "waybill_in_custody");

    // Two drafts of one return (two counters at once): only one gets in.
    let a = st.draft("RT-RACE-0001", "clerk");
    let b = st.draft("RT-RACE-0001", "clerk");
    st.photo(&a, "label", 4);
    st.photo(&b, "label", 5);
    let (sa, _) = st.post(
        &format!("/api/v1/parcels/{a}/accept"),
        json!({"waybill_no": "SF7000000000001"}),
    );
    let (sb, body) = st.post(
        &format!("/api/v1/parcels/{b}/accept"),
        json!({"waybill_no": "SF7000000000002"}),
    );
    assert_eq!(sa, 200);
    assert_eq!(sb, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_dropped_off");

    // The schema itself refuses a second parcel in custody for a return.
    let rw = rusqlite::Connection::open(st.db_path()).unwrap();
    let err = rw
        .execute(
            "UPDATE parcels SET state = 'accepted', waybill_no = 'XX99999999' WHERE id = ?1",
            [&b],
        )
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
}

#[test]
fn reject_records_reason_and_frees_the_return() {
    let st = TestStation::start();
    let id = st.draft("RT-REJ-0001", "clerk");
    let (status, _) = st.post(&format!("/api/v1/parcels/{id}/reject"), json!({}));
    assert_eq!(status, 400, "a reason is required");
    let (status, parcel) = st.post(
        &format!("/api/v1/parcels/{id}/reject"),
        json!({"reason": "wrong item"}),
    );
    assert_eq!(status, 200, "{parcel}");
    assert_eq!(parcel["state"], "rejected");
    assert_eq!(parcel["reject_reason"], "wrong item");
    assert_eq!(events(&st)[0].1, "parcel.rejected");

    // A rejected parcel is final.
    let (status, body) = st.post(
        &format!("/api/v1/parcels/{id}/accept"),
        json!({"waybill_no": "SF2000000000001"}),
    );
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "illegal_transition");
    // And the return may be brought again.
    assert_ne!(st.scan("RT-REJ-0001", "clerk")["decision"], "reject");
}

#[test]
fn photo_added_after_custody_is_an_event() {
    let st = TestStation::start();
    let receipt = st.checkin("RT-LATE-0001", "SF3000000000001");
    let id = receipt["parcel_id"].as_str().unwrap();
    let (status, photo) = st.post_bytes(
        &format!("/api/v1/parcels/{id}/photos?kind=damage"),
        png(64, 64, 77),
    );
    assert_eq!(status, 201, "{photo}");
    let types: Vec<String> = events(&st).into_iter().map(|e| e.1).collect();
    assert_eq!(types, ["parcel.accepted", "parcel.photo_added"]);
    let file = st
        .data_dir()
        .join("photos")
        .join(&photo["sha256"].as_str().unwrap()[..2])
        .join(format!("{}.jpg", photo["sha256"].as_str().unwrap()));
    assert!(file.exists(), "{file:?}");
}

#[test]
fn lookup_finds_not_yet_dropped_returns_by_number_order_or_phone() {
    let st = TestStation::start();
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-LOOK-0001", "merchant_id": "M1", "order_no": "ORD-1", "status": "authorized", "phone_last4": "1111"},
        {"return_no": "RT-LOOK-0002", "merchant_id": "M1", "order_no": "ORD-2", "status": "authorized", "phone_last4": "1111"},
    ]}));
    let found = |q: &str| -> Vec<String> {
        let (status, body) = st.get(&format!("/api/v1/returns?q={q}"));
        assert_eq!(status, 200, "{body}");
        body["returns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["return_no"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(found("rt-look-0001"), ["RT-LOOK-0001"]);
    assert_eq!(found("ORD-2"), ["RT-LOOK-0002"]);
    let mut both = found("1111");
    both.sort();
    assert_eq!(both, ["RT-LOOK-0001", "RT-LOOK-0002"]);

    st.checkin("RT-LOOK-0001", "SF4000000000001");
    assert_eq!(
        found("1111"),
        ["RT-LOOK-0002"],
        "a dropped return is no longer offered"
    );
    assert!(found("9999").is_empty());
    let (status, body) = st.get("/api/v1/returns?q=");
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_query");
}

#[test]
fn parcel_list_filters_by_state() {
    let st = TestStation::start();
    st.checkin("RT-LIST-0001", "SF5000000000001");
    st.draft("RT-LIST-0002", "clerk");
    let (_, all) = st.get("/api/v1/parcels");
    assert_eq!(all["parcels"].as_array().unwrap().len(), 2);
    let (_, accepted) = st.get("/api/v1/parcels?state=accepted");
    let list: &Vec<Value> = accepted["parcels"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["return_no"], "RT-LIST-0001");
    let (status, body) = st.get("/api/v1/parcels?state=lost");
    assert_eq!(status, 400, "{body}");
}

#[test]
fn healthz_and_metrics_report_the_station() {
    let st = TestStation::start();
    st.checkin("RT-MET-0001", "SF6000000000001");
    let (status, health) = st.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert!(health["sqlite"].as_str().unwrap() >= "3.51.3");
    let text = st.get_text("/metrics");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
            .to_owned()
    };
    assert!(
        line("yizhan_parcels{state=\"accepted\"}").ends_with(" 1"),
        "{text}"
    );
    assert!(
        line("yizhan_outbox_pending_events").ends_with(" 1"),
        "{text}"
    );
}

/// The parcel's `parcel.accepted` data, from the outbox.
fn accepted_event(st: &TestStation, parcel_id: &str) -> Value {
    let c = st.db();
    let body: String = c
        .query_row(
            "SELECT b.body FROM events e JOIN event_bodies b ON b.seq = e.seq
             WHERE e.type = 'parcel.accepted' AND e.parcel_id = ?1",
            [parcel_id],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str::<Value>(&body).unwrap()["data"].clone()
}

/// The merchant's checks (SPEC §2.5) at the API: the clerk sees the rules
/// with the scan, answers the checklist and scans the items; refusals say
/// why and change nothing; what was found goes out in `parcel.accepted`
/// and the receipt signs its digest.
#[test]
fn the_merchants_checks_refuse_or_flag_and_travel_with_the_parcel() {
    let st = TestStation::start();
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-CHECK-0001", "merchant_id": "M1", "status": "authorized",
         "type": "exchange", "freight": "prepaid", "carrier": "SF", "weight_g": 1000,
         "items": [{"sku": "SKU-1", "name": "T恤", "qty": 2, "gtin": "6901234567892"},
                   {"sku": "SKU-2", "name": "袜子", "qty": 1, "gtin": "6901234567908"}],
         "checks": [{"id": "tags_attached", "label": "吊牌完好", "required": true},
                    {"id": "unused", "label": "未使用", "required": false}]},
        {"return_no": "RT-CHECK-0002", "merchant_id": "M1", "status": "authorized",
         "freight": "collect"},
        {"return_no": "RT-CHECK-0003", "merchant_id": "M1", "status": "authorized",
         "freight": "collect", "collect_allowed": true},
        {"return_no": "RT-PLAIN-0001", "merchant_id": "M1", "status": "authorized"}
    ]}));

    // Freight-collect is refused at the scan, unless the merchant allows it.
    let refused = st.scan("RT-CHECK-0002", "clerk");
    assert_eq!(
        (refused["decision"].as_str(), refused["reason"].as_str()),
        (Some("reject"), Some("freight_collect")),
        "{refused}"
    );
    assert_eq!(st.scan("RT-CHECK-0003", "clerk")["decision"], "accept");

    // The clerk sees the rules with the scan.
    let a = st.scan("RT-CHECK-0001", "clerk");
    assert_eq!(a["return"]["type"], "exchange", "{a}");
    assert_eq!(a["return"]["checks"][0]["label"], "吊牌完好");
    let id = a["parcel_id"].as_str().unwrap().to_owned();
    st.photo(&id, "label", 1);
    let accept = |body: Value| st.post(&format!("/api/v1/parcels/{id}/accept"), body);
    let both_yes = json!({"tags_attached": "yes", "unused": "yes"});

    for (body, status, code) in [
        // Another courier's waybill.
        (
            json!({"waybill_no": "YT1234567890123", "carrier": "YTO", "checks": both_yes}),
            409,
            "wrong_carrier",
        ),
        // The checklist not walked.
        (
            json!({"waybill_no": "SF1234567890123", "checks": {"tags_attached": "yes"}}),
            422,
            "checks_unanswered",
        ),
        // A required check failed.
        (
            json!({"waybill_no": "SF1234567890123", "checks": {"tags_attached": "no", "unused": "yes"}}),
            409,
            "check_failed",
        ),
        (
            json!({"waybill_no": "SF1234567890123", "checks": {"tags_attached": "maybe", "unused": "yes"}}),
            400,
            "invalid_json",
        ),
    ] {
        let (s, b) = accept(body);
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (status, Some(code)),
            "{b}"
        );
    }
    let (_, p) = st.get(&format!("/api/v1/parcels/{id}"));
    assert_eq!(p["state"], "draft", "a refusal changes nothing");

    // Taken, with what is off flagged: a sock missing, a stranger's
    // barcode, the optional check failed, 1.3 kg against 1 kg ± 15 %.
    let (s, r) = accept(json!({
        "waybill_no": "SF1234567890123",
        "weight_g": 1300,
        "checks": {"tags_attached": "yes", "unused": "no"},
        "gtins": ["6901234567892", "6901234567892", "4006381333931"],
    }));
    assert_eq!(s, 200, "{r}");
    let v = &accepted_event(&st, &id)["verification"];
    assert_eq!(v["type"], "exchange", "{v}");
    assert_eq!(v["freight"], "prepaid");
    assert_eq!(v["checks"], json!({"tags_attached": "yes", "unused": "no"}));
    assert_eq!(
        v["items"],
        json!([
            {"sku": "SKU-1", "gtin": "6901234567892", "expected": 2, "found": 2},
            {"sku": "SKU-2", "gtin": "6901234567908", "expected": 1, "found": 0}
        ])
    );
    assert_eq!(
        v["weight"],
        json!({"expected_g": 1000, "measured_g": 1300, "ok": false})
    );
    assert_eq!(
        v["flags"],
        json!([
            "check_failed",
            "missing_item",
            "unexpected_item",
            "weight_mismatch"
        ])
    );
    assert_eq!(v["unexpected"], json!(["4006381333931"]));

    // The receipt signs the verification's digest.
    let (_, proof) = st.get(&format!(
        "/api/v1/verify?token={}",
        r["token"].as_str().unwrap()
    ));
    use sha2::Digest;
    let want = hex::encode(sha2::Sha256::digest(v.to_string().as_bytes()));
    assert_eq!(proof["claims"]["vd"], want.as_str(), "{proof}");
    assert_eq!(proof["claims"]["wg"], 1300);

    // A return without rules is taken as always: no verification.
    let plain = st.checkin("RT-CHECK-0003", "SF1234567890124");
    let plain_id = plain["parcel_id"].as_str().unwrap();
    let e = accepted_event(&st, plain_id);
    assert!(
        e.get("verification").is_some(),
        "0003 has a freight rule: {e}"
    );
    let old = st.checkin("RT-PLAIN-0001", "SF1234567890125");
    let e = accepted_event(&st, old["parcel_id"].as_str().unwrap());
    assert!(e.get("verification").is_none(), "{e}");
}

/// Accepts parcel `id` with the next number of the SF pool through
/// `client` (base URL `base`); `None` if the request did not complete.
fn accept_from_pool(
    client: &reqwest::blocking::Client,
    base: &str,
    id: &str,
) -> Option<(u16, Value)> {
    let resp = client
        .post(format!("{base}/api/v1/parcels/{id}/accept"))
        .json(&json!({"waybill_source": "pool", "carrier": "SF"}))
        .send()
        .ok()?;
    let code = resp.status().as_u16();
    Some((code, resp.json().ok()?))
}

/// Pool numbers used by committed parcels, and whether each such parcel
/// holds that very number (as its waybill, from the pool).
fn pool_use(st: &TestStation) -> Vec<(String, bool)> {
    let c = st.db();
    let mut stmt = c
        .prepare(
            "SELECT w.waybill_no, EXISTS (SELECT 1 FROM parcels p WHERE p.id = w.parcel_id
                 AND p.waybill_no = w.waybill_no AND p.state = 'accepted' AND p.waybill_source = 'pool')
             FROM waybill_pool w WHERE w.parcel_id IS NOT NULL ORDER BY 1",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// E-waybill pools (SPEC §2.5): concurrent acceptances from several
/// clients never share a number; a kill -9 in the middle neither loses nor
/// reuses one; an empty pool refuses with what to do.
#[test]
fn pool_numbers_are_never_shared_lost_or_reused() {
    let mut st = TestStation::start();
    let rns: Vec<String> = (1..=40).map(|i| format!("RT-POOL-{i:04}")).collect();
    let numbers: Vec<String> = (1..=30).map(|i| format!("SF9{i:012}")).collect();
    let mut manifest = manifest_of(&rns.iter().map(String::as_str).collect::<Vec<_>>());
    manifest["waybill_pools"] = json!([{"carrier": "sf", "numbers": numbers, "block_id": "B1"}]);
    st.import_manifest(manifest);
    let drafts = |st: &TestStation, rns: &[String]| -> Vec<String> {
        rns.iter()
            .map(|rn| {
                let id = st.draft(rn, "clerk");
                st.photo(&id, "label", 1);
                id
            })
            .collect()
    };

    // Four clients at once, twelve parcels.
    let ids = drafts(&st, &rns[..12]);
    let base = st.base.clone();
    let got: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = ids
            .chunks(3)
            .map(|chunk| {
                let (client, base) = (st.client.clone(), base.clone());
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|id| {
                            let (code, r) =
                                accept_from_pool(&client, &base, id).expect("an answer");
                            assert_eq!(code, 200, "{r}");
                            r["waybill_no"].as_str().unwrap().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let distinct: std::collections::BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), 12, "shared numbers: {got:?}");
    assert!(got.iter().all(|n| numbers.contains(n)), "{got:?}");
    let e = accepted_event(&st, &ids[0]);
    assert_eq!(e["waybill_source"], "pool", "{e}");

    // Twelve more, and the daemon killed while they are in flight.
    let ids = drafts(&st, &rns[12..24]);
    std::thread::scope(|s| {
        for chunk in ids.chunks(3) {
            let (client, base) = (st.client.clone(), base.clone());
            s.spawn(move || {
                for id in chunk {
                    // Killed under it: no answer is an answer here.
                    let _ = accept_from_pool(&client, &base, id);
                }
            });
        }
        wait_until(
            "some of the second batch to commit",
            std::time::Duration::from_secs(20),
            || (pool_use(&st).len() > 12).then_some(()),
        );
        st.kill9();
    });
    let used = pool_use(&st);
    assert!(
        used.iter().all(|(_, held)| *held),
        "a number marked used without its parcel: {used:?}"
    );
    st.spawn();

    // Back up: the rest of the pool, then a clear refusal.
    let left: Vec<String> = {
        let c = st.db();
        let mut stmt = c
            .prepare("SELECT id FROM parcels WHERE state = 'draft' AND return_no LIKE 'RT-POOL-%' ORDER BY return_no")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let more = drafts(&st, &rns[24..]);
    let mut refused = None;
    for id in left.iter().chain(&more) {
        let (code, r) = accept_from_pool(&st.client, &st.base, id).expect("an answer");
        if code != 200 {
            refused = Some((code, r));
            break;
        }
    }
    let (code, r) = refused.expect("the pool ran out");
    assert_eq!(
        (code, r["error"]["code"].as_str()),
        (409, Some("pool_empty")),
        "{r}"
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scan a label"),
        "{r}"
    );
    let used = pool_use(&st);
    assert_eq!(used.len(), 30, "every number used once: {used:?}");
    assert!(used.iter().all(|(_, held)| *held), "{used:?}");
    let waybills: Vec<String> = {
        let c = st.db();
        let mut stmt = c
            .prepare("SELECT waybill_no FROM parcels WHERE waybill_source = 'pool'")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let distinct: std::collections::BTreeSet<&String> = waybills.iter().collect();
    assert_eq!((waybills.len(), distinct.len()), (30, 30), "{waybills:?}");
}

/// A pool below `station.waybill_low_water` is a warning on `/healthz`, in
/// the metrics and for the clerk screen; one above is not.
#[test]
fn a_pool_running_low_is_a_warning_everywhere() {
    let st = TestStation::start_with("[station]\nwaybill_low_water = 5\n");
    let numbers = |prefix: &str, n: usize| -> Vec<String> {
        (1..=n).map(|i| format!("{prefix}{i:012}")).collect()
    };
    let (_, h) = st.get("/healthz");
    assert!(
        h.get("waybill_pools").is_none(),
        "no pools, nothing said: {h}"
    );
    st.import_manifest(json!({"returns": [], "waybill_pools": [
        {"carrier": "SF", "numbers": numbers("SF9", 3)},
        {"carrier": "YTO", "numbers": numbers("YT8", 7)}
    ]}));
    let want = json!([
        {"carrier": "SF", "remaining": 3, "low": true},
        {"carrier": "YTO", "remaining": 7, "low": false}
    ]);
    let (code, h) = st.get("/healthz");
    assert_eq!(
        code, 200,
        "a low pool is a warning, not a failed check: {h}"
    );
    assert_eq!(h["waybill_pools"], want, "{h}");
    let (_, p) = st.get("/api/v1/waybill-pools");
    assert_eq!(
        (p["low_water"].as_u64(), &p["pools"]),
        (Some(5), &want),
        "{p}"
    );
    let (code, _) = st.request_as(None, "GET", "/api/v1/waybill-pools", None);
    assert_eq!(code, 401, "the clerk's");
    let metrics = st.get_text("/metrics");
    for line in [
        "yizhan_waybill_pool_remaining{carrier=\"SF\"} 3",
        "yizhan_waybill_pool_low{carrier=\"SF\"} 1",
        "yizhan_waybill_pool_low{carrier=\"YTO\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing");
    }
}
