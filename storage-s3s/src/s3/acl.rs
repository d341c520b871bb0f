//! ACL operations, in the terms SelfDB's model expresses (`crate::acl`):
//! the canned ACLs `private`, `public-read` and `public-read-write`, and
//! READ, WRITE and FULL_CONTROL grants to SelfDB users by id, given as
//! `x-amz-acl`, as `x-amz-grant-*` headers or as an `AccessControlPolicy`.
//! Anything else — `authenticated-read`, READ_ACP/WRITE_ACP, groups other
//! than AllUsers, grantees by e-mail — is refused with `NotImplemented`
//! rather than accepted and ignored.

use super::convert::owner;
use super::S3Frontend;
use crate::access::Access;
use crate::acl::{Acl, CannedAcl, Permission};
use s3s::dto::{self, *};
use s3s::{s3_error, S3Request, S3Response, S3Result};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// The `x-amz-grant-*` headers of a request: full control, read, read
/// ACP, write, write ACP.
pub(super) struct GrantHeaders<'a>([Option<&'a String>; 5]);

/// A request that can carry an ACL in headers: `x-amz-acl` and the
/// `x-amz-grant-*` ones.
pub(super) trait AclHeaders {
    fn canned(&self) -> Option<&str>;
    fn grants(&self) -> GrantHeaders<'_>;
}

macro_rules! acl_headers {
    (with write: $($with:ty),*; without write: $($without:ty),*) => {
        $(impl AclHeaders for $with {
            fn canned(&self) -> Option<&str> {
                self.acl.as_ref().map(|a| a.as_str())
            }
            fn grants(&self) -> GrantHeaders<'_> {
                GrantHeaders([
                    self.grant_full_control.as_ref(),
                    self.grant_read.as_ref(),
                    self.grant_read_acp.as_ref(),
                    self.grant_write.as_ref(),
                    self.grant_write_acp.as_ref(),
                ])
            }
        })*
        // Object writes have no WRITE grant.
        $(impl AclHeaders for $without {
            fn canned(&self) -> Option<&str> {
                self.acl.as_ref().map(|a| a.as_str())
            }
            fn grants(&self) -> GrantHeaders<'_> {
                GrantHeaders([
                    self.grant_full_control.as_ref(),
                    self.grant_read.as_ref(),
                    self.grant_read_acp.as_ref(),
                    None,
                    self.grant_write_acp.as_ref(),
                ])
            }
        })*
    };
}

acl_headers!(
    with write: CreateBucketInput, PutBucketAclInput, PutObjectAclInput;
    without write: PutObjectInput, CopyObjectInput, CreateMultipartUploadInput
);

/// The ACL a request's headers set, if any.
pub(super) fn header_acl(input: &impl AclHeaders) -> S3Result<Option<Acl>> {
    from_headers(input.canned(), input.grants())
}

/// Everyone's part of an ACL from what AllUsers is granted.
fn canned_of(read: bool, write: bool) -> S3Result<CannedAcl> {
    match (read, write) {
        (false, false) => Ok(CannedAcl::Private),
        (true, false) => Ok(CannedAcl::PublicRead),
        (true, true) => Ok(CannedAcl::PublicReadWrite),
        (false, true) => Err(s3_error!(
            NotImplemented,
            "write without read for everyone is not supported"
        )),
    }
}

/// A user id as a grantee: SelfDB's users are their ids.
fn user_id(id: &str) -> S3Result<String> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| {
            s3_error!(
                InvalidArgument,
                "Invalid id: {id:?} is not a SelfDB user id"
            )
        })
}

/// Adds one grant to what is being built.
fn add_grant(
    acl: &mut Acl,
    everyone: &mut (bool, bool),
    grantee: Grantee<'_>,
    permission: &str,
) -> S3Result<()> {
    let permission = Permission::parse(permission).ok_or_else(|| {
        s3_error!(
            NotImplemented,
            "permission {permission} is not supported; use READ, WRITE or FULL_CONTROL"
        )
    })?;
    match grantee {
        Grantee::Group(ALL_USERS) => match permission {
            Permission::Read => everyone.0 = true,
            Permission::Write => everyone.1 = true,
            Permission::FullControl => *everyone = (true, true),
        },
        Grantee::User(id) => {
            let id = user_id(id)?;
            let merged = match acl.grants.get(&id) {
                Some(previous) if *previous != permission => Permission::FullControl,
                _ => permission,
            };
            acl.grants.insert(id, merged);
        }
        Grantee::Group(other) | Grantee::Other(other) => {
            return Err(s3_error!(
                NotImplemented,
                "grantee {other} is not supported; grant to AllUsers or to a user id"
            ))
        }
    }
    Ok(())
}

enum Grantee<'a> {
    User(&'a str),
    Group(&'a str),
    Other(&'a str),
}

/// A request's ACL: `x-amz-acl`, or `x-amz-grant-*` headers
/// (`id="..."` and `uri="..."` lists), not both; `None` when neither.
fn from_headers(acl: Option<&str>, grants: GrantHeaders<'_>) -> S3Result<Option<Acl>> {
    let [full_control, read, read_acp, write, write_acp] = grants.0;
    let any_grant = grants.0.iter().any(Option::is_some);
    if let Some(text) = acl {
        if any_grant {
            return Err(s3_error!(
                InvalidRequest,
                "give either x-amz-acl or x-amz-grant-* headers"
            ));
        }
        let canned = CannedAcl::parse(text).ok_or_else(|| {
            s3_error!(
                NotImplemented,
                "canned ACL {text:?} is not supported; use private, public-read or public-read-write"
            )
        })?;
        return Ok(Some(Acl::canned(canned)));
    }
    if !any_grant {
        return Ok(None);
    }
    if read_acp.is_some() || write_acp.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "READ_ACP and WRITE_ACP grants are not supported; only owners change ACLs"
        ));
    }
    let mut built = Acl::default();
    let mut everyone = (false, false);
    for (header, permission) in [
        (full_control, "FULL_CONTROL"),
        (read, "READ"),
        (write, "WRITE"),
    ] {
        let Some(header) = header else { continue };
        for entry in header.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kind, value) = entry
                .split_once('=')
                .ok_or_else(|| s3_error!(InvalidArgument, "a grant is key=\"value\""))?;
            let value = value.trim().trim_matches('"');
            let grantee = match kind.trim() {
                "id" => Grantee::User(value),
                "uri" => Grantee::Group(value),
                other => Grantee::Other(other),
            };
            add_grant(&mut built, &mut everyone, grantee, permission)?;
        }
    }
    built.canned = canned_of(everyone.0, everyone.1)?;
    Ok(Some(built))
}

/// The ACL an `AccessControlPolicy` body amounts to; the owner's own
/// grants are implied, not stored.
fn from_policy(policy: &AccessControlPolicy, owner_id: Option<&str>) -> S3Result<Acl> {
    let mut built = Acl::default();
    let mut everyone = (false, false);
    for grant in policy.grants.iter().flatten() {
        let Some(grantee) = grant.grantee.as_ref() else {
            continue;
        };
        let permission = grant.permission.as_ref().map(|p| p.as_str()).unwrap_or("");
        let kind = grantee.type_.as_str();
        let who = if kind == dto::Type::GROUP {
            Grantee::Group(grantee.uri.as_deref().unwrap_or(""))
        } else if kind == dto::Type::CANONICAL_USER {
            let id = grantee.id.as_deref().unwrap_or("");
            if Some(id) == owner_id.or(Some("selfdb")) {
                continue;
            }
            Grantee::User(id)
        } else {
            Grantee::Other(kind)
        };
        add_grant(&mut built, &mut everyone, who, permission)?;
    }
    built.canned = canned_of(everyone.0, everyone.1)?;
    Ok(built)
}

/// The grant list S3 reports: the owner's FULL_CONTROL, AllUsers' and each
/// user's.
fn grants(owner_id: Option<&str>, acl: &Acl) -> Vec<Grant> {
    let user = |id: Option<&str>, permission: &str| {
        let named = owner(id);
        Grant {
            grantee: Some(dto::Grantee {
                display_name: named.display_name,
                id: named.id,
                type_: dto::Type::from(dto::Type::CANONICAL_USER.to_owned()),
                email_address: None,
                uri: None,
            }),
            permission: Some(dto::Permission::from(permission.to_owned())),
        }
    };
    let everyone = |permission: &'static str| Grant {
        grantee: Some(dto::Grantee {
            display_name: None,
            id: None,
            type_: dto::Type::from_static(dto::Type::GROUP),
            email_address: None,
            uri: Some(ALL_USERS.to_owned()),
        }),
        permission: Some(dto::Permission::from_static(permission)),
    };
    let mut list = vec![user(owner_id, dto::Permission::FULL_CONTROL)];
    if acl.canned.public_read() {
        list.push(everyone(dto::Permission::READ));
    }
    if acl.canned.public_write() {
        list.push(everyone(dto::Permission::WRITE));
    }
    for (id, permission) in &acl.grants {
        list.push(user(Some(id), permission.as_str()));
    }
    list
}

/// Whether `access` owns what `owner` owns: the service role owns
/// everything, a user what carries its id.
fn owns(access: &Access, owner: Option<&str>) -> bool {
    matches!(access, Access::Service) || (owner.is_some() && owner == access.user_id())
}

/// The ACL a Put*Acl request sets.
fn requested(
    input: &impl AclHeaders,
    policy: &Option<AccessControlPolicy>,
    owner_id: Option<&str>,
) -> S3Result<Acl> {
    match (header_acl(input)?, policy) {
        (Some(acl), None) => Ok(acl),
        (None, Some(policy)) => from_policy(policy, owner_id),
        _ => Err(s3_error!(
            InvalidRequest,
            "give either an ACL in headers or an AccessControlPolicy"
        )),
    }
}

pub(super) async fn put_bucket_acl(
    s3: &S3Frontend,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let bucket = s3.store.bucket_system(&input.bucket).await?;
    let acl = requested(
        &input,
        &input.access_control_policy,
        bucket.owner.as_deref(),
    )?;
    s3.store
        .set_bucket_acl(&access, &input.bucket, &acl)
        .await?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub(super) async fn get_bucket_acl(
    s3: &S3Frontend,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let access = s3.access(&req.credentials).await?;
    let bucket = s3.store.bucket_system(&req.input.bucket).await?;
    if !owns(&access, bucket.owner.as_deref()) {
        return Err(s3_error!(AccessDenied));
    }
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants(bucket.owner.as_deref(), &bucket.s3_acl)),
        owner: Some(owner(bucket.owner.as_deref())),
    }))
}

pub(super) async fn put_object_acl(
    s3: &S3Frontend,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    // S3's 403/404 rule first, so that a stranger learns no more about
    // the key than a read would tell.
    let info = s3.readable(&access, &input.bucket, &input.key).await?;
    if !owns(&access, info.owner.as_deref()) {
        return Err(s3_error!(
            AccessDenied,
            "only the object's owner may change its ACL"
        ));
    }
    let acl = requested(&input, &input.access_control_policy, info.owner.as_deref())?;
    s3.store
        .set_object_acl(&access, &input.bucket, &input.key, &acl)
        .await?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

pub(super) async fn get_object_acl(
    s3: &S3Frontend,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let access = s3.access(&req.credentials).await?;
    let info = s3
        .readable(&access, &req.input.bucket, &req.input.key)
        .await?;
    // Who else may read is the owner's business (S3's READ_ACP, which
    // SelfDB gives owners only): the object's or the bucket's.
    let bucket = s3.store.bucket_system(&req.input.bucket).await?;
    if !owns(&access, info.owner.as_deref()) && !owns(&access, bucket.owner.as_deref()) {
        return Err(s3_error!(AccessDenied));
    }
    let acl = Acl::of_object(&info.metadata);
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(grants(info.owner.as_deref(), &acl)),
        owner: Some(owner(info.owner.as_deref())),
        ..Default::default()
    }))
}
