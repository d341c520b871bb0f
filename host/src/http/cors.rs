//! The API port's CORS layer: the policy of `crate::cors` applied to
//! every route (see there for what is answered and why).

use super::AppState;
use crate::cors::{CorsPolicy, EXPOSE_AUTH, EXPOSE_REST};
use crate::metrics::Api;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

pub async fn cors(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let policy = &app.cors;
    if CorsPolicy::is_preflight(request.method(), request.headers()) {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::OK;
        *response.headers_mut() = policy.preflight(request.headers());
        return response;
    }
    let origin = request.headers().get(header::ORIGIN).cloned();
    let api = Api::of_path(request.uri().path());
    let mut response = next.run(request).await;
    let expose = match api {
        Api::Rest | Api::Projects => Some(EXPOSE_REST),
        Api::Auth => Some(EXPOSE_AUTH),
        _ => None,
    };
    policy.decorate(
        origin.as_ref(),
        response.headers_mut(),
        api == Api::Functions,
        expose,
    );
    response
}
