//! Built against the `system-http-handler` world: it mints a token. Deployed
//! as a user function, it must fail to link, because user functions are
//! linked without the privileged interfaces.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "selfdb:platform/system-http-handler",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Privileged;

impl Guest for Privileged {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let minted = selfdb::platform::tokens::mint_access_token(
            r#"{"role":"authenticated","aud":"authenticated","sub":"minted"}"#,
            60,
        );
        let text = match minted {
            Ok(token) => token.jwt,
            Err(err) => err,
        };
        let response = OutgoingResponse::new(Fields::new());
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write() {
            let _ = stream.blocking_write_and_flush(text.as_bytes());
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

export!(Privileged);
