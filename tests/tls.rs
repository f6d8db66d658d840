//! TLS to the broker (SPEC §6): a test CA made here with rcgen, a Mosquitto
//! TLS listener that requires client certificates, and the station
//! connecting with its CA file and client certificate — or failing to, with
//! a clear error, when either is wrong.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

use crate::platform::{Broker, BrokerTls};
use crate::util::{TestStation, wait_until};

pub(crate) struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Writes a leaf certificate and key signed by this CA.
    pub(crate) fn issue(
        &self,
        dir: &Path,
        name: &str,
        sans: &[&str],
        client: bool,
    ) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    pub(crate) fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(format!("{name}.pem"));
        std::fs::write(&p, self.cert.pem()).unwrap();
        p
    }
}

pub(crate) fn station(
    device: &str,
    port: u16,
    ca: &Path,
    client: Option<&(PathBuf, PathBuf)>,
) -> TestStation {
    let mut mqtt = format!(
        "[station]\ndevice_id = \"{device}\"\nmin_photos = 0\n\
         [sync]\nretry_initial_ms = 50\nretry_max_s = 1\nreconnect_spread_ms = 100\n\
         [sync.mqtt]\nurl = \"mqtts://127.0.0.1:{port}\"\nca_file = {:?}\n",
        ca.display().to_string()
    );
    if let Some((cert, key)) = client {
        mqtt.push_str(&format!(
            "client_cert_file = {:?}\nclient_key_file = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ));
    }
    TestStation::start_with(&mqtt)
}

/// Waits until the station has tried and failed at least once.
pub(crate) fn last_error(st: &TestStation) -> String {
    wait_until("a failed TLS connection", Duration::from_secs(30), || {
        st.sync_view()["mqtt_last_error"]
            .as_str()
            .map(str::to_owned)
    })
}

#[test]
fn mutual_tls_connects_and_a_wrong_ca_or_missing_client_cert_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("yizhan test CA");
    let (cert, key) = ca.issue(dir.path(), "broker", &["127.0.0.1", "localhost"], false);
    let broker = Broker::start_with(Some(BrokerTls {
        ca: ca.write(dir.path(), "ca"),
        cert,
        key,
        require_client_cert: true,
    }));
    let ca_file = dir.path().join("ca.pem");
    let client = ca.issue(dir.path(), "kiosk-good", &[], true);

    // Right CA and a client certificate: connected, events delivered.
    let good = station("kiosk-good", broker.port, &ca_file, Some(&client));
    let id = good.draft("RT-TLS-00001", "clerk");
    let (code, _) = good.post(
        &format!("/api/v1/parcels/{id}/accept"),
        serde_json::json!({"waybill_no": "SF000000000009"}),
    );
    assert_eq!(code, 200);
    wait_until("delivery over mTLS", Duration::from_secs(30), || {
        let v = good.sync_view();
        (v["mqtt_connected"] == true && v["pending_events"] == 0).then_some(())
    });

    // A CA that did not sign the broker: the handshake is refused.
    let other = Ca::new("some other CA");
    let other_file = other.write(dir.path(), "other");
    let other_client = other.issue(dir.path(), "kiosk-wrong-ca", &[], true);
    let wrong = station(
        "kiosk-wrong-ca",
        broker.port,
        &other_file,
        Some(&other_client),
    );
    let err = last_error(&wrong);
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(wrong.sync_view()["mqtt_connected"], false);

    // The right CA but no client certificate: the broker refuses us.
    let anonymous = station("kiosk-no-cert", broker.port, &ca_file, None);
    last_error(&anonymous);
    assert_eq!(anonymous.sync_view()["mqtt_connected"], false);
    assert_eq!(anonymous.sync_view()["pending_events"], 0);
    assert_eq!(good.sync_view()["mqtt_connected"], true);
}

#[test]
fn bad_tls_and_secret_files_are_refused_at_start_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello").unwrap();

    // A missing secret file: the configuration itself is refused.
    let st = TestStation::create(
        "[sync.https]\nbase_url = \"https://127.0.0.1:1\"\ntoken_file = \"/nonexistent/token\"\n",
    );
    let out = st.cli(&["config", "check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("sync.https.token_file"), "{text}");

    // A CA file that holds no certificate: the daemon does not start.
    let st = TestStation::create(&format!(
        "[sync.mqtt]\nurl = \"mqtts://127.0.0.1:1\"\nca_file = {:?}\n",
        bad.display().to_string()
    ));
    let run = st.cli(&["run"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{err}");
    assert!(
        err.contains("not-a-ca.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
}

/// The fake platform's TLS set-up: its certificate, and client
/// certificates required from `clients_ca`.
fn platform_tls(dir: &Path, ca: &Ca) -> rustls::ServerConfig {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = ca.issue(dir, "platform", &["127.0.0.1", "localhost"], false);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            CertificateDer::pem_file_iter(&cert)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
            PrivateKeyDer::from_pem_file(&key).unwrap(),
        )
        .unwrap()
}

fn https_station(
    device: &str,
    base: &str,
    ca: &Path,
    client: &(PathBuf, PathBuf),
    token: &Path,
) -> TestStation {
    TestStation::start_with(&format!(
        "[station]\ndevice_id = \"{device}\"\nmin_photos = 0\n\
         [sync]\nretry_initial_ms = 50\nretry_max_s = 1\nreconnect_spread_ms = 100\n\
         [sync.https]\nbase_url = \"{base}\"\nca_file = {:?}\n\
         client_cert_file = {:?}\nclient_key_file = {:?}\ntoken_file = {:?}\n",
        ca.display().to_string(),
        client.0.display().to_string(),
        client.1.display().to_string(),
        token.display().to_string()
    ))
}

#[test]
fn https_with_mutual_tls_delivers_and_a_wrong_ca_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("yizhan platform CA");
    let platform = crate::platform::FakePlatform::start_tls(platform_tls(dir.path(), &ca));
    *platform.state.token.lock().unwrap() = Some("tok-123".into());
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let ca_file = ca.write(dir.path(), "ca");
    let client = ca.issue(dir.path(), "kiosk-https", &[], true);

    let good = https_station(
        "kiosk-https",
        &platform.base_url(),
        &ca_file,
        &client,
        &token,
    );
    let id = good.draft("RT-HTTPS-0001", "clerk");
    let (code, _) = good.post(
        &format!("/api/v1/parcels/{id}/accept"),
        serde_json::json!({"waybill_no": "SF000000000077"}),
    );
    assert_eq!(code, 200);
    wait_until(
        "delivery over HTTPS with mTLS",
        Duration::from_secs(30),
        || {
            let v = good.sync_view();
            (v["pending_events"] == 0 && v["https_reachable"] == true).then_some(())
        },
    );
    assert_eq!(platform.seqs(), std::collections::HashSet::from([1]));

    let other = Ca::new("not the platform's CA");
    let other_file = other.write(dir.path(), "other");
    let bad = https_station(
        "kiosk-bad",
        &platform.base_url(),
        &other_file,
        &client,
        &token,
    );
    let id = bad.draft("RT-HTTPS-0002", "clerk");
    bad.post(
        &format!("/api/v1/parcels/{id}/accept"),
        serde_json::json!({"waybill_no": "SF000000000078"}),
    );
    let err = wait_until("a refused TLS handshake", Duration::from_secs(30), || {
        bad.sync_view()["https_last_error"]
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(bad.sync_view()["pending_events"], 1, "{err}");
    assert_eq!(
        platform.seqs().len(),
        1,
        "nothing arrived over the bad link"
    );
}
