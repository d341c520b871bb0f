//! `selfdb:platform/context`: who is calling (the principal the host
//! verified), the request id and the client's address.

mod host_impl;

use super::{Capability, Prepare};
use crate::auth::Principal;
use std::net::IpAddr;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per process: nothing.
pub struct Context;

/// Per invocation: the request's caller and ids.
pub struct ContextState {
    principal: Arc<Principal>,
    request_id: Arc<str>,
    client_ip: Option<IpAddr>,
}

impl Capability for Context {
    type State = ContextState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut ContextState,
    ) -> wasmtime::Result<()> {
        super::bindings::context::add_to_linker::<T, HasSelf<ContextState>>(linker, get)
    }

    fn prepare(&self, cx: &Prepare<'_>) -> ContextState {
        ContextState {
            principal: cx.principal.clone(),
            request_id: cx.request_id.clone(),
            client_ip: cx.client_ip,
        }
    }
}
