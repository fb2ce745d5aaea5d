//! The Redis keys of a gateway key's counters: one name for each, used by admit and record.
//!
//! `gw:{<key>}:rpm:<window>`, `gw:{<key>}:tpm:<window>` (window: index of the minute since
//! the Unix epoch) and `gw:{<key>}:budget:<period seconds>:<period index>` (or
//! `gw:{<key>}:budget:forever` when the budget never resets). The braces are Redis Cluster's
//! hash tag: every counter of one gateway key hashes to one slot, which a multi-key script
//! needs there. The period's length is part of a budget's key, so changing `budget_period`
//! starts new counts instead of reading another period's under the same index.

use std::time::Duration;

/// The requests counted in window `index`.
pub(crate) fn requests(key: &str, index: u64) -> String {
    format!("gw:{{{key}}}:rpm:{index}")
}

/// The tokens counted in window `index`.
pub(crate) fn tokens(key: &str, index: u64) -> String {
    format!("gw:{{{key}}}:tpm:{index}")
}

/// The spend of budget period `index` of length `period`, or of all time.
pub(crate) fn budget(key: &str, period: Option<(Duration, u64)>) -> String {
    match period {
        Some((length, index)) => {
            format!("gw:{{{key}}}:budget:{}:{index}", length.as_secs())
        }
        None => format!("gw:{{{key}}}:budget:forever"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_gateway_key_in_a_hash_tag_and_the_window() {
        assert_eq!(requests("team-a", 7), "gw:{team-a}:rpm:7");
        assert_eq!(tokens("team-a", 7), "gw:{team-a}:tpm:7");
        assert_eq!(
            budget("team-a", Some((Duration::from_secs(86_400), 3))),
            "gw:{team-a}:budget:86400:3"
        );
        assert_eq!(budget("team-a", None), "gw:{team-a}:budget:forever");
    }
}
