//! Talking to the running daemon from the command line (its API on
//! `api.listen`), for what only the daemon knows or holds: live state,
//! sessions.

use std::net::SocketAddr;
use std::time::Duration;

/// How long the daemon gets to answer: it is on this machine.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Why the daemon did not answer, in a few words ("connection refused").
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(String);

/// One request to the daemon's API: status code and body.
pub fn call(
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Vec<u8>), Unreachable> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Unreachable(format!("cannot start a runtime: {e}")))?;
    runtime
        .block_on(async {
            let client = reqwest::Client::builder()
                .timeout(TIMEOUT)
                .no_proxy()
                .build()?;
            let mut request = client.request(method, format!("http://{addr}{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token.trim());
            }
            let response = request.send().await?;
            let code = response.status().as_u16();
            Ok((code, response.bytes().await?.to_vec()))
        })
        .map_err(|e: reqwest::Error| Unreachable(reason(&e)))
}

/// The innermost cause ("Connection refused (os error 111)"), or that the
/// daemon took too long.
fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", TIMEOUT.as_millis());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
