//! The embedded store's file: a redb database with one table per map of [`State`], each entry's
//! key and value in JSON. The maps in memory stay the store's truth while it runs; the file
//! gets each call's changes in one write transaction, committed (and synced) before the call
//! returns, and gives them back when the store is opened again.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use redb::{Database, DatabaseError, ReadableTable, TableDefinition, TableError};

use super::state::State;
use crate::ports::StoreError;

/// Why the store's file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreFileError {
    /// redb locks its file: one process at a time.
    #[error("{} is in use by another process (one process at a time may open it)", path.display())]
    InUse { path: PathBuf },
    #[error("cannot open the store file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("the store file {} holds an entry of `{table}` that cannot be read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        table: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub(super) struct StoreFile {
    /// `None` once closed.
    db: Mutex<Option<Database>>,
    path: PathBuf,
}

fn definition(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

impl StoreFile {
    /// Opens (or creates) the file and reads every table into a new state, whose changes are
    /// journaled from then on.
    pub fn open(path: &Path) -> Result<(StoreFile, State), StoreFileError> {
        let open_error =
            |source: redb::Error| StoreFileError::Open { path: path.to_path_buf(), source: Box::new(source) };
        let db = Database::create(path).map_err(|err| match err {
            DatabaseError::DatabaseAlreadyOpen => StoreFileError::InUse { path: path.to_path_buf() },
            other => open_error(other.into()),
        })?;
        let mut state = State::default();
        let read = db.begin_read().map_err(|e| open_error(e.into()))?;
        for (name, table) in state.tables() {
            match read.open_table(definition(name)) {
                Ok(stored) => {
                    for entry in stored.iter().map_err(|e| open_error(e.into()))? {
                        let (key, value) = entry.map_err(|e| open_error(e.into()))?;
                        table.load(key.value(), value.value()).map_err(|source| StoreFileError::Unreadable {
                            path: path.to_path_buf(),
                            table: name,
                            source,
                        })?;
                    }
                }
                // A table is created by its first write.
                Err(TableError::TableDoesNotExist(_)) => {}
                Err(err) => return Err(open_error(err.into())),
            }
            table.start_journal();
        }
        drop(read);
        Ok((StoreFile { db: Mutex::new(Some(db)), path: path.to_path_buf() }, state))
    }

    /// Closes the database, which releases its lock on the file.
    pub fn close(&self) {
        self.db.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    /// Writes the entries the call changed in one transaction. If the file refuses them, the
    /// maps are put back as the file has them and the call fails: a failed call changed nothing.
    pub fn commit(&self, state: &mut State) -> Result<(), StoreError> {
        let written = self.write_changes(state);
        for (_, table) in state.tables() {
            if written.is_ok() { table.committed() } else { table.roll_back() }
        }
        written.map_err(|err| StoreError::Unavailable(format!("the store file {}: {err}", self.path.display())))
    }

    fn write_changes(&self, state: &mut State) -> Result<(), CommitError> {
        let mut tables = state.tables();
        if tables.iter().all(|(_, table)| !table.has_changes()) {
            return Ok(());
        }
        let db = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        let db = db.as_ref().ok_or(CommitError::Closed)?;
        let write = db.begin_write().map_err(database_error)?;
        for (name, table) in &mut tables {
            let changes = table.changes()?;
            if changes.is_empty() {
                continue;
            }
            let mut stored = write.open_table(definition(name)).map_err(database_error)?;
            for (key, value) in changes {
                match value {
                    Some(value) => stored.insert(key.as_slice(), value.as_slice()).map(drop),
                    None => stored.remove(key.as_slice()).map(drop),
                }
                .map_err(database_error)?;
            }
        }
        write.commit().map_err(database_error)?;
        Ok(())
    }
}

/// Any of redb's errors, boxed: they are large, and rare.
fn database_error(err: impl Into<redb::Error>) -> CommitError {
    CommitError::Database(Box::new(err.into()))
}

#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error(transparent)]
    Database(Box<redb::Error>),
    #[error("a change could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the store was closed")]
    Closed,
}
