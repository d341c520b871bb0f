//! `/api/v1/auth/sessions`: users' sign-in sessions for admins (GoTrue has
//! no admin API for them): list, newest first, for everyone or one user;
//! end one, or all of a user's ("sign out everywhere"). Ending a session
//! deletes it and its refresh tokens (the foreign key cascades), as
//! GoTrue's own logout does: it cannot be refreshed again, and an access
//! token already issued lives until it expires (`jwt_exp`, an hour by
//! default).

use super::error::ApiError;
use super::principal::{require_admin, Caller};
use super::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

fn database(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database",
        format!("auth sessions: {err}"),
    )
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

#[derive(Deserialize)]
pub struct SessionsQuery {
    user_id: Option<String>,
    limit: Option<i64>,
    /// The previous page's `next_before`: `<created_at>~<id>`.
    before: Option<String>,
}

/// A page's end: the last session's creation time and id.
fn cursor(text: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || {
        invalid(format!(
            "before {text:?}: use the next_before of the previous page"
        ))
    };
    let (time, id) = text.split_once('~').ok_or_else(bad)?;
    let time = DateTime::parse_from_rfc3339(time).map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((time.with_timezone(&Utc), id))
}

fn iso(time: Option<DateTime<Utc>>) -> Value {
    time.map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(SecondsFormat::Micros, true))
    })
}

/// `GET /api/v1/auth/sessions[?user_id=][&limit=][&before=]`.
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SessionsQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(format!("limit must be from 1 to {MAX_LIMIT}")));
    }
    let user = query
        .user_id
        .as_deref()
        .map(|id| Uuid::parse_str(id).map_err(|_| invalid(format!("user_id {id:?} is not a UUID"))))
        .transpose()?;
    let before = query.before.as_deref().map(cursor).transpose()?;
    let (before_at, before_id) = (before.map(|b| b.0), before.map(|b| b.1));
    let client = app.db.owner().get().await.map_err(database)?;
    // `created_at` may be null in rows other tools wrote: they sort last,
    // as the oldest.
    let rows = client
        .query(
            "select s.id, s.user_id, u.email, s.created_at, s.updated_at, \
                    s.refreshed_at at time zone 'UTC', s.not_after, s.user_agent, \
                    host(s.ip), s.aal \
             from auth.sessions s join auth.users u on u.id = s.user_id \
             where ($1::uuid is null or s.user_id = $1) \
               and ($2::timestamptz is null \
                    or coalesce(s.created_at, '-infinity') < $2 \
                    or (coalesce(s.created_at, '-infinity') = $2 and s.id < $3)) \
             order by coalesce(s.created_at, '-infinity') desc, s.id desc limit $4",
            &[&user, &before_at, &before_id, &limit],
        )
        .await
        .map_err(database)?;
    let sessions: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, Uuid>(0),
                "user_id": r.get::<_, Uuid>(1),
                "email": r.get::<_, Option<String>>(2),
                "created_at": iso(r.get(3)),
                "updated_at": iso(r.get(4)),
                "refreshed_at": iso(r.get(5)),
                "not_after": iso(r.get(6)),
                "user_agent": r.get::<_, Option<String>>(7),
                "ip": r.get::<_, Option<String>>(8),
                "aal": r.get::<_, Option<String>>(9),
            })
        })
        .collect();
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|r| {
            let at: DateTime<Utc> = r
                .get::<_, Option<DateTime<Utc>>>(3)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            format!(
                "{}~{}",
                at.to_rfc3339_opts(SecondsFormat::Micros, true),
                r.get::<_, Uuid>(0)
            )
        });
    Ok(Json(
        json!({ "sessions": sessions, "next_before": next_before }),
    ))
}

fn log_ended(caller: &Caller, what: &str, count: u64) {
    if let Caller::Admin(admin) = caller {
        tracing::info!(admin = %admin.email, what, count, "user sessions ended");
    }
}

/// `DELETE /api/v1/auth/sessions/{id}`: 204, or 404.
pub async fn end(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = require_admin(&headers, &app).await?;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no session {id}"),
        )
    };
    let uuid = Uuid::parse_str(&id).map_err(|_| missing())?;
    let client = app.db.owner().get().await.map_err(database)?;
    let removed = client
        .execute("delete from auth.sessions where id = $1", &[&uuid])
        .await
        .map_err(database)?;
    if removed == 0 {
        return Err(missing());
    }
    log_ended(&caller, "one", removed);
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/auth/users/{id}/sessions`: `{ended}`, how many.
pub async fn end_all(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = require_admin(&headers, &app).await?;
    let missing = || ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no user {id}"));
    let uuid = Uuid::parse_str(&id).map_err(|_| missing())?;
    let client = app.db.owner().get().await.map_err(database)?;
    let user = client
        .query_opt("select 1 from auth.users where id = $1", &[&uuid])
        .await
        .map_err(database)?;
    if user.is_none() {
        return Err(missing());
    }
    let ended = client
        .execute("delete from auth.sessions where user_id = $1", &[&uuid])
        .await
        .map_err(database)?;
    log_ended(&caller, "all of a user's", ended);
    Ok(Json(json!({ "ended": ended })))
}
