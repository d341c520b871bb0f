use super::selfdb::platform::schema::{
    ColumnInfo, ForeignKey, ForeignKeyFrom, FunctionArg, FunctionInfo, Host, TableInfo,
};
use crate::db::schema::{self, SchemaCache};
use crate::runtime::state::InvocationState;

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

fn table(cache: &SchemaCache, t: &schema::Table) -> TableInfo {
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

fn function(f: &schema::Function) -> FunctionInfo {
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

impl InvocationState {
    fn schema_cache(&self) -> Option<&SchemaCache> {
        self.privileged.as_ref().map(|p| &*p.schema)
    }
}

impl Host for InvocationState {
    fn exposed_schemas(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .schema_cache()
            .map(|c| c.schemas.clone())
            .unwrap_or_default())
    }

    fn table(&mut self, schema: String, name: String) -> wasmtime::Result<Option<TableInfo>> {
        Ok(self
            .schema_cache()
            .and_then(|c| c.table(&schema, &name).map(|t| table(c, t))))
    }

    fn function(&mut self, schema: String, name: String) -> wasmtime::Result<Option<FunctionInfo>> {
        Ok(self
            .schema_cache()
            .and_then(|c| c.function(&schema, &name).map(function)))
    }

    fn function_overloads(
        &mut self,
        schema: String,
        name: String,
    ) -> wasmtime::Result<Vec<FunctionInfo>> {
        Ok(self
            .schema_cache()
            .map(|c| c.overloads(&schema, &name).iter().map(function).collect())
            .unwrap_or_default())
    }

    fn tables(&mut self) -> wasmtime::Result<Vec<TableInfo>> {
        let Some(cache) = self.schema_cache() else {
            return Ok(Vec::new());
        };
        let mut all: Vec<TableInfo> = cache.tables.values().map(|t| table(cache, t)).collect();
        all.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Ok(all)
    }

    fn functions(&mut self) -> wasmtime::Result<Vec<FunctionInfo>> {
        let Some(cache) = self.schema_cache() else {
            return Ok(Vec::new());
        };
        let mut all: Vec<FunctionInfo> = cache.functions.values().flatten().map(function).collect();
        all.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Ok(all)
    }
}
