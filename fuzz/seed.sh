#!/usr/bin/env bash
# Builds fuzz/corpus/<target>/ seed directories (git-ignored) from the shared corpus.
#
#   bash fuzz/seed.sh            # from the repository root (or from fuzz/)
#   CORPUS=/path/to/corpus bash fuzz/seed.sh
#
# File-format targets get copies of the shared corpus files of their format (by directory and
# extension, files up to 4 MiB; larger files contribute their first 64 KiB where a prefix is
# still meaningful). Record and manifest targets get seeds encoded by the library itself,
# written by the `make_seeds` binary of this crate (see src/bin/make_seeds.rs).
# Existing seeds are kept: libFuzzer adds new inputs to the same directories and they are reused.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$FUZZ_DIR/.." && pwd)"
CORPUS="${CORPUS:-$REPO/../shared/corpus}"
OUT="$FUZZ_DIR/corpus"
MAX_BYTES=$((4 << 20))
HEAD_BYTES=65536

if [ ! -d "$CORPUS" ]; then
    echo "seed.sh: shared corpus not found at $CORPUS (set CORPUS=...)" >&2
    exit 1
fi

TARGETS=(safetensors_header gguf_header numpy_header onnx_model detect_format pickle_scan
         manifest_decode slot_record records analyze op_sequence)
for t in "${TARGETS[@]}"; do mkdir -p "$OUT/$t"; done

# seed <target> <file>: copies the file (or its first 64 KiB if it is larger than MAX_BYTES).
seed() {
    local target="$1" f="$2" name size
    name="$(basename "$(dirname "$f")")__$(basename "$f")"
    size=$(stat -c %s "$f")
    if [ "$size" -le "$MAX_BYTES" ]; then
        cp -f "$f" "$OUT/$target/$name"
    else
        head -c "$HEAD_BYTES" "$f" > "$OUT/$target/$name.head"
    fi
}

shopt -s nullglob nocaseglob
for f in "$CORPUS"/safetensors/* "$CORPUS"/malformed/*.safetensors; do seed safetensors_header "$f"; done
for f in "$CORPUS"/gguf/* "$CORPUS"/malformed/*.gguf; do seed gguf_header "$f"; done
for f in "$CORPUS"/numpy/*.npy "$CORPUS"/pickle/*.npy; do seed numpy_header "$f"; done
for f in "$CORPUS"/onnx/* "$CORPUS"/malformed/*.onnx; do seed onnx_model "$f"; done
for f in "$CORPUS"/pickle/* "$CORPUS"/malicious/* "$CORPUS"/pytorch/* "$CORPUS"/numpy/* \
         "$CORPUS"/malformed/*.pkl "$CORPUS"/malformed/*.pt "$CORPUS"/malformed/*.zip \
         "$CORPUS"/malformed/*.bin "$CORPUS"/data/*.gz; do
    seed pickle_scan "$f"
done
# detect_format input = 8 bytes of extra file length (here 0) + the head (first 64 KiB).
# analyze gets every file of the corpus.
while IFS= read -r -d '' f; do
    name="$(basename "$(dirname "$f")")__$(basename "$f")"
    { head -c 8 /dev/zero; head -c "$HEAD_BYTES" "$f"; } > "$OUT/detect_format/$name"
    seed analyze "$f"
done < <(find "$CORPUS" -type f ! -name MANIFEST.md -print0)
shopt -u nullglob nocaseglob

# op_sequence: hand-written operation sequences (the encoding is in fuzz_targets/op_sequence.rs):
# an alias removed with its version; versions sharing tensors, tagged, one removed, gc; erasure,
# gc, rotation and reopen; a model removed and put again (its numbers start again at 1); slices.
op_seed() { printf "$2" > "$OUT/op_sequence/$1"; }
op_seed alias-goes-with-version '\x00\x00\x00\x20\x0b\x00'
op_seed shared-tensors-tags '\x00\x02\x00\x01\x00\x00\x02\x00\x02\x00\x10\x01\x00\x00\x05\x02\x04\x07\x00\x00\x0b\x02\x0d'
op_seed erase-rotate-reopen '\x00\x00\x00\x00\x00\x00\x01\x00\x08\x02\x01\x0c\x80\x0d\x0e\x0f\x00\x00\x00\x00'
op_seed model-removed-and-put-again '\x20\x00\x00\x21\x2c\x00\x20\x00\x00\x00\x2a\x00'
op_seed slices-erase-model '\x00\x06\xc0\x10\x80\x01\xc3\x00\xff\x02\x00\x10\x06\xc0\x10\x80\x01\xc3\x00\xff\x02\x00\x0c\x40\x0d\x0e\x0f\x1b\x00'

# Records and manifests: encoded by the library (plain release build of this crate's seed tool).
(cd "$FUZZ_DIR" && cargo run --quiet --release -j "${SEED_JOBS:-1}" --bin make_seeds -- "$CORPUS" "$OUT")

for t in "${TARGETS[@]}"; do
    printf 'seed.sh: %-20s %4d seeds\n' "$t" "$(find "$OUT/$t" -type f | wc -l)"
done
