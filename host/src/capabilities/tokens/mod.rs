//! Privileged `selfdb:platform/tokens`: access tokens minted with the
//! instance's keys, which never enter a component, and the public JWKS.

mod host_impl;

use super::{Capability, Prepare};
use crate::auth::JwtKeys;
use wasmtime::component::{HasSelf, Linker};

/// Per process: the instance's keys.
pub struct Tokens {
    keys: JwtKeys,
}

impl Tokens {
    pub fn new(keys: JwtKeys) -> Self {
        Self { keys }
    }
}

/// Per invocation: the same keys (shared, not copied).
pub struct TokensState {
    keys: JwtKeys,
}

impl Capability for Tokens {
    type State = TokensState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut TokensState,
    ) -> wasmtime::Result<()> {
        super::bindings::tokens::add_to_linker::<T, HasSelf<TokensState>>(linker, get)
    }

    fn prepare(&self, _cx: &Prepare<'_>) -> TokensState {
        TokensState {
            keys: self.keys.clone(),
        }
    }
}
