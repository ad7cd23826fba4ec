//! Where a fleet's store is (`--clickhouse URL`) and who to be there: the
//! user from `--clickhouse-user`, the password from a file or the
//! environment, never from the command line (where `ps` shows it).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tcptab::fleet::Target;

/// The environment variable a password may come from.
pub const PASSWORD_ENV: &str = "TCPTAB_CLICKHOUSE_PASSWORD";

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// A fleet's store: ClickHouse's HTTP interface,
    /// http(s)://HOST:PORT/?database=NAME (docs/fleet.md).
    #[arg(long = "clickhouse", value_name = "URL")]
    pub clickhouse: Option<String>,

    /// The ClickHouse user (default: ClickHouse's `default`).
    #[arg(long, value_name = "NAME", requires = "clickhouse")]
    pub clickhouse_user: Option<String>,

    /// A file whose first line is the ClickHouse password (else
    /// $TCPTAB_CLICKHOUSE_PASSWORD; a password is never an option's value).
    #[arg(long, value_name = "FILE", requires = "clickhouse", value_hint = clap::ValueHint::FilePath)]
    pub clickhouse_password_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The store, if one was named.
    pub fn target(&self) -> Result<Option<Target>> {
        let Some(url) = &self.clickhouse else {
            return Ok(None);
        };
        let mut target = Target::parse(url)?;
        target.user = self.clickhouse_user.clone();
        target.password = match &self.clickhouse_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--clickhouse-password-file: {}", path.display()))?;
                Some(text.lines().next().unwrap_or("").to_string())
            }
            None => std::env::var(PASSWORD_ENV).ok(),
        };
        Ok(Some(target))
    }
}
