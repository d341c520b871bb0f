//! The schema cache's entries as the `schema` interface's records.

use crate::capabilities::bindings::schema::{
    ColumnInfo, ForeignKey, ForeignKeyFrom, FunctionArg, FunctionInfo, TableInfo,
};
use crate::db::schema::{self, SchemaCache};

fn key(k: &schema::ForeignKey) -> ForeignKey {
    ForeignKey {
        name: k.name.clone(),
        columns: k.columns.clone(),
        referenced_schema: k.referenced_schema.clone(),
        referenced_table: k.referenced_table.clone(),
        referenced_columns: k.referenced_columns.clone(),
    }
}

fn columns(columns: &[schema::Column]) -> Vec<ColumnInfo> {
    columns
        .iter()
        .map(|c| ColumnInfo {
            name: c.name.clone(),
            type_name: c.type_name.clone(),
            nullable: c.nullable,
            has_default: c.has_default,
        })
        .collect()
}

pub fn table(cache: &SchemaCache, t: &schema::Table) -> TableInfo {
    TableInfo {
        schema: t.schema.clone(),
        name: t.name.clone(),
        kind: t.kind.clone(),
        columns: columns(&t.columns),
        primary_key: t.primary_key.clone(),
        foreign_keys: cache.keys_from(&t.schema, &t.name).map(key).collect(),
        referenced_by: cache
            .keys_to(&t.schema, &t.name)
            .map(|k| ForeignKeyFrom {
                key: key(k),
                schema: k.schema.clone(),
                table: k.table.clone(),
            })
            .collect(),
    }
}

pub fn function(f: &schema::Function) -> FunctionInfo {
    FunctionInfo {
        schema: f.schema.clone(),
        name: f.name.clone(),
        args: f
            .args
            .iter()
            .map(|a| FunctionArg {
                name: a.name.clone(),
                type_name: a.type_name.clone(),
                has_default: a.has_default,
            })
            .collect(),
        return_type: f.return_type.clone(),
        returns_set: f.returns_set,
        returns_rows: f.returns_rows,
        result_columns: columns(&f.result_columns),
        volatility: f.volatility.clone(),
        variadic: f.variadic,
    }
}
