//! Every end-to-end test, in one binary so it links once; a module per
//! feature. The harness (a host per test, a shared test cluster, the
//! request and wait helpers) is the `selfdb_tests` library in `tests/src`.

mod admin;
mod auth_keys;
mod auth_mail;
mod auth_redis;
mod backup;
mod compose;
mod credentials;
mod dashboard;
mod deploy;
mod dev;
mod edge;
mod events;
mod functions;
mod functions_cli;
mod functions_js;
mod health;
mod hosts;
mod limits;
mod projects;
mod realtime;
mod rls;
mod routing;
mod s3_conformance;
mod selfdb_sdk;
mod spin;
mod sql;
mod storage_files;
mod storage_inline;
mod storage_keys;
mod storage_s3;
mod storage_upstream;
mod supabase_js;
mod transactions;
mod users;
