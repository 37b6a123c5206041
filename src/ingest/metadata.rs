//! Metric metadata: the `# TYPE`, `# HELP` and `# UNIT` lines of each target's last page, per
//! metric family, for `/api/v1/metadata`. Kept in memory only, as Prometheus keeps it in its
//! scrape cache: the scrape loop replaces a target's entries only when its metadata lines
//! changed (they rarely do), and they go with the target.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One metric family's metadata as a target exposes it; `/api/v1/metadata`'s entry shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct MetricMeta {
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset` or
    /// `unknown` (no `# TYPE` line, or `untyped`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The `# HELP` text, escapes resolved.
    pub help: String,
    /// The `# UNIT` (OpenMetrics), or empty.
    pub unit: String,
}

/// One target's families: (family name, metadata), in page order.
type Families = Arc<[(String, MetricMeta)]>;

/// Every target's metadata, by target key.
#[derive(Debug, Default)]
pub struct Metadata {
    targets: Mutex<HashMap<String, Families>>,
}

impl Metadata {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Families>> {
        // Each write replaces one map entry whole: a panic elsewhere leaves it consistent.
        self.targets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the metadata of `target` (empty: the target exposes none).
    pub fn set(&self, target: &str, families: Vec<(String, MetricMeta)>) {
        let mut m = self.lock();
        if families.is_empty() {
            m.remove(target);
        } else {
            m.insert(target.to_owned(), families.into());
        }
    }

    /// Whether `target` has metadata stored.
    pub fn contains(&self, target: &str) -> bool {
        self.lock().contains_key(target)
    }

    /// Forgets a target that is no longer scraped.
    pub fn remove(&self, target: &str) {
        self.lock().remove(target);
    }

    /// Metric name → its distinct metadata across targets, names sorted; only `metric` when
    /// given; at most `limit` metrics and `limit_per_metric` entries each (Prometheus' params).
    pub fn list(
        &self,
        metric: Option<&str>,
        limit: Option<usize>,
        limit_per_metric: Option<usize>,
    ) -> BTreeMap<String, Vec<MetricMeta>> {
        let snapshot: Vec<Families> = self.lock().values().cloned().collect();
        let mut all: BTreeMap<&str, BTreeSet<&MetricMeta>> = BTreeMap::new();
        for families in &snapshot {
            for (name, meta) in families.iter() {
                if metric.is_none_or(|m| m == name) {
                    all.entry(name.as_str()).or_default().insert(meta);
                }
            }
        }
        all.into_iter()
            .take(limit.unwrap_or(usize::MAX))
            .map(|(name, metas)| {
                let metas = metas
                    .into_iter()
                    .take(limit_per_metric.unwrap_or(usize::MAX))
                    .cloned()
                    .collect();
                (name.to_owned(), metas)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
