//! Talking to the running daemon from the command line (its API on
//! `api.listen`), for what only the daemon knows or holds: live state,
//! sessions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One request to the daemon's API: status code and body, or `None` when it
/// does not answer within half a second.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Option<(u16, Vec<u8>)> {
    let probe = || -> std::io::Result<(u16, Vec<u8>)> {
        let timeout = Duration::from_millis(500);
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        let auth = token.map_or_else(String::new, |t| {
            format!("Authorization: Bearer {}\r\n", t.trim())
        });
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Length: 0\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        s.take(1 << 20).read_to_end(&mut raw)?;
        let code = raw
            .get(9..12)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or_else(Vec::new, |i| raw[i + 4..].to_vec());
        Ok((code, body))
    };
    probe().ok()
}
