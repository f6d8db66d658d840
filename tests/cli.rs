//! The command line against a real station directory.

use serde_json::json;

use crate::util::{TestStation, yizhan};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_check_accepts_the_shipped_default_and_embedded_defaults() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/yizhan.toml");
    for args in [
        vec!["config", "check"],
        vec!["--config", shipped, "config", "check"],
    ] {
        let out = yizhan()
            .args(&args)
            .env_remove("YIZHAN_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
    }
}

#[test]
fn config_check_lists_every_problem_with_key_value_and_expectation() {
    let st = TestStation::create(
        "[station]\npickup_sla_h = 0\n[api]\nlisten = \"nowhere\"\n[codes]\noffline_policy = \"maybe\"\n",
    );
    let out = st.cli(&["config", "check"]);
    assert!(!out.status.success());
    let text = stderr(&out);
    for key in [
        "station.pickup_sla_h",
        "api.listen",
        "codes.offline_policy",
        "nowhere",
        "maybe",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    let out = st.cli(&["--json", "config", "check"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"].as_array().unwrap().len(), 3, "{v}");

    // The daemon refuses the same file at start, naming the key.
    let out = st.cli(&["run"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("codes.offline_policy"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_keys_and_bad_toml_are_refused() {
    let st = TestStation::create("[station]\npickup_sla_hours = 4\n");
    let out = st.cli(&["config", "check"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pickup_sla_hours"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&st.config, "[station\nid = 1").unwrap();
    let out = st.cli(&["config", "check"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("yizhan.toml"), "{}", stderr(&out));
}

#[test]
fn env_overrides_the_file_and_is_validated_too() {
    let st = TestStation::create("");
    let run = |k: &str, v: &str| {
        yizhan()
            .args([
                "--json",
                "--config",
                st.config.to_str().unwrap(),
                "config",
                "check",
            ])
            .env(k, v)
            .output()
            .unwrap()
    };
    let out = run("YIZHAN_STATION__ID", "ST-ENV-7");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["station_id"], "ST-ENV-7");
    let out = run("YIZHAN_STATION__PICKUP_SLA_H", "soon");
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["problems"][0], "YIZHAN_STATION__PICKUP_SLA_H = \"soon\": expected a whole number",
        "{v}"
    );
}

#[test]
fn status_parcels_outbox_identity_and_db_commands() {
    let st = TestStation::start();
    let receipt = st.checkin("RT-CLI-00001", "SF8000000000001");
    let id = receipt["parcel_id"].as_str().unwrap();

    let status = st.cli_json(&["status"]);
    assert_eq!(status["outbox"]["pending_events"], 1, "{status}");

    let list = st.cli_json(&["parcels", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let shown = st.cli_json(&["parcels", "show", id]);
    assert_eq!(shown["state"], "accepted");
    assert_eq!(shown["photos"].as_array().unwrap().len(), 1);
    let missing = st.cli(&["parcels", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert!(!missing.status.success());

    let pending = st.cli_json(&["outbox", "pending"]);
    assert_eq!(pending[0]["seq"], 1);
    assert_eq!(pending[0]["type"], "parcel.accepted");
    let event = st.cli_json(&["outbox", "show", "1"]);
    let envelope = &event["envelope"];
    assert_eq!(envelope["seq"], 1);
    assert_eq!(envelope["station_id"], "ST-0001");
    assert_eq!(
        envelope["clock_trusted"], true,
        "clock check is off in tests"
    );
    assert_eq!(envelope["event_id"].as_str().unwrap().len(), 26);

    let ident = st.cli_json(&["identity"]);
    assert_eq!(ident["station_id"], "ST-0001");

    let check = st.cli_json(&["db", "check"]);
    assert_eq!(check["integrity"], json!(["ok"]));
    assert_eq!(check["seq_gaps"], 0);

    // An online backup while the daemon runs is a complete database.
    let backup = st.dir.path().join("copy.db");
    st.cli_json(&["db", "backup", backup.to_str().unwrap()]);
    let copy = rusqlite::Connection::open(&backup).unwrap();
    let n: i64 = copy
        .query_row(
            "SELECT COUNT(*) FROM parcels WHERE state = 'accepted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    let again = st.cli(&["db", "backup", backup.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );
}

#[test]
fn db_check_reports_orphans_and_the_daemon_repairs_them() {
    let mut st = TestStation::start();
    st.checkin("RT-ORPH-0001", "SF8100000000001");
    assert!(st.terminate());
    let stray = st
        .data_dir()
        .join("photos")
        .join("ab")
        .join(format!("{}.jpg", "ab".repeat(32)));
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"left behind").unwrap();
    let out = st.cli(&["--json", "db", "check"]);
    assert!(!out.status.success(), "an orphan is a problem");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "check_failed", "{v}");
    assert_eq!(
        v["photos"]["orphan_files"].as_array().unwrap().len(),
        1,
        "{v}"
    );
    st.spawn();
    assert!(!stray.exists(), "start-up removes orphan files");
    assert_eq!(st.cli_json(&["db", "check"])["integrity"], json!(["ok"]));
}

#[test]
fn manifest_import_refuses_bad_files_whole() {
    let st = TestStation::create("");
    st.import_manifest(json!({"returns": [{"return_no": "RT-FIRST-001", "merchant_id": "M1", "status": "authorized"}]}));
    let file = st.dir.path().join("m.json");
    for bad in [
        "not json".to_owned(),
        json!({"returns": [{"return_no": "RT-GOOD-0001", "merchant_id": "M1", "status": "authorized"},
                           {"return_no": "??", "merchant_id": "M1", "status": "authorized"}]}).to_string(),
        json!({"returns": [{"return_no": "RT-GOOD-0002", "merchant_id": "M1", "status": "lost"}]}).to_string(),
    ] {
        std::fs::write(&file, &bad).unwrap();
        let out = st.cli(&["manifest", "import", file.to_str().unwrap()]);
        assert!(!out.status.success(), "{bad}");
        assert!(stderr(&out).contains("manifest"), "{}", stderr(&out));
    }
    let out = st.cli(&["manifest", "import", "/nonexistent/m.json"]);
    assert!(!out.status.success());
    let status = st.cli_json(&["status"]);
    assert_eq!(
        status["manifest_entries"], 1,
        "nothing half-imported: {status}"
    );
}

#[test]
fn help_text_names_every_command() {
    let out = yizhan().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "run", "status", "config", "parcels", "outbox", "identity", "db", "manifest",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from --help:\n{text}");
    }
}

/// Unknown keys and wrong types are reported in the `key = value:
/// expected …` form, all together with the problems of the values.
#[test]
fn config_check_reports_unknown_keys_and_wrong_types_with_the_rest() {
    let st = TestStation::create(
        "[station]\npickup_sla_h = \"forty-eight\"\nfoo = 1\nmin_photos = 99\n\
         [api]\nlisten = \"nowhere\"\n[[hardware.scanners]]\nname = \"s\"\nkind = \"serial\"\n\
         path = \"/dev/ttyACM0\"\nchannel = \"clerk\"\nbaud = \"fast\"\n",
    );
    let out = st.cli(&["config", "check"]);
    assert!(!out.status.success());
    let text = stderr(&out);
    for line in [
        "  - station.pickup_sla_h = \"forty-eight\": expected a whole number\n",
        "  - station.foo = 1: unknown key; expected one of `id`, `device_id`, ",
        "  - station.min_photos = 99: expected a whole number of photos from 0 to 20\n",
        "  - api.listen = \"nowhere\": expected an address and port such as 127.0.0.1:8080\n",
        "  - hardware.scanners[0].baud = \"fast\": expected a whole number\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(!text.contains("invalid type"), "{text}");

    let out = st.cli(&["--json", "config", "check"]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out), "", "with --json nothing goes to stderr");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 5, "{v}");
    assert_eq!(v["error"]["code"], "config_invalid", "{v}");
}

/// One cause, said once.
#[test]
fn errors_say_their_cause_once() {
    let out = yizhan()
        .args(["--config", "/nonexistent/nope.toml", "status"])
        .env_remove("YIZHAN_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: configuration refused: cannot read config file /nonexistent/nope.toml: \
         No such file or directory (os error 2)\n"
    );

    let mut st = TestStation::start();
    assert!(st.terminate());
    let file = st.data_dir().join("m.json");
    std::fs::write(&file, r#"{"returns":[{"return_no":"RT-X-0001"}]}"#).unwrap();
    let out = st.cli(&["manifest", "import", file.to_str().unwrap()]);
    let text = stderr(&out);
    assert_eq!(
        text.matches("missing field `merchant_id`").count(),
        1,
        "{text}"
    );

    let out = st.cli(&["db", "backup", "/nonexistent/dir/copy.db"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: cannot write /nonexistent/dir/copy.db: the directory /nonexistent/dir does not exist\n"
    );
}

/// With `--json`, a failure is `{"error":{"code","message"}}` on stdout
/// and the exit code says it failed.
#[test]
fn json_errors_are_json_on_stdout() {
    let mut st = TestStation::start();
    assert!(st.terminate());
    for (args, code, words) in [
        (
            vec!["--json", "outbox", "show", "999"],
            "not_found",
            "no event with seq or id \"999\"",
        ),
        (
            vec!["--json", "parcels", "show", "nope"],
            "bad_argument",
            "\"nope\" is not a parcel id",
        ),
        (
            vec!["--json", "db", "backup", "/nonexistent/dir/copy.db"],
            "bad_argument",
            "does not exist",
        ),
    ] {
        let out = st.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), "", "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {:?}", out.stdout));
        assert_eq!(v["error"]["code"], code, "{args:?}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{args:?}: {v}");
    }
}

/// `status` says where it looked for the daemon, which layer of the
/// configuration said so, and why nothing answered there.
#[test]
fn status_says_where_it_looked_for_the_daemon() {
    let mut st = TestStation::start();
    assert!(st.terminate());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = yizhan()
        .arg("--config")
        .arg(&st.config)
        .arg("status")
        .env_remove("YIZHAN_CONFIG")
        .env("YIZHAN_API__LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "daemon:    not reachable at 127.0.0.1:{port} (api.listen from YIZHAN_API__LISTEN): Connection refused"
        )),
        "{text}"
    );
}

/// `help run` says which config this invocation reads, where the data
/// goes, and how the environment overrides both.
#[test]
fn help_run_says_where_data_goes_and_which_config_it_reads() {
    let st = TestStation::create("");
    let out = yizhan()
        .arg("--config")
        .arg(&st.config)
        .args(["help", "run"])
        .env_remove("YIZHAN_CONFIG")
        .env("YIZHAN_LOG__LEVEL", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for words in [
        format!("  config:    {}", st.config.display()),
        "YIZHAN_LOG__LEVEL=debug".to_owned(),
        format!("  data:      {}", st.data_dir().display()),
        "YIZHAN_<SECTION>__<KEY>".to_owned(),
        "storage.data_dir".to_owned(),
    ] {
        assert!(text.contains(&words), "{words:?} missing from:\n{text}");
    }
}
