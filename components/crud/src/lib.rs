//! The CRUD system component: PostgREST's API at `/rest/v1`, so apps
//! written for Supabase's data API work unchanged.
//!
//! Every statement runs through the host's `db` interface, in the one
//! transaction the host opened as the caller's role with its claims, so
//! row-level security decides which rows exist for whom. Tables, columns,
//! keys and functions come from the host's schema cache; names not in it
//! are refused before any SQL is built, and every value is a parameter.
//!
//! A request goes the way it goes through PostgREST: `parse` reads the
//! query string, `plan` resolves what it names against the schema cache
//! (the only module that calls the host's `schema` interface), `query`
//! builds the SQL from the plan in pure code, and `read`, `write` and `rpc`
//! run it through `db` and shape the response. Every failure the component
//! reports itself is a kind in `error`'s catalogue.

mod arena;
mod error;
mod openapi;
mod parse;
mod plan;
mod query;
mod read;
mod rpc;
mod sql;
mod write;

use error::ApiError;
use plan::Host;
use selfdb_sdk::{context, percent_decode_lossy, Handler, Request, Response};

/// The request as the handlers need it.
pub struct Call {
    pub request: Request,
    pub query: Vec<(String, String)>,
    pub schema: String,
    pub anon: bool,
    pub prefer: Vec<(String, String)>,
}

impl Call {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn prefers(&self, key: &str) -> Option<&str> {
        self.prefer
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn accept(&self) -> &str {
        self.request.header("accept").unwrap_or("application/json")
    }

    pub fn body_json(&self) -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(&self.request.body)
            .map_err(|e| ApiError::invalid_json().details(e.to_string()))
    }

    pub fn db_error(&self, err: selfdb_sdk::db::DbError) -> ApiError {
        ApiError::from_db(err, self.anon)
    }
}

fn prefer(request: &Request) -> Vec<(String, String)> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("prefer"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| {
            v.split(',')
                .map(str::trim)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => (item, String::new()),
        })
        .collect()
}

fn handle(request: Request) -> Result<Response, ApiError> {
    let path = request
        .path
        .strip_prefix("/rest/v1")
        .unwrap_or(&request.path)
        .trim_end_matches('/')
        .to_owned();
    let schema = plan::profile(&request)?;
    let call = Call {
        query: request.query_pairs(),
        prefer: prefer(&request),
        anon: context::caller().role == "anon",
        schema,
        request,
    };
    let method = call.request.method.clone();
    if path.is_empty() {
        return match method.as_str() {
            "GET" | "HEAD" => Ok(openapi::document(&call)),
            _ => Err(ApiError::unsupported_method()),
        };
    }
    if let Some(function) = path.strip_prefix("/rpc/") {
        return rpc::call(&call, &percent_decode_lossy(function));
    }
    let table_name = percent_decode_lossy(path.trim_start_matches('/'));
    if table_name.contains('/') {
        return Err(ApiError::invalid_path(&path));
    }
    let table = plan::table(&Host, &call.schema, &table_name)?;
    match method.as_str() {
        "GET" | "HEAD" => read::get(&call, &table),
        "POST" => write::insert(&call, &table, false),
        "PUT" => write::put(&call, &table),
        "PATCH" => write::update(&call, &table),
        "DELETE" => write::delete(&call, &table),
        _ => Err(ApiError::unsupported_method()),
    }
}

struct Crud;

impl Handler for Crud {
    fn handle(request: Request) -> Response {
        handle(request).unwrap_or_else(ApiError::into_response)
    }
}

selfdb_sdk::http_component!(Crud);
