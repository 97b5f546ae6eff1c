//! `vigil keygen`: a fresh Ed25519 identity (validator, admin, operator, gateway …) in a key file.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use commonware_cryptography::Signer as _;
use vigil_ledger::keys;

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the key file (TOML, mode 0600); refuses to overwrite.
    #[arg(long, short)]
    out: PathBuf,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let key = keys::os_random_key();
    keys::write_key_file(&args.out, &key)
        .with_context(|| format!("writing {}", args.out.display()))?;
    // The public key alone on stdout, for scripts.
    println!("{}", keys::public_hex(&key.public_key()));
    Ok(())
}
