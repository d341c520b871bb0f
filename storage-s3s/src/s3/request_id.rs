//! `x-amz-request-id` on every answer of the S3 endpoint, and the same id
//! as `<RequestId>` in error bodies, as AWS answers (tools log it, and
//! s3-tests checks that the two agree). s3s sets neither.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request ids: a random prefix per process and a counter, 16 hex digits
/// like AWS's.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        Self {
            prefix: rand::random(),
            next: AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:08X}{:08X}", self.prefix, n as u32)
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds `id` to `response`: the header always, and `<RequestId>` before
/// `</Error>` of an error body that is already in memory (s3s writes error
/// bodies whole) and has none.
pub fn stamp(response: &mut s3s::HttpResponse, id: &str) {
    if let Ok(value) = hyper::header::HeaderValue::from_str(id) {
        response.headers_mut().insert("x-amz-request-id", value);
    }
    if !response.status().is_client_error() && !response.status().is_server_error() {
        return;
    }
    let Some(body) = response.body().bytes() else {
        return;
    };
    let Some(end) = find(&body, b"</Error>") else {
        return;
    };
    if find(&body, b"<RequestId>").is_some() {
        return;
    }
    let tag = format!("<RequestId>{id}</RequestId>");
    let mut stamped = Vec::with_capacity(body.len() + tag.len());
    stamped.extend_from_slice(&body[..end]);
    stamped.extend_from_slice(tag.as_bytes());
    stamped.extend_from_slice(&body[end..]);
    let length = stamped.len();
    *response.body_mut() = s3s::Body::from(stamped);
    if response
        .headers()
        .contains_key(hyper::header::CONTENT_LENGTH)
    {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, length.into());
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_id_in_header_and_body() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>";
        let mut response = s3s::HttpResponse::new(s3s::Body::from(body.to_owned()));
        *response.status_mut() = hyper::StatusCode::NOT_FOUND;
        stamp(&mut response, &a);
        assert_eq!(response.headers()["x-amz-request-id"], a.as_str());
        let stamped = response.body().bytes().unwrap();
        assert!(std::str::from_utf8(&stamped)
            .unwrap()
            .ends_with(&format!("<RequestId>{a}</RequestId></Error>")));
        let mut ok = s3s::HttpResponse::new(s3s::Body::from("<Listing/>".to_owned()));
        stamp(&mut ok, &b);
        assert_eq!(ok.headers()["x-amz-request-id"], b.as_str());
        assert_eq!(ok.body().bytes().unwrap().as_ref(), b"<Listing/>");
    }
}
