//! callrollup migrate — create or upgrade the engine's schema.
//!
//! Usage: `callrollup migrate --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! Applies the pending files of migrations/ in order, each in its own
//! transaction, and records them with a checksum in
//! `<schema>.schema_migrations`. A migration that was changed after it
//! was applied is refused (exit 2).

use crate::cli::migrate::Args;
use crate::error::Result;

pub fn execute(args: Args) -> Result<()> {
    let schema = args.schema.target_schema()?;
    let url = args.connect.target()?;
    let mut client = url.connect_admin("callrollup-migrate")?;
    let applied = crate::migrate::migrate(&mut client, &schema)?;
    if applied.is_empty() {
        println!("schema {schema} is up to date");
    } else {
        for name in &applied {
            println!("applied {name}");
        }
        println!("schema {schema} is up to date ({} applied)", applied.len());
    }
    Ok(())
}
