//! Benchmark fixture (`make bench`, bench/events.sh): an event handler
//! that only announces it ran, with `pg_notify('event_sink', <event id>)`
//! in its transaction, so the benchmark's listener hears of a delivery
//! exactly when the handler's work committed.

use selfdb_sdk::db::{self, Value};
use selfdb_sdk::{Event, EventHandler};

struct Sink;

impl EventHandler for Sink {
    fn handle(event: Event) -> Result<(), String> {
        db::execute(
            "select pg_notify('event_sink', $1)",
            &[Value::Text(event.id.clone())],
        )
        .map(drop)
        .map_err(|e| e.message)
    }
}

selfdb_sdk::event_component!(Sink);
