//! SelfDB's object store: object bytes as immutable files on local disk or
//! keys in an upstream S3 store ([`blobs`]; small objects inline in
//! Postgres, see [`inline`]),
//! metadata in Postgres under Supabase Storage's names (`storage.buckets`,
//! `storage.objects`), and an S3 endpoint over the same store.
//!
//! Both front ends (the host's `/storage/v1` REST API and [`s3`]) call
//! [`Store`], which runs every metadata change in a transaction as the
//! caller, so storage RLS policies decide who sees and changes what.

pub mod access;
pub mod acl;
pub mod blobs;
pub mod body;
pub mod error;
pub mod files;
pub mod inline;
pub mod keys;
pub mod listing;
pub mod multipart;
pub mod names;
pub mod objects;
pub mod range;
pub mod s3;
pub mod store;
pub mod upstream;

pub use access::{Access, Pools};
pub use acl::{Acl, CannedAcl, Permission};
pub use blobs::Backend;
pub use body::{BodyStream, ObjectBody};
pub use error::{StorageError, StorageResult};
pub use keys::{AccessKey, KeyRegistry};
pub use listing::{FolderEntry, FolderQuery, ListQuery, Listing, SortColumn};
pub use objects::{byte_range, CopyOptions, ObjectInfo, PutOptions, Read};
pub use store::{Bucket, BucketUpdate, NewBucket, Store};
pub use upstream::{FreshPrefix, S3Folder, S3Location, UpstreamConfig};
