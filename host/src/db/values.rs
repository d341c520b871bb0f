//! Conversion between SQL values and the typed values components exchange.
//!
//! Parameters are bound in PostgreSQL's *text* format (bytes excepted), so
//! Postgres parses them with the type it inferred for `$n`: a component can
//! pass a numeric, uuid or timestamp as text without the host knowing every
//! type. Results arrive in binary format and are decoded per type here.

use bytes::BytesMut;
use postgres_types::{Format, FromSql, IsNull, Kind, ToSql, Type};
use std::error::Error;

type BoxError = Box<dyn Error + Sync + Send>;

#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Json(String),
    Bytes(Vec<u8>),
}

impl SqlValue {
    /// The value as JSON (bytes become `\x`-prefixed hex, as PostgREST does).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SqlValue::Null => serde_json::Value::Null,
            SqlValue::Bool(b) => (*b).into(),
            SqlValue::Int(i) => (*i).into(),
            SqlValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| f.to_string().into()),
            SqlValue::Text(s) => s.clone().into(),
            SqlValue::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| s.clone().into()),
            SqlValue::Bytes(b) => format!("\\x{}", hex::encode(b)).into(),
        }
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let text = match self {
            SqlValue::Null => return Ok(IsNull::Yes),
            SqlValue::Bytes(b) if *ty == Type::BYTEA => {
                out.extend_from_slice(b);
                return Ok(IsNull::No);
            }
            SqlValue::Bytes(_) => {
                return Err(
                    format!("a bytes value cannot be bound to a {} parameter", ty.name()).into(),
                )
            }
            SqlValue::Bool(b) => if *b { "t" } else { "f" }.to_owned(),
            SqlValue::Int(i) => i.to_string(),
            SqlValue::Float(f) if f.is_nan() => "NaN".to_owned(),
            SqlValue::Float(f) if f.is_infinite() => {
                if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
            }
            SqlValue::Float(f) => f.to_string(),
            SqlValue::Text(s) | SqlValue::Json(s) => s.clone(),
        };
        if text.contains('\0') {
            return Err("text values cannot contain NUL characters".into());
        }
        out.extend_from_slice(text.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        match self {
            SqlValue::Bytes(_) if *ty == Type::BYTEA => Format::Binary,
            _ => Format::Text,
        }
    }

    postgres_types::to_sql_checked!();
}

/// Raw binary column bytes, decoded by [`decode`].
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_ty: &Type) -> Result<Self, BoxError> {
        Ok(Raw(None))
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Reads column `idx` of `row` as a [`SqlValue`].
pub fn column_value(row: &tokio_postgres::Row, idx: usize) -> Result<SqlValue, BoxError> {
    let ty = row.columns()[idx].type_().clone();
    let Raw(raw) = row.try_get::<_, Raw>(idx)?;
    match raw {
        None => Ok(SqlValue::Null),
        Some(raw) => decode(&ty, raw),
    }
}

fn decode(ty: &Type, raw: &[u8]) -> Result<SqlValue, BoxError> {
    Ok(match *ty {
        Type::BOOL => SqlValue::Bool(bool::from_sql(ty, raw)?),
        Type::INT2 => SqlValue::Int(i16::from_sql(ty, raw)?.into()),
        Type::INT4 => SqlValue::Int(i32::from_sql(ty, raw)?.into()),
        Type::INT8 => SqlValue::Int(i64::from_sql(ty, raw)?),
        Type::OID => SqlValue::Int(u32::from_sql(ty, raw)?.into()),
        Type::FLOAT4 => SqlValue::Float(f32::from_sql(ty, raw)?.into()),
        Type::FLOAT8 => SqlValue::Float(f64::from_sql(ty, raw)?),
        Type::NUMERIC => SqlValue::Text(decode_numeric(raw)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            SqlValue::Text(String::from_sql(&Type::TEXT, raw)?)
        }
        Type::JSON | Type::JSONB => {
            SqlValue::Json(serde_json::Value::from_sql(ty, raw)?.to_string())
        }
        Type::BYTEA => SqlValue::Bytes(raw.to_vec()),
        Type::UUID => SqlValue::Text(uuid::Uuid::from_sql(ty, raw)?.to_string()),
        Type::TIMESTAMPTZ => SqlValue::Text(
            chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        ),
        Type::TIMESTAMP => SqlValue::Text(
            chrono::NaiveDateTime::from_sql(ty, raw)?
                .format("%Y-%m-%dT%H:%M:%S%.f")
                .to_string(),
        ),
        Type::DATE => SqlValue::Text(chrono::NaiveDate::from_sql(ty, raw)?.to_string()),
        Type::TIME => SqlValue::Text(chrono::NaiveTime::from_sql(ty, raw)?.to_string()),
        // What `select pg_notify(...)` and other procedures return.
        Type::VOID => SqlValue::Null,
        _ => match ty.kind() {
            // Enum values travel as their label.
            Kind::Enum(_) => SqlValue::Text(String::from_utf8(raw.to_vec())?),
            Kind::Domain(base) => decode(base, raw)?,
            Kind::Array(element) => SqlValue::Json(decode_array(element, raw)?.to_string()),
            _ => {
                return Err(format!(
                    "columns of type {} are not supported yet; cast the column to text in SQL",
                    ty.name()
                )
                .into())
            }
        },
    })
}

fn decode_array(element: &Type, raw: &[u8]) -> Result<serde_json::Value, BoxError> {
    let array = postgres_protocol::types::array_from_sql(raw)?;
    use fallible_iterator::FallibleIterator;
    let mut values = Vec::new();
    let mut items = array.values();
    while let Some(item) = items.next()? {
        values.push(match item {
            None => serde_json::Value::Null,
            Some(bytes) => decode(element, bytes)?.to_json(),
        });
    }
    Ok(serde_json::Value::Array(values))
}

/// PostgreSQL's binary numeric: base-10000 digits with a weight, sign and
/// display scale. Rendered as the exact decimal text Postgres would print.
fn decode_numeric(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i32;
    let sign = word(2)?;
    let dscale = word(3)? as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<_, _>>()?;
    let mut int_part = String::new();
    for pos in 0..=weight.max(0) {
        let d = if weight < 0 {
            0
        } else {
            digits.get(pos as usize).copied().unwrap_or(0)
        };
        if int_part.is_empty() {
            int_part.push_str(&d.to_string());
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    let mut frac = String::new();
    let mut pos = weight + 1;
    while frac.len() < dscale {
        let d = if pos < 0 {
            0
        } else {
            digits.get(pos as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        pos += 1;
    }
    frac.truncate(dscale);
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    out.push_str(&int_part);
    if dscale > 0 {
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}
