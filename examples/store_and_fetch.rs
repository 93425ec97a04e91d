//! A small program embedding the library: create a vault, store a model, list it, read it back
//! and verify. Run: `cargo run --release --example store_and_fetch [MODEL_FILE]`.

use modelvault::{
    Argon2Params, CreateOptions, GetOptions, NoProgress, OpenOptions, Passphrase, PutOptions, Vault, VersionRef,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = std::env::args().nth(1).unwrap_or_else(|| "examples/data/silero_vad_16k.safetensors".into());
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("example.mvault");
    let pass = Passphrase::new(b"example passphrase, use a real secret".to_vec())?;

    // Default Argon2id cost is RFC 9106's m=64 MiB, t=3, p=4; shown explicitly here.
    let opts = CreateOptions { argon2: Argon2Params::default(), ..Default::default() };
    drop(Vault::create(&path, &pass, &opts)?);

    let mut vault = Vault::open(&path, &OpenOptions::default())?.unlock(&pass)?;
    let put = vault.put(model.as_ref(), "example-model", &PutOptions::default(), &NoProgress)?;
    println!("stored {}@{}: {} bytes in {} new chunks", put.name, put.version, put.bytes, put.new_chunks);

    for m in vault.list(None)?.models {
        for v in m.versions {
            println!("{}@{}  {} bytes  signed by ed25519:{}", m.name, v.version, v.size_bytes, v.signer);
            for f in v.files {
                println!("  {}  sha256:{}", f.path, f.sha256);
            }
        }
    }

    let out = dir.path().join("restored");
    let got = vault.get("example-model", &VersionRef::Latest, &out, &GetOptions::default(), &NoProgress)?;
    let same = std::fs::read(&got.files[0])? == std::fs::read(&model)?;
    println!("fetched back {} byte(s): identical = {same}", got.bytes);
    let report = vault.verify(true, &NoProgress)?;
    println!("verify --read-data: {} version(s), problems: {}", report.versions, report.problems.len());
    if !same || !report.ok() {
        return Err("round trip failed".into());
    }
    Ok(())
}
