#!/usr/bin/env bash
# The main job, end to end on a real model: build mvault, create a vault in a temporary folder,
# store the Silero VAD safetensors model, list it, fetch it back, and check it is byte-identical
# and that the vault verifies. Run from the repository root: bash examples/demo.sh (it honours
# CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
model=examples/data/silero_vad_16k.safetensors

echo "== building mvault (release)"
cargo build --release --quiet
# The binary is wherever cargo puts it: CARGO_TARGET_DIR, build.target-dir, or ./target.
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$target_dir" ]; then
  echo "demo: cannot find cargo's target directory in \`cargo metadata\`" >&2; exit 1
fi
mvault=$target_dir/release/mvault

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MVAULT_VAULT=$work/models.mvault
# A passphrase file keeps the demo unattended; never pass a passphrase on the command line.
( umask 077; printf '%s\n' "demo passphrase $(od -An -N8 -tx8 /dev/urandom | tr -d ' ')" > "$work/passphrase" )
export MVAULT_PASSPHRASE_FILE=$work/passphrase

echo "== mvault init (Argon2id m=64 MiB t=3 p=4)"
"$mvault" init
echo "== mvault put $model --name silero-vad --alias prod --tag task=vad --metric sample_rate=16000"
"$mvault" put "$model" --name silero-vad --alias prod --tag task=vad --metric sample_rate=16000
echo "== mvault ls"
"$mvault" ls
echo "== mvault show silero-vad@prod"
"$mvault" show silero-vad@prod
echo "== mvault get silero-vad@prod -o $work/restored"
"$mvault" get silero-vad@prod -o "$work/restored"
echo "== comparing the restored file with the original"
cmp "$model" "$work/restored/silero_vad_16k.safetensors"
sha256sum "$model" "$work/restored/silero_vad_16k.safetensors"
echo "== mvault verify --read-data"
"$mvault" verify --read-data
echo "== checking the vault file holds no plaintext name"
if grep -q -a -e silero-vad -e silero_vad_16k -e stft_conv "$MVAULT_VAULT"; then
  echo "FAIL: a plaintext name is readable in the vault file" >&2; exit 1
fi
echo "demo: OK (stored, listed, fetched back byte-identical, verified; vault file $(stat -c %s "$MVAULT_VAULT") bytes for a $(stat -c %s "$model")-byte model)"
