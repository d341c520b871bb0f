//! `/api/v1/functions`: deploy, list, inspect, roll back, configure and
//! delete functions, set their secrets and read their logs. An admin or
//! the service key only (`principal::require_admin`).
//!
//! A deploy is `PUT /api/v1/functions/NAME` with the upload as the body:
//! a component (`content-type: application/wasm`) or one TypeScript or
//! JavaScript entry file (`application/typescript`, `text/javascript`, ...,
//! named by `?entry=index.ts`). It answers once the new version serves, or
//! with what refused it (a build error's file, line and column, a missing
//! import's name) while the previous version keeps serving.

use super::error::ApiError;
use super::principal::{require_admin, Caller};
use super::AppState;
use crate::events::{Declaration, DeclarationJson, EventsError};
use crate::functions::js::BuildError;
use crate::functions::spin::{SpinFile, SpinUpload};
use crate::functions::store::SettingsPatch;
use crate::functions::{FunctionError, Upload};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Largest upload accepted by the deploy endpoint.
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

impl From<FunctionError> for ApiError {
    fn from(err: FunctionError) -> Self {
        let message = err.to_string();
        match err {
            FunctionError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "function_not_found", message)
            }
            FunctionError::VersionNotFound(..) => {
                ApiError::new(StatusCode::NOT_FOUND, "version_not_found", message)
            }
            FunctionError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "function_exists", message)
            }
            FunctionError::NoPrevious(_) => {
                ApiError::new(StatusCode::CONFLICT, "no_previous_version", message)
            }
            FunctionError::InvalidName(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", message)
            }
            FunctionError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            FunctionError::Component(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_component", message)
            }
            FunctionError::Build(BuildError::Refused(errors)) => {
                ApiError::new(StatusCode::BAD_REQUEST, "build_failed", message)
                    .with_details(json!({ "errors": errors }))
            }
            FunctionError::Build(BuildError::Tool(_)) => {
                tracing::error!(%message, "JavaScript toolchain");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "toolchain_failed",
                    message,
                )
            }
            FunctionError::NoToolchain => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "toolchain_missing",
                message,
            ),
            FunctionError::Secret(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "secret_unreadable",
                message,
            ),
            FunctionError::Setup { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "setup_failed", message)
            }
            FunctionError::Events(err) => err.into(),
            FunctionError::Db(_) | FunctionError::Pool(_) => {
                tracing::error!(%message, "function store");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", message)
            }
        }
    }
}

impl From<EventsError> for ApiError {
    fn from(err: EventsError) -> Self {
        let message = err.to_string();
        match err {
            EventsError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_trigger", message)
            }
            EventsError::NoTable(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "table_not_found", message)
            }
            EventsError::NoDeadLetter(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "dead_letter_not_found", message)
            }
            EventsError::Orphaned(_) => ApiError::new(StatusCode::CONFLICT, "orphaned", message),
            EventsError::Db(_) | EventsError::Pool(_) => {
                tracing::error!(%message, "events");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", message)
            }
        }
    }
}

pub(super) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "invalid_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })
}

pub(super) fn json_body<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body must be {shape}: {e}"),
        )
    })
}

pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let functions: Vec<Value> = app
        .functions
        .list()
        .await?
        .into_iter()
        .map(|f| {
            let mut value = json!(f);
            // `version`: the version requests run on.
            value["version"] = json!(f.active_version);
            value
        })
        .collect();
    Ok(Json(json!({ "functions": functions })))
}

#[derive(Deserialize)]
pub struct DeployQuery {
    /// The entry file's name for a TypeScript/JavaScript upload.
    entry: Option<String>,
    /// What the function runs on, as a JSON array of declarations
    /// (`[{"on": "insert:public.orders"}, {"cron": "*/5 * * * *"}]`);
    /// absent keeps the current ones.
    triggers: Option<String>,
}

/// Declarations from their JSON.
fn declarations(value: Value) -> Result<Vec<Declaration>, ApiError> {
    let list: Vec<DeclarationJson> = serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_trigger",
            format!("triggers are a list of {{\"on\"}}, {{\"cron\"}}, {{\"event\"}} or {{\"setup\"}} objects: {e}"),
        )
    })?;
    Ok(crate::events::declare::parse_all(list)?)
}

pub async fn deploy(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<DeployQuery>,
    headers: HeaderMap,
    upload: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = require_admin(&headers, &app).await?;
    // Who deployed, as versions list it: the admin, or the service key.
    let deployer = match &caller {
        Caller::Admin(admin) => admin.email.clone(),
        Caller::ServiceKey => "service_role".to_owned(),
    };
    let bytes = body(upload)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if content_type == "multipart/form-data" {
        if query.triggers.is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a Spin app runs on its HTTP routes: `triggers` is not accepted with it",
            ));
        }
        let upload = spin_upload(&headers, bytes).await?;
        let deployed = app
            .functions
            .deploy_with(&name, Upload::Spin(upload), &deployer, None)
            .await?;
        return Ok(Json(json!(deployed)));
    }
    let is_wasm = bytes.starts_with(b"\0asm");
    let triggers = match &query.triggers {
        Some(text) => Some(declarations(json_body(
            text.as_bytes(),
            "a JSON list of triggers",
        )?)?),
        None => None,
    };
    let upload = match (content_type.as_str(), query.entry) {
        (_, Some(entry)) if !is_wasm => Upload::Source {
            entry,
            source: bytes.to_vec(),
        },
        ("application/typescript" | "text/typescript" | "application/x-typescript", None) => {
            Upload::Source {
                entry: "index.ts".into(),
                source: bytes.to_vec(),
            }
        }
        ("application/javascript" | "text/javascript" | "application/x-javascript", None) => {
            Upload::Source {
                entry: "index.js".into(),
                source: bytes.to_vec(),
            }
        }
        _ => Upload::Component(bytes.to_vec()),
    };
    let deployed = app
        .functions
        .deploy_with(&name, upload, &deployer, triggers)
        .await?;
    Ok(Json(json!(deployed)))
}

/// A Spin app as `selfdb functions deploy --spin` sends it: a multipart
/// form with a `manifest` part (spin.toml), a `component:<id>` part per
/// component and a `file:<id>:<path>` part per mounted file.
async fn spin_upload(headers: &HeaderMap, bytes: Bytes) -> Result<SpinUpload, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| bad("a multipart body needs a boundary".into()))?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut upload = SpinUpload::default();
    let mut manifest = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("the multipart body is malformed: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let content = field
            .bytes()
            .await
            .map_err(|e| bad(format!("part {name:?}: {e}")))?
            .to_vec();
        if name == "manifest" {
            manifest =
                Some(String::from_utf8(content).map_err(|_| bad("spin.toml is not UTF-8".into()))?);
        } else if let Some(id) = name.strip_prefix("component:") {
            upload.components.insert(id.to_owned(), content);
        } else if let Some(rest) = name.strip_prefix("file:") {
            let (component, path) = rest.split_once(':').ok_or_else(|| {
                bad(format!(
                    "part {name:?}: file parts are file:<component>:<path>"
                ))
            })?;
            upload.files.push(SpinFile {
                component: component.to_owned(),
                path: path.to_owned(),
                content,
            });
        } else {
            return Err(bad(format!(
                "unknown part {name:?}: a Spin app is `manifest`, `component:<id>` and `file:<id>:<path>` parts"
            )));
        }
    }
    upload.manifest =
        manifest.ok_or_else(|| bad("the `manifest` part (spin.toml) is missing".into()))?;
    Ok(upload)
}

pub async fn details(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    Ok(Json(json!(app.functions.details(&name).await?)))
}

pub async fn remove(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    require_admin(&headers, &app).await?;
    if app.functions.delete(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(FunctionError::NotFound(name).into())
    }
}

pub async fn configure(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    patch: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let patch: SettingsPatch = json_body(
        &body(patch)?,
        "{\"verify_jwt\"?, \"memory_mb\"?, \"time_ms\"?, \"concurrency\"?, \"allowed_hosts\"?, \"env\"?, \"max_attempts\"?}",
    )?;
    Ok(Json(json!(app.functions.set_settings(&name, patch).await?)))
}

pub async fn versions(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    Ok(Json(
        json!({ "versions": app.functions.versions(&name).await? }),
    ))
}

/// `GET /api/v1/functions/{name}/versions/{version}/source`: `{entry,
/// source}` of a TypeScript or JavaScript version (404 for a component).
pub async fn source(
    State(app): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let version: i32 = version.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "version_not_found",
            format!("no version {version:?} of {name}"),
        )
    })?;
    let (entry, source) = app.functions.source(&name, version).await?;
    Ok(Json(json!({
        "entry": entry,
        "source": String::from_utf8_lossy(&source),
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rollback {
    version: Option<i32>,
}

pub async fn rollback(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let bytes = body(request)?;
    let request: Rollback = if bytes.is_empty() {
        Rollback::default()
    } else {
        json_body(&bytes, "{\"version\"?: number}")?
    };
    let version = app.functions.rollback(&name, request.version).await?;
    Ok(Json(json!({ "name": name, "version": version })))
}

pub async fn secrets(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    Ok(Json(
        json!({ "secrets": app.functions.secret_names(&name).await? }),
    ))
}

pub async fn set_secrets(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let set: BTreeMap<String, String> = json_body(
        &body(request)?,
        "an object of secret names to string values",
    )?;
    let names = app.functions.change_secrets(&name, set, Vec::new()).await?;
    Ok(Json(json!({ "secrets": names })))
}

pub async fn unset_secret(
    State(app): State<AppState>,
    Path((name, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let names = app
        .functions
        .change_secrets(&name, BTreeMap::new(), vec![key])
        .await?;
    Ok(Json(json!({ "secrets": names })))
}

#[derive(Deserialize)]
pub struct LogQuery {
    /// Only records after this id (the `next` of a previous answer).
    #[serde(default)]
    after: i64,
    /// Only records at or after this time (RFC 3339).
    since: Option<String>,
    limit: Option<i64>,
    /// Wait up to this many seconds for a record when there is none yet
    /// (a live tail).
    wait: Option<u64>,
}

/// The longest a log request waits for new records.
const MAX_LOG_WAIT: Duration = Duration::from_secs(30);

pub async fn logs(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    if let Some(since) = &query.since {
        if chrono_like(since).is_none() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_since",
                "since must be an RFC 3339 time, e.g. 2026-12-05T10:00:00Z",
            ));
        }
    }
    let limit = query.limit.unwrap_or(200).clamp(1, 1000);
    let deadline = Instant::now() + Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_LOG_WAIT);
    loop {
        let logs = app
            .functions
            .logs(&name, query.after, query.since.as_deref(), limit)
            .await?;
        if !logs.is_empty() || Instant::now() >= deadline {
            let next = logs.last().map(|l| l.id).unwrap_or(query.after);
            return Ok(Json(json!({ "logs": logs, "next": next })));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A cheap shape check of an RFC 3339 time; Postgres parses it for real.
fn chrono_like(text: &str) -> Option<()> {
    let ok = text.len() >= 10
        && text.len() <= 40
        && text.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-:T.Z+ ".contains(&b));
    ok.then_some(())
}

fn triggers_json(triggers: &[Declaration]) -> Value {
    json!({ "triggers": triggers.iter().map(Declaration::to_json).collect::<Vec<_>>() })
}

pub async fn triggers(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    Ok(Json(triggers_json(&app.functions.triggers(&name).await?)))
}

/// `PUT /api/v1/functions/NAME/triggers {"triggers": [...]}`: replaces
/// what the function runs on (an empty list: nothing but HTTP).
pub async fn set_triggers(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        triggers: Value,
    }
    let request: Body = json_body(&body(request)?, "{\"triggers\": [...]}")?;
    let wanted = declarations(request.triggers)?;
    Ok(Json(triggers_json(
        &app.functions.set_triggers(&name, &wanted).await?,
    )))
}

#[derive(Deserialize)]
pub struct DeadLetterQuery {
    limit: Option<i64>,
}

pub async fn dead_letters(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<DeadLetterQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    app.functions.versions(&name).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let letters = app.functions.events.dead_letters(&name, limit).await?;
    Ok(Json(json!({ "dead_letters": letters })))
}

pub async fn replay_dead_letter(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&headers, &app).await?;
    app.functions.events.replay(&name, id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": id }))))
}

pub async fn discard_dead_letter(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    require_admin(&headers, &app).await?;
    app.functions.events.discard(&name, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
