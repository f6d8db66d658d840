//! The kiosk screen, embedded in the binary (kiosks are offline: no CDN, no
//! Node at run time). Sources: `src/api/ui/`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Only our own files; inline scripts and remote hosts are refused.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                   style-src 'self'; script-src 'self'; connect-src 'self'";

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the screen, by the name it is served under (`/ui/{name}`).
/// The scripts are ES modules, one per screen plus the shared ones.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("ui/app.css"),
    ),
    ("main.js", JS, include_str!("ui/main.js")),
    ("dom.js", JS, include_str!("ui/dom.js")),
    ("text.js", JS, include_str!("ui/text.js")),
    ("strings.js", JS, include_str!("ui/strings.js")),
    ("api.js", JS, include_str!("ui/api.js")),
    ("camera.js", JS, include_str!("ui/camera.js")),
    ("station.js", JS, include_str!("ui/station.js")),
    ("nav.js", JS, include_str!("ui/nav.js")),
    ("stream.js", JS, include_str!("ui/stream.js")),
    ("status.js", JS, include_str!("ui/status.js")),
    ("customer.js", JS, include_str!("ui/customer.js")),
    ("progress.js", JS, include_str!("ui/progress.js")),
    ("clerk.js", JS, include_str!("ui/clerk.js")),
    ("overdue.js", JS, include_str!("ui/overdue.js")),
    ("pools.js", JS, include_str!("ui/pools.js")),
    ("checkin.js", JS, include_str!("ui/checkin.js")),
    ("lists.js", JS, include_str!("ui/lists.js")),
    ("handover.js", JS, include_str!("ui/handover.js")),
    ("bags.js", JS, include_str!("ui/bags.js")),
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

    use super::FILES;

    const HTML: &str = include_str!("ui/index.html");

    fn scripts() -> impl Iterator<Item = (&'static str, &'static str)> {
        FILES
            .iter()
            .filter(|(name, _, _)| name.ends_with(".js"))
            .map(|(name, _, body)| (*name, *body))
    }

    /// The `"key":` entries of one language block of `strings.js`.
    fn keys(block: &str) -> BTreeSet<&str> {
        block
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split_once("\":"))
            .map(|(k, _)| k)
            .collect()
    }

    /// What follows each `marker` up to the next `"`.
    fn after(text: &'static str, marker: &'static str) -> Vec<&'static str> {
        text.split(marker)
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect()
    }

    #[test]
    fn both_languages_have_every_string_the_screen_uses() {
        let src = include_str!("ui/strings.js");
        let (_, zh) = src.split_once("\"zh-CN\": {").expect("a zh-CN block");
        let (zh, en) = zh.split_once("\"en\": {").expect("an en block");
        let (zh, en) = (keys(zh), keys(en));
        assert!(zh.len() > 100, "{}", zh.len());
        assert_eq!(zh, en, "zh-CN and en differ");
        let mut used = after(HTML, "data-t=\"");
        used.extend(after(HTML, "data-tp=\""));
        for (_, js) in scripts() {
            used.extend(after(js, "t(\""));
        }
        assert!(used.len() > 80, "{}", used.len());
        for key in used {
            // Keys built at run time end in '.' (e.g. "k.state." + state);
            // every key has a dot (which also skips getContext("2d")).
            if key.contains('.') && !key.ends_with('.') {
                assert!(zh.contains(key), "{key} is used but has no string");
            }
        }
    }

    /// Why a scan was refused is said in the daemon's words (the answer's
    /// `message`, from `Reason::words`), not in a second table here.
    #[test]
    fn refusal_reasons_have_one_table() {
        let src = include_str!("ui/strings.js");
        assert!(!src.contains("\"reason."), "strings.js has reason words");
        for (name, js) in scripts() {
            assert!(!js.contains("\"reason."), "{name} words a reason itself");
        }
    }

    /// The screen builds no HTML from strings and binds events one way
    /// (`on(…)`), and every script it loads is one the daemon serves.
    #[test]
    fn scripts_are_modules_that_build_no_html() {
        for (name, js) in scripts() {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!js.contains(banned), "{name} uses {banned}");
            }
            for handler in [
                ".onclick",
                ".onchange",
                ".onsubmit",
                ".onerror",
                ".onkeydown",
            ] {
                assert!(!js.contains(handler), "{name} binds {handler}: use on()");
            }
            assert!(!js.contains("window."), "{name} shares through window");
            for import in after(js, "from \"./")
                .into_iter()
                .chain(after(js, "import \"./"))
            {
                assert!(
                    FILES.iter().any(|(n, _, _)| *n == import),
                    "{name} imports {import}, which is not served"
                );
            }
        }
        assert!(HTML.contains("<script type=\"module\" src=\"/ui/main.js\">"));
        assert!(!HTML.contains("<script>"), "an inline script");
        assert!(!HTML.contains(" onclick="), "an inline handler");
    }

    /// Each template the scripts clone is in the page.
    #[test]
    fn every_template_a_script_clones_is_in_the_page() {
        let mut cloned = 0;
        for (name, js) in scripts() {
            for tpl in after(js, "clone(\"") {
                cloned += 1;
                assert!(
                    HTML.contains(&format!("<template id=\"tpl-{tpl}\">")),
                    "{name} clones tpl-{tpl}, which index.html lacks"
                );
            }
        }
        assert!(cloned >= 9, "{cloned}");
    }
}
