//! Privileged `selfdb:platform/schema`: the host's cache of the exposed
//! schemas (tables, columns, keys, functions), which the data API builds
//! its SQL from.

mod convert;
mod host_impl;

use super::{Capability, Prepare};
use crate::db::schema::{SchemaCache, SharedSchema};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per process: the cache, rebuilt after DDL.
pub struct Schema {
    shared: Arc<SharedSchema>,
}

impl Schema {
    pub fn new(shared: Arc<SharedSchema>) -> Self {
        Self { shared }
    }
}

/// Per invocation: the cache as it was when the invocation started, so one
/// request sees one schema.
pub struct SchemaState {
    cache: Arc<SchemaCache>,
}

impl Capability for Schema {
    type State = SchemaState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut SchemaState,
    ) -> wasmtime::Result<()> {
        super::bindings::schema::add_to_linker::<T, HasSelf<SchemaState>>(linker, get)
    }

    fn prepare(&self, cx: &Prepare<'_>) -> SchemaState {
        SchemaState {
            cache: match cx.external {
                Some(external) => external.schema().get(),
                None => self.shared.get(),
            },
        }
    }
}
