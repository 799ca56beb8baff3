//! Connecting to the database and bringing its schema up to date.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Opens a pool on `url` (`sqlite://…` or `postgres://…`) of at most
/// `max_connections`; a caller waits at most `acquire_timeout` for one of them. While
/// the database is unreachable every wait lasts that long (sqlx tries to connect again
/// until then), so it bounds how long a request takes to be refused.
///
/// SQLite runs in WAL mode with a busy timeout, so that the api, the workers and the
/// embedded queue can share one file from one process.
pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(acquire_timeout)
        .acquire_timeout(acquire_timeout)
        .sqlx_logging(false)
        // Every execution of a prepared statement is planned for the table as it is
        // now. A generic plan is cached once, sized by the table when the connection
        // first ran it (tiny, on a fresh database) and kept until the next ANALYZE:
        // the batched claim then read every waiting row per batch (see
        // `engine::store::writes`). Planning costs tens of microseconds a statement.
        .map_sqlx_postgres_opts(|opts| opts.options([("plan_cache_mode", "force_custom_plan")]))
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
        });
    Database::connect(options).await
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// True when the connection is SQLite (the embedded default).
pub fn is_sqlite(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite
}
