//! Decodes the row messages of PostgreSQL's `pgoutput` plugin (protocol
//! version 1): relations, inserts, updates, deletes and truncates.
//!
//! `pgwire-replication` speaks the replication protocol and decodes the
//! transaction frame (begin, commit, logical messages); the rows inside it
//! arrive as the raw bytes this module reads. The format is documented in
//! PostgreSQL's "Logical Replication Message Formats".

use bytes::{Buf, Bytes};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("pgoutput message ended early")]
    Truncated,
    #[error("pgoutput string is not UTF-8")]
    Utf8,
    #[error("unexpected pgoutput tuple tag {0:?}")]
    TupleTag(char),
}

/// A column of a relation, as pgoutput describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    /// Part of the replica identity (the primary key, or every column
    /// under `replica identity full`).
    pub key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub schema: String,
    pub table: String,
    /// `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<Column>,
}

/// One column's value in a tuple, in PostgreSQL's text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    /// A TOASTed value the update did not change: pgoutput does not send it.
    Unchanged,
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Relation(Relation),
    /// A user-defined type's name, sent before a relation that uses it.
    Type {
        oid: u32,
        schema: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<Cell>,
    },
    Update {
        relation: u32,
        /// The old key (`K`) or whole old row (`O`, replica identity full),
        /// sent only when the key changed or under full identity.
        old: Option<Vec<Cell>>,
        new: Vec<Cell>,
    },
    Delete {
        relation: u32,
        old: Vec<Cell>,
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// Begin, commit, origin and the like: handled elsewhere or ignored.
    Other,
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.0.remaining() < n {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.0.get_u8())
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.0.get_u16())
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.0.get_u32())
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or(DecodeError::Truncated)?;
        let text = self.0.split_to(end);
        self.0.advance(1);
        String::from_utf8(text.to_vec()).map_err(|_| DecodeError::Utf8)
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.0.split_to(n))
    }

    fn tuple(&mut self) -> Result<Vec<Cell>, DecodeError> {
        let count = self.u16()? as usize;
        let mut cells = Vec::with_capacity(count);
        for _ in 0..count {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.bytes(len)?;
                    Cell::Text(String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8)?)
                }
                other => return Err(DecodeError::TupleTag(other as char)),
            });
        }
        Ok(cells)
    }
}

/// Decodes one message of the stream.
pub fn decode(data: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader(data);
    match r.u8()? {
        b'R' => {
            let oid = r.u32()?;
            let schema = r.string()?;
            let table = r.string()?;
            let replica_identity = r.u8()?;
            let count = r.u16()? as usize;
            let mut columns = Vec::with_capacity(count);
            for _ in 0..count {
                let flags = r.u8()?;
                let name = r.string()?;
                let type_oid = r.u32()?;
                let _typmod = r.u32()?;
                columns.push(Column {
                    name,
                    type_oid,
                    key: flags & 1 == 1,
                });
            }
            Ok(Message::Relation(Relation {
                oid,
                schema,
                table,
                replica_identity,
                columns,
            }))
        }
        b'Y' => {
            let oid = r.u32()?;
            let schema = r.string()?;
            let name = r.string()?;
            Ok(Message::Type { oid, schema, name })
        }
        b'I' => {
            let relation = r.u32()?;
            let _new_tag = r.u8()?;
            Ok(Message::Insert {
                relation,
                new: r.tuple()?,
            })
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut tag = r.u8()?;
            if tag == b'K' || tag == b'O' {
                old = Some(r.tuple()?);
                tag = r.u8()?;
            }
            if tag != b'N' {
                return Err(DecodeError::TupleTag(tag as char));
            }
            Ok(Message::Update {
                relation,
                old,
                new: r.tuple()?,
            })
        }
        b'D' => {
            let relation = r.u32()?;
            let _old_tag = r.u8()?;
            Ok(Message::Delete {
                relation,
                old: r.tuple()?,
            })
        }
        b'T' => {
            let count = r.u32()? as usize;
            let _options = r.u8()?;
            let mut relations = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                relations.push(r.u32()?);
            }
            Ok(Message::Truncate { relations })
        }
        _ => Ok(Message::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn string(buf: &mut BytesMut, s: &str) {
        buf.put_slice(s.as_bytes());
        buf.put_u8(0);
    }

    #[test]
    fn decodes_a_relation_and_an_update_with_its_old_key() {
        let mut buf = BytesMut::new();
        buf.put_u8(b'R');
        buf.put_u32(16384);
        string(&mut buf, "public");
        string(&mut buf, "todos");
        buf.put_u8(b'd');
        buf.put_u16(2);
        buf.put_u8(1);
        string(&mut buf, "id");
        buf.put_u32(23);
        buf.put_i32(-1);
        buf.put_u8(0);
        string(&mut buf, "title");
        buf.put_u32(25);
        buf.put_i32(-1);
        let relation = decode(buf.freeze()).expect("relation");
        assert_eq!(
            relation,
            Message::Relation(Relation {
                oid: 16384,
                schema: "public".into(),
                table: "todos".into(),
                replica_identity: b'd',
                columns: vec![
                    Column {
                        name: "id".into(),
                        type_oid: 23,
                        key: true
                    },
                    Column {
                        name: "title".into(),
                        type_oid: 25,
                        key: false
                    },
                ],
            })
        );

        let mut buf = BytesMut::new();
        buf.put_u8(b'U');
        buf.put_u32(16384);
        buf.put_u8(b'K');
        buf.put_u16(2);
        buf.put_u8(b't');
        buf.put_u32(1);
        buf.put_slice(b"7");
        buf.put_u8(b'n');
        buf.put_u8(b'N');
        buf.put_u16(2);
        buf.put_u8(b't');
        buf.put_u32(1);
        buf.put_slice(b"8");
        buf.put_u8(b'u');
        assert_eq!(
            decode(buf.freeze()).expect("update"),
            Message::Update {
                relation: 16384,
                old: Some(vec![Cell::Text("7".into()), Cell::Null]),
                new: vec![Cell::Text("8".into()), Cell::Unchanged],
            }
        );
    }

    #[test]
    fn a_cut_message_is_an_error_not_a_panic() {
        let mut buf = BytesMut::new();
        buf.put_u8(b'I');
        buf.put_u32(1);
        buf.put_u8(b'N');
        buf.put_u16(3);
        buf.put_u8(b't');
        buf.put_u32(100);
        buf.put_slice(b"short");
        assert!(matches!(decode(buf.freeze()), Err(DecodeError::Truncated)));
    }
}
