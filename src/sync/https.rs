//! The platform's HTTPS side (SPEC §6.2): event batches, photos, manifest.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use super::{SyncError, tls};
use crate::config::HttpsConfig;

/// A client for one platform.
#[derive(Clone)]
pub struct Platform {
    client: reqwest::Client,
    base: String,
    token_file: Option<PathBuf>,
}

/// The answer to an event batch.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchAnswer {
    #[serde(default)]
    pub accepted: Vec<String>,
    #[serde(default)]
    pub duplicates: Vec<String>,
    #[serde(default)]
    pub rejected: Vec<Refused>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Refused {
    pub event_id: String,
    #[serde(default)]
    pub reason: String,
}

impl Platform {
    pub fn new(
        cfg: &HttpsConfig,
        station_id: &str,
        timeout: Duration,
    ) -> Result<Platform, SyncError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("yizhan/", env!("CARGO_PKG_VERSION")));
        if cfg.base_url.starts_with("https:") {
            let tls = tls::client_config(&cfg.tls_files)?;
            builder = builder.use_preconfigured_tls((*tls).clone());
        }
        let client = builder
            .build()
            .map_err(|e| SyncError::Tls(format!("cannot build the HTTPS client: {e}")))?;
        Ok(Platform {
            client,
            base: format!("{}/v1/stations/{station_id}", cfg.base_url),
            token_file: cfg.token_file.clone(),
        })
    }

    /// `POST …/events` with `{"events":[…]}`; `bodies` are envelope JSON.
    pub async fn post_events(&self, bodies: &[&str]) -> Result<BatchAnswer, SyncError> {
        let mut json =
            String::with_capacity(bodies.iter().map(|b| b.len() + 1).sum::<usize>() + 16);
        json.push_str("{\"events\":[");
        for (i, b) in bodies.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(b);
        }
        json.push_str("]}");
        let req = self
            .client
            .post(format!("{}/events", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        let resp = self.send(req).await?;
        let bytes = resp.bytes().await.map_err(SyncError::from_reqwest)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            SyncError::Protocol(format!("events answer is not the expected JSON: {e}"))
        })
    }

    /// `PUT …/photos/{sha256}`; 200 and 201 both mean it is there.
    pub async fn put_photo(&self, sha256: &str, jpeg: Vec<u8>) -> Result<(), SyncError> {
        let req = self
            .client
            .put(format!("{}/photos/{sha256}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "image/jpeg")
            .body(jpeg);
        self.send(req).await.map(drop)
    }

    /// `PUT …/diagnostics/{command_id}` with a JSON document.
    pub async fn put_diagnostics(&self, command_id: &str, json: Vec<u8>) -> Result<(), SyncError> {
        let mut url = reqwest::Url::parse(&format!("{}/diagnostics/", self.base))
            .map_err(|e| SyncError::Protocol(format!("bad diagnostics URL: {e}")))?;
        // The id is the platform's text: one path segment, escaped.
        url.path_segments_mut()
            .map_err(|()| SyncError::Protocol("base_url cannot take a path".into()))?
            .pop_if_empty()
            .push(command_id);
        let req = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        self.send(req).await.map(drop)
    }

    /// `GET …/manifest?since=…`: the raw JSON page.
    pub async fn manifest_page(&self, since: Option<&str>) -> Result<Vec<u8>, SyncError> {
        let mut req = self.client.get(format!("{}/manifest", self.base));
        if let Some(cursor) = since {
            req = req.query(&[("since", cursor)]);
        }
        let resp = self.send(req).await?;
        Ok(resp
            .bytes()
            .await
            .map_err(SyncError::from_reqwest)?
            .to_vec())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, SyncError> {
        let req = match self.token().await? {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        let resp = req.send().await.map_err(SyncError::from_reqwest)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        Err(SyncError::Status {
            status: status.as_u16(),
            retryable: status.is_server_error()
                || status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS,
            body: body.chars().take(200).collect(),
        })
    }

    /// The bearer token, read from its file at every request so that it
    /// can be rotated in place. Never logged.
    async fn token(&self) -> Result<Option<String>, SyncError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = tokio::fs::read_to_string(path).await.map_err(|e| {
            SyncError::Credentials(format!(
                "cannot read sync.https.token_file {}: {e}",
                path.display()
            ))
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(SyncError::Credentials(format!(
                "sync.https.token_file {} is empty",
                path.display()
            )));
        }
        Ok(Some(token.to_owned()))
    }
}
