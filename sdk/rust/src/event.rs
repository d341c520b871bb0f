//! The `selfdb:platform/listener` export of a user function: the event as
//! the generated record, a few helpers on it, and what the export macros
//! plug in for the export a function does not use.

use crate::http::{Handler, Request, Response};

/// One delivery of an event: the generated `listener` record (`id`, `kind`,
/// `name`, `payload` as JSON text, `attempt` from 1).
pub use crate::bindings::exports::selfdb::platform::listener::{Event, EventKind};

/// A function that runs on events: database changes, schedules, custom
/// events, setup. `Ok` acknowledges the event; `Err`, a trap or a limit is
/// a failed attempt, retried with backoff. The invocation's database work
/// commits only with `Ok`.
pub trait EventHandler {
    fn handle(event: Event) -> Result<(), String>;
}

impl Event {
    /// The payload parsed as JSON; `Null` if it is not JSON (the host always
    /// sends JSON).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }

    /// What caused the event.
    pub fn kind(&self) -> EventKind {
        self.kind
    }
}

impl EventKind {
    /// The WIT name: `database`, `schedule`, `custom` or `setup`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Database => "database",
            EventKind::Schedule => "schedule",
            EventKind::Custom => "custom",
            EventKind::Setup => "setup",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `listener` of a function exported with `http_component!`: the world
/// exports it anyway, so it says why it cannot handle the event.
#[doc(hidden)]
pub struct __NoEventHandler;

impl EventHandler for __NoEventHandler {
    fn handle(_event: Event) -> Result<(), String> {
        Err("this function has no event handler".into())
    }
}

/// The HTTP handler of a function exported with `event_component!`.
#[doc(hidden)]
pub struct __EventsOnly;

impl Handler for __EventsOnly {
    fn handle(_request: Request) -> Response {
        Response::json(
            404,
            &serde_json::json!({"error": {
                "code": "not_found",
                "message": "this function handles events only",
            }}),
        )
    }
}
