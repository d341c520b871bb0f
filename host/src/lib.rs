//! SelfDB host: the trusted core. It terminates HTTP, checks every credential,
//! owns every pool and limit, and runs request logic in sandboxed WebAssembly
//! components.
//!
//! Modules by layer: `http` (routes, credentials, errors) hands requests to
//! `runtime` (engine, compiled-component cache, registry, invocation), whose
//! components reach the host only through `capabilities` (one folder per WIT
//! interface); `db`, `auth` and `storage` are the services those use, `realtime`
//! the WebSocket broker (broadcast, presence, database changes), and
//! `server` starts them in phases. The README's "Design decisions" section
//! and `docs/architecture.md` give the reasons.

pub mod auth;
pub mod backup;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod cors;
pub mod db;
pub mod embedded_pg;
pub mod events;
pub mod files;
pub mod functions;
pub mod http;
pub mod listen;
pub mod memory;
pub mod metrics;
pub mod projects;
pub mod realtime;
pub mod request_log;
pub mod runtime;
pub mod s3_port;
pub mod secrets;
pub mod server;
pub mod spin;
pub mod storage;
pub mod tls;
