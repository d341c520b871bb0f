//! `GET /rest/v1/`: an OpenAPI (Swagger 2.0, as PostgREST serves) document
//! of the exposed tables, their columns and types, and the functions.

use crate::plan::Host;
use crate::Call;
use selfdb_sdk::Response;
use serde_json::{json, Map, Value};

fn json_type(pg: &str) -> (&'static str, &str) {
    let base = pg.split('(').next().unwrap_or(pg).trim();
    let kind = match base {
        "smallint" | "integer" | "bigint" => "integer",
        "numeric" | "real" | "double precision" => "number",
        "boolean" => "boolean",
        "json" | "jsonb" => "object",
        t if t.ends_with("[]") => "array",
        _ => "string",
    };
    (kind, base)
}

pub fn document(call: &Call) -> Response {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for table in Host
        .tables()
        .into_iter()
        .filter(|t| t.schema == call.schema)
    {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for column in &table.columns {
            let (kind, format) = json_type(&column.type_name);
            let mut property = json!({"type": kind, "format": format});
            if table.primary_key.contains(&column.name) {
                property["description"] = json!("Note:\nThis is a Primary Key.<pk/>");
            }
            properties.insert(column.name.clone(), property);
            if !column.nullable && !column.has_default {
                required.push(column.name.clone());
            }
        }
        definitions.insert(
            table.name.clone(),
            json!({"type": "object", "required": required, "properties": properties}),
        );
        let reference = json!({"$ref": format!("#/definitions/{}", table.name)});
        let mut operations = json!({
            "get": {"tags": [table.name], "responses": {"200": {"description": "OK", "schema": {"type": "array", "items": reference}}}},
        });
        if table.kind == "table" {
            operations["post"] =
                json!({"tags": [table.name], "responses": {"201": {"description": "Created"}}});
            operations["patch"] =
                json!({"tags": [table.name], "responses": {"204": {"description": "No Content"}}});
            operations["delete"] =
                json!({"tags": [table.name], "responses": {"204": {"description": "No Content"}}});
        }
        paths.insert(format!("/{}", table.name), operations);
    }
    for function in Host
        .functions()
        .into_iter()
        .filter(|f| f.schema == call.schema)
    {
        let properties: Map<String, Value> = function
            .args
            .iter()
            .map(|a| {
                let (kind, format) = json_type(&a.type_name);
                (a.name.clone(), json!({"type": kind, "format": format}))
            })
            .collect();
        let required: Vec<&String> = function
            .args
            .iter()
            .filter(|a| !a.has_default)
            .map(|a| &a.name)
            .collect();
        paths.insert(
            format!("/rpc/{}", function.name),
            json!({"post": {
                "tags": ["(rpc) ".to_owned() + &function.name],
                "parameters": [{"in": "body", "name": "args", "required": true,
                                "schema": {"type": "object", "required": required, "properties": properties}}],
                "responses": {"200": {"description": "OK"}}
            }}),
        );
    }
    Response::json(
        200,
        &json!({
            "swagger": "2.0",
            "info": {"title": "SelfDB data API", "description": "PostgREST-compatible API over the exposed schema", "version": "0.1.0"},
            "basePath": "/rest/v1",
            "schemes": ["http"],
            "consumes": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
            "produces": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
            "paths": paths,
            "definitions": definitions,
        }),
    )
    .with_header("content-type", "application/openapi+json")
}
