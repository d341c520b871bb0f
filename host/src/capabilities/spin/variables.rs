//! Spin's variables (`fermyon:spin/variables@2.0.0`,
//! `spin:variables/variables@3.0.0`): the component's `[variables]`,
//! rendered when the version was loaded (see `spin::ComponentSpec`).

use super::bindings::spin::variables::variables as v3;
use super::bindings::v2::variables as v2;
use crate::spin::template::valid_variable_name;
use crate::spin::ComponentSpec;
use std::sync::Arc;
use wasmtime::component::{Accessor, HasData};

/// Per invocation: the component's resolved variables.
pub struct VariablesState {
    spec: Arc<ComponentSpec>,
}

/// The answer, in terms both versions' errors share.
enum Lookup {
    Found(String),
    InvalidName(String),
    Undefined(String),
    Provider(String),
}

impl VariablesState {
    pub fn new(spec: Arc<ComponentSpec>) -> Self {
        Self { spec }
    }

    fn lookup(&self, name: &str) -> Lookup {
        if !valid_variable_name(name) {
            return Lookup::InvalidName(format!("{name:?} is not a valid variable name"));
        }
        match self.spec.variables.get(name) {
            Some(Ok(value)) => Lookup::Found(value.clone()),
            Some(Err(why)) => Lookup::Provider(why.clone()),
            None => Lookup::Undefined(format!("no variable for {:?}.{name:?}", self.spec.id)),
        }
    }
}

impl v2::Host for VariablesState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v2::Error>> {
        Ok(match self.lookup(&name) {
            Lookup::Found(value) => Ok(value),
            Lookup::InvalidName(m) => Err(v2::Error::InvalidName(m)),
            Lookup::Undefined(m) => Err(v2::Error::Undefined(m)),
            Lookup::Provider(m) => Err(v2::Error::Provider(m)),
        })
    }
}

pub struct VariablesV3;

impl HasData for VariablesV3 {
    type Data<'a> = &'a mut VariablesState;
}

impl v3::Host for VariablesState {}

impl<T: Send> v3::HostWithStore<T> for VariablesV3 {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, v3::Error>> {
        Ok(
            accessor.with(|mut access| match access.get().lookup(&name) {
                Lookup::Found(value) => Ok(value),
                Lookup::InvalidName(m) => Err(v3::Error::InvalidName(m)),
                Lookup::Undefined(m) => Err(v3::Error::Undefined(m)),
                Lookup::Provider(m) => Err(v3::Error::Provider(m)),
            }),
        )
    }
}

pub fn link<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut VariablesState,
) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, wasmtime::component::HasSelf<VariablesState>>(linker, get)?;
    v3::add_to_linker::<T, VariablesV3>(linker, get)
}
