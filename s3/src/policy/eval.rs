//! Evaluating a parsed policy against a request ([`Policy::evaluate`], [`Policy::is_public`]), and the matching
//! it rests on: wildcard patterns and `aws:SourceIp` address ranges.

use std::net::IpAddr;

use super::Condition;
use super::Decision;
use super::Effect;
use super::Policy;
use super::PolicyRequest;
use super::Principals;
use super::SERVICE_ACTIONS;

impl Policy {
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

/// Whether `text` matches `pattern`, where `*` matches any run of characters (including `/`) and `?` any one
/// character. Greedy with a single backtrack point: O(|pattern| × |text|) at worst, never exponential.
pub(super) fn glob(pattern: &[char], text: &[char]) -> bool {
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
pub(super) fn glob_can_extend(pattern: &[char], prefix: &[char]) -> bool {
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
pub(super) struct Net {
    addr: IpAddr,
    len: u32,
}

impl Net {
    /// `a.b.c.d`, `a.b.c.d/n`, or the IPv6 equivalents; host bits past the prefix are ignored, as AWS does.
    pub(super) fn parse(text: &str) -> Option<Net> {
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
