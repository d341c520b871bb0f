//! The `selfdb:platform/handler` export of a system component: the request
//! and response as records, converted to and from [`Request`] and
//! [`Response`].

use crate::bindings::exports::selfdb::platform::handler;
use crate::http::{Handler, Request};

/// Runs `H` on a request handed over as a `selfdb:platform/handler` record.
pub fn serve_record<H: Handler>(request: handler::Request) -> handler::Response {
    let response = H::handle(Request {
        method: request.method,
        path: request.path,
        query: request.query,
        headers: request.headers,
        body: request.body,
    });
    handler::Response {
        status: response.status,
        headers: response.headers,
        body: response.body,
    }
}
