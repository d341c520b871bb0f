//! Test fixture for event delivery: a function with both exports.
//!
//! Its `listener` prints `handled <kind> <name> <event id> attempt <n>` to
//! stdout (the function logs show console output), then follows the flags
//! in `public.event_control (key text primary key, value text)`, when that
//! table exists:
//! - `fail:<event id>` = N: fails while the attempt is at most N;
//! - `fail_all`: fails every event;
//! - `spin`: spins forever (time limit), as does a payload with
//!   `"spin": true` at its top level or in its `record`;
//! - `sleep_ms` = N: sleeps N milliseconds first;
//! - `setup_fail`: refuses the setup event.
//!
//! A payload (or its `record`) with a string field `publish` publishes that
//! event with `{"from": <event id>}`. A handled event is recorded in
//! `public.event_log (event_id, kind, name, payload, attempt, received_at)`
//! when that table exists.
//!
//! Over HTTP, `POST ?publish=NAME` publishes NAME with the JSON body as
//! its payload; anything else answers `{"ok": true}`.

use selfdb_sdk::db::{self, Value};
use selfdb_sdk::{Event, EventHandler, EventKind, Handler, Request, Response};
use std::collections::HashMap;

struct Http;

impl Handler for Http {
    fn handle(request: Request) -> Response {
        let name = match request.query_param("publish") {
            Some(name) if request.method == "POST" => name,
            _ => return Response::json(200, &serde_json::json!({"ok": true})),
        };
        let payload = if request.body.is_empty() {
            serde_json::Value::Null
        } else {
            match request.json::<serde_json::Value>() {
                Ok(payload) => payload,
                Err(response) => return response,
            }
        };
        match selfdb_sdk::publish(&name, &payload) {
            Ok(()) => Response::json(200, &serde_json::json!({"published": true})),
            Err(message) => Response::error(500, "publish_failed", &message),
        }
    }
}

struct Listener;

/// Which of the fixture's tables exist. Checked with `to_regclass` rather
/// than by trying them: a failed statement aborts the invocation's
/// transaction, and with it everything after.
struct Tables {
    control: bool,
    log: bool,
}

fn tables() -> Result<Tables, String> {
    let rows = db::query(
        "select to_regclass('public.event_control') is not null, \
                to_regclass('public.event_log') is not null",
        &[],
    )
    .map_err(|e| e.message)?;
    let row = rows.rows.first();
    let exists = |i: usize| matches!(row.and_then(|r| r.get(i)), Some(Value::Boolean(true)));
    Ok(Tables {
        control: exists(0),
        log: exists(1),
    })
}

/// Every flag of `public.event_control`, read in one statement.
fn flags() -> Result<HashMap<String, String>, String> {
    let rows =
        db::query("select key, value from public.event_control", &[]).map_err(|e| e.message)?;
    Ok(rows
        .rows
        .iter()
        .filter_map(|row| match (row.first(), row.get(1)) {
            (Some(Value::Text(key)), Some(Value::Text(value))) => {
                Some((key.clone(), value.clone()))
            }
            (Some(Value::Text(key)), _) => Some((key.clone(), String::new())),
            _ => None,
        })
        .collect())
}

/// A field at the payload's top level or in its `record` (a database
/// change's new row).
fn field<'a>(payload: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    payload
        .get(name)
        .or_else(|| payload.get("record").and_then(|record| record.get(name)))
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// What the tests look for in the function's logs (its stdout).
#[allow(clippy::print_stdout)]
fn announce(event: &Event) {
    println!(
        "handled {} {} {} attempt {}",
        event.kind(),
        event.name,
        event.id,
        event.attempt
    );
}

impl EventHandler for Listener {
    fn handle(event: Event) -> Result<(), String> {
        let payload = event.payload_json();
        let kind = event.kind();
        let attempt = event.attempt;
        announce(&event);
        let tables = tables()?;
        let flags = if tables.control {
            flags()?
        } else {
            HashMap::new()
        };
        if let Some(ms) = flags.get("sleep_ms") {
            let ms = ms.trim().parse::<u64>().unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        if flags.contains_key("spin")
            || field(&payload, "spin") == Some(&serde_json::Value::Bool(true))
        {
            spin();
        }
        if flags.contains_key("fail_all") {
            return Err("failing on purpose".into());
        }
        if let Some(times) = flags.get(&format!("fail:{}", event.id)) {
            // A value that is not a number fails every attempt.
            let times = times.trim().parse::<u32>().unwrap_or(u32::MAX);
            if attempt <= times {
                return Err(format!("failing on purpose, attempt {attempt}"));
            }
        }
        if kind == EventKind::Setup && flags.contains_key("setup_fail") {
            return Err("setup refused on purpose".into());
        }
        if let Some(name) = field(&payload, "publish").and_then(|v| v.as_str()) {
            selfdb_sdk::publish(name, &serde_json::json!({"from": event.id}))?;
        }
        if tables.log {
            db::execute(
                "insert into public.event_log (event_id, kind, name, payload, attempt) \
                 values ($1, $2, $3, $4::jsonb, $5)",
                &[
                    Value::Text(event.id.clone()),
                    Value::Text(kind.as_str().into()),
                    Value::Text(event.name.clone()),
                    Value::Text(event.payload.clone()),
                    Value::Int(i64::from(attempt)),
                ],
            )
            .map_err(|e| e.message)?;
        }
        Ok(())
    }
}

selfdb_sdk::component!(http: Http, events: Listener);
