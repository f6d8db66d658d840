//! The kiosk screen in a real headless Chromium (driven over WebDriver by
//! `fantoccini` through `chromedriver`) against the real daemon: a customer
//! drop-off, a clerk check-in and handover, a wrong PIN, the offline
//! banner. Screenshots of each screen go to `target/screenshots/` (outside
//! git) for a reviewer to look at.
//!
//! The fake camera (`--use-fake-device-for-media-stream`) gives
//! `getUserMedia` a moving test pattern, so photos are really captured,
//! uploaded, re-encoded and stored.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::devices::Pty;
use crate::platform::free_port;
use crate::util::{TestStation, wait_until};

const ENTER: &str = "\u{E007}";
const WAIT: Duration = Duration::from_secs(30);

/// A chromedriver process and a browser session on it.
struct Browser {
    driver: Child,
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
}

impl Browser {
    fn start(width: u32, height: u32) -> Browser {
        Browser::start_with(width, height, &[])
    }

    /// A browser with extra Chromium flags (a fake camera's video file).
    fn start_with(width: u32, height: u32, extra: &[String]) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver must be installed (Debian: chromium-driver); .ci/run installs it",
            );
        wait_until("chromedriver listening", WAIT, || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut caps = serde_json::Map::new();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--use-fake-device-for-media-stream".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
            "--lang=zh-CN".into(),
        ];
        args.extend(extra.iter().cloned());
        // CI runs as root, where Chromium's sandbox cannot start.
        if rustix::process::geteuid().is_root() {
            args.push("--no-sandbox".into());
        }
        let mut opts = json!({ "args": args });
        if let Some(bin) = std::env::var_os("YIZHAN_TEST_CHROMIUM") {
            opts["binary"] = json!(bin.to_string_lossy());
        }
        caps.insert("goog:chromeOptions".into(), opts);
        let client = rt
            .block_on(
                // chromedriver on loopback: plain HTTP, no TLS stack needed.
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a Chromium session (is chromium installed?)");
        let b = Browser {
            driver,
            client: Some(client),
            rt,
        };
        b.resize(width, height);
        b
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).expect("goto");
        self.wait_js(
            "the screen booted",
            "return document.body.dataset.ready === '1'",
        );
    }

    /// From the customer start screen, logs clerk `id` in with `pin` and
    /// waits for the console.
    fn clerk_login(&self, id: &str, pin: &str) {
        self.click("#c-to-clerk");
        self.wait_js(
            "the login screen",
            "return document.body.dataset.screen === 'k-login'",
        );
        self.type_into("#k-id", id);
        self.type_into("#k-pin", &format!("{pin}{ENTER}"));
        self.wait_js(
            "the console",
            "return document.body.dataset.screen === 'k-console'",
        );
    }

    fn js(&self, script: &str) -> Value {
        self.rt
            .block_on(self.c().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until `script` returns something truthy; returns it.
    fn wait_js(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script);
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; screen: {}",
                self.js("return document.body.dataset.screen + ' | ' + document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn text(&self, css: &str) -> String {
        self.js(&format!(
            "return document.querySelector({css:?}).textContent"
        ))
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    fn visible(&self, css: &str) -> bool {
        self.js(&format!(
            "const e = document.querySelector({css:?}); return !!e && e.offsetParent !== null"
        )) == json!(true)
    }

    fn click(&self, css: &str) {
        self.rt
            .block_on(async { self.c().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    fn type_into(&self, css: &str, text: &str) {
        self.rt
            .block_on(async {
                self.c()
                    .find(Locator::Css(css))
                    .await?
                    .send_keys(text)
                    .await
            })
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Saves a screenshot under `target/screenshots/NAME.png`.
    fn screenshot(&self, name: &str) {
        let png = self.rt.block_on(self.c().screenshot()).expect("screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The page fits the window: no scrollbars either way.
    fn assert_fits(&self, what: &str) {
        let v = self.js(
            "const d = document.documentElement; return [d.scrollWidth, d.scrollHeight, innerWidth, innerHeight]",
        );
        let n = |i: usize| v[i].as_i64().unwrap();
        assert!(
            n(0) <= n(2) && n(1) <= n(3),
            "{what} needs scrolling: content {}x{} in a {}x{} window",
            n(0),
            n(1),
            n(2),
            n(3)
        );
    }

    /// Makes the page's viewport (not the window) `width` x `height`: the
    /// window is that plus whatever the browser's own frame takes.
    fn resize(&self, width: u32, height: u32) {
        // The window manager applies a resize when it gets to it, and the
        // frame's size can change with the window: measure, resize, wait for
        // the viewport, and measure again if it came out wrong.
        let want = json!([width, height]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let frame = self.js("return [outerWidth - innerWidth, outerHeight - innerHeight]");
            let extra = |i: usize| frame[i].as_u64().unwrap_or(0) as u32;
            self.rt
                .block_on(
                    self.c()
                        .set_window_size(width + extra(0), height + extra(1)),
                )
                .expect("resize");
            let settle = Instant::now() + Duration::from_secs(1);
            loop {
                let inner = self.js("return [innerWidth, innerHeight]");
                if inner == want {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "viewport after resize: {inner}, wanted {want}"
                );
                if Instant::now() > settle {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromedriver() -> String {
    std::env::var("YIZHAN_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

#[test]
fn a_customer_drops_off_a_parcel_at_the_kiosk() {
    let st = TestStation::start();
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-KIOSK-0001", "merchant_id": "M1", "status": "authorized"}
    ]}));
    let b = Browser::start(1024, 600);
    b.goto(&st.url("/"));
    assert_eq!(b.text("#c-start h1"), "请扫描退货码", "zh-CN by default");
    b.assert_fits("the start screen at 1024x600");
    b.screenshot("customer-1-start");

    // An unknown code: red, with the reason in words.
    b.type_into("#c-code", &format!("not a code!{ENTER}"));
    b.wait_js(
        "a verdict",
        "return document.querySelector('#c-verdict').classList.contains('reject')",
    );
    assert_eq!(b.text("#c-verdict-text"), "无法识别的退货码");
    b.screenshot("customer-2-rejected");
    b.click("#c-result-back");

    // The real one: green, photo from the camera, drop, receipt.
    b.wait_js(
        "the start screen",
        "return document.body.dataset.screen === 'c-start'",
    );
    b.type_into("#c-code", &format!("RT-KIOSK-0001{ENTER}"));
    b.wait_js(
        "accepted",
        "return document.querySelector('#c-verdict').classList.contains('accept')",
    );
    b.assert_fits("the result screen");
    b.screenshot("customer-3-accepted");
    b.click("#c-result-next");
    b.wait_js(
        "the camera",
        "const v = document.querySelector('#c-video'); return v.videoWidth > 0",
    );
    assert!(b.js("return document.querySelector('#c-photo-next').disabled") == json!(true));
    // The photo's upload is held in the page until released: meanwhile the
    // screen says it is processing, and a second tap sends nothing.
    b.js("window.__held = []; const f = window.fetch;
          window.fetch = (url, init) => String(url).includes('/photos')
            ? new Promise((ok) => window.__held.push(() => ok(f(url, init))))
            : f(url, init);");
    b.click("#c-photo-take");
    b.wait_js(
        "the upload under way",
        "return window.__held.length === 1 && !document.querySelector('#c-photo-busy').hidden",
    );
    assert_eq!(b.text("#c-photo-busy"), "正在处理照片，请稍候…");
    assert!(b.js("return document.querySelector('#c-photo-take').disabled") == json!(true));
    b.screenshot("customer-4-photo-processing");
    b.js("document.querySelector('#c-photo-take').click()");
    b.js("window.__held.forEach((go) => go())");
    b.wait_js(
        "the photo stored",
        "return !document.querySelector('#c-photo-next').disabled",
    );
    assert!(
        !b.visible("#c-photo-busy"),
        "the progress goes with the upload"
    );
    assert!(
        b.js("return window.__held.length") == json!(1),
        "one upload, however many taps"
    );
    b.assert_fits("the photo screen");
    b.screenshot("customer-4-photo");
    b.click("#c-photo-next");
    b.wait_js(
        "the drop screen",
        "return document.body.dataset.screen === 'c-drop'",
    );
    b.screenshot("customer-5-drop");
    b.click("#c-drop-confirm");
    b.wait_js("the receipt", "const i = document.querySelector('#c-receipt-qr'); return document.body.dataset.screen === 'c-receipt' && i.complete && i.naturalWidth > 0");
    assert_eq!(b.text("#c-receipt-rn"), "RT-KIOSK-0001");
    b.assert_fits("the receipt screen");
    b.screenshot("customer-6-receipt");

    // The parcel is in custody with the camera's photo.
    let (state, photos): (String, i64) = st
        .db()
        .query_row(
            "SELECT state, (SELECT COUNT(*) FROM parcel_photos pp WHERE pp.parcel_id = p.id)
             FROM parcels p WHERE return_no = 'RT-KIOSK-0001' AND state <> 'draft'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), photos), ("dropped", 1));

    // English, and the progress page, also at 1920x1080.
    b.click("#c-receipt-done");
    b.click("#lang");
    assert_eq!(b.text("#c-start h1"), "Scan your return code");
    b.resize(1920, 1080);
    b.assert_fits("the start screen at 1920x1080");
    b.screenshot("customer-7-start-en-1080p");
    b.click("#c-to-progress");
    b.type_into("#c-progress-code", &format!("RT-KIOSK-0001{ENTER}"));
    b.wait_js(
        "the progress",
        "return document.querySelector('#c-progress-out dl')",
    );
    assert!(
        b.text("#c-progress-out")
            .contains("Dropped off at the station"),
        "{}",
        b.text("#c-progress-out")
    );
    b.assert_fits("the progress screen");
    b.screenshot("customer-8-progress");
}

#[test]
fn a_clerk_logs_in_checks_in_with_the_scanner_and_hands_over() {
    let st = TestStation::start();
    st.add_clerk("wei", "张伟", "2468");
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-DESK-0001", "merchant_id": "M1", "status": "authorized",
         "items": [{"sku": "SKU-1", "name": "T恤", "qty": 2}, {"sku": "SKU-2", "name": "袜子", "qty": 1}]},
        {"return_no": "RT-DESK-0002", "merchant_id": "M1", "status": "authorized", "phone_last4": "8866"}
    ]}));
    let b = Browser::start(1280, 800);
    b.goto(&st.url("/"));
    b.click("#c-to-clerk");
    b.wait_js(
        "the login screen",
        "return document.body.dataset.screen === 'k-login'",
    );

    // A wrong PIN is refused on screen.
    b.type_into("#k-id", "wei");
    b.type_into("#k-pin", &format!("1111{ENTER}"));
    b.wait_js(
        "the error",
        "return document.querySelector('#k-login-err').textContent",
    );
    assert_eq!(b.text("#k-login-err"), "工号或 PIN 码错误");
    b.screenshot("clerk-1-wrong-pin");
    assert!(b.visible("#k-login"));

    b.type_into("#k-pin", &format!("2468{ENTER}"));
    b.wait_js(
        "the console",
        "return document.body.dataset.screen === 'k-console'",
    );
    assert_eq!(b.text("#k-who"), "张伟");

    // The whole check-in from the scanner field: code, Enter for a photo,
    // waybill, Enter past the items, Enter to accept.
    let field = "#k-field";
    b.type_into(field, &format!("RT-DESK-0001{ENTER}"));
    b.wait_js(
        "the photo step",
        "return document.querySelector('#k-steps li.current').dataset.step === 'photo'",
    );
    b.wait_js(
        "the camera",
        "return document.querySelector('#k-video').videoWidth > 0",
    );
    b.screenshot("clerk-2-photo-step");
    b.type_into(field, ENTER);
    b.wait_js(
        "a photo",
        "return document.querySelectorAll('#k-thumbs span').length === 1",
    );
    b.type_into(field, &format!("SF123456789012{ENTER}"));
    b.wait_js(
        "the items step",
        "return document.querySelector('#k-steps li.current').dataset.step === 'items'",
    );
    // One sock is missing: untick it.
    b.click("#k-items input[type=checkbox][data-i='1']");
    b.screenshot("clerk-3-items");
    b.type_into(field, ENTER);
    b.wait_js(
        "the confirm step",
        "return document.querySelector('#k-steps li.current').dataset.step === 'confirm'",
    );
    b.type_into(field, ENTER);
    b.wait_js("accepted", "return document.querySelector('#k-receipt img') && document.querySelector('#k-steps li.current').dataset.step === 'scan'");
    assert!(
        b.text("#k-msg").contains("RT-DESK-0001"),
        "{}",
        b.text("#k-msg")
    );
    b.screenshot("clerk-4-accepted");

    let (state, clerk, waybill, items): (String, String, String, String) = st
        .db()
        .query_row(
            "SELECT state, clerk_id, waybill_no, items FROM parcels WHERE return_no = 'RT-DESK-0001' AND state <> 'draft'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (state.as_str(), clerk.as_str(), waybill.as_str()),
        ("accepted", "wei", "SF123456789012")
    );
    let items: Value = serde_json::from_str(&items).unwrap();
    assert_eq!(
        items[1]["qty"], 0,
        "the partial return is recorded: {items}"
    );

    // A code that won't scan: found by the phone's last 4 digits, then the
    // same steps (here cancelled; the draft promises nothing).
    b.click("#k-cantscan");
    b.type_into("#k-lookup-q", &format!("8866{ENTER}"));
    b.wait_js(
        "a lookup result",
        "return document.querySelector('#k-lookup-out button[data-rn]')",
    );
    b.screenshot("clerk-5-lookup");
    b.click("#k-lookup-out button[data-rn='RT-DESK-0002']");
    b.wait_js(
        "the photo step",
        "return document.querySelector('#k-steps li.current').dataset.step === 'photo'",
    );
    assert!(b.text("#k-return").contains("RT-DESK-0002"));
    b.click("#k-cancel");

    // Bags and exceptions, for the reviewer's eyes.
    b.click("button[data-tab='bags']");
    b.type_into("#k-bag-code", &format!("TOTE-01{ENTER}"));
    b.wait_js(
        "the bag open",
        "return document.querySelector('#k-bag-current').textContent === 'TOTE-01'",
    );
    b.screenshot("clerk-6-bags");
    b.click("button[data-tab='exceptions']");
    b.wait_js(
        "the exception lists",
        "return document.querySelector('#k-held').textContent",
    );
    b.screenshot("clerk-7-exceptions");

    // The parcel list shows it; then the courier takes it.
    b.click("button[data-tab='parcels']");
    b.click(".filters button[data-state='accepted']");
    b.wait_js(
        "the list",
        "return document.querySelector('#k-parcels').textContent.includes('RT-DESK-0001')",
    );
    b.screenshot("clerk-8-parcels");
    b.click("button[data-tab='handover']");
    b.type_into("#k-ho-courier", "王师傅");
    b.type_into("#k-ho-scan", &format!("SF123456789012{ENTER}"));
    b.wait_js(
        "the scanned waybill listed",
        "return document.querySelectorAll('#k-ho-list li').length === 1",
    );
    b.click("#k-ho-confirm");
    b.wait_js(
        "the handover done",
        "return document.querySelector('#k-ho-msg').classList.contains('ok')",
    );
    assert!(
        b.text("#k-ho-msg").starts_with("交接完成：1 件"),
        "{}",
        b.text("#k-ho-msg")
    );
    b.screenshot("clerk-9-handover");
    let (_, p) = st.get("/api/v1/parcels?state=handed_over");
    assert_eq!(p["parcels"][0]["return_no"], "RT-DESK-0001");
    let (_, h) = st.get("/api/v1/handovers");
    assert_eq!(h["handovers"][0]["courier"], "王师傅");
}

#[test]
fn the_screen_shows_an_offline_banner_when_sync_is_down() {
    // The broker's port has nobody listening: sync is configured but down.
    let st = TestStation::start_with(&format!(
        "[sync]\nretry_initial_ms = 50\nretry_max_s = 1\nreconnect_spread_ms = 100\n[sync.mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n",
        free_port()
    ));
    st.checkin("RT-OFF-00001", "SF900000000001");
    let b = Browser::start(1024, 600);
    b.goto(&st.url("/"));
    b.wait_js(
        "the offline banner",
        "return !document.querySelector('#offline').hidden",
    );
    assert_eq!(
        b.js("return document.querySelector('#syncbar').dataset.state"),
        json!("offline")
    );
    assert!(
        b.text("#syncbar").contains("待同步 1 条"),
        "{}",
        b.text("#syncbar")
    );
    assert!(b.text("#offline").contains("网络离线"));
    b.assert_fits("the start screen with the banner");
    b.screenshot("offline-banner");
}

#[test]
fn customer_screens_go_back_to_the_start_when_left_alone() {
    let st = TestStation::start_with("[api]\nkiosk_idle_s = 10\n");
    let b = Browser::start(1024, 600);
    b.goto(&st.url("/"));
    b.click("#c-to-progress");
    b.wait_js(
        "the progress screen",
        "return document.body.dataset.screen === 'c-progress'",
    );
    // The countdown shows for the last seconds, then the start screen.
    b.wait_js(
        "the countdown",
        "return !document.querySelector('#idle-note').hidden",
    );
    b.screenshot("customer-9-idle-countdown");
    b.wait_js(
        "back at the start",
        "return document.body.dataset.screen === 'c-start'",
    );
    assert!(b.js("return document.querySelector('#idle-note').hidden") == json!(true));
}

/// A station with a serial scanner (on a pty) feeding `channel`, and more
/// configuration.
fn station_with_scanner(channel: &str, extra: &str) -> (TestStation, Pty) {
    let pty = Pty::open();
    let mut st = TestStation::create(extra);
    let link = st.dir.path().join("scanner.tty");
    pty.link(&link);
    let mut config = std::fs::read_to_string(&st.config).unwrap();
    config.push_str(&format!(
        "[[hardware.scanners]]\nname = \"counter\"\nkind = \"serial\"\npath = \"{}\"\nchannel = \"{channel}\"\n",
        link.display()
    ));
    std::fs::write(&st.config, config).unwrap();
    st.spawn();
    wait_until("the scanner open", WAIT, || {
        let (_, h) = st.get("/healthz");
        (h["devices"]["counter"]["state"] == "ok").then_some(())
    });
    (st, pty)
}

/// SPEC §10: a scan never depends on the browser having keyboard focus.
/// The customer's scan at the kiosk's own scanner moves the screen on with
/// no typing at all.
#[test]
fn a_scan_at_the_kiosk_scanner_moves_the_customer_screen_on() {
    let (st, mut pty) = station_with_scanner("self", "");
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-SCANNER-0001", "merchant_id": "M1", "status": "authorized"}
    ]}));
    let b = Browser::start(1024, 600);
    b.goto(&st.url("/"));
    // Nothing has the focus: the field is blurred on purpose.
    b.js("document.activeElement.blur(); return true");
    assert!(
        !b.visible("#c-camscan"),
        "with a scanner, the browser camera is not used for codes"
    );
    pty.send(b"RT-SCANNER-0001\r");
    b.wait_js(
        "accepted",
        "return document.body.dataset.screen === 'c-result' && document.querySelector('#c-verdict').classList.contains('accept')",
    );
    assert_eq!(b.text("#c-return-no"), "RT-SCANNER-0001");
    b.screenshot("devices-1-customer-scanner");
    // A bad code from the scanner is refused on screen in words.
    b.click("#c-result-back");
    b.wait_js(
        "the start",
        "return document.body.dataset.screen === 'c-start'",
    );
    pty.send(b"not-a-code!!\r");
    b.wait_js(
        "rejected",
        "return document.querySelector('#c-verdict').classList.contains('reject')",
    );
    assert_eq!(b.text("#c-verdict-text"), "无法识别的退货码");
}

/// The clerk's counter scanner starts a check-in from a return code and
/// fills the waybill from a courier barcode; a device problem (a printer
/// that is off) is shown to the clerk in both languages.
#[test]
fn the_counter_scanner_drives_a_clerk_check_in() {
    let printer_port = free_port();
    let (st, mut pty) = station_with_scanner(
        "clerk",
        &format!("[hardware.printer]\nkind = \"tcp\"\naddress = \"127.0.0.1:{printer_port}\"\n"),
    );
    st.add_clerk("wei", "张伟", "2468");
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-COUNTER-0001", "merchant_id": "M1", "status": "authorized"}
    ]}));
    let b = Browser::start(1280, 800);
    b.goto(&st.url("/"));
    b.clerk_login("wei", "2468");
    b.wait_js(
        "the printer problem shown",
        "return !document.querySelector('#k-devices').hidden",
    );
    assert!(
        b.text("#k-devices").contains("打印机: 离线"),
        "{}",
        b.text("#k-devices")
    );
    b.js("document.activeElement.blur(); return true");
    pty.send(b"RT-COUNTER-0001\r");
    b.wait_js(
        "the photo step",
        "return document.querySelector('#k-steps li.current').dataset.step === 'photo'",
    );
    assert!(b.text("#k-return").contains("RT-COUNTER-0001"));
    b.wait_js(
        "the camera",
        "return document.querySelector('#k-video').videoWidth > 0",
    );
    b.type_into("#k-field", ENTER);
    b.wait_js(
        "a photo",
        "return document.querySelectorAll('#k-thumbs span').length === 1",
    );
    b.js("document.activeElement.blur(); return true");
    pty.send(b"SF1234567890123\r");
    b.wait_js(
        "the confirm step",
        "return document.querySelector('#k-steps li.current').dataset.step === 'confirm'",
    );
    assert!(b.text("#k-return").contains("SF1234567890123"));
    b.screenshot("devices-2-counter-scanner");
    b.click("#k-accept");
    b.wait_js(
        "accepted",
        "return document.querySelector('#k-receipt #k-reprint')",
    );
    b.click("#lang");
    assert!(
        b.text("#k-devices").contains("Printer: offline"),
        "{}",
        b.text("#k-devices")
    );
    b.screenshot("devices-3-accepted-printer-off");
    b.click("#k-reprint");
    b.wait_js(
        "queued",
        "return document.querySelector('#k-msg').textContent.includes('Sent to the printer')",
    );
    let jobs: i64 = st
        .db()
        .query_row(
            "SELECT COUNT(*) FROM print_jobs WHERE printed_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(jobs, 2, "the receipt and its reprint wait for the printer");
}

/// The customer screen without a scanner reads the code from the browser
/// camera: Chromium's fake camera plays a video file showing a QR code.
#[test]
fn the_browser_camera_reads_the_customers_code() {
    let st = TestStation::start();
    st.import_manifest(json!({"returns": [
        {"return_no": "RT-WEBCAM-0001", "merchant_id": "M1", "status": "authorized"}
    ]}));
    let video = st.dir.path().join("code.y4m");
    std::fs::write(&video, y4m_showing("RT-WEBCAM-0001")).unwrap();
    let b = Browser::start_with(
        1024,
        600,
        &[format!(
            "--use-file-for-fake-video-capture={}",
            video.display()
        )],
    );
    b.goto(&st.url("/"));
    b.wait_js(
        "accepted from a camera frame",
        "return document.body.dataset.screen === 'c-result' && document.querySelector('#c-verdict').classList.contains('accept')",
    );
    assert_eq!(b.text("#c-return-no"), "RT-WEBCAM-0001");
    b.screenshot("devices-4-camera-scan");
}

/// A short YUV4MPEG2 video (what Chromium's fake camera plays) of a white
/// page with `text` as a QR code on it.
fn y4m_showing(text: &str) -> Vec<u8> {
    use image::{GrayImage, Luma};
    let (w, h) = (640u32, 480u32);
    let mut frame = GrayImage::from_pixel(w, h, Luma([235]));
    let qr = qrcode::QrCode::new(text.as_bytes())
        .unwrap()
        .render::<Luma<u8>>()
        .module_dimensions(7, 7)
        .build();
    let (x, y) = ((w - qr.width()) / 2, (h - qr.height()) / 2);
    image::imageops::overlay(&mut frame, &qr, i64::from(x), i64::from(y));
    let mut out = format!("YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..10 {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(frame.as_raw());
        out.extend(std::iter::repeat_n(128u8, (w * h / 2) as usize));
    }
    out
}

/// The merchant's checks at the counter (SPEC §2.5), walked through on the
/// clerk screen in both languages: the item barcodes scanned (one that is
/// not in the return is noted), the checklist answered with a tap each,
/// the weight typed; the event says what was found. A required check
/// answered "no" refuses the parcel with words the clerk can act on.
#[test]
fn a_clerk_walks_through_the_merchants_checklist_in_both_languages() {
    let st = TestStation::start();
    st.add_clerk("wei", "张伟", "2468");
    let rules = |rn: &str| {
        json!({"return_no": rn, "merchant_id": "M1", "status": "authorized",
         "type": "exchange", "carrier": "SF", "weight_g": 800,
         "items": [{"sku": "SKU-1", "name": "T恤", "qty": 1, "gtin": "6901234567892"},
                   {"sku": "SKU-2", "name": "袜子", "qty": 1, "gtin": "6901234567908"}],
         "checks": [{"id": "tags_attached", "label": "吊牌完好 Tags attached", "required": true},
                    {"id": "unused", "label": "未使用 Unused", "required": false}]})
    };
    st.import_manifest(json!({"returns": [rules("RT-CHECK-0001"), rules("RT-CHECK-0002")]}));
    let b = Browser::start(1280, 800);
    b.goto(&st.url("/"));
    b.clerk_login("wei", "2468");

    let field = "#k-field";
    let step_is = |step: &str| {
        b.wait_js(
            step,
            &format!(
                "return document.querySelector('#k-steps li.current').dataset.step === '{step}'"
            ),
        );
    };
    let to_confirm = |rn: &str, waybill: &str| {
        b.type_into(field, &format!("{rn}{ENTER}"));
        step_is("photo");
        b.wait_js(
            "the camera",
            "return document.querySelector('#k-video').videoWidth > 0",
        );
        b.type_into(field, ENTER);
        b.wait_js(
            "a photo",
            "return document.querySelectorAll('#k-thumbs span').length === 1",
        );
        b.type_into(field, &format!("{waybill}{ENTER}"));
        step_is("items");
    };

    // In Chinese: the type and the designated courier on the card, items
    // by barcode, one stranger's barcode noted.
    to_confirm("RT-CHECK-0001", "SF1234567890123");
    assert!(
        b.text("#k-return").contains("换货"),
        "{}",
        b.text("#k-return")
    );
    assert!(
        b.text("#k-prompt").contains("扫描商品条码"),
        "{}",
        b.text("#k-prompt")
    );
    b.type_into(field, &format!("6901234567892{ENTER}"));
    b.wait_js(
        "ticked",
        "return document.querySelector('#k-msg').textContent.includes('T恤')",
    );
    b.type_into(field, &format!("4006381333931{ENTER}"));
    b.wait_js(
        "noted",
        "return document.querySelector('#k-msg').textContent.includes('4006381333931')",
    );
    b.type_into(field, &format!("6901234567908{ENTER}"));
    b.wait_js(
        "both ticked",
        "return document.querySelector('#k-msg').textContent.includes('袜子')",
    );
    b.screenshot("checks-1-items-zh");
    b.type_into(field, ENTER);
    step_is("confirm");
    assert!(b.visible("#k-checks"));
    assert!(
        b.text("#k-checks").contains("吊牌完好"),
        "{}",
        b.text("#k-checks")
    );
    // Enter before the checklist is answered: it says so, nothing is sent.
    b.type_into(field, ENTER);
    b.wait_js(
        "the reminder",
        "return document.querySelector('#k-msg').textContent.includes('商家检查项')",
    );
    b.click("#k-checks [data-check='tags_attached'] button[data-answer='yes']");
    b.click("#k-checks [data-check='unused'] button[data-answer='na']");
    b.type_into("#k-weight", "790");
    b.screenshot("checks-2-checklist-zh");
    b.type_into(field, ENTER);
    b.wait_js("accepted", "return document.querySelector('#k-receipt img') && document.querySelector('#k-steps li.current').dataset.step === 'scan'");
    let body: String = st
        .db()
        .query_row(
            "SELECT b.body FROM events e JOIN event_bodies b ON b.seq = e.seq
             JOIN parcels p ON p.id = e.parcel_id
             WHERE e.type = 'parcel.accepted' AND p.return_no = 'RT-CHECK-0001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let v = serde_json::from_str::<Value>(&body).unwrap()["data"]["verification"].clone();
    assert_eq!(
        v["checks"],
        json!({"tags_attached": "yes", "unused": "na"}),
        "{v}"
    );
    assert_eq!(v["items"][0]["found"], 1);
    assert_eq!(v["items"][1]["found"], 1);
    assert_eq!(v["weight"]["measured_g"], 790);
    assert_eq!(v["flags"], json!(["unexpected_item"]));
    assert_eq!(v["unexpected"], json!(["4006381333931"]));

    // In English: the same walk, a required check answered "no" refuses.
    b.click("#lang");
    b.wait_js("English", "return document.documentElement.lang === 'en'");
    to_confirm("RT-CHECK-0002", "SF1234567890124");
    assert!(
        b.text("#k-return").contains("Exchange"),
        "{}",
        b.text("#k-return")
    );
    b.type_into(field, ENTER);
    step_is("confirm");
    assert!(
        b.text("#k-checks").contains("The merchant's checks"),
        "{}",
        b.text("#k-checks")
    );
    b.click("#k-checks [data-check='tags_attached'] button[data-answer='no']");
    b.click("#k-checks [data-check='unused'] button[data-answer='yes']");
    b.screenshot("checks-3-checklist-en");
    b.type_into(field, ENTER);
    b.wait_js(
        "the refusal",
        "return document.querySelector('#k-msg').textContent.includes('required check failed')",
    );
    assert_eq!(
        b.js("return document.querySelector('#k-msg').className"),
        json!("msg bad")
    );
    b.screenshot("checks-4-refused-en");
    let state: String = st
        .db()
        .query_row(
            "SELECT state FROM parcels WHERE return_no = 'RT-CHECK-0002'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        state, "draft",
        "refused, nothing recorded: the clerk rejects it"
    );
}

/// A parcel without a courier label at the counter: the console warns that
/// the pool runs low, "No label" takes the pool's number at accept, and
/// once the pool is empty the button is gone and the banner says so.
#[test]
fn a_parcel_without_a_label_takes_a_number_from_the_pool() {
    let st = TestStation::start();
    st.add_clerk("wei", "张伟", "2468");
    let mut manifest = crate::util::manifest_of(&["RT-NOLABEL-01", "RT-NOLABEL-02"]);
    manifest["waybill_pools"] = json!([{"carrier": "SF", "numbers": ["SF9000000000001"]}]);
    st.import_manifest(manifest);
    let b = Browser::start(1280, 800);
    b.goto(&st.url("/"));
    b.clerk_login("wei", "2468");
    b.wait_js("the low pool banner", "const e = document.querySelector('#k-pools'); return !e.hidden && e.textContent.includes('SF 剩 1 个')");

    let field = "#k-field";
    b.type_into(field, &format!("RT-NOLABEL-01{ENTER}"));
    b.wait_js(
        "the camera",
        "return document.querySelector('#k-video').videoWidth > 0",
    );
    b.type_into(field, ENTER);
    b.wait_js(
        "no label offered",
        "return !document.querySelector('#k-nolabel').hidden",
    );
    b.screenshot("pool-1-no-label");
    b.click("#k-nolabel");
    b.wait_js(
        "the confirm step",
        "return document.querySelector('#k-steps li.current').dataset.step === 'confirm'",
    );
    assert!(
        b.text("#k-return").contains("电子面单号段"),
        "{}",
        b.text("#k-return")
    );
    b.type_into(field, ENTER);
    b.wait_js(
        "accepted with the pool's number",
        "return document.querySelector('#k-msg').textContent.includes('SF9000000000001')",
    );
    b.wait_js(
        "the empty pool said",
        "return document.querySelector('#k-pools').textContent.includes('SF 剩 0 个')",
    );
    b.screenshot("pool-2-accepted");

    // The pool is empty: the next parcel is not offered a number. Enter
    // comes as soon as the photo step shows, camera started or not: a
    // snap waits for the first frame rather than failing.
    b.type_into(field, &format!("RT-NOLABEL-02{ENTER}"));
    b.wait_js(
        "the photo step",
        "return document.querySelector('#k-steps li.current').dataset.step === 'photo'",
    );
    b.type_into(field, ENTER);
    b.wait_js(
        "a photo",
        "return document.querySelectorAll('#k-thumbs span').length === 1",
    );
    assert_eq!(
        b.js("return document.querySelector('#k-nolabel').hidden"),
        json!(true)
    );
}
