//! What the benchmark programs share: a throwaway Postgres database and the Redis URL.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// A fresh database `conveyor_bench_<id>` on `BENCH_DATABASE_URL`'s server (default:
/// the local one), dropped by [`BenchDatabase::drop_now`].
pub(crate) struct BenchDatabase {
    admin: DatabaseConnection,
    name: String,
    /// The new database's URL.
    pub(crate) url: String,
    /// `BENCH_REDIS_URL`, default the local Redis.
    pub(crate) redis_url: String,
    /// A lowercase ULID, also fit for a queue prefix.
    pub(crate) id: String,
}

impl BenchDatabase {
    /// Creates the database.
    pub(crate) async fn create() -> anyhow::Result<Self> {
        let admin_url = std::env::var("BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let redis_url =
            std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let id = ulid::Ulid::generate().to_string().to_lowercase();
        let name = format!("conveyor_bench_{id}");
        let admin = Database::connect(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        let server = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(s, _)| s);
        let url = format!("{server}/{name}");
        Ok(BenchDatabase {
            admin,
            name,
            url,
            redis_url,
            id,
        })
    }

    /// Drops the database, closing whatever still uses it.
    pub(crate) async fn drop_now(self) -> anyhow::Result<()> {
        self.admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}
