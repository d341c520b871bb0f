//! The `wasi:http/incoming-handler` export of a user function: reads the
//! request into a [`Request`], writes the [`Response`] back.

use crate::bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::http::{Handler, Request, Response};

fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other,
    }
}

fn read_request(request: IncomingRequest) -> Result<Request, String> {
    let path_with_query = request.path_with_query().unwrap_or_default();
    let (path, query) = match path_with_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (path_with_query, String::new()),
    };
    let headers = request.headers().entries();
    let method = method_name(request.method());
    let mut body = Vec::new();
    let incoming = request
        .consume()
        .map_err(|_| "request body already taken")?;
    {
        let stream = incoming
            .stream()
            .map_err(|_| "request body stream unavailable")?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(format!(
                        "reading the request body: {}",
                        err.to_debug_string()
                    ))
                }
            }
        }
    }
    Ok(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn write_response(out: ResponseOutparam, response: Response) {
    let headers = Fields::new();
    for (name, value) in &response.headers {
        let _ = headers.append(name, value);
    }
    let outgoing = OutgoingResponse::new(headers);
    let _ = outgoing.set_status_code(response.status);
    let Ok(body) = outgoing.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    if let Ok(stream) = body.write() {
        for chunk in response.body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

/// Reads the request, runs `H`, writes its response.
pub fn serve<H: Handler>(request: IncomingRequest, out: ResponseOutparam) {
    let response = match read_request(request) {
        Ok(request) => H::handle(request),
        Err(message) => Response::error(400, "bad_request", &message),
    };
    write_response(out, response);
}
