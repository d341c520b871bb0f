//! Cross-origin requests, answered as Supabase's gateway (Kong's `cors`
//! plugin with the settings of Supabase's `kong.yml`) answers them, for
//! both ports, so a browser app on another origin works unchanged:
//!
//! - a preflight is `OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`; it is answered here, before any key
//!   check, `200` with an empty body, every method allowed, and the
//!   requested headers allowed as asked (copied, or absent when none were
//!   asked). Any other `OPTIONS` reaches the API.
//! - every other answer gets `Access-Control-Allow-Origin`, replacing the
//!   handler's, except a function's own (Kong overwrites it, which
//!   Supabase's issue 41334 reports as a bug); an API's
//!   `Access-Control-Expose-Headers` is added where the service behind
//!   Kong would add it (PostgREST's list for the data API, GoTrue's for
//!   auth), so supabase-js can read `Content-Range` in a browser.
//! - `--cors-origins` narrows who may: with `*` (the default) every origin
//!   gets `*`; with a list, an origin on it gets itself back (scheme, host
//!   and port compared, default ports dropped), any other none, and
//!   answers carry `Vary: Origin`. Kong's regular expressions in the list
//!   are not supported; an entry is one origin.

use http::header::{self, HeaderMap, HeaderValue};
use http::Method;

/// Kong's default `methods`, in its order and spelling.
const ALLOWED_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT";

/// What PostgREST exposes (its `Cors.hs`).
pub const EXPOSE_REST: &str = "Content-Encoding, Content-Location, Content-Range, Content-Type, \
     Date, Location, Server, Transfer-Encoding, Range-Unit";
/// What GoTrue exposes.
pub const EXPOSE_AUTH: &str = "X-Total-Count, Link, X-Supabase-Api-Version";
/// What a browser needs to read of S3 answers (ETags for multipart, the
/// request id, versions).
pub const EXPOSE_S3: &str = "ETag, Content-Length, Content-Range, Content-Type, Last-Modified, \
     x-amz-request-id, x-amz-version-id, x-amz-delete-marker";

#[derive(Debug, thiserror::Error)]
#[error("invalid CORS origin {0:?}: give `*` or origins such as https://app.example.com")]
pub struct InvalidOrigin(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Every origin (`*`).
    Any,
    /// Only these origins, normalized.
    Only(Vec<String>),
}

impl CorsPolicy {
    /// From `--cors-origins`: `*`, or a list of origins (with `*` anywhere
    /// in it meaning every origin).
    pub fn parse(entries: &[String]) -> Result<CorsPolicy, InvalidOrigin> {
        let entries: Vec<&str> = entries
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() || entries.contains(&"*") {
            return Ok(CorsPolicy::Any);
        }
        entries
            .into_iter()
            .map(|entry| normalize(entry).ok_or_else(|| InvalidOrigin(entry.to_owned())))
            .collect::<Result<_, _>>()
            .map(CorsPolicy::Only)
    }

    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`, if
    /// it may have one.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            CorsPolicy::Any => Some(HeaderValue::from_static("*")),
            CorsPolicy::Only(allowed) => {
                let origin = normalize(origin?.to_str().ok()?)?;
                allowed
                    .contains(&origin)
                    .then(|| HeaderValue::from_str(&origin).ok())
                    .flatten()
            }
        }
    }

    /// The headers of the answer to a preflight whose headers are
    /// `request`.
    pub fn preflight(&self, request: &HeaderMap) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(origin) = self.allow_origin(request.get(header::ORIGIN)) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        if matches!(self, CorsPolicy::Only(_)) {
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        headers
    }

    /// Adds the CORS headers to an answer (not a preflight's) of a request
    /// from `origin`. `keep_own` leaves an `Access-Control-Allow-Origin`
    /// the handler set; `expose` is added when the handler exposed none.
    pub fn decorate(
        &self,
        origin: Option<&HeaderValue>,
        response: &mut HeaderMap,
        keep_own: bool,
        expose: Option<&'static str>,
    ) {
        if matches!(self, CorsPolicy::Only(_)) {
            response.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if keep_own && response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            return;
        }
        match self.allow_origin(origin) {
            Some(allowed) => {
                response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            }
            None => {
                response.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
                return;
            }
        }
        if let Some(expose) = expose {
            if origin.is_some() && !response.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
                response.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(expose),
                );
            }
        }
    }
}

/// `scheme://host[:port]`, lowercased, the scheme's default port dropped;
/// None for anything that is not an origin.
fn normalize(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.path() != "/" && !url.path().is_empty() {
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return None;
    }
    let host = url.host_str()?;
    Some(match url.port() {
        // `Url` already drops a port that is the scheme's default.
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str, asked_headers: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        if let Some(asked) = asked_headers {
            headers.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(asked).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn any_origin_gets_a_star_and_the_asked_headers() {
        let policy = CorsPolicy::parse(&[]).unwrap();
        let answer = policy.preflight(&request(
            "https://app.example",
            Some("authorization,apikey,content-type,x-client-info"),
        ));
        assert_eq!(answer["access-control-allow-origin"], "*");
        assert_eq!(answer["access-control-allow-methods"], ALLOWED_METHODS);
        assert_eq!(
            answer["access-control-allow-headers"],
            "authorization,apikey,content-type,x-client-info"
        );
        assert!(!answer.contains_key(header::VARY));
        let answer = policy.preflight(&request("https://app.example", None));
        assert!(!answer.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS));
    }

    #[test]
    fn a_list_admits_its_origins_only() {
        let policy = CorsPolicy::parse(&[
            "https://app.example:443".into(),
            "http://localhost:5173".into(),
        ])
        .unwrap();
        assert_eq!(
            policy,
            CorsPolicy::Only(vec![
                "https://app.example".into(),
                "http://localhost:5173".into()
            ])
        );
        let answer = policy.preflight(&request("https://APP.example", None));
        assert_eq!(answer["access-control-allow-origin"], "https://app.example");
        assert_eq!(answer["vary"], "Origin");
        let answer = policy.preflight(&request("https://evil.example", None));
        assert!(!answer.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

        let mut response = HeaderMap::new();
        response.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        let evil = HeaderValue::from_static("https://evil.example");
        policy.decorate(Some(&evil), &mut response, false, Some(EXPOSE_REST));
        assert!(!response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert!(!response.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS));
    }

    #[test]
    fn answers_get_the_origin_and_the_apis_exposed_headers() {
        let policy = CorsPolicy::Any;
        let origin = HeaderValue::from_static("https://app.example");
        let mut response = HeaderMap::new();
        policy.decorate(Some(&origin), &mut response, false, Some(EXPOSE_REST));
        assert_eq!(response["access-control-allow-origin"], "*");
        assert_eq!(response["access-control-expose-headers"], EXPOSE_REST);

        // A function's own origin stays.
        let mut response = HeaderMap::new();
        response.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://mine.example"),
        );
        policy.decorate(Some(&origin), &mut response, true, None);
        assert_eq!(
            response["access-control-allow-origin"],
            "https://mine.example"
        );
    }

    #[test]
    fn entries_that_are_not_origins_are_refused() {
        for bad in ["app.example", "ftp://x.example", "https://x.example/path"] {
            assert!(CorsPolicy::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
