//! Reading a policy: the client's JSON (or the stored text) parsed and validated into a [`Policy`], and the
//! `MalformedPolicy` refusals that name what hoard does not evaluate.

use std::collections::HashSet;
use std::fmt;

use s3s::s3_error;
use s3s::S3Error;
use serde::de;
use serde::Deserialize;
use serde::Deserializer;

use super::eval::glob;
use super::eval::glob_can_extend;
use super::eval::Net;
use super::Condition;
use super::Effect;
use super::Kind;
use super::Policy;
use super::Principals;
use super::Statement;
use super::ACTIONS;
use super::ARN_PREFIX;
use super::MAX_POLICY_BYTES;
use super::MAX_STATEMENTS;
use super::SERVICE_ACTIONS;

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

pub(super) fn action_kind(action: &str) -> Kind {
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
