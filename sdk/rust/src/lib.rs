//! Guest SDK for SelfDB components (target `wasm32-wasip2`).
//!
//! `bindings` holds the raw WIT bindings of the `function` world (the
//! `wasi:http` handler and the `selfdb:platform/listener` export); the rest
//! is a thin layer so a function reads like a function:
//!
//! ```ignore
//! use selfdb_sdk::{Handler, Request, Response};
//! struct Hello;
//! impl Handler for Hello {
//!     fn handle(request: Request) -> Response {
//!         Response::json(200, &serde_json::json!({"hi": request.query_param("name")}))
//!     }
//! }
//! selfdb_sdk::http_component!(Hello);
//! ```
//!
//! A function that runs on events implements [`EventHandler`] and is
//! exported with `event_component!(E)`, or with
//! `component!(http: H, events: E)` when it serves HTTP too.

extern crate self as selfdb_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The user world, `function`: both exports, `wasi:http` and `listener`.
/// wit-bindgen's export macro exports every interface of the world for one
/// type, so the SDK's macros always supply both (the missing one answers
/// 404 or refuses the event); the host calls whichever the function uses.
#[cfg(not(feature = "system"))]
#[allow(clippy::all, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "selfdb:platform/function",
        pub_export_macro: true,
        export_macro_name: "export_http_handler",
        default_bindings_module: "selfdb_sdk::bindings",
        runtime_path: "selfdb_sdk::__wit_bindgen::rt",
        generate_all,
    });
}

/// The system world: the platform and privileged interfaces, for the
/// components the host installs itself (auth, crud), exporting
/// `selfdb:platform/handler` instead of `wasi:http`. A user function built
/// with this feature is refused when it is deployed.
///
/// Cargo unifies features across the packages of one build, so system
/// components are built apart from user functions (see the Makefile).
#[cfg(feature = "system")]
#[allow(clippy::all, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "selfdb:platform/system-handler",
        pub_export_macro: true,
        export_macro_name: "export_http_handler",
        default_bindings_module: "selfdb_sdk::bindings",
        runtime_path: "selfdb_sdk::__wit_bindgen::rt",
        generate_all,
    });
}

#[cfg(feature = "system")]
pub use bindings::selfdb::platform::{auth_db, mailer, passwords, rate_limit, schema, tokens};

pub use bindings::selfdb::platform::{config, context, db, events, log};

/// Publishes `payload` as the custom event `name`. Part of the invocation's
/// transaction: the event is delivered only if the invocation commits.
pub fn publish(name: &str, payload: &serde_json::Value) -> Result<(), String> {
    events::publish(name, &payload.to_string())
}

#[cfg(not(feature = "system"))]
mod event;
#[doc(hidden)]
#[cfg(not(feature = "system"))]
pub use event::{__EventsOnly, __NoEventHandler};
#[cfg(not(feature = "system"))]
pub use event::{Event, EventHandler, EventKind};

mod http;
#[cfg(feature = "system")]
mod record;
#[cfg(not(feature = "system"))]
mod wasi_http;
pub use http::{percent_decode_lossy, Handler, Request, Response};
#[cfg(feature = "system")]
pub use record::serve_record;
#[cfg(not(feature = "system"))]
pub use wasi_http::serve;

/// Rows as JSON objects keyed by column name.
pub fn rows_to_json(rows: &db::RowSet) -> Vec<serde_json::Value> {
    rows.rows
        .iter()
        .map(|row| {
            let object = rows
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| (column.name.clone(), value_to_json(value)))
                .collect();
            serde_json::Value::Object(object)
        })
        .collect()
}

/// One value as JSON.
pub fn value_to_json(value: &db::Value) -> serde_json::Value {
    use db::Value;
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Text(s) => s.clone().into(),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| s.clone().into()),
        Value::Bytes(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
    }
}

/// Exports `$handler` (a type implementing [`Handler`]): as
/// `wasi:http/incoming-handler` for a user function, as
/// `selfdb:platform/handler` with the `system` feature. A user function's
/// `listener` export refuses every event.
#[cfg(not(feature = "system"))]
#[macro_export]
macro_rules! http_component {
    ($handler:ty) => {
        $crate::component!(http: $handler, events: $crate::__NoEventHandler);
    };
}

/// Exports `$events` (a type implementing [`EventHandler`]) as
/// `selfdb:platform/listener`; its HTTP export answers 404.
#[cfg(not(feature = "system"))]
#[macro_export]
macro_rules! event_component {
    ($events:ty) => {
        $crate::component!(http: $crate::__EventsOnly, events: $events);
    };
}

/// Exports both: `http` (a [`Handler`]) as `wasi:http/incoming-handler`
/// and `events` (an [`EventHandler`]) as `selfdb:platform/listener`.
#[cfg(not(feature = "system"))]
#[macro_export]
macro_rules! component {
    (http: $handler:ty, events: $events:ty $(,)?) => {
        struct __SelfdbExport;
        impl $crate::bindings::exports::wasi::http::incoming_handler::Guest for __SelfdbExport {
            fn handle(
                request: $crate::bindings::wasi::http::types::IncomingRequest,
                out: $crate::bindings::wasi::http::types::ResponseOutparam,
            ) {
                $crate::serve::<$handler>(request, out)
            }
        }
        impl $crate::bindings::exports::selfdb::platform::listener::Guest for __SelfdbExport {
            fn handle(
                event: $crate::bindings::exports::selfdb::platform::listener::Event,
            ) -> ::core::result::Result<(), ::std::string::String> {
                <$events as $crate::EventHandler>::handle(event)
            }
        }
        $crate::bindings::export_http_handler!(__SelfdbExport with_types_in $crate::bindings);
    };
}

/// Exports `$handler` (a type implementing [`Handler`]): as
/// `wasi:http/incoming-handler` for a user function, as
/// `selfdb:platform/handler` with the `system` feature.
#[cfg(feature = "system")]
#[macro_export]
macro_rules! http_component {
    ($handler:ty) => {
        struct __SelfdbHttpExport;
        impl $crate::bindings::exports::selfdb::platform::handler::Guest for __SelfdbHttpExport {
            fn handle(
                request: $crate::bindings::exports::selfdb::platform::handler::Request,
            ) -> $crate::bindings::exports::selfdb::platform::handler::Response {
                $crate::serve_record::<$handler>(request)
            }
        }
        $crate::bindings::export_http_handler!(__SelfdbHttpExport with_types_in $crate::bindings);
    };
}
