//! Privileged `selfdb:platform/passwords`: argon2id hashing and
//! verification on the host's blocking pool.

mod host_impl;

use super::{Capability, Prepare};
use wasmtime::component::{HasSelf, Linker};

/// Per process: nothing; the parameters live in `auth::passwords`.
pub struct Passwords;

/// Per invocation: nothing.
pub struct PasswordsState;

impl Capability for Passwords {
    type State = PasswordsState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut PasswordsState,
    ) -> wasmtime::Result<()> {
        super::bindings::passwords::add_to_linker::<T, HasSelf<PasswordsState>>(linker, get)
    }

    fn prepare(&self, _cx: &Prepare<'_>) -> PasswordsState {
        PasswordsState
    }
}
