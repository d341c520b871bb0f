//! SelfDB host: the trusted core. It terminates HTTP, checks every credential,
//! owns every pool and limit, and runs request logic in sandboxed WebAssembly
//! components. See `../shared/DESIGN.md` for the shape this code keeps.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod embedded_pg;
pub mod hostapi;
pub mod http;
pub mod runtime;
pub mod server;
pub mod storage;
