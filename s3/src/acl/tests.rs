//! Tests of ACLs: canned ACLs, header grants and bodies and their refusals, the DTO and stored forms, and
//! what an ACL allows.

use s3s::dto::AccessControlPolicy;
use s3s::dto::PutBucketAclInput;
use s3s::dto::PutObjectAclInput;
use s3s::dto::PutObjectInput;
use s3s::S3ErrorCode;

use super::*;

const OWNER: &str = "HKOWNER0000000000000";
const OTHER: &str = "HKOTHER0000000000000";
const BUCKET_OWNER: &str = "HKBUCKET000000000000";

fn known(id: &str) -> bool {
    [OWNER, OTHER, BUCKET_OWNER].contains(&id)
}

fn user(id: &str, p: AclPermission) -> AclGrant {
    grant(Grantee::User(id.to_owned()), p)
}

fn request(req: AclRequest<'_>) -> Result<Option<Acl>, S3Error> {
    Acl::from_request(&req, OWNER, BUCKET_OWNER, known)
}

fn code<T: std::fmt::Debug>(r: Result<T, S3Error>) -> S3ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().clone(),
    }
}

fn canned(name: &str) -> Vec<AclGrant> {
    match Acl::canned(name, OWNER, BUCKET_OWNER) {
        Ok(acl) => acl.grants,
        Err(e) => panic!("{name}: {e:?}"),
    }
}

fn grants(req: AclRequest<'_>) -> Vec<AclGrant> {
    match request(req) {
        Ok(Some(acl)) => acl.grants,
        other => panic!("expected an ACL, got {other:?}"),
    }
}

#[test]
fn canned_acls_grant_what_aws_documents() {
    use AclPermission::*;
    let owner = user(OWNER, FullControl);
    assert_eq!(canned("private"), vec![owner.clone()]);
    assert_eq!(canned("public-read"), vec![owner.clone(), grant(Grantee::AllUsers, Read)]);
    assert_eq!(
        canned("public-read-write"),
        vec![owner.clone(), grant(Grantee::AllUsers, Read), grant(Grantee::AllUsers, Write)]
    );
    assert_eq!(canned("authenticated-read"), vec![owner.clone(), grant(Grantee::AuthenticatedUsers, Read)]);
    assert_eq!(canned("bucket-owner-read"), vec![owner.clone(), user(BUCKET_OWNER, Read)]);
    assert_eq!(canned("bucket-owner-full-control"), vec![owner, user(BUCKET_OWNER, FullControl)]);
}

#[test]
fn bucket_owner_canned_acls_on_a_bucket_are_private() {
    for name in ["bucket-owner-read", "bucket-owner-full-control"] {
        assert_eq!(Acl::canned(name, OWNER, OWNER).ok(), Some(Acl::private(OWNER)));
    }
}

#[test]
fn canned_acls_for_aws_principals_and_unknown_names_are_invalid_argument() {
    for name in ["aws-exec-read", "log-delivery-write", "Private", "", "public"] {
        assert_eq!(code(Acl::canned(name, OWNER, OWNER)), S3ErrorCode::InvalidArgument, "{name}");
    }
    let refusal = Acl::canned("aws-exec-read", OWNER, OWNER).err().and_then(|e| e.message().map(str::to_owned));
    assert!(refusal.is_some_and(|m| m.contains("aws-exec-read")));
}

#[test]
fn a_request_naming_no_acl_gives_none() {
    assert_eq!(request(AclRequest::default()).ok(), Some(None));
}

#[test]
fn a_canned_request_uses_the_bucket_owner() {
    let req = AclRequest { canned: Some("bucket-owner-read"), ..Default::default() };
    assert_eq!(grants(req), canned("bucket-owner-read"));
}

#[test]
fn header_grants_parse_several_grantees_quoted_or_not() {
    use AclPermission::*;
    let req = AclRequest {
        grant_read: Some(&format!(r#"id="{OTHER}", uri="{ALL_USERS_URI}" ,ID={BUCKET_OWNER}"#)),
        grant_full_control: Some(&format!(r#"  id = "{OWNER}"  "#)),
        grant_write_acp: Some(&format!("uri={AUTHENTICATED_USERS_URI}")),
        ..Default::default()
    };
    assert_eq!(
        grants(req),
        vec![
            user(OTHER, Read),
            grant(Grantee::AllUsers, Read),
            user(BUCKET_OWNER, Read),
            grant(Grantee::AuthenticatedUsers, WriteAcp),
            user(OWNER, FullControl),
        ]
    );
}

#[test]
fn header_grants_give_the_owner_nothing_implicit() {
    let req = AclRequest { grant_read: Some(&format!("id={OTHER}")), ..Default::default() };
    assert_eq!(grants(req), vec![user(OTHER, AclPermission::Read)]);
}

#[test]
fn root_id_is_always_known() {
    let req = AclRequest { grant_write: Some(r#"id="hoard""#), ..Default::default() };
    assert_eq!(grants(req), vec![user(ROOT_ID, AclPermission::Write)]);
}

#[test]
fn header_grant_to_an_unknown_id_is_invalid_argument() {
    let req = AclRequest { grant_read: Some(&format!("id={OTHER}, id=HKNOSUCHKEY000000000")), ..Default::default() };
    let err = request(req).err();
    assert_eq!(err.as_ref().map(|e| e.code().clone()), Some(S3ErrorCode::InvalidArgument));
    assert_eq!(err.as_ref().and_then(|e| e.message()), Some("Invalid id"));
}

#[test]
fn header_grant_by_email_is_unresolvable() {
    let req = AclRequest { grant_read: Some(r#"emailAddress="someone@example.com""#), ..Default::default() };
    assert_eq!(code(request(req)), S3ErrorCode::UnresolvableGrantByEmailAddress);
}

#[test]
fn header_grant_to_log_delivery_or_an_unknown_group_is_invalid_argument() {
    for uri in [LOG_DELIVERY_URI, "http://acs.amazonaws.com/groups/global/Nobody", "AllUsers"] {
        let value = format!("uri=\"{uri}\"");
        let req = AclRequest { grant_read: Some(&value), ..Default::default() };
        assert_eq!(code(request(req)), S3ErrorCode::InvalidArgument, "{uri}");
    }
}

#[test]
fn malformed_header_grants_are_invalid_argument() {
    let bad = [
        "",
        " ",
        "id",
        "id=",
        r#"id="""#,
        &format!("id={OTHER},"),
        &format!(r#"id="{OTHER}"#),
        &format!(r#"id={OTHER}""#),
        &format!("name={OTHER}"),
        &format!(r#"id="{OTHER}", , id="{OWNER}""#),
    ];
    for value in bad {
        let req = AclRequest { grant_read_acp: Some(value), ..Default::default() };
        assert_eq!(code(request(req)), S3ErrorCode::InvalidArgument, "{value:?}");
    }
}

#[test]
fn canned_acl_with_header_grants_is_invalid_request() {
    let req = AclRequest { canned: Some("private"), grant_read: Some(&format!("id={OTHER}")), ..Default::default() };
    let err = request(req).err();
    assert_eq!(err.as_ref().map(|e| e.code().clone()), Some(S3ErrorCode::InvalidRequest));
    assert_eq!(
        err.as_ref().and_then(|e| e.message()),
        Some("Specifying both Canned ACLs and Header Grants is not allowed")
    );
}

#[test]
fn a_body_with_a_canned_acl_or_header_grants_is_unexpected_content() {
    let body = Acl::private(OWNER).to_dto();
    let with_canned = AclRequest { canned: Some("private"), body: Some(&body), ..Default::default() };
    assert_eq!(code(request(with_canned)), S3ErrorCode::UnexpectedContent);
    let with_grant = AclRequest { grant_write: Some(&format!("id={OTHER}")), body: Some(&body), ..Default::default() };
    assert_eq!(code(request(with_grant)), S3ErrorCode::UnexpectedContent);
}

#[test]
fn more_than_max_grants_is_malformed_acl() {
    let ids = vec![format!("id={OTHER}"); MAX_GRANTS / 2];
    let half = ids.join(",");
    let full = AclRequest { grant_read: Some(&half), grant_write: Some(&half), ..Default::default() };
    assert_eq!(grants(full).len(), MAX_GRANTS);
    let over = AclRequest {
        grant_read: Some(&half),
        grant_write: Some(&half),
        grant_read_acp: Some(&ids[0]),
        ..Default::default()
    };
    assert_eq!(code(request(over)), S3ErrorCode::MalformedACLError);

    let mut acl = Acl::private(OWNER);
    acl.grants = vec![user(OTHER, AclPermission::Read); MAX_GRANTS + 1];
    let body = acl.to_dto();
    assert_eq!(code(request(AclRequest { body: Some(&body), ..Default::default() })), S3ErrorCode::MalformedACLError);
}

#[test]
fn a_body_round_trips_through_the_dto() {
    let acl = Acl {
        owner: OWNER.to_owned(),
        grants: vec![
            user(OWNER, AclPermission::FullControl),
            user(OTHER, AclPermission::ReadAcp),
            grant(Grantee::AllUsers, AclPermission::Read),
            grant(Grantee::AuthenticatedUsers, AclPermission::Write),
            user(ROOT_ID, AclPermission::WriteAcp),
        ],
    };
    let body = acl.to_dto();
    assert_eq!(request(AclRequest { body: Some(&body), ..Default::default() }).ok(), Some(Some(acl)));
}

#[test]
fn the_dto_is_written_as_aws_writes_it() {
    let mut acl = Acl::canned("public-read", OWNER, OWNER).unwrap_or_else(|e| panic!("{e:?}"));
    acl.grants.push(grant(Grantee::AuthenticatedUsers, AclPermission::ReadAcp));
    let dto = acl.to_dto();
    let owner = dto.owner.unwrap_or_default();
    assert_eq!((owner.id.as_deref(), owner.display_name.as_deref()), (Some(OWNER), Some(OWNER)));
    let grants = dto.grants.unwrap_or_default();
    let shown: Vec<_> = grants
        .iter()
        .map(|g| {
            let grantee = g.grantee.as_ref();
            (
                grantee.map(|e| e.type_.as_str().to_owned()),
                grantee.and_then(|e| e.id.clone()),
                grantee.and_then(|e| e.uri.clone()),
                g.permission.as_ref().map(|p| p.as_str().to_owned()),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        shown,
        vec![
            (s("CanonicalUser"), s(OWNER), None, s("FULL_CONTROL")),
            (s("Group"), None, s("http://acs.amazonaws.com/groups/global/AllUsers"), s("READ")),
            (s("Group"), None, s("http://acs.amazonaws.com/groups/global/AuthenticatedUsers"), s("READ_ACP")),
        ]
    );
}

#[test]
fn a_body_owner_other_than_the_current_owner_is_access_denied() {
    let mut body = Acl::private(OWNER).to_dto();
    body.owner = Some(dto::Owner { display_name: None, id: Some(OTHER.to_owned()) });
    assert_eq!(code(request(AclRequest { body: Some(&body), ..Default::default() })), S3ErrorCode::AccessDenied);
    body.owner = None;
    assert!(request(AclRequest { body: Some(&body), ..Default::default() }).is_ok());
}

#[test]
fn body_grantees_are_checked_like_header_grantees() {
    let with = |grantee: dto::Grantee, permission: &str| AccessControlPolicy {
        grants: Some(vec![dto::Grant {
            grantee: Some(grantee),
            permission: Some(dto::Permission::from(permission.to_owned())),
        }]),
        owner: None,
    };
    let blank = |t: &'static str| dto::Grantee {
        display_name: None,
        email_address: None,
        id: None,
        type_: dto::Type::from_static(t),
        uri: None,
    };
    let id = |id: &str| dto::Grantee { id: Some(id.to_owned()), ..blank(dto::Type::CANONICAL_USER) };
    let uri = |uri: &str| dto::Grantee { uri: Some(uri.to_owned()), ..blank(dto::Type::GROUP) };
    let email =
        dto::Grantee { email_address: Some("a@example.com".to_owned()), ..blank(dto::Type::AMAZON_CUSTOMER_BY_EMAIL) };
    let cases = [
        (with(id("HKNOSUCHKEY000000000"), "READ"), S3ErrorCode::InvalidArgument),
        (with(uri(LOG_DELIVERY_URI), "WRITE"), S3ErrorCode::InvalidArgument),
        (with(email, "READ"), S3ErrorCode::UnresolvableGrantByEmailAddress),
        (with(id(OTHER), "read"), S3ErrorCode::MalformedACLError),
        (with(id(OTHER), "DELETE"), S3ErrorCode::MalformedACLError),
        (with(blank(dto::Type::CANONICAL_USER), "READ"), S3ErrorCode::MalformedACLError),
        (with(blank(dto::Type::GROUP), "READ"), S3ErrorCode::MalformedACLError),
    ];
    for (body, expected) in cases {
        assert_eq!(code(request(AclRequest { body: Some(&body), ..Default::default() })), expected, "{body:?}");
    }
    let no_permission = AccessControlPolicy {
        grants: Some(vec![dto::Grant { grantee: Some(id(OTHER)), permission: None }]),
        owner: None,
    };
    assert_eq!(
        code(request(AclRequest { body: Some(&no_permission), ..Default::default() })),
        S3ErrorCode::MalformedACLError
    );
    let odd_type = with(dto::Grantee { id: Some(OTHER.to_owned()), ..blank("Robot") }, "READ");
    assert_eq!(
        code(request(AclRequest { body: Some(&odd_type), ..Default::default() })),
        S3ErrorCode::MalformedACLError
    );
}

#[test]
fn an_empty_body_removes_every_grant() {
    let body = AccessControlPolicy::default();
    let acl = request(AclRequest { body: Some(&body), ..Default::default() }).ok().flatten();
    assert_eq!(acl, Some(Acl { owner: OWNER.to_owned(), grants: vec![] }));
}

#[test]
fn acl_requests_come_from_s3s_inputs() {
    let input = PutBucketAclInput {
        acl: Some(dto::BucketCannedACL::from_static(dto::BucketCannedACL::PUBLIC_READ)),
        grant_write: Some("id=x".to_owned()),
        ..Default::default()
    };
    let req = AclRequest::from(&input);
    assert_eq!((req.canned, req.grant_write, req.body.is_none()), (Some("public-read"), Some("id=x"), true));
    let input = PutObjectInput { grant_full_control: Some("id=y".to_owned()), ..Default::default() };
    let req = AclRequest::from(&input);
    assert_eq!((req.canned, req.grant_full_control), (None, Some("id=y")));
    let input = PutObjectAclInput { access_control_policy: Some(Acl::private(OWNER).to_dto()), ..Default::default() };
    assert_eq!(request(AclRequest::from(&input)).ok(), Some(Some(Acl::private(OWNER))));
}

#[test]
fn the_stored_form_is_versioned_json_that_round_trips() {
    let mut acl = Acl::canned("public-read", OWNER, OWNER).unwrap_or_else(|e| panic!("{e:?}"));
    acl.grants.push(grant(Grantee::AuthenticatedUsers, AclPermission::WriteAcp));
    let json = acl.to_json();
    // Pinned: a change here breaks ACLs already stored in a running cluster.
    assert_eq!(
        json,
        format!(
            r#"{{"v":"1","owner":"{OWNER}","grants":[{{"grantee":{{"User":"{OWNER}"}},"permission":"FULL_CONTROL"}},{{"grantee":"AllUsers","permission":"READ"}},{{"grantee":"AuthenticatedUsers","permission":"WRITE_ACP"}}]}}"#
        )
    );
    assert_eq!(Acl::from_json(&json).ok(), Some(acl));
}

#[test]
fn a_stored_form_of_unknown_version_or_shape_is_an_internal_error() {
    for bad in [r#"{"v":"2","owner":"hoard","grants":[]}"#, r#"{"owner":"hoard","grants":[]}"#, "", "[]"] {
        assert_eq!(code(Acl::from_json(bad)), S3ErrorCode::InternalError, "{bad}");
    }
}

#[test]
fn allows_follows_grants_and_full_control_implies_all() {
    use AclPermission::*;
    let acl = Acl {
        owner: OWNER.to_owned(),
        grants: vec![user(OTHER, Read), user(BUCKET_OWNER, FullControl), grant(Grantee::AuthenticatedUsers, Write)],
    };
    for perm in AclPermission::ALL {
        assert!(acl.allows(Some(BUCKET_OWNER), perm, false), "{perm:?}");
    }
    assert!(acl.allows(Some(OTHER), Read, false));
    assert!(acl.allows(Some(OTHER), Write, false), "OTHER is an authenticated user");
    assert!(!acl.allows(Some(OTHER), ReadAcp, false));
    assert!(!acl.allows(Some(OTHER), FullControl, false));
    assert!(acl.allows(Some("HKSTRANGER0000000000"), Write, false));
    assert!(!acl.allows(Some("HKSTRANGER0000000000"), Read, false));
    for perm in AclPermission::ALL {
        assert!(!acl.allows(None, perm, false), "anonymous is no authenticated user: {perm:?}");
    }
}

#[test]
fn the_owner_always_holds_read_acp_and_write_acp() {
    use AclPermission::*;
    let acl = Acl { owner: OWNER.to_owned(), grants: vec![] };
    assert!(acl.allows(Some(OWNER), ReadAcp, true));
    assert!(acl.allows(Some(OWNER), WriteAcp, true));
    assert!(!acl.allows(Some(OWNER), Read, false));
    assert!(!acl.allows(Some(OWNER), Write, false));
    assert!(!acl.allows(Some(OTHER), ReadAcp, false));
}

#[test]
fn all_users_match_anonymous_and_ignore_public_discards_group_grants() {
    use AclPermission::*;
    let acl = Acl::canned("public-read-write", OWNER, OWNER).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(acl.allows(None, Read, false));
    assert!(acl.allows(None, Write, false));
    assert!(acl.allows(Some(OTHER), Read, false));
    assert!(!acl.allows(None, Read, true));
    assert!(!acl.allows(Some(OTHER), Read, true));
    assert!(acl.allows(Some(OWNER), Read, true), "the owner's own grant is not public");
    let authenticated = Acl::canned("authenticated-read", OWNER, OWNER).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(authenticated.allows(Some(OTHER), Read, false));
    assert!(!authenticated.allows(Some(OTHER), Read, true));
}

#[test]
fn is_public_means_a_grant_to_a_group() {
    let public = |name: &str| Acl::canned(name, OWNER, BUCKET_OWNER).map(|a| a.is_public()).ok();
    assert_eq!(public("private"), Some(false));
    assert_eq!(public("bucket-owner-full-control"), Some(false));
    assert_eq!(public("public-read"), Some(true));
    assert_eq!(public("public-read-write"), Some(true));
    assert_eq!(public("authenticated-read"), Some(true));
}

#[test]
fn permissions_parse_their_s3_names_only() {
    for p in AclPermission::ALL {
        assert_eq!(AclPermission::parse(p.as_str()), Some(p));
    }
    assert_eq!(AclPermission::parse("full_control"), None);
}
