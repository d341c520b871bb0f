//! ACL operations: the three canned ACLs SelfDB expresses (`crate::acl`)
//! on buckets and objects, set with `x-amz-acl` or with a grant list of the
//! same shape. Any other grant — a named user, `authenticated-read`,
//! `x-amz-grant-*` headers — is refused with `NotImplemented` rather than
//! accepted and ignored.

use super::convert::owner;
use super::S3Frontend;
use crate::access::Access;
use crate::acl::CannedAcl;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// The `x-amz-grant-*` headers of an ACL-setting request, present or not.
pub(super) struct GrantHeaders<'a>(pub(super) [Option<&'a String>; 5]);

/// A request's canned ACL: `x-amz-acl` (any of SelfDB's three) with no
/// grant headers.
pub(super) fn canned(acl: Option<&str>, grants: GrantHeaders<'_>) -> S3Result<Option<CannedAcl>> {
    if grants.0.iter().any(Option::is_some) {
        return Err(s3_error!(
            NotImplemented,
            "x-amz-grant-* headers are not supported; use a canned ACL: private, public-read or public-read-write"
        ));
    }
    match acl {
        None => Ok(None),
        Some(text) => CannedAcl::parse(text).map(Some).ok_or_else(|| {
            s3_error!(
                NotImplemented,
                "canned ACL {text:?} is not supported; use private, public-read or public-read-write"
            )
        }),
    }
}

/// The grant list S3 reports for a canned ACL owned by `owner_id`.
fn grants(owner_id: Option<&str>, acl: CannedAcl) -> Vec<Grant> {
    let owner = owner(owner_id);
    let mut grants = vec![Grant {
        grantee: Some(Grantee {
            display_name: owner.display_name,
            id: owner.id,
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }];
    let everyone = |permission: &'static str| Grant {
        grantee: Some(Grantee {
            display_name: None,
            id: None,
            type_: Type::from_static(Type::GROUP),
            email_address: None,
            uri: Some(ALL_USERS.to_owned()),
        }),
        permission: Some(Permission::from_static(permission)),
    };
    if acl.public_read() {
        grants.push(everyone(Permission::READ));
    }
    if acl.public_write() {
        grants.push(everyone(Permission::WRITE));
    }
    grants
}

/// The canned ACL a grant list (from `AccessControlPolicy`) amounts to:
/// the owner's FULL_CONTROL plus AllUsers READ (and WRITE) at most.
fn canned_from_policy(policy: &AccessControlPolicy) -> S3Result<CannedAcl> {
    let (mut read, mut write) = (false, false);
    for grant in policy.grants.iter().flatten() {
        let grantee = grant.grantee.as_ref();
        let permission = grant.permission.as_ref().map(|p| p.as_str()).unwrap_or("");
        let group = grantee
            .filter(|g| g.type_.as_str() == Type::GROUP)
            .and_then(|g| g.uri.as_deref());
        let canonical = grantee.is_some_and(|g| g.type_.as_str() == Type::CANONICAL_USER);
        let owner_id = policy.owner.as_ref().and_then(|o| o.id.as_deref());
        match (group, permission) {
            (Some(ALL_USERS), Permission::READ) => read = true,
            (Some(ALL_USERS), Permission::WRITE) => write = true,
            (None, Permission::FULL_CONTROL)
                if canonical && grantee.and_then(|g| g.id.as_deref()) == owner_id => {}
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "only the grants of a canned ACL (the owner's FULL_CONTROL, AllUsers READ and WRITE) are supported"
                ))
            }
        }
    }
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

pub(super) async fn put_bucket_acl(
    s3: &S3Frontend,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let headers = GrantHeaders([
        input.grant_full_control.as_ref(),
        input.grant_read.as_ref(),
        input.grant_read_acp.as_ref(),
        input.grant_write.as_ref(),
        input.grant_write_acp.as_ref(),
    ]);
    let acl = match (
        canned(input.acl.as_ref().map(|a| a.as_str()), headers)?,
        &input.access_control_policy,
    ) {
        (Some(acl), None) => acl,
        (None, Some(policy)) => canned_from_policy(policy)?,
        _ => {
            return Err(s3_error!(
                InvalidRequest,
                "give either x-amz-acl or an AccessControlPolicy"
            ))
        }
    };
    s3.store.set_bucket_acl(&access, &input.bucket, acl).await?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub(super) async fn get_bucket_acl(
    s3: &S3Frontend,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let access = s3.access(&req.credentials).await?;
    let bucket = s3.store.bucket_system(&req.input.bucket).await?;
    let yours = matches!(access, Access::Service)
        || bucket.owner.is_none()
        || bucket.owner.as_deref() == access.user_id();
    if !yours {
        return Err(s3_error!(AccessDenied));
    }
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants(bucket.owner.as_deref(), bucket.s3_acl)),
        owner: Some(owner(bucket.owner.as_deref())),
    }))
}

pub(super) async fn put_object_acl(
    s3: &S3Frontend,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let headers = GrantHeaders([
        input.grant_full_control.as_ref(),
        input.grant_read.as_ref(),
        input.grant_read_acp.as_ref(),
        input.grant_write.as_ref(),
        input.grant_write_acp.as_ref(),
    ]);
    let acl = match (
        canned(input.acl.as_ref().map(|a| a.as_str()), headers)?,
        &input.access_control_policy,
    ) {
        (Some(acl), None) => acl,
        (None, Some(policy)) => canned_from_policy(policy)?,
        _ => {
            return Err(s3_error!(
                InvalidRequest,
                "give either x-amz-acl or an AccessControlPolicy"
            ))
        }
    };
    s3.store
        .set_object_acl(&access, &input.bucket, &input.key, acl)
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
    let acl = CannedAcl::of_object(&info.metadata);
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(grants(info.owner.as_deref(), acl)),
        owner: Some(owner(info.owner.as_deref())),
        ..Default::default()
    }))
}
