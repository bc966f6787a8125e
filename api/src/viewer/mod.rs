//! The audit-log viewer: `GET /admin/audit` (a page) and `GET /admin/audit/app.js` (its one script), embedded in the
//! binary, no CDN: it works offline and on the same API as any client (it signs in, then reads the audit routes with
//! the token it holds in memory). Served with a strict Content-Security-Policy: the script from this origin only, the
//! page's one inline style by its hash, connections to this origin only, no frames, no forms posted anywhere.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use base64::Engine;
use sha2::{Digest, Sha256};

const PAGE: &str = include_str!("audit.html");
const SCRIPT: &str = include_str!("app.js");

/// The page's Content-Security-Policy, with the hash of its inline `<style>`.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let style = PAGE
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map(|(style, _)| style)
        .unwrap_or_default();
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
    format!(
        "default-src 'none'; script-src 'self'; style-src 'sha256-{hash}'; connect-src 'self'; img-src 'self'; \
         form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
});

fn secured(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&CSP) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /admin/audit`.
pub async fn page() -> HttpResponse {
    secured(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(PAGE))
}

/// `GET /admin/audit/app.js`.
pub async fn script() -> HttpResponse {
    secured(HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(SCRIPT))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_pins_the_inline_style_by_its_hash() {
        assert!(super::CSP.contains("style-src 'sha256-"));
        assert!(!super::CSP.contains("sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), "the hash of nothing");
        assert!(super::CSP.contains("script-src 'self'"));
    }
}
