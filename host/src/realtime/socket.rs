//! One WebSocket connection: its channels, joins, heartbeats, broadcasts,
//! presence and tokens, as Supabase Realtime answers realtime-js.
//!
//! Frames to the client go through the connection's bounded outbox, so
//! replies and fanned-out frames keep their order, and a client that reads
//! too slowly is closed instead of growing the host's memory.

use super::capture::Kind;
use super::filter::Filter;
use super::protocol::{self, FrameError, Incoming, Outgoing, Vsn};
use super::{Binding, Format, Member, Outbox, Realtime, TopicKey};
use crate::auth::{Principal, TokenError};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Phoenix closes a socket that sent nothing (not even a heartbeat, every
/// 25 s from realtime-js) for this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a join with database changes waits for the replication slot
/// to exist (the first start of a database creates it).
const SLOT_WAIT: Duration = Duration::from_secs(15);

struct Channel {
    key: TopicKey,
    join_ref: Arc<str>,
    /// The name without `realtime:`.
    name: String,
    ack: bool,
    presence_key: String,
    principal: Arc<RwLock<Arc<Principal>>>,
    token: String,
    expires_at: Option<u64>,
    bindings: bool,
    /// Whether RLS lets this channel's principal send (private channels;
    /// asked on the first send).
    can_write: Option<bool>,
}

/// Which clients' protocol a socket speaks.
#[derive(Clone)]
pub enum Dialect {
    /// Supabase Realtime's (`/realtime/v1`): `realtime:` topics,
    /// `postgres_changes`, broadcast and presence.
    Supabase,
    /// SelfDB's (`/realtime/socket`): `table:<name>` topics of a table in
    /// one of `schemas`, joined with an empty payload as the connection's
    /// user, and changes only (`super::selfdb`).
    SelfDb { schemas: Arc<[String]> },
}

struct Connection {
    realtime: Arc<Realtime>,
    dialect: Dialect,
    id: u64,
    vsn: Vsn,
    outbox: Outbox,
    /// The connection's own key (the `apikey` it connected with): the token
    /// of a join that brings none.
    apikey: String,
    channels: HashMap<String, Channel>,
    joins: (Instant, u32),
}

/// Serves one upgraded socket until either side closes it.
pub async fn serve_socket(
    realtime: Arc<Realtime>,
    socket: WebSocket,
    vsn: Vsn,
    apikey: String,
    dialect: Dialect,
) {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(realtime.limits.send_queue);
    let closed = CancellationToken::new();
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outbox = Outbox {
        tx,
        closed: closed.clone(),
        slow: slow.clone(),
    };
    let (mut sink, mut stream) = socket.split();
    let writer_closed = closed.clone();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = writer_closed.cancelled() => {
                    // Overflow or the end: say which, without waiting for
                    // a queue a slow reader could not drain.
                    let overflowed = slow.load(Ordering::Acquire);
                    // A connection ending normally sends what it queued
                    // (a last error reply, say) before the close.
                    if !overflowed {
                        while let Ok(frame) = rx.try_recv() {
                            if sink.send(to_message(frame)).await.is_err() {
                                break;
                            }
                        }
                    }
                    let close = if overflowed {
                        CloseFrame {
                            code: 1008,
                            reason: "send queue full: the client reads too slowly".into(),
                        }
                    } else {
                        CloseFrame {
                            code: 1000,
                            reason: "".into(),
                        }
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    break;
                }
                frame = rx.recv() => {
                    let Some(frame) = frame else { break };
                    if sink.send(to_message(frame)).await.is_err() {
                        writer_closed.cancel();
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });

    let id = realtime.next_conn.fetch_add(1, Ordering::Relaxed);
    let mut conn = Connection {
        realtime: realtime.clone(),
        dialect,
        id,
        vsn,
        outbox,
        apikey,
        channels: HashMap::new(),
        joins: (Instant::now(), 0),
    };
    loop {
        let expiry = conn.next_expiry();
        tokio::select! {
            _ = closed.cancelled() => break,
            _ = sleep_until_epoch(expiry) => {
                if conn.expire_tokens().is_break() {
                    break;
                }
            }
            next = tokio::time::timeout(IDLE_TIMEOUT, stream.next()) => {
                let message = match next {
                    Err(_) => break,
                    Ok(None) | Ok(Some(Err(_))) => break,
                    Ok(Some(Ok(message))) => message,
                };
                let incoming = match message {
                    Message::Text(text) => protocol::decode_text(vsn, text.as_str()),
                    Message::Binary(data) => protocol::decode_binary(&data),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                match incoming {
                    Ok(incoming) => {
                        if conn.handle(incoming).await.is_break() {
                            break;
                        }
                    }
                    Err(err) => conn.malformed(err),
                }
            }
        }
    }
    conn.leave_all();
    drop(conn);
    closed.cancel();
    // A peer that stopped reading could hold the writer in a send forever.
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(5), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    realtime.connections.fetch_sub(1, Ordering::Relaxed);
}

fn to_message(frame: Outgoing) -> Message {
    match frame {
        Outgoing::Text(text) => Message::Text(text),
        Outgoing::Binary(bytes) => Message::Binary(bytes),
    }
}

async fn sleep_until_epoch(at: Option<u64>) {
    match at {
        None => std::future::pending::<()>().await,
        Some(at) => {
            let now = now_epoch();
            let wait = at.saturating_sub(now);
            tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(50)).await;
        }
    }
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn token_reason(err: &TokenError, token: &str) -> String {
    match err {
        TokenError::Expired => match expired_for(token) {
            Some(seconds) => format!("InvalidJWTToken: Token has expired {seconds} seconds ago"),
            None => "InvalidJWTToken: Token has expired".to_owned(),
        },
        TokenError::Invalid(_) => {
            "JwtSignatureError: The token provided is not a valid JWT or its signature does not verify"
                .to_owned()
        }
        TokenError::UnknownRole => "InvalidJWTToken: Fields `role` and `exp` are required in JWT".to_owned(),
        TokenError::Audience => "InvalidJWTToken: the token's audience is not accepted".to_owned(),
    }
}

/// Seconds since an (already verified-as-expired) token's `exp`, read
/// without verification only to word the message.
fn expired_for(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    Some(now_epoch().saturating_sub(exp))
}

fn flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// A binding's id: a stable hash of what it asks for, so identical
/// bindings share it (and a frame serialised once serves them all).
fn binding_id(params: &Value) -> u32 {
    super::stable_hash(&params.to_string()) & 0x7fff_ffff
}

use std::ops::ControlFlow;

impl Connection {
    fn push(
        &self,
        join_ref: Option<&str>,
        reference: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) {
        self.outbox.send(protocol::encode(
            self.vsn, join_ref, reference, topic, event, &payload,
        ));
    }

    fn reply(&self, incoming: &Incoming, status: &str, response: Value) {
        self.push(
            incoming.join_ref.as_deref(),
            incoming.reference.as_deref(),
            &incoming.topic,
            "phx_reply",
            json!({ "status": status, "response": response }),
        );
    }

    fn join_error(&self, incoming: &Incoming, reason: String) {
        self.reply(incoming, "error", json!({ "reason": reason }));
    }

    fn malformed(&self, err: FrameError) {
        // No topic to answer on: the error goes to the socket's own topic.
        self.push(
            None,
            None,
            "phoenix",
            "phx_reply",
            json!({ "status": "error", "response": { "reason": format!("malformed frame: {err}") } }),
        );
    }

    async fn handle(&mut self, incoming: Incoming) -> ControlFlow<()> {
        let (topic, event) = (incoming.topic.clone(), incoming.event.clone());
        match (topic.as_str(), event.as_str()) {
            ("phoenix", "heartbeat") => {
                self.reply(&incoming, "ok", json!({}));
                ControlFlow::Continue(())
            }
            (_, "phx_join") if matches!(self.dialect, Dialect::SelfDb { .. }) => {
                self.join_selfdb(incoming).await
            }
            (_, "phx_join") => self.join(incoming).await,
            (_, "phx_leave") => {
                self.reply(&incoming, "ok", json!({}));
                if let Some(channel) = self.channels.remove(&incoming.topic) {
                    self.close_channel(&channel);
                    self.push(
                        Some(&channel.join_ref),
                        Some(&channel.join_ref),
                        &incoming.topic,
                        "phx_close",
                        json!({}),
                    );
                }
                ControlFlow::Continue(())
            }
            // SelfDB's clients have changes only.
            _ if matches!(self.dialect, Dialect::SelfDb { .. }) => {
                self.reply(&incoming, "error", json!({ "reason": "unmatched topic" }));
                ControlFlow::Continue(())
            }
            (_, "access_token") => {
                self.access_token(&incoming);
                ControlFlow::Continue(())
            }
            (topic, "broadcast") if self.channels.contains_key(topic) => {
                self.broadcast(incoming).await;
                ControlFlow::Continue(())
            }
            (topic, "presence") if self.channels.contains_key(topic) => {
                self.presence(incoming);
                ControlFlow::Continue(())
            }
            _ => {
                self.reply(&incoming, "error", json!({ "reason": "unmatched topic" }));
                ControlFlow::Continue(())
            }
        }
    }

    fn verify(&self, token: &str) -> Result<Arc<Principal>, String> {
        self.realtime
            .keys
            .verify(token)
            .map_err(|err| token_reason(&err, token))
    }

    async fn join(&mut self, incoming: Incoming) -> ControlFlow<()> {
        let topic = incoming.topic.clone();
        let Some(name) = topic.strip_prefix("realtime:") else {
            self.reply(&incoming, "error", json!({ "reason": "unmatched topic" }));
            return ControlFlow::Continue(());
        };
        if name.is_empty() {
            self.join_error(
                &incoming,
                "TopicNameRequired: You must provide a topic name".into(),
            );
            return ControlFlow::Continue(());
        }
        let name = name.to_owned();
        if !self.join_allowed() {
            self.join_error(
                &incoming,
                "ClientJoinRateLimitReached: Too many joins per second".into(),
            );
            return ControlFlow::Break(());
        }
        // Joining a joined topic again replaces the old join.
        if let Some(old) = self.channels.remove(&topic) {
            self.close_channel(&old);
            self.push(
                Some(&old.join_ref),
                Some(&old.join_ref),
                &topic,
                "phx_close",
                json!({}),
            );
        }
        if self.channels.len() >= self.realtime.limits.channels_per_connection {
            self.join_error(
                &incoming,
                "ChannelRateLimitReached: Too many channels".into(),
            );
            return ControlFlow::Continue(());
        }

        let payload = &incoming.payload;
        let token = match payload.get("access_token").and_then(Value::as_str) {
            Some(t) if !t.starts_with("sb_") => t.to_owned(),
            _ => self.apikey.clone(),
        };
        let principal = match self.verify(&token) {
            Ok(p) => p,
            Err(reason) => {
                self.join_error(&incoming, reason);
                return ControlFlow::Continue(());
            }
        };
        let config = payload.get("config").cloned().unwrap_or(Value::Null);
        let private = flag(config.get("private"));
        if private {
            match super::authorize::can_read(&self.realtime, &principal, &name).await {
                Ok(true) => {}
                Ok(false) => {
                    self.join_error(
                        &incoming,
                        format!(
                            "Unauthorized: You do not have permissions to read from this Channel topic: {name}"
                        ),
                    );
                    return ControlFlow::Continue(());
                }
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "realtime: private channel check failed");
                    self.join_error(
                        &incoming,
                        "RlsPolicyError: the read policy for this Channel topic failed".into(),
                    );
                    return ControlFlow::Continue(());
                }
            }
        }
        let broadcast = config.get("broadcast");
        let ack = flag(broadcast.and_then(|b| b.get("ack")));
        let receive_own = flag(broadcast.and_then(|b| b.get("self")));
        let presence = config.get("presence");
        let presence_enabled = flag(presence.and_then(|p| p.get("enabled")));
        let presence_key = match presence.and_then(|p| p.get("key")).and_then(Value::as_str) {
            Some(key) if !key.is_empty() => key.to_owned(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let join_ref: Arc<str> = Arc::from(
            incoming
                .join_ref
                .clone()
                .or_else(|| incoming.reference.clone())
                .unwrap_or_default(),
        );
        let principal = Arc::new(RwLock::new(principal));
        let expires_at = expiry_of(&principal);

        // postgres_changes: each binding echoed with its id; registered
        // before the reply, so a change committed after SUBSCRIBED reaches
        // the client.
        let mut echoed = Vec::new();
        let mut bindings = Vec::new();
        let mut problems = Vec::new();
        if let Some(list) = config.get("postgres_changes").and_then(Value::as_array) {
            for params in list {
                let mut echo = params.clone();
                let id = binding_id(params);
                if let Some(map) = echo.as_object_mut() {
                    map.insert("id".to_owned(), json!(id));
                }
                echoed.push(echo);
                match parse_binding(params) {
                    Ok((schema, table, event, filter)) => {
                        bindings.push((
                            schema,
                            table,
                            Arc::new(Binding {
                                conn: self.id,
                                join_ref: join_ref.clone(),
                                topic: Arc::from(topic.as_str()),
                                outbox: self.outbox.clone(),
                                vsn: self.vsn,
                                id,
                                event,
                                filter,
                                principal: principal.clone(),
                                format: Format::Supabase,
                            }),
                        ));
                    }
                    Err(message) => problems.push(message),
                }
            }
        }
        if !bindings.is_empty() {
            if let Err(message) = self.wait_for_capture().await {
                problems.push(message);
            }
            self.realtime.add_bindings(&bindings);
        }

        let key = TopicKey {
            private,
            topic: topic.clone(),
        };
        self.realtime.join_topic(
            key.clone(),
            Member {
                conn: self.id,
                join_ref: join_ref.clone(),
                outbox: self.outbox.clone(),
                vsn: self.vsn,
                receive_own,
            },
        );
        self.channels.insert(
            topic.clone(),
            Channel {
                key: key.clone(),
                join_ref: join_ref.clone(),
                name: name.clone(),
                ack,
                presence_key,
                principal,
                token,
                expires_at,
                bindings: !bindings.is_empty(),
                can_write: None,
            },
        );
        self.reply(&incoming, "ok", json!({ "postgres_changes": echoed }));
        if presence_enabled {
            if let Some(state) = self.realtime.presence_state(&key) {
                self.push(Some(&join_ref), None, &topic, "presence_state", state);
            }
        }
        if !echoed.is_empty() {
            let status = if problems.is_empty() {
                json!({
                    "extension": "postgres_changes",
                    "status": "ok",
                    "message": "Subscribed to PostgreSQL",
                    "channel": name,
                })
            } else {
                json!({
                    "extension": "postgres_changes",
                    "status": "error",
                    "message": problems.join("; "),
                    "channel": name,
                })
            };
            self.push(Some(&join_ref), None, &topic, "system", status);
        }
        ControlFlow::Continue(())
    }

    /// Counts a join against the connection's joins per second.
    fn join_allowed(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.joins.0) >= Duration::from_secs(1) {
            self.joins = (now, 0);
        }
        self.joins.1 += 1;
        self.joins.1 <= self.realtime.limits.joins_per_second
    }

    /// A SelfDB join: `table:<name>` (or `table:<schema>.<name>`), every
    /// change of that table the connection's user may see, as SelfDB's
    /// frames. A table made through SelfDB's `/tables` that is private to
    /// another user is refused here, so not even its deletes' keys reach
    /// anyone else; row level security decides the rest, row by row.
    async fn join_selfdb(&mut self, incoming: Incoming) -> ControlFlow<()> {
        let Dialect::SelfDb { schemas } = self.dialect.clone() else {
            return ControlFlow::Continue(());
        };
        let topic = incoming.topic.clone();
        if !self.join_allowed() {
            self.join_error(&incoming, "Too many joins per second".into());
            return ControlFlow::Break(());
        }
        if let Some(old) = self.channels.remove(&topic) {
            self.close_channel(&old);
        }
        if self.channels.len() >= self.realtime.limits.channels_per_connection {
            self.join_error(&incoming, "Too many channels".into());
            return ControlFlow::Continue(());
        }
        let principal = match self.verify(&self.apikey) {
            Ok(p) => p,
            Err(reason) => {
                self.join_error(&incoming, reason);
                return ControlFlow::Continue(());
            }
        };
        let (schema, table) =
            match super::selfdb::resolve(&self.realtime, &schemas, &principal, &topic).await {
                Ok(found) => found,
                Err(reason) => {
                    self.join_error(&incoming, reason);
                    return ControlFlow::Continue(());
                }
            };
        if let Err(reason) = self.wait_for_capture().await {
            self.join_error(&incoming, reason);
            return ControlFlow::Continue(());
        }
        // SelfDB's clients number refs per channel (every first join is
        // "1"), and a leave removes its channel's bindings by join ref: the
        // topic makes it the channel's own.
        let join_ref: Arc<str> = Arc::from(format!(
            "{topic}#{}",
            incoming
                .join_ref
                .as_deref()
                .or(incoming.reference.as_deref())
                .unwrap_or_default()
        ));
        let principal = Arc::new(RwLock::new(principal));
        let expires_at = expiry_of(&principal);
        self.realtime.add_bindings(&[(
            schema,
            table,
            Arc::new(Binding {
                conn: self.id,
                join_ref: join_ref.clone(),
                topic: Arc::from(topic.as_str()),
                outbox: self.outbox.clone(),
                vsn: self.vsn,
                id: 0,
                event: None,
                filter: None,
                principal: principal.clone(),
                format: Format::SelfDb,
            }),
        )]);
        // Not a topic member: SelfDB's sockets get no broadcasts.
        let key = TopicKey {
            private: true,
            topic: format!("selfdb:{topic}"),
        };
        self.channels.insert(
            topic.clone(),
            Channel {
                key,
                join_ref,
                name: topic.clone(),
                ack: false,
                presence_key: String::new(),
                principal,
                token: self.apikey.clone(),
                expires_at,
                bindings: true,
                can_write: None,
            },
        );
        self.reply(&incoming, "ok", json!({}));
        ControlFlow::Continue(())
    }

    /// Waits (briefly) until the database's replication slot exists, so a
    /// change committed after the join's reply is captured.
    async fn wait_for_capture(&self) -> Result<(), String> {
        let status = &self.realtime.status;
        let deadline = Instant::now() + SLOT_WAIT;
        loop {
            if let Some(reason) = status.unavailable() {
                return Err(reason);
            }
            if status.slot_ready.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.realtime.slot_exists().await {
                status.slot_ready.store(true, Ordering::Release);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(
                    "Realtime was unable to start capturing database changes in time".into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn close_channel(&self, channel: &Channel) {
        if channel.bindings {
            self.realtime.remove_bindings(self.id, &channel.join_ref);
        }
        self.realtime
            .leave_topic(&channel.key, self.id, &channel.join_ref);
    }

    fn leave_all(&mut self) {
        for (_, channel) in std::mem::take(&mut self.channels) {
            self.close_channel(&channel);
        }
    }

    /// Closes a channel from the server's side with a `system` error, as
    /// Supabase's `shutdown_response` does (the client does not rejoin).
    fn shut_down(&mut self, topic: &str, message: String) {
        if let Some(channel) = self.channels.remove(topic) {
            self.close_channel(&channel);
            self.push(
                Some(&channel.join_ref),
                None,
                topic,
                "system",
                json!({
                    "extension": "system",
                    "status": "error",
                    "message": message,
                    "channel": channel.name,
                }),
            );
            self.push(
                Some(&channel.join_ref),
                Some(&channel.join_ref),
                topic,
                "phx_close",
                json!({}),
            );
        }
    }

    fn next_expiry(&self) -> Option<u64> {
        self.channels.values().filter_map(|c| c.expires_at).min()
    }

    /// Ends the channels whose token has expired; a SelfDB socket, whose
    /// client cannot refresh a token, ends altogether (its client then
    /// shows it disconnected and connects again with its current token).
    fn expire_tokens(&mut self) -> ControlFlow<()> {
        let now = now_epoch();
        if matches!(self.dialect, Dialect::SelfDb { .. })
            && self.next_expiry().is_some_and(|at| at <= now)
        {
            return ControlFlow::Break(());
        }
        let expired: Vec<(String, u64)> = self
            .channels
            .iter()
            .filter_map(|(topic, c)| {
                c.expires_at
                    .filter(|&at| at <= now)
                    .map(|at| (topic.clone(), at))
            })
            .collect();
        for (topic, at) in expired {
            self.shut_down(
                &topic,
                format!("Token has expired {} seconds ago", now - at),
            );
        }
        ControlFlow::Continue(())
    }

    /// `access_token`: a refreshed token replaces every channel's claims;
    /// no reply, as Supabase sends none.
    fn access_token(&mut self, incoming: &Incoming) {
        let Some(token) = incoming.payload.get("access_token").and_then(Value::as_str) else {
            return;
        };
        if token.starts_with("sb_") {
            return;
        }
        let topics: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.token != token)
            .map(|(t, _)| t.clone())
            .collect();
        if topics.is_empty() {
            return;
        }
        match self.verify(token) {
            Ok(principal) => {
                let expires_at = principal.claims.get("exp").and_then(Value::as_u64);
                for topic in topics {
                    if let Some(channel) = self.channels.get_mut(&topic) {
                        *channel.principal.write().unwrap_or_else(|p| p.into_inner()) =
                            principal.clone();
                        channel.token = token.to_owned();
                        channel.expires_at = expires_at;
                        channel.can_write = None;
                    }
                }
            }
            Err(reason) => {
                let message = reason
                    .split_once(": ")
                    .map(|(_, m)| m.to_owned())
                    .unwrap_or(reason);
                for topic in topics {
                    self.shut_down(&topic, message.clone());
                }
            }
        }
    }

    async fn broadcast(&mut self, incoming: Incoming) {
        let limit = self.realtime.limits.payload_bytes;
        let size = match &incoming.user_broadcast {
            Some(b) => b.payload.len(),
            None => incoming.payload.to_string().len(),
        };
        let Some(channel) = self.channels.get(&incoming.topic) else {
            return;
        };
        let ack = channel.ack;
        if size > limit {
            if ack {
                self.reply(&incoming, "error", json!("payload_size_exceeded"));
            }
            return;
        }
        if channel.key.private {
            let allowed = match channel.can_write {
                Some(known) => known,
                None => {
                    let principal = channel
                        .principal
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    let name = channel.name.clone();
                    let known = super::authorize::can_write(&self.realtime, &principal, &name)
                        .await
                        .unwrap_or_else(|err| {
                            tracing::warn!(error = %format!("{err:#}"), "realtime: private channel write check failed");
                            false
                        });
                    if let Some(channel) = self.channels.get_mut(&incoming.topic) {
                        channel.can_write = Some(known);
                    }
                    known
                }
            };
            if !allowed {
                // As Supabase: dropped, with no reply even under ack.
                return;
            }
        }
        let Some(channel) = self.channels.get(&incoming.topic) else {
            return;
        };
        let from = Some((self.id, &*channel.join_ref));
        let topic = incoming.topic.as_str();
        let private = channel.key.private;
        match &incoming.user_broadcast {
            Some(user) => {
                self.realtime.fan_out_local(&channel.key, from, |vsn| {
                    protocol::encode_user_broadcast(vsn, topic, user, None)
                });
                self.realtime.publish(super::bus::Event::UserBroadcast {
                    private,
                    topic: topic.to_owned(),
                    event: user.event.clone(),
                    json: user.json,
                    payload: super::bus::encode_payload(user),
                });
            }
            None => {
                self.realtime.fan_out_local(&channel.key, from, |vsn| {
                    protocol::encode(vsn, None, None, topic, "broadcast", &incoming.payload)
                });
                self.realtime.publish(super::bus::Event::Broadcast {
                    private,
                    topic: topic.to_owned(),
                    body: incoming.payload.clone(),
                });
            }
        }
        if ack {
            self.reply(&incoming, "ok", json!({}));
        }
    }

    fn presence(&mut self, incoming: Incoming) {
        let Some(channel) = self.channels.get(&incoming.topic) else {
            return;
        };
        let event = incoming
            .payload
            .get("event")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        match event.as_deref() {
            None => {}
            Some("track") => {
                let Some(meta) = incoming.payload.get("payload").and_then(Value::as_object) else {
                    self.reply(
                        &incoming,
                        "error",
                        json!({ "reason": "Presence track payload must be a map" }),
                    );
                    return;
                };
                self.realtime.track(
                    &channel.key,
                    self.id,
                    &channel.join_ref,
                    &channel.presence_key,
                    meta.clone(),
                );
            }
            Some("untrack") => {
                self.realtime
                    .untrack_channel(&channel.key, self.id, &channel.join_ref);
            }
            Some(_) => {
                self.reply(&incoming, "error", json!({}));
                return;
            }
        }
        self.reply(&incoming, "ok", json!({}));
    }
}

fn expiry_of(principal: &Arc<RwLock<Arc<Principal>>>) -> Option<u64> {
    principal
        .read()
        .ok()?
        .claims
        .get("exp")
        .and_then(Value::as_u64)
}

/// `{event, schema, table, filter}` as realtime-js sends a binding: a table
/// alone means schema `public`; a schema alone means all its tables.
fn parse_binding(params: &Value) -> Result<(String, String, Option<Kind>, Option<Filter>), String> {
    let text = |name: &str| {
        params
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let event = match text("event").map(|e| e.to_ascii_uppercase()).as_deref() {
        Some("INSERT") => Some(Kind::Insert),
        Some("UPDATE") => Some(Kind::Update),
        Some("DELETE") => Some(Kind::Delete),
        _ => None,
    };
    let (schema, table) = match (text("schema"), text("table")) {
        (None, None) => {
            return Err(format!(
                "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: {params}"
            ))
        }
        (Some(schema), None) => (schema, "*".to_owned()),
        (None, Some(table)) => ("public".to_owned(), table),
        (Some(schema), Some(table)) => (schema, table),
    };
    let filter = match text("filter") {
        None => None,
        Some(filter) => Some(
            Filter::parse(&filter).map_err(|e| format!("Error parsing `filter` params: {e}"))?,
        ),
    };
    Ok((schema, table, event, filter))
}

impl Realtime {
    /// This host's presences on a topic merged with the other hosts'.
    fn presence_state(&self, key: &TopicKey) -> Option<Value> {
        let topic = self.topic(key)?;
        let mut state = topic
            .presence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state();
        if let (Some(bus), Some(map)) = (&self.bus, state.as_object_mut()) {
            for remote in bus.remote_state(key) {
                let Value::Object(remote) = remote else {
                    continue;
                };
                for (presence_key, entry) in remote {
                    let metas = entry
                        .get("metas")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let slot = map
                        .entry(presence_key)
                        .or_insert_with(|| json!({ "metas": [] }));
                    if let Some(list) = slot.get_mut("metas").and_then(Value::as_array_mut) {
                        list.extend(metas);
                    }
                }
            }
        }
        Some(state)
    }

    /// Every topic's presences tracked on this host (for a host that
    /// asks, with Redis).
    pub(super) fn local_presence_states(&self) -> Vec<(TopicKey, Value)> {
        let topics: Vec<(TopicKey, Arc<super::Topic>)> = self
            .topics
            .read()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        topics
            .into_iter()
            .filter_map(|(key, topic)| {
                let state = topic
                    .presence
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .state();
                let empty = state.as_object().is_none_or(|m| m.is_empty());
                (!empty).then_some((key, state))
            })
            .collect()
    }

    /// Tracks a presence and sends the diffs to every member of the topic,
    /// the tracker included (Phoenix does).
    fn track(
        &self,
        key: &TopicKey,
        conn: u64,
        join_ref: &str,
        presence_key: &str,
        meta: serde_json::Map<String, Value>,
    ) {
        let Some(topic) = self.topic(key) else {
            return;
        };
        let diffs = topic
            .presence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .track(conn, join_ref, presence_key, meta);
        for diff in diffs {
            self.send_diff(key, &diff);
        }
    }

    fn untrack_channel(&self, key: &TopicKey, conn: u64, join_ref: &str) {
        if let Some(topic) = self.topic(key) {
            self.untrack(key, &topic, conn, join_ref);
        }
    }

    pub(super) fn untrack(&self, key: &TopicKey, topic: &super::Topic, conn: u64, join_ref: &str) {
        let diff = topic
            .presence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .untrack(conn, join_ref);
        if let Some(diff) = diff {
            self.send_diff(key, &diff);
        }
    }

    /// A presence change on this host: to local members and other hosts.
    fn send_diff(&self, key: &TopicKey, diff: &Value) {
        self.send_diff_local(key, diff);
        self.publish(super::bus::Event::PresenceDiff {
            private: key.private,
            topic: key.topic.clone(),
            diff: diff.clone(),
        });
    }

    pub(super) fn send_diff_local(&self, key: &TopicKey, diff: &Value) {
        let topic = key.topic.as_str();
        self.fan_out_local(key, None, |vsn| {
            protocol::encode(vsn, None, None, topic, "presence_diff", diff)
        });
    }

    async fn slot_exists(&self) -> bool {
        let Ok(client) = self.db.owner().get().await else {
            return false;
        };
        client
            .query_opt(
                "select 1 from pg_replication_slots where slot_name = $1",
                &[&self.slot],
            )
            .await
            .ok()
            .flatten()
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_default_like_supabase() {
        let (schema, table, event, filter) =
            parse_binding(&json!({"event": "*", "table": "todos"})).expect("binding");
        assert_eq!(
            (schema.as_str(), table.as_str(), event, filter),
            ("public", "todos", None, None)
        );
        let (_, table, event, filter) =
            parse_binding(&json!({"event": "INSERT", "schema": "public", "filter": "id=eq.1"}))
                .expect("binding");
        assert_eq!(table, "*");
        assert_eq!(event, Some(Kind::Insert));
        assert!(filter.is_some());
        assert!(parse_binding(&json!({"event": "*"})).is_err());
        assert!(parse_binding(&json!({"table": "t", "filter": "id=like.x"}))
            .expect_err("bad filter")
            .starts_with("Error parsing `filter` params"));
    }

    #[test]
    fn identical_bindings_share_an_id() {
        let a = json!({"event": "*", "schema": "public", "table": "t"});
        assert_eq!(binding_id(&a), binding_id(&a.clone()));
        assert_ne!(
            binding_id(&a),
            binding_id(&json!({"event": "INSERT", "schema": "public", "table": "t"}))
        );
    }
}
