//! The one write that spans two trees: a notification queued together with the notification
//! log entry that says it was sent, so that a crash leaves both or neither (neither a lost
//! page nor a second one).

use serde::Serialize;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{StateStore, StoreError, encode_json};

impl StateStore {
    /// Queues a notification under `id` and records `nlog_entry` under `nlog_key` in one
    /// transaction, then flushes.
    pub fn outbox_put_with_nlog_durable<T: Serialize, N: Serialize>(
        &self,
        id: u64,
        value: &T,
        nlog_key: &str,
        nlog_entry: &N,
    ) -> Result<(), StoreError> {
        const OP: &str = "queueing a notification";
        self.shared.check_writable(OP)?;
        let v = encode_json("outbox", value)?;
        let n = encode_json("nlog", nlog_entry)?;
        let t = &self.trees;
        (&t.outbox, &t.nlog)
            .transaction(|(outbox, nlog)| {
                outbox.insert(&id.to_be_bytes(), v.as_slice())?;
                nlog.insert(nlog_key.as_bytes(), n.as_slice())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::engine(OP)(e),
                TransactionError::Abort(()) => {
                    StoreError::engine(OP)(sled::Error::Unsupported("transaction aborted".into()))
                }
            })?;
        self.shared.flush_durable(OP)
    }
}
