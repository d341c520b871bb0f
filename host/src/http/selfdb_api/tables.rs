//! `/tables...`: SelfDB's table registry over PostgreSQL's tables
//! (`db::api_tables`), and their columns; rows are `data`'s.
//!
//! Who may do what (as SelfDB's server did, with one stricter rule: only
//! a public table's owner writes its rows):
//! - create: a signed-in user (who owns it) or the service key (no owner);
//! - see (list, count, get) and read rows: the owner, anyone for a public
//!   table, the service key and ADMIN users for all; a table made outside
//!   this API, whoever's role may select from it;
//! - change, drop, columns: the owner, the service key and ADMIN users
//!   (only they for a table made outside this API).
//!
//! After DDL this host's schema cache is rebuilt before the answer, so the
//! SDK's next call (or `/rest/v1`'s) finds the table as it now is.

use super::{caller, data, json_body, object, segments, uuid_or_404, Caller, Detail, Params};
use crate::db::api_tables::{
    self, ColumnsChange, Found, ListQuery, NewApiTable, SortBy, TableChange, Viewer,
};
use crate::db::user_ddl::{self, InputError};
use crate::http::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

pub async fn route(State(app): State<AppState>, request: Request) -> Response {
    match handle(&app, request).await {
        Ok(response) => response,
        Err(detail) => detail.into_response(),
    }
}

fn unauthenticated() -> Detail {
    Detail::new(StatusCode::UNAUTHORIZED, "Not authenticated")
}

/// Refused to `caller`: 401 without a user, 403 with one.
fn refused(caller: &Caller, message: &str) -> Detail {
    if caller.user_id().is_none() {
        unauthenticated()
    } else {
        Detail::new(StatusCode::FORBIDDEN, message)
    }
}

fn bad_input(err: InputError) -> Detail {
    Detail::bad_request(err.0)
}

async fn handle(app: &AppState, request: Request) -> Result<Response, Detail> {
    let caller = caller(request.headers(), app)?;
    let admin = caller.admin(app).await?;
    let method = request.method().clone();
    let segments = segments(request.uri().path(), "/tables");
    let params = Params::parse(request.uri().query());
    let body = request.into_body();
    let viewer = Viewer {
        admin,
        user_id: caller.user_id(),
        role: caller.principal.role.as_str(),
    };
    let schemas = &app.settings.db_schemas;
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The registry follows pg_catalog before it is listed or counted, and
    // when an id is not (yet) in it; a table's own routes skip that work.
    if matches!(parts.as_slice(), [] | ["count"]) && method == Method::GET {
        api_tables::sync(app.db.owner(), schemas).await?;
    }
    match parts.as_slice() {
        [] => match method {
            Method::GET => list(app, &viewer, &params).await,
            Method::POST => create(app, &caller, &viewer, json_body(body).await?).await,
            _ => Err(Detail::method_not_allowed()),
        },
        ["count"] => match method {
            Method::GET => {
                let count =
                    api_tables::count(app.db.owner(), schemas, &viewer, params.text("search"))
                        .await?;
                Ok(Json(json!({ "count": count })).into_response())
            }
            _ => Err(Detail::method_not_allowed()),
        },
        [id, rest @ ..] => {
            let id = uuid_or_404(id)?;
            // Rows need the table's columns only.
            let brief = rest.first() == Some(&"data");
            let found = match api_tables::find(app.db.owner(), schemas, &viewer, &id, brief).await?
            {
                Some(found) => found,
                None => {
                    api_tables::sync(app.db.owner(), schemas).await?;
                    api_tables::find(app.db.owner(), schemas, &viewer, &id, brief)
                        .await?
                        .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "Table not found"))?
                }
            };
            if !found.visible {
                return Err(refused(&caller, "You do not have access to this table"));
            }
            match rest {
                [] => match method {
                    Method::GET => Ok(Json(found.json).into_response()),
                    Method::PATCH => {
                        owned(&caller, &found)?;
                        update(app, &viewer, &found, json_body(body).await?).await
                    }
                    Method::DELETE => {
                        owned(&caller, &found)?;
                        delete(app, &found).await
                    }
                    _ => Err(Detail::method_not_allowed()),
                },
                ["columns", column @ ..] => {
                    owned(&caller, &found)?;
                    columns(
                        app,
                        &viewer,
                        &found,
                        &method,
                        column,
                        json_body(body).await?,
                    )
                    .await
                }
                ["data", row @ ..] => {
                    data::route(app, &caller, &found, &method, row, &params, body).await
                }
                _ => Err(Detail::not_found()),
            }
        }
    }
}

fn owned(caller: &Caller, found: &Found) -> Result<(), Detail> {
    if found.owned {
        Ok(())
    } else {
        Err(refused(caller, "You can only modify tables you own"))
    }
}

async fn list(app: &AppState, viewer: &Viewer<'_>, params: &Params) -> Result<Response, Detail> {
    let sort_by = match params.text("sort_by") {
        None | Some("created_at") => SortBy::CreatedAt,
        Some("updated_at") => SortBy::UpdatedAt,
        Some("name") => SortBy::Name,
        Some(other) => {
            return Err(Detail::unprocessable(format!(
                "sort_by {other:?}: use name, created_at or updated_at"
            )))
        }
    };
    let query = ListQuery {
        search: params.text("search"),
        sort_by,
        ascending: params.ascending("sort_order", false)?,
        skip: params.int("skip", 0, 0, i64::MAX)?,
        limit: params.int("limit", 100, 1, 1000)?,
    };
    let tables = api_tables::list(app.db.owner(), &app.settings.db_schemas, viewer, &query).await?;
    Ok(Json(tables).into_response())
}

/// An optional field of a kind, or 422.
fn field<'a, T>(
    body: &'a Map<String, Value>,
    key: &str,
    kind: &str,
    read: impl Fn(&'a Value) -> Option<T>,
) -> Result<Option<T>, Detail> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => read(value)
            .map(Some)
            .ok_or_else(|| Detail::unprocessable(format!("{key} is {kind}"))),
    }
}

/// A conflict is the name's: say which.
fn taken(err: crate::db::ddl::DdlError, name: &str) -> Detail {
    match Detail::database(err) {
        conflict if conflict.status == StatusCode::CONFLICT => Detail::new(
            StatusCode::CONFLICT,
            format!("Table '{name}' already exists"),
        ),
        other => other,
    }
}

fn table_name(text: &str) -> Result<String, Detail> {
    user_ddl::name("table", text).map_err(|err| Detail::unprocessable(err.0))
}

/// Answers the table as it now is, after rebuilding the schema cache.
async fn answer(
    app: &AppState,
    viewer: &Viewer<'_>,
    id: &str,
    status: StatusCode,
) -> Result<Response, Detail> {
    app.schema.reload(&app.db).await;
    let found = api_tables::find(app.db.owner(), &app.settings.db_schemas, viewer, id, false)
        .await?
        .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "Table not found"))?;
    Ok((status, Json(found.json)).into_response())
}

async fn create(
    app: &AppState,
    caller: &Caller,
    viewer: &Viewer<'_>,
    body: Value,
) -> Result<Response, Detail> {
    if caller.user_id().is_none() && !viewer.admin {
        return Err(unauthenticated());
    }
    let body = object(body)?;
    let name = field(&body, "name", "a string", Value::as_str)?
        .ok_or_else(|| Detail::unprocessable("name is required"))?;
    let name = table_name(name)?;
    let schema = body
        .get("table_schema")
        .filter(|v| !v.is_null())
        .ok_or_else(|| Detail::unprocessable("table_schema is required"))?;
    let columns = user_ddl::table_schema(schema).map_err(bad_input)?;
    let empty = Value::Object(Map::new());
    let metadata = field(&body, "metadata", "an object", |v| {
        v.is_object().then_some(v)
    })?
    .unwrap_or(&empty);
    let schemas = &app.settings.db_schemas;
    let schema_name = schemas
        .iter()
        .find(|s| *s == "public")
        .or(schemas.first())
        .map(String::as_str)
        .unwrap_or("public");
    let id = api_tables::create(
        app.db.owner(),
        &NewApiTable {
            schema: schema_name,
            name: &name,
            columns: &columns,
            description: field(&body, "description", "a string", Value::as_str)?,
            public: field(&body, "public", "true or false", Value::as_bool)?.unwrap_or(false),
            realtime: field(&body, "realtime_enabled", "true or false", Value::as_bool)?
                .unwrap_or(true),
            metadata,
            owner: caller.user_id(),
        },
    )
    .await
    .map_err(|err| taken(err, &name))?;
    answer(app, viewer, &id, StatusCode::CREATED).await
}

async fn update(
    app: &AppState,
    viewer: &Viewer<'_>,
    found: &Found,
    body: Value,
) -> Result<Response, Detail> {
    let body = object(body)?;
    if body.get("table_schema").is_some_and(|v| !v.is_null()) {
        return Err(Detail::bad_request(
            "table_schema cannot be changed here: add, change or remove columns through /tables/{id}/columns",
        ));
    }
    let name = field(&body, "name", "a string", Value::as_str)?
        .map(table_name)
        .transpose()?;
    let change = TableChange {
        name: name.as_deref(),
        description: field(&body, "description", "a string", Value::as_str)?,
        public: field(&body, "public", "true or false", Value::as_bool)?,
        realtime: field(&body, "realtime_enabled", "true or false", Value::as_bool)?,
        metadata: field(&body, "metadata", "an object", |v| {
            v.is_object().then_some(v)
        })?,
    };
    api_tables::update(app.db.owner(), found, &change)
        .await
        .map_err(|err| taken(err, name.as_deref().unwrap_or_default()))?;
    answer(app, viewer, id_of(found), StatusCode::OK).await
}

fn id_of(found: &Found) -> &str {
    found.json["id"].as_str().unwrap_or_default()
}

async fn delete(app: &AppState, found: &Found) -> Result<Response, Detail> {
    api_tables::delete(app.db.owner(), found).await?;
    app.schema.reload(&app.db).await;
    let id = id_of(found);
    Ok(Json(json!({
        "message": "Table deleted successfully",
        "deleted_id": id,
        "status": "deleted",
        "id": id,
        "name": found.name,
    }))
    .into_response())
}

/// Whether the table has a column of that name.
fn has_column(found: &Found, column: &str) -> bool {
    found.json["columns"]
        .as_array()
        .is_some_and(|cols| cols.iter().any(|c| c["name"] == column))
}

async fn columns(
    app: &AppState,
    viewer: &Viewer<'_>,
    found: &Found,
    method: &Method,
    column: &[&str],
    body: Value,
) -> Result<Response, Detail> {
    let column_missing = |name: &str| {
        Detail::new(
            StatusCode::NOT_FOUND,
            format!("Column '{name}' not found in table '{}'", found.name),
        )
    };
    match (method, column) {
        (&Method::POST, []) => {
            let spec = user_ddl::column_definition(&body).map_err(bad_input)?;
            if has_column(found, &spec.name) {
                return Err(Detail::new(
                    StatusCode::CONFLICT,
                    format!("Column '{}' already exists", spec.name),
                ));
            }
            api_tables::change_columns(app.db.owner(), found, ColumnsChange::Add(&spec)).await?;
        }
        (&Method::PATCH, [name]) => {
            if !has_column(found, name) {
                return Err(column_missing(name));
            }
            let change = user_ddl::column_change(&body).map_err(bad_input)?;
            api_tables::change_columns(app.db.owner(), found, ColumnsChange::Alter(name, &change))
                .await?;
        }
        (&Method::DELETE, [name]) => {
            if !has_column(found, name) {
                return Err(column_missing(name));
            }
            api_tables::change_columns(app.db.owner(), found, ColumnsChange::Drop(name)).await?;
        }
        (_, [] | [_]) => return Err(Detail::method_not_allowed()),
        _ => return Err(Detail::not_found()),
    }
    answer(app, viewer, id_of(found), StatusCode::OK).await
}
