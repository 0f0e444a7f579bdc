//! The `dedup` object of the exit summary, one shape for `ringsieve run` and
//! `ringsieve read`: the engine's counters, NAT bindings learned, and the
//! duplicates by tap pair labelled `kept > suppressed`.

use std::collections::BTreeMap;

use flow::{SieveCounters, TapId};
use serde_json::json;

/// The `dedup` object: `counters` summed over the threads, `nat_bindings`
/// learned, tap ids named by `label`.
pub fn dedup_json(counters: &SieveCounters, nat_bindings: u64, label: impl Fn(TapId) -> String) -> serde_json::Value {
    let mut pairs: BTreeMap<String, u64> = BTreeMap::new();
    for ((kept, suppressed), count) in &counters.by_tap_pair {
        *pairs
            .entry(format!("{} > {}", label(*kept), label(*suppressed)))
            .or_default() += count;
    }
    json!({
        "captured": counters.copies,
        "delivered": counters.delivered,
        "duplicates": counters.duplicates,
        "held": counters.held,
        "released_after_window": counters.released_after_window,
        "released_early": counters.released_early,
        "table_full_passes": counters.table_full_passes,
        "nat_bindings": nat_bindings,
        "malformed": counters.malformed,
        "superseded": counters.superseded,
        "tcp_range_duplicates": counters.tcp_range_duplicates,
        "overlap_different_data": counters.overlap_different_data,
        "late_duplicates": counters.late_duplicates,
        "hold_overflow": counters.hold_overflow,
        "duplicates_by_tap_pair": pairs,
    })
}
