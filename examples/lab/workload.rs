//! What a measurement cell runs: an operation mix over the key set.

/// Where inserts take their keys from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertKeys {
    /// Keys that are not preloaded ([`crate::keys::KeySet::fresh`]); the runner removes them after
    /// each run (untimed), so every run starts from the same map.
    Fresh,
    /// Preloaded keys chosen by the cell's distribution (an overwrite, or a re-insert after a
    /// remove); the map stays near its preloaded size.
    Preloaded,
}

/// An operation mix, in percent (the four weights add up to 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpMix {
    /// Point lookups of preloaded keys.
    pub get: u32,
    /// Inserts, of keys chosen by `insert_keys`.
    pub insert: u32,
    /// Removes of preloaded keys.
    pub remove: u32,
    /// Range scans of `scan_len` pairs starting at a preloaded key.
    pub scan: u32,
    /// Pairs per scan.
    pub scan_len: usize,
    /// Where inserted keys come from.
    pub insert_keys: InsertKeys,
}

impl OpMix {
    /// Only lookups.
    pub const GET: OpMix = OpMix {
        get: 100,
        insert: 0,
        remove: 0,
        scan: 0,
        scan_len: 0,
        insert_keys: InsertKeys::Fresh,
    };

    /// Only inserts of fresh keys.
    pub const INSERT: OpMix = OpMix {
        insert: 100,
        get: 0,
        ..OpMix::GET
    };

    /// Only scans of `len` pairs.
    pub const fn scan(len: usize) -> OpMix {
        OpMix {
            get: 0,
            scan: 100,
            scan_len: len,
            ..OpMix::GET
        }
    }

    /// Seed 001's mix: 80% get, 10% insert, 5% remove, 5% range (of 100 pairs), over the preloaded
    /// keys.
    pub const MIXED: OpMix = OpMix {
        get: 80,
        insert: 10,
        remove: 5,
        scan: 5,
        scan_len: 100,
        insert_keys: InsertKeys::Preloaded,
    };

    /// Whether the mix changes the map.
    pub fn mutates(&self) -> bool {
        self.insert > 0 || self.remove > 0
    }

    /// Whether the weights add up to 100 and scans have a length.
    pub fn is_valid(&self) -> bool {
        self.get + self.insert + self.remove + self.scan == 100
            && (self.scan == 0 || self.scan_len > 0)
    }
}

/// The default report's workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Point lookups (all hits).
    Get,
    /// Range scans of the given number of pairs.
    Scan(usize),
    /// Inserts of fresh, uniformly random keys (ascending ones with sequential keys).
    Insert,
    /// 80% get, 10% insert, 5% remove, 5% scan.
    Mixed,
}

impl Workload {
    /// All of them, in the order they run on a loaded map: read-only ones first.
    pub const ALL: [Workload; 6] = [
        Workload::Get,
        Workload::Scan(10),
        Workload::Scan(100),
        Workload::Scan(1000),
        Workload::Insert,
        Workload::Mixed,
    ];

    /// The most threads the mixed workload runs with (seed 001: 1 to 32).
    pub const MIXED_MAX_THREADS: usize = 32;

    /// Short name (command line, file names, CSV).
    pub fn id(self) -> String {
        match self {
            Workload::Get => "get".into(),
            Workload::Scan(len) => format!("scan{len}"),
            Workload::Insert => "insert".into(),
            Workload::Mixed => "mixed".into(),
        }
    }

    /// The workload with short name `id`.
    pub fn parse(id: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.id() == id)
    }

    /// A sentence for the report.
    pub fn describe(self) -> String {
        match self {
            Workload::Get => "point lookups of preloaded keys (every one must hit)".into(),
            Workload::Scan(len) => format!(
                "range scans returning {len} pairs from a preloaded key (throughput in pairs/s)"
            ),
            Workload::Insert => {
                "inserts of fresh keys into the loaded map (removed again after each run, untimed)"
                    .into()
            }
            Workload::Mixed => {
                "80% get, 10% insert (upsert), 5% remove, 5% scan of 100 pairs, over the preloaded keys"
                    .into()
            }
        }
    }

    /// The operation mix.
    pub fn mix(self) -> OpMix {
        match self {
            Workload::Get => OpMix::GET,
            Workload::Scan(len) => OpMix::scan(len),
            Workload::Insert => OpMix::INSERT,
            Workload::Mixed => OpMix::MIXED,
        }
    }

    /// Whether throughput is reported in pairs per second rather than operations per second.
    pub fn counts_pairs(self) -> bool {
        matches!(self, Workload::Scan(_))
    }

    /// Whether `threads` is one of this workload's thread counts.
    pub fn runs_with(self, threads: usize) -> bool {
        self != Workload::Mixed || threads <= Self::MIXED_MAX_THREADS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_are_valid_and_ids_round_trip() {
        for w in Workload::ALL {
            assert!(w.mix().is_valid(), "{w:?}");
            assert_eq!(Workload::parse(&w.id()), Some(w));
        }
        assert!(!Workload::Get.mix().mutates());
        assert!(Workload::Mixed.mix().mutates());
        assert!(Workload::parse("scan7").is_none());
    }
}
