//! One module per subcommand.

pub mod audit;
pub mod explain;
pub mod history;
pub mod install;
pub mod kill;
pub mod list;
pub mod record;
pub mod schema;
pub mod serve;
pub mod summary;
pub mod top;
pub mod watch;
