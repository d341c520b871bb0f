//! The dashboard at `/_/` (PocketBase's place for it, which leaves `/` to
//! the app): static files built from `dashboard/` and embedded at compile
//! time (`build.rs`). The dashboard talks only to the documented APIs; this
//! module only serves its files.
//!
//! - Hashed assets (`assets/*`) are cached for a year (`immutable`); every
//!   other file, `index.html` above all, is revalidated (`no-cache` with an
//!   ETag, answered 304 when unchanged), so a new binary's dashboard is
//!   picked up at once.
//! - Gzip when the client takes it (compressed at build time).
//! - A path without a file extension is a page of the single-page app:
//!   `index.html` answers it; a missing file with an extension is 404.
//! - A strict Content-Security-Policy: scripts, styles, fonts and
//!   connections from this origin only (and the realtime WebSocket), no
//!   inline script, no framing.

use super::error::ApiError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};

/// A file as `build.rs` embeds it: (path under `/_/`, bytes, gzipped
/// bytes, content type, ETag).
type AssetEntry = (
    &'static str,
    &'static [u8],
    Option<&'static [u8]>,
    &'static str,
    &'static str,
);

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// The dashboard's Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; font-src 'self'; connect-src 'self' ws: wss:; \
    worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

struct Asset {
    bytes: &'static [u8],
    gzipped: Option<&'static [u8]>,
    content_type: &'static str,
    etag: &'static str,
}

fn find(path: &str) -> Option<Asset> {
    DASHBOARD_ASSETS.iter().find(|(p, ..)| *p == path).map(
        |(_, bytes, gzipped, content_type, etag)| Asset {
            bytes,
            gzipped: *gzipped,
            content_type,
            etag,
        },
    )
}

/// `GET /_`: to the dashboard's root, where its relative URLs resolve.
pub async fn root() -> Redirect {
    Redirect::permanent("/_/")
}

/// `GET /_/` and `GET /_/{*path}`.
pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    if DASHBOARD_ASSETS.is_empty() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dashboard_not_built",
            "this binary was built without the dashboard: run `make dashboard`, then build again",
        )
        .into_response();
    }
    let path = uri.path().strip_prefix("/_/").unwrap_or_default();
    let (asset, page) = match find(path) {
        Some(asset) => (asset, false),
        None => {
            let last = path.rsplit('/').next().unwrap_or_default();
            match find("index.html") {
                Some(index) if !last.contains('.') => (index, true),
                _ => {
                    return ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("the dashboard has no file {path}"),
                    )
                    .into_response()
                }
            }
        }
    };
    let immutable = !page && path.starts_with("assets/");
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = if !immutable && matches_etag(&headers, asset.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let gzip = asset.gzipped.filter(|_| accepts_gzip(&headers));
        let mut response = gzip.unwrap_or(asset.bytes).into_response();
        let out = response.headers_mut();
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if gzip.is_some() {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}
