//! Several hosts as one, through Redis (`--redis-url`).
//!
//! - Captured transactions: the capturing host appends each to a Redis
//!   stream; every host (itself included) reads the stream and delivers to
//!   its own subscribers. A stream, unlike pub/sub, lets a reader that
//!   lost its connection resume where it was, and the commit LSN in each
//!   entry lets it drop what a capture that took over sent twice.
//! - Broadcasts and presence: pub/sub messages tagged with the sending
//!   host; each host fans out what others sent to its own members and
//!   keeps a copy of their presences. Hosts announce themselves every
//!   `HEARTBEAT`; a host silent for `HOST_TIMEOUT` is gone, and its
//!   presences leave. A host that starts asks the others for their state.

use super::capture::{Captured, Sink};
use super::protocol::{self, UserBroadcast};
use super::{Realtime, TopicKey};
use base64::Engine;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const HEARTBEAT: Duration = Duration::from_secs(2);
const HOST_TIMEOUT: Duration = Duration::from_secs(8);
/// Entries the change stream keeps (readers are expected to be current).
const STREAM_LENGTH: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Event {
    Broadcast {
        private: bool,
        topic: String,
        body: Value,
    },
    UserBroadcast {
        private: bool,
        topic: String,
        event: String,
        json: bool,
        /// JSON text, or base64 of raw bytes.
        payload: String,
    },
    PresenceDiff {
        private: bool,
        topic: String,
        diff: Value,
    },
    PresenceState {
        private: bool,
        topic: String,
        state: Value,
    },
    Heartbeat,
    SyncRequest,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    event: Event,
}

pub struct RedisBus {
    origin: String,
    changes_key: String,
    bus_channel: String,
    manager: redis::aio::ConnectionManager,
    client: redis::Client,
    outgoing: mpsc::UnboundedSender<Event>,
    /// Presences other hosts track: topic -> host -> state.
    remote: Mutex<HashMap<TopicKey, HashMap<String, Value>>>,
    seen: Mutex<HashMap<String, Instant>>,
}

impl RedisBus {
    pub async fn connect(
        url: &str,
        namespace: &str,
    ) -> anyhow::Result<(Arc<Self>, mpsc::UnboundedReceiver<Event>)> {
        let client = redis::Client::open(url)?;
        let manager = client.get_connection_manager().await?;
        let (outgoing, rx) = mpsc::unbounded_channel();
        Ok((
            Arc::new(RedisBus {
                origin: uuid::Uuid::new_v4().to_string(),
                changes_key: format!("selfdb:realtime:{namespace}:changes"),
                bus_channel: format!("selfdb:realtime:{namespace}:bus"),
                manager,
                client,
                outgoing,
                remote: Mutex::default(),
                seen: Mutex::default(),
            }),
            rx,
        ))
    }

    /// Queues an event for the other hosts (sent in order by one task).
    pub fn publish(&self, event: Event) {
        let _ = self.outgoing.send(event);
    }

    /// Starts the tasks: the publisher, the pub/sub listener, the change
    /// stream reader and the heartbeat.
    pub fn spawn(
        self: &Arc<Self>,
        realtime: Weak<Realtime>,
        mut outgoing: mpsc::UnboundedReceiver<Event>,
        deliver: mpsc::Sender<Captured>,
    ) {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut manager = bus.manager.clone();
            while let Some(event) = outgoing.recv().await {
                let envelope = Envelope {
                    origin: bus.origin.clone(),
                    event,
                };
                let Ok(text) = serde_json::to_string(&envelope) else {
                    continue;
                };
                if let Err(err) = manager.publish::<_, _, ()>(&bus.bus_channel, text).await {
                    tracing::warn!(%err, "realtime: publishing to Redis failed");
                }
            }
        });
        let bus = self.clone();
        let rt = realtime.clone();
        tokio::spawn(async move {
            loop {
                if let Err(err) = bus.listen(&rt).await {
                    tracing::warn!(%err, "realtime: Redis subscription lost; resubscribing");
                }
                if rt.upgrade().is_none() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let bus = self.clone();
        tokio::spawn(async move {
            let mut last = "$".to_owned();
            loop {
                if let Err(err) = bus.read_changes(&mut last, &deliver).await {
                    tracing::warn!(%err, "realtime: reading the change stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                if deliver.is_closed() {
                    return;
                }
            }
        });
        let bus = self.clone();
        tokio::spawn(async move {
            bus.publish(Event::SyncRequest);
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                let Some(rt) = realtime.upgrade() else { return };
                bus.publish(Event::Heartbeat);
                bus.forget_silent_hosts(&rt);
            }
        });
    }

    async fn listen(&self, realtime: &Weak<Realtime>) -> anyhow::Result<()> {
        use futures::StreamExt;
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.bus_channel).await?;
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Ok(envelope) = serde_json::from_slice::<Envelope>(message.get_payload_bytes())
            else {
                continue;
            };
            if envelope.origin == self.origin {
                continue;
            }
            let Some(rt) = realtime.upgrade() else {
                return Ok(());
            };
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(envelope.origin.clone(), Instant::now());
            self.receive(&rt, envelope.origin, envelope.event);
        }
        anyhow::bail!("the Redis subscription ended")
    }

    fn receive(&self, realtime: &Realtime, origin: String, event: Event) {
        match event {
            Event::Broadcast {
                private,
                topic,
                body,
            } => {
                let key = TopicKey { private, topic };
                let name = key.topic.clone();
                realtime.fan_out_local(&key, None, |vsn| {
                    protocol::encode(vsn, None, None, &name, "broadcast", &body)
                });
            }
            Event::UserBroadcast {
                private,
                topic,
                event,
                json,
                payload,
            } => {
                let bytes = if json {
                    payload.into_bytes()
                } else {
                    match base64::engine::general_purpose::STANDARD.decode(payload) {
                        Ok(bytes) => bytes,
                        Err(_) => return,
                    }
                };
                let user = UserBroadcast {
                    event,
                    json,
                    payload: bytes.into(),
                };
                let key = TopicKey { private, topic };
                let name = key.topic.clone();
                realtime.fan_out_local(&key, None, |vsn| {
                    protocol::encode_user_broadcast(vsn, &name, &user, None)
                });
            }
            Event::PresenceDiff {
                private,
                topic,
                diff,
            } => {
                let key = TopicKey { private, topic };
                {
                    let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
                    let state = remote
                        .entry(key.clone())
                        .or_default()
                        .entry(origin)
                        .or_insert_with(|| Value::Object(Default::default()));
                    apply_diff(state, &diff);
                }
                realtime.send_diff_local(&key, &diff);
            }
            Event::PresenceState {
                private,
                topic,
                state,
            } => {
                let key = TopicKey { private, topic };
                let previous = self
                    .remote
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key.clone())
                    .or_default()
                    .insert(origin, state.clone());
                let diff = serde_json::json!({
                    "joins": state,
                    "leaves": previous.unwrap_or_else(|| Value::Object(Default::default())),
                });
                realtime.send_diff_local(&key, &diff);
            }
            Event::Heartbeat => {}
            Event::SyncRequest => {
                for (key, state) in realtime.local_presence_states() {
                    self.publish(Event::PresenceState {
                        private: key.private,
                        topic: key.topic,
                        state,
                    });
                }
            }
        }
    }

    /// A host that stopped announcing itself is gone: its presences leave.
    fn forget_silent_hosts(&self, realtime: &Realtime) {
        let gone: Vec<String> = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<String> = seen
                .iter()
                .filter(|(_, at)| at.elapsed() > HOST_TIMEOUT)
                .map(|(origin, _)| origin.clone())
                .collect();
            for origin in &gone {
                seen.remove(origin);
            }
            gone
        };
        if gone.is_empty() {
            return;
        }
        let mut leaves = Vec::new();
        {
            let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
            for (key, hosts) in remote.iter_mut() {
                for origin in &gone {
                    if let Some(state) = hosts.remove(origin) {
                        leaves.push((key.clone(), state));
                    }
                }
            }
            remote.retain(|_, hosts| !hosts.is_empty());
        }
        for (key, state) in leaves {
            let diff = serde_json::json!({ "joins": {}, "leaves": state });
            realtime.send_diff_local(&key, &diff);
        }
    }

    /// Other hosts' presences on a topic, to merge into `presence_state`.
    pub fn remote_state(&self, key: &TopicKey) -> Vec<Value> {
        self.remote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|hosts| hosts.values().cloned().collect())
            .unwrap_or_default()
    }

    async fn read_changes(
        &self,
        last: &mut String,
        deliver: &mpsc::Sender<Captured>,
    ) -> anyhow::Result<()> {
        use redis::streams::{StreamReadOptions, StreamReadReply};
        let mut connection = self.client.get_multiplexed_async_connection().await?;
        loop {
            let options = StreamReadOptions::default().block(2_000).count(512);
            let reply: Option<StreamReadReply> = connection
                .xread_options(&[&self.changes_key], &[last.as_str()], &options)
                .await?;
            let Some(reply) = reply else { continue };
            for key in reply.keys {
                for entry in key.ids {
                    *last = entry.id.clone();
                    let Some(redis::Value::BulkString(data)) = entry.map.get("d") else {
                        continue;
                    };
                    match serde_json::from_slice::<Captured>(data) {
                        Ok(captured) => {
                            if deliver.send(captured).await.is_err() {
                                return Ok(());
                            }
                        }
                        Err(err) => {
                            tracing::warn!(%err, "realtime: unreadable change stream entry")
                        }
                    }
                }
            }
        }
    }
}

/// A user broadcast's payload for the bus: JSON text as it is, raw bytes
/// in base64.
pub fn encode_payload(user: &UserBroadcast) -> String {
    if user.json {
        String::from_utf8_lossy(&user.payload).into_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(&user.payload)
    }
}

/// Applies a presence diff to a state (`{key: {metas: [...]}}`): leaves
/// remove metas by `phx_ref`, joins add theirs.
fn apply_diff(state: &mut Value, diff: &Value) {
    let Some(map) = state.as_object_mut() else {
        return;
    };
    if let Some(leaves) = diff.get("leaves").and_then(Value::as_object) {
        for (key, entry) in leaves {
            let refs: Vec<&Value> = entry
                .get("metas")
                .and_then(Value::as_array)
                .map(|m| m.iter().filter_map(|meta| meta.get("phx_ref")).collect())
                .unwrap_or_default();
            if let Some(metas) = map
                .get_mut(key)
                .and_then(|e| e.get_mut("metas"))
                .and_then(Value::as_array_mut)
            {
                metas.retain(|meta| !meta.get("phx_ref").is_some_and(|r| refs.contains(&r)));
                if metas.is_empty() {
                    map.remove(key);
                }
            }
        }
    }
    if let Some(joins) = diff.get("joins").and_then(Value::as_object) {
        for (key, entry) in joins {
            let new: Vec<Value> = entry
                .get("metas")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let slot = map
                .entry(key.clone())
                .or_insert_with(|| serde_json::json!({ "metas": [] }));
            if let Some(metas) = slot.get_mut("metas").and_then(Value::as_array_mut) {
                metas.extend(new);
            }
        }
    }
}

/// The capturing host's side: each transaction appended to the stream.
pub struct RedisSink(pub Arc<RedisBus>);

#[async_trait::async_trait]
impl Sink for RedisSink {
    async fn publish(&self, captured: Captured) -> anyhow::Result<()> {
        let data = serde_json::to_vec(&captured)?;
        let mut manager = self.0.manager.clone();
        redis::cmd("XADD")
            .arg(&self.0.changes_key)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_LENGTH)
            .arg("*")
            .arg("d")
            .arg(data)
            .query_async::<()>(&mut manager)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_apply_to_a_copied_state() {
        let mut state = json!({});
        apply_diff(
            &mut state,
            &json!({"joins": {"a": {"metas": [{"phx_ref": "1", "s": 1}]}}, "leaves": {}}),
        );
        apply_diff(
            &mut state,
            &json!({"joins": {"a": {"metas": [{"phx_ref": "2", "s": 2}]}}, "leaves": {"a": {"metas": [{"phx_ref": "1"}]}}}),
        );
        assert_eq!(state, json!({"a": {"metas": [{"phx_ref": "2", "s": 2}]}}));
        apply_diff(
            &mut state,
            &json!({"joins": {}, "leaves": {"a": {"metas": [{"phx_ref": "2"}]}}}),
        );
        assert_eq!(state, json!({}));
    }
}
