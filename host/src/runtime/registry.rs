//! Deployed components by name. Deploying a name again swaps the version
//! atomically: requests in flight finish on the version they started with.

use crate::config::FunctionLimits;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::capabilities::bindings::listener::ListenerPre;
use crate::capabilities::bindings::RecordHandlerPre;
use crate::capabilities::{SystemState, UserState};

/// The export an invocation calls.
#[derive(Clone)]
pub enum Entry {
    /// A user function: `wasi:http/incoming-handler` for requests, and
    /// `selfdb:platform/listener` for events; it has at least one of them.
    User {
        http: Option<ProxyPre<UserState>>,
        listener: Option<ListenerPre<UserState>>,
    },
    /// `wasi:http/incoming-handler` of a system component without a
    /// `handler` export.
    SystemHttp(ProxyPre<SystemState>),
    /// `selfdb:platform/handler`: the request and response as plain values,
    /// for system components built with the SDK.
    Record(RecordHandlerPre<SystemState>),
    /// A Spin app: its router and components.
    Spin(Arc<super::spin::SpinApp>),
}

pub struct Deployed {
    pub name: Arc<str>,
    /// SHA-256 of the component's bytes.
    pub digest: String,
    /// The function's version in `selfdb.function_versions`; none for
    /// system components.
    pub version: Option<i32>,
    pub entry: Entry,
    pub limits: FunctionLimits,
    pub config: Arc<BTreeMap<String, String>>,
    pub allowed_hosts: Arc<Vec<String>>,
    /// System components (crud, auth) link the privileged interfaces.
    pub system: bool,
    /// The bundled script a JavaScript version runs on the shared engine.
    pub script: Option<Arc<str>>,
    /// Callers need a valid JWT (the anon key is one), as on Supabase.
    pub verify_jwt: bool,
    /// Invocations allowed at once on this host, when capped.
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl Deployed {
    /// Whether it reads its request body as a stream (`wasi:http`), rather
    /// than as one value the host collects first.
    pub fn streams_request(&self) -> bool {
        !matches!(self.entry, Entry::Record(_))
    }

    /// Its `listener` export, when it has one.
    pub fn listener(&self) -> Option<&ListenerPre<UserState>> {
        match &self.entry {
            Entry::User { listener, .. } => listener.as_ref(),
            _ => None,
        }
    }
}

#[derive(Default)]
pub struct Registry {
    functions: RwLock<HashMap<String, Arc<Deployed>>>,
}

/// Function names are path segments and file stems: keep them plain.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<Deployed>> {
        self.functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn insert(&self, deployed: Arc<Deployed>) -> Option<Arc<Deployed>> {
        self.functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(deployed.name.to_string(), deployed)
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Deployed>> {
        self.functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub fn len(&self) -> usize {
        self.functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
