//! A fresh PostgreSQL database per test, on the server named by `CALCONNECT_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`). Dropped when the value is dropped.

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The admin URL variable.
pub const URL_ENV: &str = "CALCONNECT_TEST_POSTGRES_URL";
/// Its default.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

fn admin_url() -> String {
    std::env::var(URL_ENV).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// The admin URL with any password replaced, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl TestDatabase {
    /// Creates `calconnect_test_<uuid>`. Returns `None` (after printing why) when the server is
    /// not reachable, unless `CALCONNECT_REQUIRE_ALL=1`, which makes that a test failure.
    pub async fn create() -> Option<Self> {
        let admin_url = admin_url();
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("PostgreSQL not reachable at {} ({e})", redacted(&admin_url));
                assert!(
                    !crate::require_all(),
                    "{msg}; CALCONNECT_REQUIRE_ALL=1 requires it"
                );
                eprintln!("{msg}, skipping");
                return None;
            }
        };
        let name = format!("calconnect_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Name of this test's database.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Every non-null text-like or `bytea` cell of every table in the `public` schema, as bytes,
/// with its `table.column`: what an at-rest scan looks through for secrets in clear.
///
/// # Panics
/// A query fails (this is a test helper).
pub async fn all_text_cells(pool: &sqlx::PgPool) -> Vec<(String, Vec<u8>)> {
    use sqlx::Row as _;
    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'public' \
         AND data_type IN ('text', 'bytea', 'json', 'jsonb', 'character varying')",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("cannot list columns: {e}"));
    let mut cells = Vec::new();
    for col in &columns {
        let (table, column, ty): (String, String, String) = (col.get(0), col.get(1), col.get(2));
        let sql = if ty == "bytea" {
            format!("SELECT \"{column}\" FROM \"{table}\" WHERE \"{column}\" IS NOT NULL")
        } else {
            format!(
                "SELECT convert_to(\"{column}\"::text, 'UTF8') FROM \"{table}\" WHERE \"{column}\" IS NOT NULL"
            )
        };
        let rows = sqlx::query(&sql)
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("cannot read {table}.{column}: {e}"));
        for row in rows {
            cells.push((format!("{table}.{column}"), row.get::<Vec<u8>, _>(0)));
        }
    }
    cells
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Async drop does not exist: drop the database from a helper thread with its own
        // runtime. Best effort; `WITH (FORCE)` ends the test's still-open connections.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_and_password_hidden() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(redacted("postgres://u:secret@h/db"), "postgres://u@h/db");
    }
}
