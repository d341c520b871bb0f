//! `selfdb:platform/script`: the invoked function's bundled JavaScript, for
//! the shared engine that evaluates it (world `js-loader`). A function
//! reads nothing but its own script, so every user function may link it;
//! one that is not JavaScript gets an empty string.

mod host_impl;

use super::{Capability, Prepare};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per process: nothing; each deployed version carries its script.
pub struct Script;

/// Per invocation: the invoked version's script.
pub struct ScriptState {
    source: Option<Arc<str>>,
}

impl Capability for Script {
    type State = ScriptState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut ScriptState,
    ) -> wasmtime::Result<()> {
        super::bindings::script::add_to_linker::<T, HasSelf<ScriptState>>(linker, get)
    }

    fn prepare(&self, cx: &Prepare<'_>) -> ScriptState {
        ScriptState {
            source: cx.function.script.clone(),
        }
    }
}
