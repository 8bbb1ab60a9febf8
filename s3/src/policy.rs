//! Bucket policies: the subset of the AWS policy language hoard evaluates, parsed from the client's JSON at
//! PutBucketPolicy (with [`Policy::parse`]) and again from the stored text at every request
//! (with [`Policy::parse_stored`]), then [`Policy::evaluate`]d against the request.
//!
//! Invariants:
//! - Nothing is silently ignored: a policy that uses an element, action, principal type, condition operator or
//!   condition key hoard does not evaluate — or a duplicated JSON key, or a policy variable (`${…}`), which
//!   AWS would substitute and hoard would not (whatever the Version) — is refused with `MalformedPolicy` naming
//!   it. So what hoard enforces is what the policy says.
//! - An explicit Deny beats any Allow; a request no statement applies to gets [`Decision::Default`].
//! - Wildcard matching costs at most O(pattern × text) (no backtracking blow-up): a hostile policy or key
//!   cannot hang a request. Policies are at most [`MAX_POLICY_BYTES`] long, at most [`MAX_STATEMENTS`] statements.
//! - An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is compared as the IPv4 address it is, so
//!   an IPv4 condition cannot be sidestepped by the address family.
//!
//! Choices where AWS leaves room:
//! - A condition on a key the request has no value for (`s3:prefix` outside a listing, `aws:SourceIp` when
//!   the address is unknown) is false for `StringEquals`, `StringLike` and `IpAddress`, and true for the
//!   negated `StringNotEquals`, `StringNotLike` and `NotIpAddress` (as IAM does). Values of one condition are
//!   ORed (a negated operator matches when no value does); operators and keys are ANDed.
//! - Each action of a statement must apply to one of its resources (object actions to `…:::bucket/key`
//!   patterns, bucket actions to `…:::bucket`), else "Action does not apply to any resource(s) in statement".
//!   `s3:ListAllMyBuckets` is service-level: it applies to no resource here, and a bucket policy never decides
//!   it (`evaluate` answers `Default`), even through `s3:*`.
//! - Principals are `*` or access key ids, under `AWS` or `CanonicalUser` (hoard's canonical user id is the
//!   key id); an IAM ARN is not a key id, so `parse` refuses it. A resource may use wildcards in its bucket
//!   part as long as it can name this bucket or its objects (`arn:aws:s3:::*` can; `arn:aws:s3:::other*` cannot).
//! - A policy is public ([`Policy::is_public`]) when an Allow statement grants to `*` without an `IpAddress`
//!   condition on `aws:SourceIp` whose ranges are all no wider than /8 (IPv4) or /32 (IPv6).

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use s3s::s3_error;
use s3s::S3Error;
use serde::de;
use serde::Deserialize;
use serde::Deserializer;

/// The longest policy accepted (AWS's limit for bucket policies).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;
/// The most statements a policy may hold; with [`MAX_POLICY_BYTES`] it bounds the work of every evaluation.
pub const MAX_STATEMENTS: usize = 100;

/// All IAM action names hoard evaluates, as AWS spells them: what action patterns are checked against. An
/// operation hoard leaves to root alone (object lock's retention and legal hold) has no action here, so a
/// policy naming one is refused rather than granting nothing in silence.
#[rustfmt::skip]
pub const ACTIONS: &[&str] = &[
    // Object actions: they apply to `arn:aws:s3:::bucket/key` resources.
    "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    "s3:GetObjectAcl", "s3:PutObjectAcl", "s3:GetObjectVersionAcl", "s3:PutObjectVersionAcl",
    "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging",
    "s3:GetObjectVersionTagging", "s3:PutObjectVersionTagging", "s3:DeleteObjectVersionTagging",
    "s3:GetObjectAttributes", "s3:GetObjectVersionAttributes",
    // Bucket actions: they apply to `arn:aws:s3:::bucket`.
    "s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation",
    "s3:GetBucketVersioning", "s3:PutBucketVersioning", "s3:GetBucketAcl", "s3:PutBucketAcl",
    "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "s3:GetBucketCORS", "s3:PutBucketCORS",
    "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration", "s3:GetBucketTagging", "s3:PutBucketTagging",
    "s3:GetBucketObjectLockConfiguration", "s3:DeleteBucket", "s3:CreateBucket",
    // Service actions: no bucket policy decides them.
    "s3:ListAllMyBuckets",
];

/// Actions on no bucket or object: never decided by a bucket policy.
const SERVICE_ACTIONS: [&str; 1] = ["s3:ListAllMyBuckets"];
const ARN_PREFIX: &str = "arn:aws:s3:::";

/// The resource of a bucket operation.
pub fn bucket_arn(bucket: &str) -> String {
    format!("{ARN_PREFIX}{bucket}")
}

/// The resource of an object operation.
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("{ARN_PREFIX}{bucket}/{key}")
}

/// A parsed, validated bucket policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// What a request looks like to a policy.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The caller's access key id; None for an anonymous request.
    pub principal: Option<&'a str>,
    /// IAM action name, e.g. "s3:GetObject", "s3:ListBucket", "s3:PutObject".
    pub action: &'a str,
    /// "arn:aws:s3:::bucket" for bucket operations, "arn:aws:s3:::bucket/key" for object operations.
    pub resource: &'a str,
    /// Request arrived over TLS.
    pub secure: bool,
    /// The client's IP address, when known.
    pub source_ip: Option<IpAddr>,
    /// The `prefix` query parameter of a listing (for `s3:prefix`), when the request is a listing; a listing
    /// without one passes `Some("")`, so that AWS's idiom `"s3:prefix": ["", "home/"]` allows the root listing.
    pub prefix: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No statement applies.
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
enum Principals {
    Everyone,
    /// Access key ids (or canonical user ids, which in hoard are the same).
    Keys(Vec<String>),
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principals: Principals,
    /// Lowercased: actions match case-insensitively.
    actions: Vec<Vec<char>>,
    resources: Vec<Vec<char>>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
enum Condition {
    /// `Bool` on `aws:SecureTransport`.
    SecureTransport(Vec<bool>),
    /// `IpAddress` / `NotIpAddress` on `aws:SourceIp`.
    SourceIp { negated: bool, nets: Vec<Net> },
    /// `StringEquals`, `StringNotEquals`, `StringLike`, `StringNotLike` on `s3:prefix`.
    Prefix { negated: bool, like: bool, values: Vec<Vec<char>> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bucket,
    Object,
    Service,
}

impl Policy {
    /// `bucket`: the bucket the policy is put on (resources must name it); `known_principal(id)`: whether an
    /// access key id exists (principals other than "*" must be known key ids).
    pub fn parse(text: &str, bucket: &str, known_principal: impl Fn(&str) -> bool) -> Result<Policy, S3Error> {
        parse(text, bucket, Some(&known_principal))
    }

    /// Same rules, without the principal-existence check: used to evaluate an already stored policy
    /// (a key deleted since simply matches nobody).
    pub fn parse_stored(text: &str, bucket: &str) -> Result<Policy, S3Error> {
        parse(text, bucket, None)
    }

    pub fn evaluate(&self, req: &PolicyRequest<'_>) -> Decision {
        if SERVICE_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(req.action)) {
            return Decision::Default;
        }
        let action: Vec<char> = req.action.to_ascii_lowercase().chars().collect();
        let resource: Vec<char> = req.resource.chars().collect();
        let prefix: Option<Vec<char>> = req.prefix.map(|p| p.chars().collect());
        let source_ip = req.source_ip.map(canonical_ip);
        let mut allowed = false;
        for s in &self.statements {
            let principal = match (&s.principals, req.principal) {
                (Principals::Everyone, _) => true,
                (Principals::Keys(keys), Some(key)) => keys.iter().any(|k| k == key),
                (Principals::Keys(_), None) => false,
            };
            let applies = principal
                && s.actions.iter().any(|p| glob(p, &action))
                && s.conditions.iter().all(|c| c.holds(req.secure, source_ip, prefix.as_deref()))
                && s.resources.iter().any(|p| glob(p, &resource));
            match (applies, s.effect) {
                (true, Effect::Deny) => return Decision::Deny,
                (true, Effect::Allow) => allowed = true,
                (false, _) => {}
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::Default
        }
    }

    /// Whether some Allow statement grants to everyone ("*") without a condition that narrows who can use it
    /// (an aws:SourceIp condition narrows it; aws:SecureTransport and s3:prefix do not) — AWS's notion of a
    /// "public" policy for Block Public Access (BlockPublicPolicy, RestrictPublicBuckets, GetBucketPolicyStatus).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && matches!(s.principals, Principals::Everyone)
                && !s.conditions.iter().any(|c| match c {
                    Condition::SourceIp { negated: false, nets } => nets.iter().all(Net::is_narrow),
                    _ => false,
                })
        })
    }
}

impl Condition {
    fn holds(&self, secure: bool, source_ip: Option<IpAddr>, prefix: Option<&[char]>) -> bool {
        match self {
            Condition::SecureTransport(values) => values.contains(&secure),
            Condition::SourceIp { negated, nets } => match source_ip {
                Some(ip) => nets.iter().any(|n| n.contains(ip)) != *negated,
                None => *negated,
            },
            Condition::Prefix { negated, like, values } => match prefix {
                Some(p) => values.iter().any(|v| if *like { glob(v, p) } else { v.as_slice() == p }) != *negated,
                None => *negated,
            },
        }
    }
}

fn parse(text: &str, bucket: &str, known: Option<&dyn Fn(&str) -> bool>) -> Result<Policy, S3Error> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(s3_error!(MalformedPolicy, "Policies must be 20 KB or smaller"));
    }
    let json: Json = serde_json::from_str(text).map_err(|_| invalid_json())?;
    if !matches!(json, Json::Object(_)) {
        return Err(invalid_json());
    }
    let mut statements = None;
    for (key, value) in object(&json, "policy")? {
        match key.as_str() {
            "Version" => match value {
                Json::String(v) if v == "2012-10-17" || v == "2008-10-17" => {}
                Json::String(v) => return Err(s3_error!(MalformedPolicy, "Policy has an invalid Version: {v}")),
                _ => return Err(invalid("Version")),
            },
            "Id" => {
                string(value, "Id")?;
            }
            "Statement" => statements = Some(value),
            other => return Err(unsupported(other)),
        }
    }
    let statements = one_or_many(statements.ok_or_else(|| missing("Statement"))?, "Statement")?;
    if statements.len() > MAX_STATEMENTS {
        return Err(s3_error!(MalformedPolicy, "Policies must have at most {MAX_STATEMENTS} statements"));
    }
    let statements = statements.into_iter().map(|s| statement(s, bucket, known)).collect::<Result<_, _>>()?;
    Ok(Policy { statements })
}

fn statement(json: &Json, bucket: &str, known: Option<&dyn Fn(&str) -> bool>) -> Result<Statement, S3Error> {
    let (mut effect, mut principal, mut action, mut resource) = (None, None, None, None);
    let mut conditions = Vec::new();
    for (key, value) in object(json, "Statement")? {
        match key.as_str() {
            "Sid" => {
                string(value, "Sid")?;
            }
            "Effect" => {
                effect = Some(match string(value, "Effect")? {
                    "Allow" => Effect::Allow,
                    "Deny" => Effect::Deny,
                    other => return Err(s3_error!(MalformedPolicy, "Policy has an invalid Effect: {other}")),
                })
            }
            "Principal" => principal = Some(principals(value, known)?),
            "Action" => action = Some(strings(value, "Action")?),
            "Resource" => resource = Some(strings(value, "Resource")?),
            "Condition" => conditions = self::conditions(value)?,
            other => return Err(unsupported(other)),
        }
    }
    let effect = effect.ok_or_else(|| missing("Effect"))?;
    let principals = principal.ok_or_else(|| missing("Principal"))?;
    let actions = action.ok_or_else(|| missing("Action"))?;
    let resources = resource.ok_or_else(|| missing("Resource"))?;

    // Which kinds of resource each pattern can name: (the bucket, objects of the bucket).
    let mut kinds = Vec::with_capacity(resources.len());
    for r in &resources {
        if r.contains("${") {
            return Err(s3_error!(MalformedPolicy, "Policy variables are not supported: {r}"));
        }
        let kind = resource_kinds(r, bucket);
        if kind == (false, false) {
            return Err(s3_error!(MalformedPolicy, "Policy has invalid resource: {r}"));
        }
        kinds.push(kind);
    }
    let mut patterns = Vec::with_capacity(actions.len());
    for a in &actions {
        let pattern: Vec<char> = a.to_ascii_lowercase().chars().collect();
        let matched: Vec<Kind> = ACTIONS
            .iter()
            .filter(|known| glob(&pattern, &known.to_ascii_lowercase().chars().collect::<Vec<_>>()))
            .map(|known| action_kind(known))
            .collect();
        if matched.is_empty() {
            return Err(s3_error!(MalformedPolicy, "Policy has invalid action: {a}"));
        }
        let applies = |k: &Kind| kinds.iter().any(|&(b, o)| (*k == Kind::Bucket && b) || (*k == Kind::Object && o));
        if !matched.iter().any(applies) {
            return Err(s3_error!(MalformedPolicy, "Action does not apply to any resource(s) in statement: {a}"));
        }
        patterns.push(pattern);
    }
    Ok(Statement {
        effect,
        principals,
        actions: patterns,
        resources: resources.iter().map(|r| r.chars().collect()).collect(),
        conditions,
    })
}

fn principals(json: &Json, known: Option<&dyn Fn(&str) -> bool>) -> Result<Principals, S3Error> {
    let entries = match json {
        Json::String(s) if s == "*" => return Ok(Principals::Everyone),
        Json::String(s) => return Err(s3_error!(MalformedPolicy, "Invalid principal in policy: {s}")),
        _ => object(json, "Principal")?,
    };
    if entries.is_empty() {
        return Err(invalid("Principal"));
    }
    let (mut everyone, mut keys) = (false, Vec::new());
    for (kind, ids) in entries {
        if kind != "AWS" && kind != "CanonicalUser" {
            return Err(s3_error!(MalformedPolicy, "Policy has an unsupported principal type: {kind}"));
        }
        for id in strings(ids, "Principal")? {
            if id == "*" {
                everyone = true;
            } else if id.is_empty() || known.is_some_and(|known| !known(id)) {
                return Err(s3_error!(MalformedPolicy, "Invalid principal in policy: {id}"));
            } else {
                keys.push(id.to_owned());
            }
        }
    }
    Ok(if everyone { Principals::Everyone } else { Principals::Keys(keys) })
}

fn conditions(json: &Json) -> Result<Vec<Condition>, S3Error> {
    let mut out = Vec::new();
    for (operator, block) in object(json, "Condition")? {
        let (negated, like) = match operator.as_str() {
            "Bool" | "IpAddress" | "StringEquals" => (false, false),
            "NotIpAddress" | "StringNotEquals" => (true, false),
            "StringLike" => (false, true),
            "StringNotLike" => (true, true),
            other => return Err(s3_error!(MalformedPolicy, "Unsupported condition operator: {other}")),
        };
        for (key, values) in object(block, operator)? {
            let lower = key.to_ascii_lowercase();
            match (operator.as_str(), lower.as_str()) {
                ("Bool", "aws:securetransport") | ("IpAddress" | "NotIpAddress", "aws:sourceip") => {}
                (op, "s3:prefix") if op.starts_with("String") => {}
                (_, "aws:securetransport" | "aws:sourceip" | "s3:prefix") => {
                    return Err(s3_error!(MalformedPolicy, "Condition operator {operator} does not apply to {key}"))
                }
                _ => return Err(s3_error!(MalformedPolicy, "Unsupported condition key: {key}")),
            }
            let values = condition_values(values, key)?;
            let condition = match lower.as_str() {
                "aws:securetransport" => Condition::SecureTransport(
                    values.iter().map(|v| parse_bool(v).ok_or_else(|| bad_value(key, v))).collect::<Result<_, _>>()?,
                ),
                "aws:sourceip" => Condition::SourceIp {
                    negated,
                    nets: values
                        .iter()
                        .map(|v| Net::parse(v).ok_or_else(|| bad_value(key, v)))
                        .collect::<Result<_, _>>()?,
                },
                _ => {
                    if let Some(v) = values.iter().find(|v| v.contains("${")) {
                        return Err(s3_error!(MalformedPolicy, "Policy variables are not supported: {v}"));
                    }
                    Condition::Prefix { negated, like, values: values.iter().map(|v| v.chars().collect()).collect() }
                }
            };
            out.push(condition);
        }
    }
    Ok(out)
}

/// A condition's values: a string or boolean, or a non-empty array of them.
fn condition_values(json: &Json, key: &str) -> Result<Vec<String>, S3Error> {
    one_or_many(json, key)?
        .into_iter()
        .map(|v| match v {
            Json::String(s) => Ok(s.clone()),
            Json::Bool(b) => Ok(b.to_string()),
            _ => Err(s3_error!(MalformedPolicy, "Invalid value for condition key {key}")),
        })
        .collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The kinds of resource an `arn:aws:s3:::…` pattern can name in `bucket`: (the bucket, its objects).
fn resource_kinds(pattern: &str, bucket: &str) -> (bool, bool) {
    let Some(rest) = pattern.strip_prefix(ARN_PREFIX) else {
        return (false, false);
    };
    let pattern: Vec<char> = rest.chars().collect();
    let mut name: Vec<char> = bucket.chars().collect();
    let names_bucket = glob(&pattern, &name);
    name.push('/');
    (names_bucket, glob_can_extend(&pattern, &name))
}

fn action_kind(action: &str) -> Kind {
    const OBJECT: [&str; 2] = ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"];
    if SERVICE_ACTIONS.contains(&action) {
        Kind::Service
    } else if ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"].iter().any(|p| action.starts_with(p))
        || OBJECT.contains(&action)
    {
        Kind::Object
    } else {
        Kind::Bucket
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (including `/`) and `?` any one
/// character. Greedy with a single backtrack point: O(|pattern| × |text|) at worst, never exponential.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen, and the text position it is currently taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            star = Some((sp, st + 1));
            p = sp + 1;
            t = st + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether some text starting with `prefix` matches `pattern`: the set of pattern positions reachable after
/// `prefix` is not empty (any live position can be completed). O(|pattern| × |prefix|).
fn glob_can_extend(pattern: &[char], prefix: &[char]) -> bool {
    let close = |live: &mut Vec<bool>| {
        for i in 0..pattern.len() {
            if live[i] && pattern[i] == '*' {
                live[i + 1] = true;
            }
        }
    };
    let mut live = vec![false; pattern.len() + 1];
    live[0] = true;
    close(&mut live);
    for &c in prefix {
        let mut next = vec![false; pattern.len() + 1];
        for (i, &pc) in pattern.iter().enumerate().filter(|&(i, _)| live[i]) {
            if pc == '*' {
                next[i] = true;
            } else if pc == '?' || pc == c {
                next[i + 1] = true;
            }
        }
        close(&mut next);
        live = next;
    }
    live.contains(&true)
}

/// An address range of an `aws:SourceIp` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    len: u32,
}

impl Net {
    /// `a.b.c.d`, `a.b.c.d/n`, or the IPv6 equivalents; host bits past the prefix are ignored, as AWS does.
    fn parse(text: &str) -> Option<Net> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u32>().ok().filter(|&l| l <= max)?
            }
            Some(_) => return None,
        };
        Some(match addr {
            IpAddr::V6(v6) if len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Net { addr: IpAddr::V4(v4), len: len - 96 },
                None => Net { addr, len },
            },
            _ => Net { addr, len },
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u32::from(n) ^ u32::from(i)).checked_shr(32 - self.len).unwrap_or(0) == 0
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                (u128::from(n) ^ u128::from(i)).checked_shr(128 - self.len).unwrap_or(0) == 0
            }
            _ => false,
        }
    }

    /// Whether the range is small enough that a grant limited to it is not public.
    fn is_narrow(&self) -> bool {
        self.len >= if self.addr.is_ipv4() { 8 } else { 32 }
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A JSON document whose objects keep every key in order, so that a duplicated key can be refused rather
/// than one of its values silently winning.
enum Json {
    /// `null` or a number: never valid in a policy hoard evaluates.
    Other,
    Bool(bool),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> de::Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Other)
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// The entries of an object, refused if it is not one or repeats a key.
fn object<'a>(json: &'a Json, what: &str) -> Result<&'a [(String, Json)], S3Error> {
    let Json::Object(entries) = json else {
        return Err(invalid(what));
    };
    let mut seen = HashSet::with_capacity(entries.len());
    if let Some((key, _)) = entries.iter().find(|(key, _)| !seen.insert(key.as_str())) {
        return Err(s3_error!(MalformedPolicy, "Policy has a duplicate key in {what}: {key}"));
    }
    Ok(entries)
}

/// A single value, or the items of a non-empty array.
fn one_or_many<'a>(json: &'a Json, what: &str) -> Result<Vec<&'a Json>, S3Error> {
    match json {
        Json::Array(items) if items.is_empty() => Err(s3_error!(MalformedPolicy, "Policy has an empty {what}")),
        Json::Array(items) => Ok(items.iter().collect()),
        one => Ok(vec![one]),
    }
}

fn string<'a>(json: &'a Json, what: &str) -> Result<&'a str, S3Error> {
    match json {
        Json::String(s) => Ok(s),
        _ => Err(invalid(what)),
    }
}

fn strings<'a>(json: &'a Json, what: &str) -> Result<Vec<&'a str>, S3Error> {
    one_or_many(json, what)?.into_iter().map(|v| string(v, what)).collect()
}

fn invalid_json() -> S3Error {
    s3_error!(MalformedPolicy, "This policy contains invalid Json")
}

fn invalid(what: &str) -> S3Error {
    s3_error!(MalformedPolicy, "Policy has an invalid {what}")
}

fn missing(element: &str) -> S3Error {
    s3_error!(MalformedPolicy, "Policy is missing required element: {element}")
}

fn unsupported(element: &str) -> S3Error {
    s3_error!(MalformedPolicy, "Policy has an unsupported element: {element}")
}

fn bad_value(key: &str, value: &str) -> S3Error {
    s3_error!(MalformedPolicy, "Invalid value for condition key {key}: {value}")
}

#[cfg(test)]
mod tests {
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
        let p = policy(&st(
            "Deny",
            EVERYONE,
            r#""s3:*""#,
            OBJECTS,
            r#","Condition":{"Bool":{"aws:SecureTransport":"false"}}"#,
        ));
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
            (
                r#"{"Effect":"Allow","Principal":"*","Resource":"x"}"#.into(),
                "Policy is missing required element: Action",
            ),
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
            (
                r#"{"ForAnyValue:StringLike":{"s3:prefix":"a"}}"#,
                "Unsupported condition operator: ForAnyValue:StringLike",
            ),
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
}
