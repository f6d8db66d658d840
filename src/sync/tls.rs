//! TLS client configuration shared by MQTT and HTTPS: rustls with the ring
//! provider, the system's roots or a configured CA, and an optional client
//! certificate (mutual TLS).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::SyncError;
use crate::config::TlsFiles;

/// Builds the client configuration for one peer.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, SyncError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &files.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    SyncError::Tls(format!("cannot read CA file {}: {e}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(SyncError::Tls(format!(
                    "CA file {} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    SyncError::Tls(format!("bad certificate in {}: {e}", path.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "could not load some system CA certificates");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    "no system CA certificates found; TLS connections will fail (install ca-certificates or set a ca_file)"
                );
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SyncError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &files.client_auth {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let chain = CertificateDer::pem_file_iter(cert_path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    SyncError::Tls(format!(
                        "cannot read client certificate {}: {e}",
                        cert_path.display()
                    ))
                })?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                SyncError::Tls(format!(
                    "cannot read client key {}: {e}",
                    key_path.display()
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| SyncError::Tls(format!("client certificate refused: {e}")))?
        }
    };
    Ok(Arc::new(config))
}
