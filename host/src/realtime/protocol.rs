//! Phoenix channel frames as realtime-js speaks them.
//!
//! - `vsn=1.0.0`: JSON objects `{topic, event, payload, ref, join_ref}`.
//! - `vsn=2.0.0` (current supabase-js): JSON arrays
//!   `[join_ref, ref, topic, event, payload]`, and binary frames for user
//!   broadcasts: kind 3 from the client (header `3, join_ref_len, ref_len,
//!   topic_len, event_len, meta_len, encoding`), kind 4 to the client
//!   (header `4, topic_len, event_len, meta_len, encoding`). realtime-js
//!   decodes no other binary kind, so everything else goes out as text.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vsn {
    V1,
    V2,
}

impl Vsn {
    /// Phoenix's default when the client names none is 1.0.0.
    pub fn parse(text: Option<&str>) -> Option<Vsn> {
        match text {
            None | Some("1.0.0") => Some(Vsn::V1),
            Some("2.0.0") => Some(Vsn::V2),
            Some(_) => None,
        }
    }
}

/// A frame from the client.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub join_ref: Option<String>,
    pub reference: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
    /// A binary user broadcast (kind 3): the event and raw payload, kept
    /// as bytes so receivers get them unchanged.
    pub user_broadcast: Option<UserBroadcast>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBroadcast {
    pub event: String,
    /// `true`: `payload` is JSON text; `false`: raw bytes.
    pub json: bool,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("the frame is not valid JSON: {0}")]
    Json(String),
    #[error("the frame is not a [join_ref, ref, topic, event, payload] array")]
    Shape,
    #[error("binary frame of kind {0} is not a user broadcast (kind 3)")]
    BinaryKind(u8),
    #[error("binary frame ended early")]
    Truncated,
    #[error("binary frame field is not UTF-8")]
    Utf8,
}

fn opt_ref(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

pub fn decode_text(vsn: Vsn, text: &str) -> Result<Incoming, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    let (join_ref, reference, topic, event, payload) = match (vsn, value) {
        (_, Value::Array(mut items)) if items.len() >= 5 => {
            let payload = items[4].take();
            (
                opt_ref(items.first()),
                opt_ref(items.get(1)),
                items[2].as_str().ok_or(FrameError::Shape)?.to_owned(),
                items[3].as_str().ok_or(FrameError::Shape)?.to_owned(),
                payload,
            )
        }
        (_, Value::Object(mut map)) => (
            opt_ref(map.get("join_ref")),
            opt_ref(map.get("ref")),
            map.get("topic")
                .and_then(Value::as_str)
                .ok_or(FrameError::Shape)?
                .to_owned(),
            map.get("event")
                .and_then(Value::as_str)
                .ok_or(FrameError::Shape)?
                .to_owned(),
            map.remove("payload").unwrap_or(Value::Null),
        ),
        _ => return Err(FrameError::Shape),
    };
    Ok(Incoming {
        join_ref,
        reference,
        topic,
        event,
        payload,
        user_broadcast: None,
    })
}

/// Decodes a kind-3 user broadcast push.
pub fn decode_binary(data: &[u8]) -> Result<Incoming, FrameError> {
    let header = data.get(..7).ok_or(FrameError::Truncated)?;
    if header[0] != 3 {
        return Err(FrameError::BinaryKind(header[0]));
    }
    let lens = [header[1], header[2], header[3], header[4], header[5]].map(usize::from);
    let json = header[6] == 1;
    let mut at = 7;
    let mut take = |len: usize| -> Result<&[u8], FrameError> {
        let part = data.get(at..at + len).ok_or(FrameError::Truncated)?;
        at += len;
        Ok(part)
    };
    let text = |bytes: &[u8]| -> Result<String, FrameError> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| FrameError::Utf8)
    };
    let join_ref = text(take(lens[0])?)?;
    let reference = text(take(lens[1])?)?;
    let topic = text(take(lens[2])?)?;
    let event = text(take(lens[3])?)?;
    let _metadata = take(lens[4])?;
    let payload = Bytes::copy_from_slice(&data[at..]);
    let non_empty = |s: String| if s.is_empty() { None } else { Some(s) };
    Ok(Incoming {
        join_ref: non_empty(join_ref),
        reference: non_empty(reference),
        topic,
        event: "broadcast".to_owned(),
        payload: json!({ "type": "broadcast", "event": event }),
        user_broadcast: Some(UserBroadcast {
            event,
            json,
            payload,
        }),
    })
}

/// An outgoing frame, serialised for one protocol version.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Text(axum::extract::ws::Utf8Bytes),
    Binary(Bytes),
}

pub fn encode(
    vsn: Vsn,
    join_ref: Option<&str>,
    reference: Option<&str>,
    topic: &str,
    event: &str,
    payload: &Value,
) -> Outgoing {
    let text = match vsn {
        Vsn::V2 => json!([join_ref, reference, topic, event, payload]).to_string(),
        // The V1 serializer sends no join_ref.
        Vsn::V1 => json!({
            "topic": topic,
            "event": event,
            "payload": payload,
            "ref": reference,
        })
        .to_string(),
    };
    Outgoing::Text(text.into())
}

/// A user broadcast for a receiver: kind 4 for V2 (the bytes pass through
/// unchanged), a text `broadcast` frame for V1 (which has no binary form;
/// a raw-bytes payload cannot be carried and is sent as null).
pub fn encode_user_broadcast(
    vsn: Vsn,
    topic: &str,
    broadcast: &UserBroadcast,
    meta: Option<&Value>,
) -> Outgoing {
    match vsn {
        Vsn::V2 if topic.len() <= 255 && broadcast.event.len() <= 255 => {
            let meta = meta.map(Value::to_string).unwrap_or_default();
            let meta = if meta.len() <= 255 {
                meta
            } else {
                String::new()
            };
            let mut buf = BytesMut::with_capacity(
                5 + topic.len() + broadcast.event.len() + meta.len() + broadcast.payload.len(),
            );
            buf.put_u8(4);
            buf.put_u8(topic.len() as u8);
            buf.put_u8(broadcast.event.len() as u8);
            buf.put_u8(meta.len() as u8);
            buf.put_u8(u8::from(broadcast.json));
            buf.put_slice(topic.as_bytes());
            buf.put_slice(broadcast.event.as_bytes());
            buf.put_slice(meta.as_bytes());
            buf.put_slice(&broadcast.payload);
            Outgoing::Binary(buf.freeze())
        }
        _ => {
            let payload = if broadcast.json {
                serde_json::from_slice(&broadcast.payload).unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            let mut body = json!({
                "type": "broadcast",
                "event": broadcast.event,
                "payload": payload,
            });
            if let (Some(meta), Some(map)) = (meta, body.as_object_mut()) {
                map.insert("meta".to_owned(), meta.clone());
            }
            encode(vsn, None, None, topic, "broadcast", &body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_text_forms() {
        let v2 = decode_text(
            Vsn::V2,
            r#"["6","7","realtime:a","phx_join",{"config":{}}]"#,
        )
        .expect("v2");
        assert_eq!(v2.join_ref.as_deref(), Some("6"));
        assert_eq!(v2.reference.as_deref(), Some("7"));
        assert_eq!(v2.topic, "realtime:a");
        let v1 = decode_text(
            Vsn::V1,
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"3","join_ref":null}"#,
        )
        .expect("v1");
        assert_eq!(v1.event, "heartbeat");
        assert_eq!(v1.join_ref, None);
        assert!(matches!(
            decode_text(Vsn::V2, "[1,2]"),
            Err(FrameError::Shape)
        ));
        assert!(matches!(
            decode_text(Vsn::V2, "{"),
            Err(FrameError::Json(_))
        ));
    }

    #[test]
    fn a_kind_3_push_becomes_a_kind_4_frame() {
        // As realtime-js 2.109 sends it: join_ref "6", ref "7".
        let mut frame = vec![3u8, 1, 1, 14, 2, 0, 1];
        frame.extend_from_slice(b"67realtime:room1ev{\"a\":1}");
        let incoming = decode_binary(&frame).expect("kind 3");
        assert_eq!(incoming.topic, "realtime:room1");
        assert_eq!(incoming.reference.as_deref(), Some("7"));
        let broadcast = incoming.user_broadcast.expect("broadcast");
        assert_eq!(broadcast.event, "ev");
        assert_eq!(&broadcast.payload[..], b"{\"a\":1}");
        let Outgoing::Binary(out) =
            encode_user_broadcast(Vsn::V2, "realtime:room1", &broadcast, None)
        else {
            panic!("V2 receivers get binary");
        };
        let mut expected = vec![4u8, 14, 2, 0, 1];
        expected.extend_from_slice(b"realtime:room1ev{\"a\":1}");
        assert_eq!(&out[..], &expected[..]);
        assert_eq!(
            decode_binary(&frame[..5]).err(),
            Some(FrameError::Truncated)
        );
        assert_eq!(
            decode_binary(&[9, 0, 0, 0, 0, 0, 0]).err(),
            Some(FrameError::BinaryKind(9))
        );
    }
}
