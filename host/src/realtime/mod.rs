//! Realtime: Supabase Realtime's protocol over WebSockets (broadcast,
//! presence, database changes), served by the host itself.
//!
//! - `protocol`: the Phoenix frames realtime-js speaks (both serializers).
//! - `socket`: one connection's channels, joins, heartbeats and tokens.
//! - `registry` (this file): who is joined to what, and the fan-out.
//! - `presence`: tracked presences per topic and their diffs.
//! - `capture` + `pgoutput` + `values`: the database's changes, captured
//!   once per database through logical replication.
//! - `deliver`: which subscriber may see which change (RLS), and the
//!   `postgres_changes` frames.
//! - `filter`: `postgres_changes` filters.
//! - `bus`: several hosts as one through Redis.

mod authorize;
mod bus;
pub mod capture;
mod deliver;
pub mod filter;
pub mod pgoutput;
mod presence;
pub mod protocol;
mod selfdb;
mod socket;
pub mod values;

use crate::auth::{JwtKeys, Principal};
use crate::db::Database;
use capture::{Captured, Kind};
use filter::Filter;
use protocol::{Outgoing, Vsn};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use socket::{serve_socket, Dialect};

/// Caps, with Supabase's defaults where it has them.
#[derive(Debug, Clone)]
pub struct Limits {
    pub channels_per_connection: usize,
    pub connections: usize,
    pub joins_per_second: u32,
    pub payload_bytes: usize,
    /// Frames queued for one connection before it counts as too slow.
    pub send_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            channels_per_connection: 100,
            connections: 50_000,
            joins_per_second: 100,
            payload_bytes: 256 * 1024,
            send_queue: 1024,
        }
    }
}

/// Whether this database's changes can be captured, for joins to report.
#[derive(Default)]
pub struct Status {
    unavailable: Mutex<Option<String>>,
    capturing: AtomicBool,
    slot_ready: AtomicBool,
}

impl Status {
    pub fn set_unavailable(&self, reason: String) {
        if let Ok(mut slot) = self.unavailable.lock() {
            *slot = Some(reason);
        }
    }

    pub fn unavailable(&self) -> Option<String> {
        self.unavailable.lock().ok().and_then(|s| s.clone())
    }

    pub fn set_capturing(&self, capturing: bool) {
        self.capturing.store(capturing, Ordering::Release);
        if capturing {
            self.slot_ready.store(true, Ordering::Release);
        }
    }
}

/// A connection's outbound side: a bounded queue, and the token that
/// closes the connection when the queue overflows.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    closed: CancellationToken,
    /// Set when the queue overflowed, so the close says why.
    slow: Arc<AtomicBool>,
}

impl Outbox {
    /// Queues a frame; a full queue closes the connection (its reader is
    /// too slow) rather than letting memory grow.
    fn send(&self, frame: Outgoing) {
        if self.closed.is_cancelled() {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(frame) {
            tracing::debug!("realtime connection too slow: its send queue is full");
            self.slow.store(true, Ordering::Release);
            self.closed.cancel();
        }
    }
}

/// A channel joined on a connection, as the fan-out sees it.
#[derive(Clone)]
struct Member {
    conn: u64,
    join_ref: Arc<str>,
    outbox: Outbox,
    vsn: Vsn,
    receive_own: bool,
}

/// The same name is two streams: public and private channels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TopicKey {
    private: bool,
    topic: String,
}

#[derive(Default)]
struct Topic {
    members: RwLock<Vec<Member>>,
    presence: Mutex<presence::Presences>,
}

/// (schema, table or `*`).
type TableKey = (String, String);

/// A `postgres_changes` binding of a joined channel.
pub struct Binding {
    conn: u64,
    join_ref: Arc<str>,
    topic: Arc<str>,
    outbox: Outbox,
    vsn: Vsn,
    id: u32,
    event: Option<Kind>,
    filter: Option<Filter>,
    /// The channel's principal, replaced by `access_token` pushes.
    principal: Arc<RwLock<Arc<Principal>>>,
    /// Which client's frames the changes go out as.
    format: Format,
}

/// The frames a binding's changes go out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Supabase's `postgres_changes` with the matched binding ids.
    Supabase,
    /// SelfDB's: the event (`INSERT`, `UPDATE`, `DELETE`) as the frame's
    /// event, and `{event, table, schema, new, old, commit_timestamp}`.
    SelfDb,
}

pub struct Realtime {
    keys: JwtKeys,
    db: Database,
    limits: Limits,
    status: Arc<Status>,
    slot: String,
    topics: RwLock<HashMap<TopicKey, Arc<Topic>>>,
    /// (schema, table or `*`) -> bindings.
    bindings: RwLock<HashMap<TableKey, Vec<Arc<Binding>>>>,
    next_conn: AtomicU64,
    connections: AtomicUsize,
    /// The newest commit delivered: a capture taking over re-sends what
    /// its predecessor may not have confirmed.
    delivered_lsn: AtomicU64,
    /// The other hosts, with `--redis-url`.
    bus: Option<Arc<bus::RedisBus>>,
    /// Per-table visibility functions this host has defined.
    visibility_functions: Mutex<std::collections::HashSet<String>>,
}

impl Realtime {
    /// Starts the capture (on whichever host wins the lock) and the
    /// delivery of what it captures; with Redis, joins the other hosts.
    pub async fn start(
        keys: JwtKeys,
        db: Database,
        limits: Limits,
        redis_url: Option<&str>,
    ) -> anyhow::Result<Arc<Self>> {
        let slot = db
            .setting_or_init("realtime_slot", || {
                format!(
                    "selfdb_realtime_{}",
                    crate::secrets::random_token(8).to_lowercase()
                )
            })
            .await?;
        // Replication slot names allow [a-z0-9_] only.
        let slot = crate::db::plain_name(&slot);
        let bus = match redis_url {
            Some(url) => Some(bus::RedisBus::connect(url, &slot).await?),
            None => None,
        };
        let realtime = Arc::new(Realtime {
            keys,
            db: db.clone(),
            limits,
            status: Arc::new(Status::default()),
            slot: slot.clone(),
            topics: RwLock::default(),
            bindings: RwLock::default(),
            next_conn: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            delivered_lsn: AtomicU64::new(0),
            bus: bus.as_ref().map(|(bus, _)| bus.clone()),
            visibility_functions: Mutex::default(),
        });
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(deliver::run(realtime.clone(), rx));
        let sink: Arc<dyn capture::Sink> = match bus {
            Some((bus, outgoing)) => {
                bus.spawn(Arc::downgrade(&realtime), outgoing, tx);
                Arc::new(bus::RedisSink(bus))
            }
            None => Arc::new(LocalSink(tx)),
        };
        let config = capture::CaptureConfig {
            database: db.owner_target().clone(),
            slot,
        };
        tokio::spawn(capture::run(config, sink, realtime.status.clone()));
        Ok(realtime)
    }

    /// Sends an event to the other hosts (none without Redis).
    fn publish(&self, event: bus::Event) {
        if let Some(bus) = &self.bus {
            bus.publish(event);
        }
    }

    fn topic(&self, key: &TopicKey) -> Option<Arc<Topic>> {
        self.topics.read().ok()?.get(key).cloned()
    }

    fn topic_or_insert(&self, key: TopicKey) -> Arc<Topic> {
        if let Some(topic) = self.topic(&key) {
            return topic;
        }
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        topics.entry(key).or_default().clone()
    }

    fn join_topic(&self, key: TopicKey, member: Member) -> Arc<Topic> {
        let topic = self.topic_or_insert(key);
        topic
            .members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(member);
        topic
    }

    /// Removes a channel from its topic (and its presences, announcing the
    /// leaves); drops the topic when it is empty.
    fn leave_topic(&self, key: &TopicKey, conn: u64, join_ref: &str) {
        let Some(topic) = self.topic(key) else {
            return;
        };
        let empty = {
            let mut members = topic.members.write().unwrap_or_else(|p| p.into_inner());
            members.retain(|m| !(m.conn == conn && &*m.join_ref == join_ref));
            members.is_empty()
        };
        self.untrack(key, &topic, conn, join_ref);
        if empty {
            let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
            if let Some(current) = topics.get(key) {
                let still_empty = current
                    .members
                    .read()
                    .map(|m| m.is_empty())
                    .unwrap_or(false);
                if Arc::ptr_eq(current, &topic) && still_empty {
                    topics.remove(key);
                }
            }
        }
    }

    /// Sends a frame, serialised once per protocol version, to every member
    /// of a topic on this host (but the sender's own channel unless it
    /// asked for its own messages).
    fn fan_out_local(
        &self,
        key: &TopicKey,
        from: Option<(u64, &str)>,
        encode: impl Fn(Vsn) -> Outgoing,
    ) {
        let Some(topic) = self.topic(key) else {
            return;
        };
        let mut v1 = None;
        let mut v2 = None;
        let members = topic.members.read().unwrap_or_else(|p| p.into_inner());
        for member in members.iter() {
            if let Some((conn, join_ref)) = from {
                if member.conn == conn && &*member.join_ref == join_ref && !member.receive_own {
                    continue;
                }
            }
            let frame = match member.vsn {
                Vsn::V1 => v1.get_or_insert_with(|| encode(Vsn::V1)).clone(),
                Vsn::V2 => v2.get_or_insert_with(|| encode(Vsn::V2)).clone(),
            };
            member.outbox.send(frame);
        }
    }

    /// For `/health`: connections, and whether this host captures the
    /// database's changes (or why none can).
    pub fn health(&self) -> serde_json::Value {
        serde_json::json!({
            "connections": self.connections.load(Ordering::Relaxed),
            "capturing": self.status.capturing.load(Ordering::Acquire),
            "changes_unavailable": self.status.unavailable(),
        })
    }

    /// Open connections on this host.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a new connection in, unless the host is at its cap.
    pub fn admit(&self) -> bool {
        let cap = self.limits.connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts out a connection whose upgrade failed.
    pub fn release(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn payload_limit(&self) -> usize {
        self.limits.payload_bytes
    }

    pub async fn can_write(&self, principal: &Principal, topic: &str) -> anyhow::Result<bool> {
        authorize::can_write(self, principal, topic).await
    }

    /// A broadcast from the REST API: a text frame
    /// `{type: "broadcast", event, payload}` to the topic's channels.
    pub fn broadcast_json(
        &self,
        topic: &str,
        private: bool,
        event: &str,
        payload: serde_json::Value,
    ) {
        let topic = format!("realtime:{topic}");
        let body = serde_json::json!({ "type": "broadcast", "event": event, "payload": payload });
        let key = TopicKey {
            private,
            topic: topic.clone(),
        };
        self.fan_out_local(&key, None, |vsn| {
            protocol::encode(vsn, None, None, &topic, "broadcast", &body)
        });
        self.publish(bus::Event::Broadcast {
            private,
            topic,
            body,
        });
    }

    /// A user broadcast from the REST API (`httpSend`): kind 4 to V2
    /// clients, as a broadcast sent over a socket.
    pub fn broadcast_user(
        &self,
        topic: &str,
        private: bool,
        event: String,
        json: bool,
        payload: bytes::Bytes,
    ) {
        let topic = format!("realtime:{topic}");
        let user = protocol::UserBroadcast {
            event,
            json,
            payload,
        };
        let key = TopicKey {
            private,
            topic: topic.clone(),
        };
        self.fan_out_local(&key, None, |vsn| {
            protocol::encode_user_broadcast(vsn, &topic, &user, None)
        });
        self.publish(bus::Event::UserBroadcast {
            private,
            payload: bus::encode_payload(&user),
            topic,
            event: user.event,
            json,
        });
    }

    fn add_bindings(&self, bindings: &[(String, String, Arc<Binding>)]) {
        let mut map = self.bindings.write().unwrap_or_else(|p| p.into_inner());
        for (schema, table, binding) in bindings {
            map.entry((schema.clone(), table.clone()))
                .or_default()
                .push(binding.clone());
        }
    }

    fn remove_bindings(&self, conn: u64, join_ref: &str) {
        let mut map = self.bindings.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, list| {
            list.retain(|b| !(b.conn == conn && &*b.join_ref == join_ref));
            !list.is_empty()
        });
    }
}

/// FNV-1a: a hash that stays the same across hosts and restarts (binding
/// ids, names of per-table functions), which `std`'s hasher does not.
fn stable_hash(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// A single host's bus: what this host captures, it delivers itself.
struct LocalSink(mpsc::Sender<Captured>);

#[async_trait::async_trait]
impl capture::Sink for LocalSink {
    async fn publish(&self, captured: Captured) -> anyhow::Result<()> {
        self.0
            .send(captured)
            .await
            .map_err(|_| anyhow::anyhow!("realtime delivery stopped"))
    }
}
