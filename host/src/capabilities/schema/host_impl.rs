//! The `schema` interface: look-ups in the invocation's snapshot of the
//! cache, listed in a stable order.

use super::convert::{function, table};
use super::SchemaState;
use crate::capabilities::bindings::schema::{FunctionInfo, Host, TableInfo};

impl Host for SchemaState {
    fn exposed_schemas(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.cache.schemas.clone())
    }

    fn table(&mut self, schema: String, name: String) -> wasmtime::Result<Option<TableInfo>> {
        let cache = &*self.cache;
        Ok(cache.table(&schema, &name).map(|t| table(cache, t)))
    }

    fn function(&mut self, schema: String, name: String) -> wasmtime::Result<Option<FunctionInfo>> {
        Ok(self.cache.function(&schema, &name).map(function))
    }

    fn function_overloads(
        &mut self,
        schema: String,
        name: String,
    ) -> wasmtime::Result<Vec<FunctionInfo>> {
        Ok(self
            .cache
            .overloads(&schema, &name)
            .iter()
            .map(function)
            .collect())
    }

    fn tables(&mut self) -> wasmtime::Result<Vec<TableInfo>> {
        let cache = &*self.cache;
        let mut all: Vec<TableInfo> = cache.tables.values().map(|t| table(cache, t)).collect();
        all.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Ok(all)
    }

    fn functions(&mut self) -> wasmtime::Result<Vec<FunctionInfo>> {
        let mut all: Vec<FunctionInfo> = self
            .cache
            .functions
            .values()
            .flatten()
            .map(function)
            .collect();
        all.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Ok(all)
    }
}
