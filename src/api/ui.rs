//! The kiosk screen, embedded in the binary (kiosks are offline: no CDN, no
//! Node at run time). Sources: `src/api/ui/`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Only our own files; inline scripts and remote hosts are refused.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                   style-src 'self'; script-src 'self'; connect-src 'self'";

const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/i18n.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("ui/app.css"),
    ),
];

pub async fn index() -> Response {
    file("text/html; charset=utf-8", include_str!("ui/index.html"))
}

pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, mime, body)| file(mime, body))
        .ok_or_else(|| ApiError::not_found(format!("no file {name:?}")))
}

fn file(mime: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            // A new binary brings new files; never serve a stale screen.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The `"key":` entries of one language block of `i18n.js`.
    fn keys(block: &str) -> BTreeSet<&str> {
        block
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split_once("\":"))
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn both_languages_have_every_string_the_screen_uses() {
        let src = include_str!("ui/i18n.js");
        let (_, zh) = src.split_once("\"zh-CN\": {").expect("a zh-CN block");
        let (zh, en) = zh.split_once("\"en\": {").expect("an en block");
        let (zh, en) = (keys(zh), keys(en));
        assert!(zh.len() > 100, "{}", zh.len());
        assert_eq!(zh, en, "zh-CN and en differ");
        let html = include_str!("ui/index.html");
        let js = include_str!("ui/app.js");
        let after = |text: &'static str, marker: &'static str| {
            text.split(marker)
                .skip(1)
                .filter_map(|s| s.split('"').next())
                .collect::<Vec<_>>()
        };
        let mut used = after(html, "data-t=\"");
        used.extend(after(html, "data-tp=\""));
        used.extend(after(js, "t(\""));
        assert!(used.len() > 80, "{}", used.len());
        for key in used {
            // Keys built at run time end in '.' (e.g. "reason." + code);
            // every key has a dot (which also skips getContext("2d")).
            if key.contains('.') && !key.ends_with('.') {
                assert!(zh.contains(key), "{key} is used but has no string");
            }
        }
    }
}
