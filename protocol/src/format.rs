//! Versioned encodings: every stored or sent value is its type's version byte, then bincode.
//!
//! Each persisted type says which version it writes ([`Persisted::VERSION`], 1 for every type so far) and
//! reads every earlier one ([`Persisted::migrate`]). Changing a type's layout goes like this (as Garage's
//! `migrate` does):
//!
//! 1. Freeze the current definition under a new name (`ObjectRecordV1`), with its own `Persisted` impl at
//!    its own version, and never change it again.
//! 2. Change the type, raise its `VERSION`, and write `migrate`: for an old version, decode the frozen
//!    predecessor (which migrates from still older ones) and convert it forward.
//! 3. Raise the version of every persisted type that contains it too (a `MetaCommand` holds an
//!    `ObjectRecord`, a Raft entry holds a `MetaCommand`): only the outermost value carries a version byte,
//!    and bincode does not describe its own layout.
//! 4. Add a golden vector of the new version, keep the old one, and add an upgrade fixture
//!    (`it/fixtures/`) written by the last build before the change.
//!
//! A new `MetaCommand` variant is readable only by builds that know it: once clusters exist, proposing one
//! must wait until every member runs a build that does (a cluster version, not yet needed by one node).
//!
//! A version newer than this build's is refused (`UnknownVersion`): a node never guesses at data written by a
//! newer node.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Errors decoding persisted or received bytes.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty encoding")]
    Empty,
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// A type stored on disk, in the Raft log, or sent, in a versioned form.
pub trait Persisted: Serialize + DeserializeOwned {
    /// The version this build writes.
    const VERSION: u8 = 1;

    /// Decodes `body`, written as `version` (older than [`Self::VERSION`]), into this version. Types that
    /// never changed have no older version.
    fn migrate(version: u8, body: &[u8]) -> Result<Self, ProtocolError> {
        let _ = body;
        Err(ProtocolError::UnknownVersion(version))
    }
}

/// Encodes a value: its type's version, then the value.
pub fn encode<T: Persisted>(value: &T) -> Vec<u8> {
    let mut out = vec![T::VERSION];
    // Serializing plain data structs into a Vec cannot fail: no maps with non-string keys, no I/O.
    bincode::serialize_into(&mut out, value).expect("bincode serialization of protocol types is infallible");
    out
}

/// The length of what [`encode`] makes of `value`, without encoding it.
pub fn encoded_len<T: Persisted>(value: &T) -> u64 {
    bincode::serialized_size(value).map_or(u64::MAX, |n| n.saturating_add(1))
}

/// Decodes a value written by [`encode`] by this build or an earlier one.
pub fn decode<T: Persisted>(bytes: &[u8]) -> Result<T, ProtocolError> {
    match bytes.split_first() {
        None => Err(ProtocolError::Empty),
        Some((&v, body)) if v == T::VERSION => body_of(body),
        Some((&v, body)) if v >= 1 && v < T::VERSION => T::migrate(v, body),
        Some((&v, _)) => Err(ProtocolError::UnknownVersion(v)),
    }
}

/// The bincode body of a value of the version it was written as.
pub fn body_of<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    bincode::deserialize(body).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Marks types at version 1 that have never changed.
#[macro_export]
macro_rules! persisted_v1 {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::format::Persisted for $t {}
    )*};
}

/// Checks stored forms against their golden vector: `golden` is the text of `file` (`name hex` lines), and
/// every value must be there as it encodes now, and nothing else. A mismatch names the value and prints every
/// value as encoded now. For the golden-vector tests of every crate.
pub fn assert_golden(file: &str, golden: &str, values: &[(&str, Vec<u8>)]) {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let lines: std::collections::BTreeMap<&str, &str> = golden.lines().filter_map(|l| l.split_once(' ')).collect();
    let printed: Vec<String> = values.iter().map(|(name, bytes)| format!("{name} {}", hex(bytes))).collect();
    for (name, bytes) in values {
        assert_eq!(
            lines.get(name).copied(),
            Some(hex(bytes).as_str()),
            "the stored form of `{name}` differs from {file}; what is stored would no longer decode. Every value as \
             encoded now:\n{}\n",
            printed.join("\n")
        );
    }
    assert_eq!(lines.len(), values.len(), "every line of {file} has its value");
}

impl<T: Persisted> Persisted for Option<T> {
    const VERSION: u8 = T::VERSION;

    fn migrate(version: u8, body: &[u8]) -> Result<Self, ProtocolError> {
        // `None` is one zero byte in every version; `Some` is 1 and the value's body.
        match body.split_first() {
            Some((0, [])) => Ok(None),
            Some((1, rest)) => T::migrate(version, rest).map(Some),
            _ => Err(ProtocolError::Malformed("not an option".into())),
        }
    }
}

persisted_v1!(u64, i64, u32, String, Vec<u8>);

/// The openraft records the metadata store keeps (log entries, vote, log ids, membership, snapshot meta).
impl<C> Persisted for openraft::Entry<C>
where
    C: openraft::RaftTypeConfig,
    Self: Serialize + DeserializeOwned,
{
}
impl<NID: openraft::NodeId> Persisted for openraft::Vote<NID> where Self: Serialize + DeserializeOwned {}
impl<NID: openraft::NodeId> Persisted for openraft::LogId<NID> where Self: Serialize + DeserializeOwned {}
impl<NID: openraft::NodeId, N: openraft::Node> Persisted for openraft::StoredMembership<NID, N> where
    Self: Serialize + DeserializeOwned
{
}
impl<NID: openraft::NodeId, N: openraft::Node> Persisted for openraft::SnapshotMeta<NID, N> where
    Self: Serialize + DeserializeOwned
{
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// A type as it was first written.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct ThingV1 {
        name: String,
    }
    impl Persisted for ThingV1 {}

    /// The same type after a field was added: version 2 reads version 1.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Thing {
        name: String,
        size: u64,
    }
    impl Persisted for Thing {
        const VERSION: u8 = 2;
        fn migrate(version: u8, body: &[u8]) -> Result<Self, ProtocolError> {
            match version {
                1 => {
                    let old: ThingV1 = body_of(body)?;
                    Ok(Thing { name: old.name, size: 0 })
                }
                v => Err(ProtocolError::UnknownVersion(v)),
            }
        }
    }

    #[test]
    fn a_type_reads_its_earlier_versions_and_refuses_later_ones() {
        let old = encode(&ThingV1 { name: "a".into() });
        assert_eq!(old[0], 1);
        assert_eq!(decode::<Thing>(&old).unwrap(), Thing { name: "a".into(), size: 0 });
        let new = encode(&Thing { name: "b".into(), size: 7 });
        assert_eq!(new[0], 2);
        assert_eq!(decode::<Thing>(&new).unwrap(), Thing { name: "b".into(), size: 7 });
        assert!(matches!(decode::<ThingV1>(&new), Err(ProtocolError::UnknownVersion(2))), "newer is refused");
        let mut future = new.clone();
        future[0] = 3;
        assert!(matches!(decode::<Thing>(&future), Err(ProtocolError::UnknownVersion(3))));
        assert!(matches!(decode::<Thing>(&[]), Err(ProtocolError::Empty)));
        // An optional value migrates as its value does.
        let some = encode(&Some(ThingV1 { name: "c".into() }));
        assert_eq!(decode::<Option<Thing>>(&some).unwrap(), Some(Thing { name: "c".into(), size: 0 }));
        assert_eq!(decode::<Option<Thing>>(&encode(&None::<ThingV1>)).unwrap(), None);
    }
}
