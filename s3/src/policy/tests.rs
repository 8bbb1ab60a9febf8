//! Tests of bucket policies: parsing and its refusals, evaluation, and the wildcard matching.

use super::eval::glob;
use super::eval::glob_can_extend;
use super::parse::action_kind;
use super::*;

const BUCKET: &str = "photos";
const EVERYONE: &str = r#""*""#;
const OBJECTS: &str = r#""arn:aws:s3:::photos/*""#;
const THE_BUCKET: &str = r#""arn:aws:s3:::photos""#;

fn known(id: &str) -> bool {
    id == "AKIAALICE" || id == "AKIABOB"
}

/// A statement from its elements' JSON; `more` is appended as is (`,"Condition":…`).
fn st(effect: &str, principal: &str, action: &str, resource: &str, more: &str) -> String {
    format!(r#"{{"Effect":"{effect}","Principal":{principal},"Action":{action},"Resource":{resource}{more}}}"#)
}

/// Everyone may GetObject in the bucket, under `condition` (JSON of the Condition element).
fn get_if(condition: &str) -> String {
    st("Allow", EVERYONE, r#""s3:GetObject""#, OBJECTS, &format!(r#","Condition":{condition}"#))
}

fn read_all() -> String {
    st("Allow", EVERYONE, r#""s3:GetObject""#, OBJECTS, "")
}

fn policy(statements: &str) -> Policy {
    let text = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
    match Policy::parse(&text, BUCKET, known) {
        Ok(p) => p,
        Err(e) => panic!("{text} was refused: {:?}", e.message()),
    }
}

/// The message of the refusal, which must be MalformedPolicy.
fn refusal(text: &str) -> String {
    match Policy::parse(text, BUCKET, known) {
        Ok(_) => panic!("{text} was accepted"),
        Err(e) => {
            assert_eq!(e.code().as_str(), "MalformedPolicy", "{text}");
            e.message().unwrap_or_default().to_string()
        }
    }
}

fn refusal_of_statement(statement: &str) -> String {
    refusal(&format!(r#"{{"Version":"2012-10-17","Statement":{statement}}}"#))
}

fn req<'a>(principal: Option<&'a str>, action: &'a str, resource: &'a str) -> PolicyRequest<'a> {
    PolicyRequest { principal, action, resource, secure: false, source_ip: None, prefix: None }
}

fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

#[test]
fn an_allowed_request_is_allowed_and_others_fall_to_default() {
    let p = policy(&read_all());
    assert_eq!(p.evaluate(&req(None, "s3:GetObject", "arn:aws:s3:::photos/a/b.jpg")), Decision::Allow);
    assert_eq!(p.evaluate(&req(Some("AKIAALICE"), "s3:GetObject", "arn:aws:s3:::photos/x")), Decision::Allow);
    assert_eq!(p.evaluate(&req(None, "s3:PutObject", "arn:aws:s3:::photos/x")), Decision::Default);
    assert_eq!(p.evaluate(&req(None, "s3:ListBucket", "arn:aws:s3:::photos")), Decision::Default);
}

#[test]
fn explicit_deny_beats_allow_whatever_the_order() {
    let deny = st("Deny", r#"{"AWS":"AKIABOB"}"#, r#""s3:*""#, r#""arn:aws:s3:::photos/private/*""#, "");
    let allow = read_all();
    for p in [policy(&format!("{allow},{deny}")), policy(&format!("{deny},{allow}"))] {
        let get = |who, key| p.evaluate(&req(Some(who), "s3:GetObject", &object_arn(BUCKET, key)));
        assert_eq!(get("AKIABOB", "private/a"), Decision::Deny);
        assert_eq!(get("AKIABOB", "public/a"), Decision::Allow);
        assert_eq!(get("AKIAALICE", "private/a"), Decision::Allow);
        assert_eq!(p.evaluate(&req(Some("AKIABOB"), "s3:PutObject", "arn:aws:s3:::photos/a")), Decision::Default);
    }
}

#[test]
fn key_principals_match_only_that_key_and_never_anonymous() {
    let keys = r#"{"AWS":["AKIAALICE"],"CanonicalUser":"AKIABOB"}"#;
    let p = policy(&st("Allow", keys, r#""s3:ListBucket""#, THE_BUCKET, ""));
    let list = |who| p.evaluate(&req(who, "s3:ListBucket", "arn:aws:s3:::photos"));
    assert_eq!(list(Some("AKIAALICE")), Decision::Allow);
    assert_eq!(list(Some("AKIABOB")), Decision::Allow);
    assert_eq!(list(Some("AKIACAROL")), Decision::Default);
    assert_eq!(list(None), Decision::Default);
    let everyone = policy(&st("Allow", r#"{"AWS":"*"}"#, r#""s3:ListBucket""#, THE_BUCKET, ""));
    assert_eq!(everyone.evaluate(&req(None, "s3:ListBucket", "arn:aws:s3:::photos")), Decision::Allow);
}

#[test]
fn stored_policies_keep_deleted_keys_which_match_nobody() {
    let statement = st("Allow", r#"{"AWS":"AKIAGONE"}"#, r#""s3:GetObject""#, OBJECTS, "");
    let text = format!(r#"{{"Statement":{statement}}}"#);
    assert_eq!(refusal(&text), "Invalid principal in policy: AKIAGONE");
    let p = Policy::parse_stored(&text, BUCKET).expect("stored policy");
    assert_eq!(p.evaluate(&req(Some("AKIAALICE"), "s3:GetObject", "arn:aws:s3:::photos/a")), Decision::Default);
    assert_eq!(p.evaluate(&req(Some("AKIAGONE"), "s3:GetObject", "arn:aws:s3:::photos/a")), Decision::Allow);
}

#[test]
fn action_patterns_match_case_insensitively_with_wildcards() {
    let both = r#"["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]"#;
    let p = policy(&st("Allow", EVERYONE, r#"["S3:get*","s3:List?ucket"]"#, both, ""));
    assert_eq!(p.evaluate(&req(None, "s3:GetObjectVersion", "arn:aws:s3:::photos/a")), Decision::Allow);
    assert_eq!(p.evaluate(&req(None, "s3:getbucketacl", "arn:aws:s3:::photos")), Decision::Allow);
    assert_eq!(p.evaluate(&req(None, "s3:ListBucket", "arn:aws:s3:::photos")), Decision::Allow);
    assert_eq!(p.evaluate(&req(None, "s3:ListBucketVersions", "arn:aws:s3:::photos")), Decision::Default);
    assert_eq!(p.evaluate(&req(None, "s3:PutObject", "arn:aws:s3:::photos/a")), Decision::Default);
    let all = policy(&st("Deny", EVERYONE, r#""*""#, r#""arn:aws:s3:::photos*""#, ""));
    assert_eq!(all.evaluate(&req(None, "s3:DeleteBucket", "arn:aws:s3:::photos")), Decision::Deny);
    assert_eq!(all.evaluate(&req(None, "s3:PutObject", "arn:aws:s3:::photos/k")), Decision::Deny);
}

#[test]
fn resource_patterns_are_case_sensitive_and_star_spans_slashes() {
    let resources = r#"["arn:aws:s3:::photos/2024/*.jpg","arn:aws:s3:::photos/a?c"]"#;
    let p = policy(&st("Allow", EVERYONE, r#""s3:GetObject""#, resources, ""));
    let get = |key: &str| p.evaluate(&req(None, "s3:GetObject", &object_arn(BUCKET, key)));
    assert_eq!(get("2024/06/01/x.jpg"), Decision::Allow);
    assert_eq!(get("2024/x.JPG"), Decision::Default);
    assert_eq!(get("abc"), Decision::Allow);
    assert_eq!(get("abbc"), Decision::Default);
    assert_eq!(get("ac"), Decision::Default);
}

#[test]
fn service_level_actions_are_never_decided_by_a_bucket_policy() {
    let p = policy(&st("Deny", EVERYONE, r#""s3:*""#, THE_BUCKET, ""));
    assert_eq!(p.evaluate(&req(None, "s3:ListAllMyBuckets", "arn:aws:s3:::photos")), Decision::Default);
    assert_eq!(
        refusal_of_statement(&st("Allow", EVERYONE, r#""s3:ListAllMyBuckets""#, THE_BUCKET, "")),
        "Action does not apply to any resource(s) in statement: s3:ListAllMyBuckets"
    );
}

#[test]
fn secure_transport_condition_tests_tls() {
    let p =
        policy(&st("Deny", EVERYONE, r#""s3:*""#, OBJECTS, r#","Condition":{"Bool":{"aws:SecureTransport":"false"}}"#));
    let mut r = req(None, "s3:GetObject", "arn:aws:s3:::photos/a");
    assert_eq!(p.evaluate(&r), Decision::Deny);
    r.secure = true;
    assert_eq!(p.evaluate(&r), Decision::Default);
    let json_bool = policy(&get_if(r#"{"Bool":{"AWS:securetransport":true}}"#));
    assert_eq!(json_bool.evaluate(&r), Decision::Allow);
    r.secure = false;
    assert_eq!(json_bool.evaluate(&r), Decision::Default);
}

#[test]
fn source_ip_conditions_match_v4_and_v6_ranges() {
    let p = policy(&get_if(r#"{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32","198.51.100.7"]}}"#));
    let get = |addr: &str| {
        let mut r = req(None, "s3:GetObject", "arn:aws:s3:::photos/a");
        r.source_ip = ip(addr);
        p.evaluate(&r)
    };
    assert_eq!(get("192.0.2.200"), Decision::Allow);
    assert_eq!(get("192.0.3.1"), Decision::Default);
    assert_eq!(get("::ffff:192.0.2.9"), Decision::Allow, "an IPv4 client on an IPv6 socket is IPv4");
    assert_eq!(get("2001:db8:ffff::1"), Decision::Allow);
    assert_eq!(get("2001:db9::1"), Decision::Default);
    assert_eq!(get("198.51.100.7"), Decision::Allow);
    assert_eq!(get("198.51.100.8"), Decision::Default);
    assert_eq!(get("not an address"), Decision::Default, "an unknown address matches no IpAddress");
}

#[test]
fn not_ip_address_matches_outside_ranges_and_when_the_address_is_unknown() {
    let cond = r#","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","::ffff:172.16.0.0/108"]}}"#;
    let p = policy(&st("Deny", EVERYONE, r#""s3:*""#, OBJECTS, cond));
    let put = |addr: Option<IpAddr>| {
        let mut r = req(Some("AKIAALICE"), "s3:PutObject", "arn:aws:s3:::photos/a");
        r.source_ip = addr;
        p.evaluate(&r)
    };
    assert_eq!(put(ip("10.1.2.3")), Decision::Default);
    assert_eq!(put(ip("172.16.9.9")), Decision::Default, "a mapped IPv6 range is an IPv4 range");
    assert_eq!(put(ip("11.0.0.1")), Decision::Deny);
    assert_eq!(put(ip("fe80::1")), Decision::Deny);
    assert_eq!(put(None), Decision::Deny);
}

#[test]
fn prefix_conditions_and_their_negations_including_absent_prefixes() {
    let cond = |op: &str, values: &str| {
        let condition = format!(r#","Condition":{{"{op}":{{"s3:prefix":{values}}}}}"#);
        policy(&st("Allow", EVERYONE, r#""s3:ListBucket""#, THE_BUCKET, &condition))
    };
    let list = |p: &Policy, prefix: Option<&str>| {
        let mut r = req(None, "s3:ListBucket", "arn:aws:s3:::photos");
        r.prefix = prefix;
        p.evaluate(&r) == Decision::Allow
    };
    let equals = cond("StringEquals", r#"["","home/"]"#);
    assert!(list(&equals, Some("")) && list(&equals, Some("home/")));
    assert!(!list(&equals, Some("home/x")) && !list(&equals, Some("HOME/")) && !list(&equals, None));
    let not_equals = cond("StringNotEquals", r#"["secret/","private/"]"#);
    assert!(list(&not_equals, Some("public/")) && list(&not_equals, None));
    assert!(!list(&not_equals, Some("secret/")) && !list(&not_equals, Some("private/")));
    let like = cond("StringLike", r#""home/*""#);
    assert!(list(&like, Some("home/")) && list(&like, Some("home/alice/x")));
    assert!(!list(&like, Some("homes")) && !list(&like, None));
    let not_like = cond("StringNotLike", r#""secret*""#);
    assert!(list(&not_like, Some("public")) && list(&not_like, None) && !list(&not_like, Some("secret/x")));
}

#[test]
fn conditions_of_one_statement_are_all_required() {
    let cond = r#","Condition":{"Bool":{"aws:SecureTransport":"true"},"StringLike":{"s3:prefix":"pub/*"}}"#;
    let p = policy(&st("Allow", EVERYONE, r#""s3:ListBucket""#, THE_BUCKET, cond));
    let list = |secure, prefix| {
        let mut r = req(None, "s3:ListBucket", "arn:aws:s3:::photos");
        (r.secure, r.prefix) = (secure, prefix);
        p.evaluate(&r)
    };
    assert_eq!(list(true, Some("pub/a")), Decision::Allow);
    assert_eq!(list(false, Some("pub/a")), Decision::Default);
    assert_eq!(list(true, Some("priv/a")), Decision::Default);
}

#[test]
fn public_means_granted_to_everyone_without_a_narrow_source_ip() {
    let public = |statement: String| policy(&statement).is_public();
    assert!(public(read_all()));
    let loose = r#","Condition":{"Bool":{"aws:SecureTransport":"true"},"StringLike":{"s3:prefix":"x"}}"#;
    assert!(public(st("Allow", r#"{"AWS":["AKIAALICE","*"]}"#, r#""s3:GetObject""#, OBJECTS, loose)));
    assert!(!public(get_if(r#"{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/48"]}}"#)));
    assert!(public(get_if(r#"{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","0.0.0.0/0"]}}"#)));
    assert!(public(get_if(r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/16"}}"#)));
    assert!(public(get_if(r#"{"NotIpAddress":{"aws:SourceIp":"192.0.2.0/24"}}"#)));
    assert!(!public(st("Deny", EVERYONE, r#""s3:*""#, OBJECTS, "")));
    assert!(!public(st("Allow", r#"{"AWS":"AKIAALICE"}"#, r#""s3:*""#, OBJECTS, "")));
}

#[test]
fn policy_level_refusals_name_the_offending_element() {
    let cases = [
        ("not json", "This policy contains invalid Json"),
        ("[]", "This policy contains invalid Json"),
        (r#"{"Version":"2012-10-17","Statement":[],"Foo":1}"#, "Policy has an unsupported element: Foo"),
        (r#"{"Version":"2020-01-01","Statement":[]}"#, "Policy has an invalid Version: 2020-01-01"),
        (r#"{"Version":"2012-10-17"}"#, "Policy is missing required element: Statement"),
        (r#"{"Statement":[]}"#, "Policy has an empty Statement"),
        (r#"{"Id":1,"Statement":[]}"#, "Policy has an invalid Id"),
        (r#"{"Statement":"x"}"#, "Policy has an invalid Statement"),
        (r#"{"Statement":[],"Statement":[]}"#, "Policy has a duplicate key in policy: Statement"),
    ];
    for (text, message) in cases {
        assert_eq!(refusal(text), message, "{text}");
    }
}

#[test]
fn statement_refusals_name_the_offending_element() {
    let get = r#""s3:GetObject""#;
    let with = |more: &str| st("Allow", EVERYONE, get, OBJECTS, more);
    let cases = [
        (with(r#","NotPrincipal":"*""#), "Policy has an unsupported element: NotPrincipal"),
        (with(r#","NotAction":"s3:GetObject""#), "Policy has an unsupported element: NotAction"),
        (with(r#","NotResource":"x""#), "Policy has an unsupported element: NotResource"),
        (with(r#","Colour":"blue""#), "Policy has an unsupported element: Colour"),
        (with(r#","Effect":"Deny""#), "Policy has a duplicate key in Statement: Effect"),
        (with(r#","Sid":7"#), "Policy has an invalid Sid"),
        (
            r#"{"Principal":"*","Action":"s3:GetObject","Resource":"x"}"#.into(),
            "Policy is missing required element: Effect",
        ),
        (
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"x"}"#.into(),
            "Policy is missing required element: Principal",
        ),
        (r#"{"Effect":"Allow","Principal":"*","Resource":"x"}"#.into(), "Policy is missing required element: Action"),
        (
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}"#.into(),
            "Policy is missing required element: Resource",
        ),
        (st("allow", EVERYONE, get, OBJECTS, ""), "Policy has an invalid Effect: allow"),
        (st("Allow", r#""AKIAALICE""#, get, OBJECTS, ""), "Invalid principal in policy: AKIAALICE"),
        (st("Allow", r#"{"AWS":"AKIAUNKNOWN"}"#, get, OBJECTS, ""), "Invalid principal in policy: AKIAUNKNOWN"),
        (st("Allow", r#"{"AWS":["AKIAALICE",""]}"#, get, OBJECTS, ""), "Invalid principal in policy: "),
        (st("Allow", r#"{"Service":"s3"}"#, get, OBJECTS, ""), "Policy has an unsupported principal type: Service"),
        (st("Allow", "{}", get, OBJECTS, ""), "Policy has an invalid Principal"),
        (st("Allow", EVERYONE, r#""s3:Frobnicate""#, OBJECTS, ""), "Policy has invalid action: s3:Frobnicate"),
        (st("Allow", EVERYONE, r#""iam:*""#, OBJECTS, ""), "Policy has invalid action: iam:*"),
        (
            st("Allow", EVERYONE, r#""s3:PutObjectRetention""#, OBJECTS, ""),
            "Policy has invalid action: s3:PutObjectRetention",
        ),
        (st("Allow", EVERYONE, "[]", OBJECTS, ""), "Policy has an empty Action"),
        (st("Allow", EVERYONE, "5", OBJECTS, ""), "Policy has an invalid Action"),
        (
            st("Allow", EVERYONE, get, r#""arn:aws:s3:::otherbucket/*""#, ""),
            "Policy has invalid resource: arn:aws:s3:::otherbucket/*",
        ),
        (
            st("Allow", EVERYONE, get, r#""arn:aws:s3:::photos2*""#, ""),
            "Policy has invalid resource: arn:aws:s3:::photos2*",
        ),
        (st("Allow", EVERYONE, get, r#""photos/*""#, ""), "Policy has invalid resource: photos/*"),
        (
            st("Allow", EVERYONE, get, r#""arn:aws:s3:::photos/${aws:username}""#, ""),
            "Policy variables are not supported: arn:aws:s3:::photos/${aws:username}",
        ),
        (
            st("Allow", EVERYONE, r#"["s3:GetObject","s3:ListBucket"]"#, OBJECTS, ""),
            "Action does not apply to any resource(s) in statement: s3:ListBucket",
        ),
        (
            st("Allow", EVERYONE, get, THE_BUCKET, ""),
            "Action does not apply to any resource(s) in statement: s3:GetObject",
        ),
    ];
    for (statement, message) in cases {
        assert_eq!(refusal_of_statement(&statement), message, "{statement}");
    }
}

#[test]
fn condition_refusals_name_the_operator_key_or_value() {
    let cases = [
        (r#"{"StringLike":{"aws:UserAgent":"curl*"}}"#, "Unsupported condition key: aws:UserAgent"),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2020"}}"#, "Unsupported condition operator: DateGreaterThan"),
        (r#"{"StringEqualsIfExists":{"s3:prefix":"a"}}"#, "Unsupported condition operator: StringEqualsIfExists"),
        (r#"{"ForAnyValue:StringLike":{"s3:prefix":"a"}}"#, "Unsupported condition operator: ForAnyValue:StringLike"),
        (r#"{"Bool":{"s3:prefix":"true"}}"#, "Condition operator Bool does not apply to s3:prefix"),
        (
            r#"{"StringLike":{"aws:SourceIp":"1.2.3.4"}}"#,
            "Condition operator StringLike does not apply to aws:SourceIp",
        ),
        (r#"{"Bool":{"aws:SecureTransport":"yes"}}"#, "Invalid value for condition key aws:SecureTransport: yes"),
        (
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}"#,
            "Invalid value for condition key aws:SourceIp: 10.0.0.0/33",
        ),
        (r#"{"IpAddress":{"aws:SourceIp":"10.0.0/8"}}"#, "Invalid value for condition key aws:SourceIp: 10.0.0/8"),
        (r#"{"IpAddress":{"aws:SourceIp":"::1/+3"}}"#, "Invalid value for condition key aws:SourceIp: ::1/+3"),
        (r#"{"StringEquals":{"s3:prefix":[]}}"#, "Policy has an empty s3:prefix"),
        (r#"{"StringEquals":{"s3:prefix":3}}"#, "Invalid value for condition key s3:prefix"),
        (
            r#"{"StringLike":{"s3:prefix":"${aws:username}/*"}}"#,
            "Policy variables are not supported: ${aws:username}/*",
        ),
        (
            r#"{"StringLike":{"s3:prefix":"a"},"StringLike":{"s3:prefix":"b"}}"#,
            "Policy has a duplicate key in Condition: StringLike",
        ),
        (r#"[]"#, "Policy has an invalid Condition"),
    ];
    for (condition, message) in cases {
        assert_eq!(refusal_of_statement(&get_if(condition)), message, "{condition}");
    }
}

#[test]
fn wildcard_actions_and_resources_pass_when_some_pair_applies() {
    policy(&st("Allow", EVERYONE, r#""s3:*""#, OBJECTS, ""));
    policy(&st("Allow", EVERYONE, r#""s3:*""#, THE_BUCKET, ""));
    policy(&st("Allow", EVERYONE, r#""s3:ListBucket""#, r#""arn:aws:s3:::*""#, ""));
    policy(&st("Allow", EVERYONE, r#""s3:GetObject""#, r#""arn:aws:s3:::ph?tos/*""#, ""));
    let statement = read_all().replacen('{', r#"{"Sid":"s","#, 1);
    let v2008 = format!(r#"{{"Version":"2008-10-17","Id":"x","Statement":{statement}}}"#);
    assert!(Policy::parse(&v2008, BUCKET, known).is_ok());
}

#[test]
fn oversized_and_overlong_policies_are_refused() {
    let padded = format!(r#"{{"Id":"{}","Statement":{}}}"#, "x".repeat(MAX_POLICY_BYTES), read_all());
    assert_eq!(refusal(&padded), "Policies must be 20 KB or smaller");
    let many = vec![read_all(); MAX_STATEMENTS + 1].join(",");
    assert_eq!(
        refusal(&format!(r#"{{"Statement":[{many}]}}"#)),
        format!("Policies must have at most {MAX_STATEMENTS} statements")
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(deep.len() <= MAX_POLICY_BYTES);
    assert_eq!(refusal(&deep), "This policy contains invalid Json");
}

#[test]
fn pathological_wildcards_finish_and_answer_right() {
    let chars = |s: &str| s.chars().collect::<Vec<_>>();
    let pattern = chars("a*a*a*a*a*a*a*b");
    assert!(!glob(&pattern, &chars(&"a".repeat(10_000))));
    assert!(glob(&pattern, &chars(&format!("{}b", "a".repeat(10_000)))));
    let resource = r#""arn:aws:s3:::photos/*a*a*a*a*a*a*a*a*a*b""#;
    let p = policy(&st("Deny", EVERYONE, r#""s3:GetObject""#, resource, ""));
    let key = object_arn(BUCKET, &"a".repeat(10_000));
    assert_eq!(p.evaluate(&req(None, "s3:GetObject", &key)), Decision::Default);
    let key = object_arn(BUCKET, &format!("{}b", "a".repeat(10_000)));
    assert_eq!(p.evaluate(&req(None, "s3:GetObject", &key)), Decision::Deny);
}

#[test]
fn glob_and_prefix_extension_agree_on_small_cases() {
    let chars = |s: &str| s.chars().collect::<Vec<_>>();
    for (pattern, text, full) in [
        ("", "", true),
        ("*", "", true),
        ("?", "", false),
        ("a?c", "abc", true),
        ("a*c", "ac", true),
        ("a*c", "abcbd", false),
        ("*/*", "b/k/x", true),
        ("b*", "b", true),
        ("é?", "éx", true),
    ] {
        assert_eq!(glob(&chars(pattern), &chars(text)), full, "{pattern} vs {text}");
        if full {
            assert!(glob_can_extend(&chars(pattern), &chars(text)), "{pattern} extends {text}");
        }
    }
    assert!(glob_can_extend(&chars("photos/a"), &chars("photos/")));
    assert!(!glob_can_extend(&chars("photos"), &chars("photos/")));
    assert!(!glob_can_extend(&chars("photos2*"), &chars("photos/")));
    assert!(glob_can_extend(&chars("p*"), &chars("photos/")));
}

#[test]
fn every_action_is_classified_as_aws_does() {
    let objects: Vec<&str> = ACTIONS.iter().copied().filter(|a| action_kind(a) == Kind::Object).collect();
    assert_eq!(objects.len(), 19, "{objects:?}");
    assert!(objects.iter().all(|a| a.contains("Object") || a.contains("Multipart")));
    assert_eq!(action_kind("s3:ListBucketMultipartUploads"), Kind::Bucket);
    assert_eq!(action_kind("s3:GetBucketObjectLockConfiguration"), Kind::Bucket);
    assert_eq!(action_kind("s3:CreateBucket"), Kind::Bucket);
    assert_eq!(action_kind("s3:ListAllMyBuckets"), Kind::Service);
}
