//! Conditional requests: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since on reads, copies
//! and writes, and the timestamps and ETags they compare.

use super::*;

pub(super) fn ts(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub(super) fn secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

pub(super) fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_string())
}

pub(super) fn matches(cond: &ETagCondition, stored: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == stored,
    }
}

/// Which of the four conditional headers failed, if one did.
pub(super) enum ConditionFailure {
    /// If-Match, or If-Unmodified-Since when If-Match is absent.
    Precondition,
    /// If-None-Match, or If-Modified-Since when If-None-Match is absent.
    NotModified,
}

/// RFC 9110 / S3 precedence of the four conditional headers, shared by reads and copy sources.
pub(super) fn evaluate_conditions(
    rec: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Result<(), ConditionFailure> {
    let modified = rec.last_modified_ms.div_euclid(1000);
    let precondition_holds = match if_match {
        Some(c) => matches(c, &rec.etag),
        None => if_unmodified_since.is_none_or(|t| modified <= secs(t)),
    };
    if !precondition_holds {
        return Err(ConditionFailure::Precondition);
    }
    let modified_since = match if_none_match {
        Some(c) => !matches(c, &rec.etag),
        None => if_modified_since.is_none_or(|t| modified > secs(t)),
    };
    if !modified_since {
        return Err(ConditionFailure::NotModified);
    }
    Ok(())
}

/// GET and HEAD: a failed precondition is 412, an unmodified object 304.
pub(super) fn check_read_conditions(
    rec: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    evaluate_conditions(rec, if_match, if_none_match, if_modified_since, if_unmodified_since).map_err(|f| match f {
        ConditionFailure::Precondition => {
            s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
        }
        ConditionFailure::NotModified => s3_error!(NotModified),
    })
}

/// CopyObject and UploadPartCopy: any failed copy-source condition is 412.
pub(super) fn check_copy_conditions(
    rec: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    evaluate_conditions(rec, if_match, if_none_match, if_modified_since, if_unmodified_since)
        .map_err(|_| s3_error!(PreconditionFailed, "A copy-source condition did not hold"))
}

/// The condition of a conditional PUT: `If-None-Match: *` (create only) or `If-Match: <etag>`.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Option<WriteCondition>> {
    match (if_match, if_none_match) {
        (None, None) => Ok(None),
        (None, Some(ETagCondition::Any)) => Ok(Some(WriteCondition::Absent)),
        (Some(ETagCondition::ETag(e)), None) => Ok(Some(WriteCondition::ETag(e.value().to_string()))),
        (None, Some(ETagCondition::ETag(_))) => {
            Err(s3_error!(NotImplemented, "If-None-Match on a write supports only '*'"))
        }
        (Some(ETagCondition::Any), None) => Err(s3_error!(NotImplemented, "If-Match on a write needs an ETag")),
        (Some(_), Some(_)) => {
            Err(s3_error!(InvalidArgument, "If-Match and If-None-Match cannot both be given on a write"))
        }
    }
}
