//! Presences tracked on a topic, keyed by the client's presence key, as
//! Phoenix.Presence shows them: `{key: {metas: [{phx_ref, ...meta}]}}`,
//! with `presence_diff {joins, leaves}` on every change.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

struct Entry {
    conn: u64,
    join_ref: String,
    phx_ref: String,
    meta: Map<String, Value>,
}

#[derive(Default)]
pub struct Presences {
    by_key: BTreeMap<String, Vec<Entry>>,
    next_ref: u64,
}

/// `{key: {metas: [...]}}` for the given (key, meta) pairs.
fn group(items: Vec<(String, Value)>) -> Value {
    let mut out = Map::new();
    for (key, meta) in items {
        let entry = out.entry(key).or_insert_with(|| json!({ "metas": [] }));
        if let Some(metas) = entry.get_mut("metas").and_then(Value::as_array_mut) {
            metas.push(meta);
        }
    }
    Value::Object(out)
}

fn with_ref(meta: &Map<String, Value>, phx_ref: &str, prev: Option<&str>) -> Value {
    let mut meta = meta.clone();
    meta.insert("phx_ref".to_owned(), Value::String(phx_ref.to_owned()));
    if let Some(prev) = prev {
        meta.insert("phx_ref_prev".to_owned(), Value::String(prev.to_owned()));
    }
    Value::Object(meta)
}

impl Presences {
    fn new_ref(&mut self) -> String {
        self.next_ref += 1;
        // Unique across hosts too: the host's start time prefixes it.
        format!("{}-{}", *HOST_PREFIX, self.next_ref)
    }

    /// Tracks (or updates) a channel's presence; returns the diffs to
    /// broadcast, none when nothing changed. An update is a leave of the old
    /// meta and then a join of the new one, in two diffs: realtime-js
    /// (2.109) drops `phx_ref` from the metas it already holds while it
    /// handles a join, so a leave in the same diff as a join of its key
    /// would never match and the old meta would stay.
    pub fn track(
        &mut self,
        conn: u64,
        join_ref: &str,
        key: &str,
        meta: Map<String, Value>,
    ) -> Vec<Value> {
        let phx_ref = self.new_ref();
        let entries = self.by_key.entry(key.to_owned()).or_default();
        if let Some(existing) = entries
            .iter_mut()
            .find(|e| e.conn == conn && e.join_ref == join_ref)
        {
            if existing.meta == meta {
                return Vec::new();
            }
            let left = with_ref(&existing.meta, &existing.phx_ref, None);
            let joined = with_ref(&meta, &phx_ref, None);
            existing.meta = meta;
            existing.phx_ref = phx_ref;
            return vec![
                json!({ "joins": {}, "leaves": group(vec![(key.to_owned(), left)]) }),
                json!({ "joins": group(vec![(key.to_owned(), joined)]), "leaves": {} }),
            ];
        }
        let joined = with_ref(&meta, &phx_ref, None);
        entries.push(Entry {
            conn,
            join_ref: join_ref.to_owned(),
            phx_ref,
            meta,
        });
        vec![json!({
            "joins": group(vec![(key.to_owned(), joined)]),
            "leaves": {},
        })]
    }

    /// Removes every presence of a channel; returns the diff, if any.
    pub fn untrack(&mut self, conn: u64, join_ref: &str) -> Option<Value> {
        let mut leaves = Vec::new();
        self.by_key.retain(|key, entries| {
            entries.retain(|e| {
                let gone = e.conn == conn && e.join_ref == join_ref;
                if gone {
                    leaves.push((key.clone(), with_ref(&e.meta, &e.phx_ref, None)));
                }
                !gone
            });
            !entries.is_empty()
        });
        if leaves.is_empty() {
            return None;
        }
        Some(json!({ "joins": {}, "leaves": group(leaves) }))
    }

    /// The whole state, as `presence_state` carries it.
    pub fn state(&self) -> Value {
        let mut items = Vec::new();
        for (key, entries) in &self.by_key {
            for e in entries {
                items.push((key.clone(), with_ref(&e.meta, &e.phx_ref, None)));
            }
        }
        group(items)
    }
}

/// Distinguishes this host's presence refs from another's.
pub static HOST_PREFIX: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::secrets::random_token(6));

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn track_update_and_leave_produce_phoenix_diffs() {
        let mut p = Presences::default();
        let diffs = p.track(1, "6", "alice", meta(json!({"s": 1})));
        assert_eq!(diffs[0]["joins"]["alice"]["metas"][0]["s"], 1);
        assert!(p.track(1, "6", "alice", meta(json!({"s": 1}))).is_empty());
        let diffs = p.track(1, "6", "alice", meta(json!({"s": 2})));
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0]["leaves"]["alice"]["metas"][0]["s"], 1);
        assert_eq!(diffs[1]["joins"]["alice"]["metas"][0]["s"], 2);
        p.track(2, "9", "bob", meta(json!({})));
        assert_eq!(p.state().as_object().map(|m| m.len()), Some(2));
        let diff = p.untrack(1, "6").expect("leave");
        assert_eq!(diff["leaves"]["alice"]["metas"][0]["s"], 2);
        assert!(p.untrack(1, "6").is_none());
        assert_eq!(p.state().as_object().map(|m| m.len()), Some(1));
    }
}
