//! The S3 endpoint's HTTP edge: where s3s (0.14.1) would answer otherwise
//! than S3 does, the request is answered here before s3s parses it, or
//! s3s's answer is corrected after. Each rule is narrow and names the
//! s3s behaviour it works around, so that it can go when s3s changes.
//!
//! Before s3s:
//! - `OPTIONS` (a CORS preflight): SelfDB has no CORS configuration on the
//!   S3 port, so 400 without `Origin` and 403 with one, as S3 answers for a
//!   bucket without CORS (s3s would check the request as a signed one);
//! - a presigned URL whose `X-Amz-Expires` is negative or over a week:
//!   403, as S3 answers (s3s takes a week and more, and answers a negative
//!   one 400);
//! - a PUT sent with `Transfer-Encoding: chunked` and no length whose
//!   `x-amz-content-sha256` names a payload hash (or UNSIGNED-PAYLOAD):
//!   s3s checks that hash against a body of known length and refuses one
//!   without, so a body up to [`UNSIZED_PUT_LIMIT`] is read first and
//!   given its length; a larger one is refused 411 `MissingContentLength`,
//!   as before. Such a body is read before its signature is checked, so at
//!   most four are read at once. (Presigned and aws-chunked PUTs without a
//!   length stream through s3s as they always did.)
//!
//! After s3s:
//! - GetObjectAttributes' ETag unquoted, as S3 writes that one;
//! - a browser form upload refused for breaking its policy's conditions:
//!   403 AccessDenied, as S3 answers (s3s: 400 InvalidPolicyDocument);
//! - a form upload's `success_action_redirect` given the ETag in quotes,
//!   as S3 gives it.

use hyper::{Method, StatusCode};

/// SigV4's longest presigned lifetime, a week.
const MAX_EXPIRES_SECONDS: i64 = 7 * 24 * 60 * 60;

/// Whether `request` is a browser form upload (`POST /bucket` with a
/// form body).
pub fn is_form_upload<B>(request: &hyper::Request<B>) -> bool {
    request.method() == Method::POST
        && request
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// A form upload whose fields break a condition of its signed policy is
/// refused 403 AccessDenied by S3; s3s answers 400 InvalidPolicyDocument,
/// which S3 keeps for a policy it cannot read.
pub fn policy_condition_is_forbidden(response: &mut s3s::HttpResponse) {
    if response.status() != StatusCode::BAD_REQUEST {
        return;
    }
    let Some(body) = response.body().bytes() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return;
    };
    let broken_condition = text.contains("<Code>InvalidPolicyDocument</Code>")
        && (text.contains("<Message>Policy condition")
            || text.contains("<Message>Bucket in form field"));
    if !broken_condition {
        return;
    }
    *response = error(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        "Invalid according to Policy: Policy Condition failed",
    );
}

/// S3 hands a form upload's `success_action_redirect` the ETag in quotes
/// (`etag=%22...%22`), as it writes ETags; s3s hands it without.
pub fn quote_redirect_etag(response: &mut s3s::HttpResponse) {
    if response.status() != StatusCode::SEE_OTHER {
        return;
    }
    let Some(location) = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let Some(at) = location.rfind("etag=") else {
        return;
    };
    let start = at + "etag=".len();
    let end = location[start..]
        .find('&')
        .map_or(location.len(), |n| start + n);
    if location[start..end].starts_with("%22") {
        return;
    }
    let quoted = format!(
        "{}%22{}%22{}",
        &location[..start],
        &location[start..end],
        &location[end..]
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(&quoted) {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, value);
    }
}

/// Whether `request` is a GetObjectAttributes (`GET ...?attributes`).
pub fn asks_attributes<B>(request: &hyper::Request<B>) -> bool {
    request.method() == Method::GET
        && request.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|p| p == "attributes" || p == "attributes=")
        })
}

/// GetObjectAttributes answers its ETag unquoted (unlike every other ETag
/// in S3's XML); s3s quotes every ETag it writes, so the quotes of that one
/// element are taken off here.
pub fn unquote_attributes_etag(response: &mut s3s::HttpResponse) {
    if !response.status().is_success() {
        return;
    }
    let Some(body) = response.body().bytes() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return;
    };
    let Some(open) = text.find("<ETag>\"") else {
        return;
    };
    let Some(close) = text[open..].find("\"</ETag>").map(|at| open + at) else {
        return;
    };
    let fixed = format!(
        "{}<ETag>{}</ETag>{}",
        &text[..open],
        &text[open + "<ETag>\"".len()..close],
        &text[close + "\"</ETag>".len()..]
    );
    let length = fixed.len();
    *response.body_mut() = s3s::Body::from(fixed);
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_LENGTH, length.into());
}

/// The largest PUT without a length that is read into memory to give it
/// one.
pub const UNSIZED_PUT_LIMIT: usize = 16 << 20;

/// How many such PUTs are read at once. They are read before the
/// signature is checked (s3s checks it with the length), so this bounds
/// what unsigned requests can hold: 4 x 16 MiB; more at once are told to
/// slow down.
const UNSIZED_PUTS_AT_ONCE: usize = 4;

static UNSIZED_PUTS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(UNSIZED_PUTS_AT_ONCE);

/// Whether s3s will want the body's length before it streams the body:
/// when `x-amz-content-sha256` names the payload's hash (or
/// `UNSIGNED-PAYLOAD`), s3s checks the hash against a body of known length
/// and refuses one without (presigned URLs, and aws-chunked uploads with
/// their decoded length, stream as they always did).
fn hash_needs_length(headers: &hyper::HeaderMap) -> bool {
    headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.starts_with("STREAMING-"))
}

/// `request` with a `Content-Length`, for s3s: an unsized PUT's body is
/// read first (see the module's notes); any other request passes as it is.
pub async fn sized(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<s3s::HttpRequest, s3s::HttpResponse> {
    use http_body_util::BodyExt;
    let headers = request.headers();
    let unsized_put = request.method() == Method::PUT
        && !headers.contains_key(hyper::header::CONTENT_LENGTH)
        && !headers.contains_key("x-amz-decoded-content-length")
        && headers
            .get(hyper::header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        && hash_needs_length(headers);
    if !unsized_put {
        return Ok(request.map(s3s::Body::from));
    }
    let Ok(_permit) = UNSIZED_PUTS.try_acquire() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Too many uploads without a Content-Length at once; send the length or retry.",
        ));
    };
    let (mut parts, body) = request.into_parts();
    let collected = http_body_util::Limited::new(body, UNSIZED_PUT_LIMIT)
        .collect()
        .await
        .map_err(|err| match err.is::<http_body_util::LengthLimitError>() {
            true => error(
                StatusCode::LENGTH_REQUIRED,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header.",
            ),
            false => error(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The request body ended before it was complete.",
            ),
        })?;
    let bytes = collected.to_bytes();
    parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(hyper::header::CONTENT_LENGTH, bytes.len().into());
    Ok(hyper::Request::from_parts(parts, s3s::Body::from(bytes)))
}

/// The answer for `request`, where it is answered here.
pub fn answer<B>(request: &hyper::Request<B>) -> Option<s3s::HttpResponse> {
    if request.method() == Method::OPTIONS {
        return Some(
            match request.headers().contains_key(hyper::header::ORIGIN) {
                false => error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "Insufficient information. Origin request header needed.",
                ),
                true => error(
                    StatusCode::FORBIDDEN,
                    "AccessForbidden",
                    "CORSResponse: CORS is not enabled for this bucket.",
                ),
            },
        );
    }
    let query = request.uri().query()?;
    let expires = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-Expires="))?;
    match expires.parse::<i64>() {
        Ok(seconds) if (0..=MAX_EXPIRES_SECONDS).contains(&seconds) => None,
        _ => Some(error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "X-Amz-Expires must be between 0 and 604800 seconds",
        )),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> s3s::HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = s3s::HttpResponse::new(s3s::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(method: Method, uri: &str, origin: bool) -> Option<StatusCode> {
        let mut request = hyper::Request::builder().method(method).uri(uri);
        if origin {
            request = request.header("origin", "https://example.com");
        }
        answer(&request.body(()).unwrap()).map(|r| r.status())
    }

    #[test]
    fn only_bodies_s3s_must_measure_are_read() {
        let with = |value: &str| {
            let mut headers = hyper::HeaderMap::new();
            headers.insert("x-amz-content-sha256", value.parse().unwrap());
            hash_needs_length(&headers)
        };
        assert!(with(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ));
        assert!(with("UNSIGNED-PAYLOAD"));
        assert!(!with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"));
        assert!(!hash_needs_length(&hyper::HeaderMap::new()));
    }

    #[test]
    fn preflights_and_presigned_lifetimes() {
        assert_eq!(
            status(Method::OPTIONS, "/b/k", false),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(Method::OPTIONS, "/b/k", true),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(status(Method::GET, "/b/k", false), None);
        assert_eq!(status(Method::GET, "/b/k?X-Amz-Expires=3600", false), None);
        assert_eq!(
            status(Method::GET, "/b/k?X-Amz-Expires=604800", false),
            None
        );
        for bad in ["609901", "-7", "soon"] {
            let uri = format!("/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={bad}");
            assert_eq!(
                status(Method::GET, &uri, false),
                Some(StatusCode::FORBIDDEN),
                "{bad}"
            );
        }
    }
}
