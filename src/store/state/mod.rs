//! The small transactional state, in sled: the rules engine's alert state and transitions, the
//! dispatcher's notification log, outbox and silences, the gate engine's deployments, and
//! `meta`. [`StateStore`] is its handle.
//!
//! These records are few and rarely written, and each decides whether someone is paged: every
//! write here is durable (sled flushed and the witness advanced before it returns). Values are
//! a format byte followed by the owner's type as JSON, so the owner evolves its type with serde
//! defaults and the store never needs to know its fields; alert transitions, the one record
//! that grows with time, are binary (see the `transitions` module).

mod outbox;
mod transitions;

pub use transitions::AlertTransition;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::codec::DecodeError;
use super::shared::Shared;

/// Handle to the state: cheap to clone, every clone the same trees. Its owners are the rules
/// engine (alert state, transitions), the dispatcher (notification log, outbox, silences), the
/// gate engine (deployments) and the probe runner's sink (probe alert state).
#[derive(Clone)]
pub struct StateStore {
    shared: Arc<Shared>,
    trees: Arc<Trees>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

/// One tree per kind of record, so that scans of one kind never walk another's keys.
pub(super) struct Trees {
    /// Alert transitions by alert name and time (see the `transitions` module).
    pub(super) transitions: sled::Tree,
    /// Queued notifications by id.
    outbox: sled::Tree,
    nlog: sled::Tree,
    silences: sled::Tree,
    deployments: sled::Tree,
    alert_state: sled::Tree,
    /// Log sources' positions with their counters, and their kept (redacted) lines.
    logs: sled::Tree,
    /// The store's own keys (`store.*`: format marker, durable-flush sequence) and the write
    /// check's.
    pub(super) meta: sled::Tree,
}

impl Trees {
    pub(super) fn open(db: &sled::Db) -> Result<Trees, sled::Error> {
        Ok(Trees {
            transitions: db.open_tree("alert_transitions")?,
            outbox: db.open_tree("outbox")?,
            nlog: db.open_tree("nlog")?,
            silences: db.open_tree("silences")?,
            deployments: db.open_tree("deployments")?,
            alert_state: db.open_tree("alert_state")?,
            logs: db.open_tree("logs")?,
            meta: db.open_tree("meta")?,
        })
    }

    /// Reads every record of the small trees, so that damage sled reports is found at open
    /// rather than at the first page.
    pub(super) fn walk(&self) -> Result<(), sled::Error> {
        for tree in [
            &self.outbox,
            &self.nlog,
            &self.silences,
            &self.deployments,
            &self.alert_state,
            &self.logs,
            &self.meta,
        ] {
            for kv in tree.iter() {
                kv?;
            }
        }
        Ok(())
    }
}

/// Format byte of JSON values.
const JSON_V1: u8 = 1;

/// A tree of string-keyed JSON records owned by one component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The dispatcher's notification log: what was last sent for each group and receiver,
    /// so that a restart does not page twice.
    Nlog,
    /// The dispatcher's silences, by id.
    Silences,
    /// The gate engine's deployments and verdicts, by id.
    Deployments,
    /// The rules engine's snapshot of pending and firing alerts.
    AlertState,
    /// The log sources' positions and counters (one record a source, so both move together)
    /// and their kept lines, written in one batch each second.
    Logs,
}

impl Kind {
    /// The tree's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nlog => "nlog",
            Kind::Silences => "silences",
            Kind::Deployments => "deployments",
            Kind::AlertState => "alert_state",
            Kind::Logs => "logs",
        }
    }
}

fn encode_json<T: Serialize>(tree: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![JSON_V1];
    serde_json::to_writer(&mut buf, value).map_err(|source| StoreError::Json { tree, source })?;
    Ok(buf)
}

fn decode_json<T: DeserializeOwned>(tree: &'static str, value: &[u8]) -> Result<T, StoreError> {
    match value.split_first() {
        Some((&JSON_V1, json)) => {
            serde_json::from_slice(json).map_err(|source| StoreError::Json { tree, source })
        }
        Some((&other, _)) => Err(StoreError::Decode {
            tree,
            source: DecodeError::UnknownFormat(other),
        }),
        None => Err(StoreError::Decode {
            tree,
            source: DecodeError::Truncated,
        }),
    }
}

/// Several writes to one [`Kind`], applied atomically and durably by
/// [`StateStore::apply_durable`] (e.g. the rules engine's whole alert-state snapshot).
#[derive(Debug)]
pub struct JsonBatch {
    kind: Kind,
    batch: sled::Batch,
}

impl JsonBatch {
    /// Sets `key` to `value`.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), StoreError> {
        self.batch
            .insert(key.as_bytes(), encode_json(self.kind.name(), value)?);
        Ok(())
    }

    /// Removes `key` (no error when absent).
    pub fn remove(&mut self, key: &str) {
        self.batch.remove(key.as_bytes());
    }
}

impl StateStore {
    pub(super) fn new(shared: Arc<Shared>, trees: Trees) -> StateStore {
        StateStore {
            shared,
            trees: Arc::new(trees),
        }
    }

    fn kind_tree(&self, kind: Kind) -> &sled::Tree {
        let t = &self.trees;
        match kind {
            Kind::Nlog => &t.nlog,
            Kind::Silences => &t.silences,
            Kind::Deployments => &t.deployments,
            Kind::AlertState => &t.alert_state,
            Kind::Logs => &t.logs,
        }
    }

    /// Stores `value` under `key` in `kind` and flushes: on disk when this returns.
    pub fn put_durable<T: Serialize>(
        &self,
        kind: Kind,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "writing durable state";
        self.shared.check_writable(OP)?;
        let v = encode_json(kind.name(), value)?;
        self.kind_tree(kind)
            .insert(key.as_bytes(), v)
            .map_err(StoreError::engine(OP))?;
        self.shared.flush_durable(OP)
    }

    /// The record under `key`, if any. A record that does not decode is an error here (the
    /// caller asked for that one record); [`StateStore::scan`] skips such records instead.
    pub fn get<T: DeserializeOwned>(&self, kind: Kind, key: &str) -> Result<Option<T>, StoreError> {
        let v = self
            .kind_tree(kind)
            .get(key.as_bytes())
            .map_err(StoreError::engine("reading state"))?;
        v.map(|v| decode_json(kind.name(), &v)).transpose()
    }

    /// Removes `key` from `kind` and flushes; returns whether it was there.
    pub fn remove_durable(&self, kind: Kind, key: &str) -> Result<bool, StoreError> {
        const OP: &str = "removing durable state";
        self.shared.check_writable(OP)?;
        let old = self
            .kind_tree(kind)
            .remove(key.as_bytes())
            .map_err(StoreError::engine(OP))?;
        self.shared.flush_durable(OP)?;
        Ok(old.is_some())
    }

    /// Every record of `kind`, in key order. Records that do not decode as `T` are skipped and
    /// counted.
    pub fn scan<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<(String, T)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.kind_tree(kind).iter() {
            let (k, v) = kv.map_err(StoreError::engine("scanning state"))?;
            let Ok(key) = std::str::from_utf8(&k) else {
                self.shared.skip(kind.name(), &"key is not UTF-8");
                continue;
            };
            match decode_json(kind.name(), &v) {
                Ok(t) => out.push((key.to_owned(), t)),
                Err(e) => self.shared.skip(kind.name(), &e),
            }
        }
        Ok(out)
    }

    /// The records of `kind` with keys before `before` (all when `None`), highest key first,
    /// for as long as `each` asks for more: a page of a list whose keys sort by time, read
    /// without decoding the rest. Records that do not decode are skipped and counted.
    pub fn scan_back<T: DeserializeOwned>(
        &self,
        kind: Kind,
        before: Option<&str>,
        each: impl FnMut(&str, T) -> bool,
    ) -> Result<(), StoreError> {
        let tree = self.kind_tree(kind);
        let range = match before {
            Some(b) => tree.range(..b.as_bytes()),
            None => tree.range::<&[u8], _>(..),
        };
        self.decode_each(kind, range.rev(), each)
    }

    /// The records of `kind` whose keys start with `prefix`, in key order, for as long as
    /// `each` asks for more. Records that do not decode are skipped and counted.
    pub fn scan_prefix<T: DeserializeOwned>(
        &self,
        kind: Kind,
        prefix: &str,
        each: impl FnMut(&str, T) -> bool,
    ) -> Result<(), StoreError> {
        self.decode_each(
            kind,
            self.kind_tree(kind).scan_prefix(prefix.as_bytes()),
            each,
        )
    }

    /// Hands each record of `records` to `each`, decoded, for as long as it asks for more;
    /// records that do not decode are skipped and counted.
    fn decode_each<T: DeserializeOwned>(
        &self,
        kind: Kind,
        records: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        mut each: impl FnMut(&str, T) -> bool,
    ) -> Result<(), StoreError> {
        for kv in records {
            let (k, v) = kv.map_err(StoreError::engine("scanning state"))?;
            let Ok(key) = std::str::from_utf8(&k) else {
                self.shared.skip(kind.name(), &"key is not UTF-8");
                continue;
            };
            match decode_json(kind.name(), &v) {
                Ok(t) => {
                    if !each(key, t) {
                        break;
                    }
                }
                Err(e) => self.shared.skip(kind.name(), &e),
            }
        }
        Ok(())
    }

    /// An empty batch of writes to `kind`.
    pub fn batch(&self, kind: Kind) -> JsonBatch {
        JsonBatch {
            kind,
            batch: sled::Batch::default(),
        }
    }

    /// Applies `batch` atomically (all or nothing, also across a crash) and flushes.
    pub fn apply_durable(&self, batch: JsonBatch) -> Result<(), StoreError> {
        const OP: &str = "writing a batch of durable state";
        self.shared.check_writable(OP)?;
        self.kind_tree(batch.kind)
            .apply_batch(batch.batch)
            .map_err(StoreError::engine(OP))?;
        self.shared.flush_durable(OP)
    }

    /// A fresh outbox id, larger than every id handed out before (also across restarts), so
    /// that [`StateStore::outbox_all`] returns notifications in the order they were queued.
    pub fn outbox_next_id(&self) -> Result<u64, StoreError> {
        self.shared.check_writable("generating an id")?;
        self.shared.generate_id("generating an id")
    }

    /// Queues a notification under `id` and flushes: it survives a crash once this returns.
    pub fn outbox_put_durable<T: Serialize>(&self, id: u64, value: &T) -> Result<(), StoreError> {
        const OP: &str = "writing to the outbox";
        self.shared.check_writable(OP)?;
        let v = encode_json("outbox", value)?;
        self.trees
            .outbox
            .insert(id.to_be_bytes(), v)
            .map_err(StoreError::engine(OP))?;
        self.shared.flush_durable(OP)
    }

    /// Removes a delivered (or abandoned) notification and flushes, so that it is not sent
    /// again after a restart; returns whether it was there.
    pub fn outbox_remove_durable(&self, id: u64) -> Result<bool, StoreError> {
        const OP: &str = "removing from the outbox";
        self.shared.check_writable(OP)?;
        let old = self
            .trees
            .outbox
            .remove(id.to_be_bytes())
            .map_err(StoreError::engine(OP))?;
        self.shared.flush_durable(OP)?;
        Ok(old.is_some())
    }

    /// Every queued notification, oldest id first. Entries that do not decode as `T` are
    /// skipped and counted (and left in place, in case a newer version can read them).
    pub fn outbox_all<T: DeserializeOwned>(&self) -> Result<Vec<(u64, T)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.trees.outbox.iter() {
            let (k, v) = kv.map_err(StoreError::engine("reading the outbox"))?;
            let Ok(id) = <[u8; 8]>::try_from(&*k) else {
                self.shared.skip("outbox", &"malformed key");
                continue;
            };
            match decode_json("outbox", &v) {
                Ok(t) => out.push((u64::from_be_bytes(id), t)),
                Err(e) => self.shared.skip("outbox", &e),
            }
        }
        Ok(out)
    }

    /// The `meta` value under `key`. Keys starting with `store.` belong to the store itself.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self
            .trees
            .meta
            .get(key.as_bytes())
            .map_err(StoreError::engine("reading meta"))?;
        Ok(v.map(|v| v.to_vec()))
    }

    /// Sets a `meta` value and flushes. Keys starting with `store.` are refused: they hold the
    /// store's own format marker.
    pub fn meta_put_durable(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        const OP: &str = "writing meta";
        if key.starts_with("store.") {
            return Err(StoreError::InvalidRecord {
                reason: format!("meta key {key:?} is reserved for the store"),
            });
        }
        self.shared.check_writable(OP)?;
        self.trees
            .meta
            .insert(key.as_bytes(), value)
            .map_err(StoreError::engine(OP))?;
        self.shared.flush_durable(OP)
    }
}

#[cfg(test)]
mod tests;
