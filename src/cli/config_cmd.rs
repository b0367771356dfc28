//! `gru config --docs`: the tables of `docs/config.md`, as the config's own declarations
//! (`src/config/`) generate them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use gru::config::docs;

/// What `gru config` prints or writes.
#[derive(clap::Args)]
pub(crate) struct ConfigArgs {
    /// Print the tables of docs/config.md, each between the marker comments that place it in
    /// the doc.
    #[arg(long, required = true)]
    docs: bool,
    /// Instead of printing the tables, bring those of this doc up to date in place; the prose
    /// around them is kept (`--write docs/config.md`).
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
}

/// Runs `gru config`.
pub(crate) fn run(args: ConfigArgs) -> Result<()> {
    let Some(path) = args.write else {
        print!("{}", docs::markdown());
        return Ok(());
    };
    let doc = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let fresh = docs::splice(&doc).with_context(|| format!("{}", path.display()))?;
    if fresh == doc {
        println!("{}: the tables are up to date", path.display());
        return Ok(());
    }
    std::fs::write(&path, fresh).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}: tables regenerated", path.display());
    Ok(())
}
