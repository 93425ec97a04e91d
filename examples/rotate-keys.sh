#!/usr/bin/env bash
# Unattended key rotation for a modelvault vault, for operators and CI.
#
#   MVAULT_VAULT=/path/to/models.mvault bash examples/rotate-keys.sh SECRETS_FILE
#
# SECRETS_FILE has one line per key slot, fields separated by whitespace:
#   SLOT  CURRENT_PASSPHRASE_FILE  NEW_PASSPHRASE_FILE
# (lines starting with # are ignored). Every slot of the vault must be listed.
#
# What it does, in order:
#   1. for each slot whose NEW passphrase does not open it yet: `key passwd` from CURRENT to NEW;
#   2. finish an interrupted master-key rotation if there is one, else rotate the master key,
#      re-wrapping every slot (with its NEW passphrase) and re-encrypting every chunk and record;
#   3. `verify` the vault with every slot's NEW passphrase.
# It is idempotent: after a failure or a kill, run it again with the same file. A second run over
# a finished rotation changes no passphrase and rotates the master key once more (harmless).
# Passphrases are only ever read from files, never put on a command line.
# Exit status: 0 on success; otherwise mvault's exit status (see README, "Exit codes").
set -euo pipefail
secrets=${1:?usage: rotate-keys.sh SECRETS_FILE}
: "${MVAULT_VAULT:?set MVAULT_VAULT to the vault path}"
mvault=${MVAULT_BIN:-mvault}
unset MVAULT_PASSPHRASE_FILE

slots=() cur=() new=()
while read -r slot current next _; do
  [[ -z "${slot:-}" || "$slot" == \#* ]] && continue
  slots+=("$slot"); cur+=("$current"); new+=("$next")
done < "$secrets"
(( ${#slots[@]} > 0 )) || { echo "rotate-keys: no slot in $secrets" >&2; exit 7; }

for i in "${!slots[@]}"; do
  s=${slots[$i]}
  if "$mvault" --quiet --slot "$s" --passphrase-file "${new[$i]}" signer show >/dev/null 2>&1; then
    echo "slot $s: already on its new passphrase"
  else
    "$mvault" --quiet --slot "$s" --passphrase-file "${cur[$i]}" key passwd --slot-name "$s" --new-passphrase-file "${new[$i]}"
  fi
done

others=()
for i in "${!slots[@]}"; do
  (( i == 0 )) && continue
  others+=(--slot-passphrase-file "${slots[$i]}=${new[$i]}")
done
if "$mvault" --json --slot "${slots[0]}" --passphrase-file "${new[0]}" key list | grep -q '"rotating": true'; then
  "$mvault" --quiet --slot "${slots[0]}" --passphrase-file "${new[0]}" key rotate --resume
else
  "$mvault" --quiet --slot "${slots[0]}" --passphrase-file "${new[0]}" key rotate "${others[@]}"
fi

for i in "${!slots[@]}"; do
  "$mvault" --quiet --slot "${slots[$i]}" --passphrase-file "${new[$i]}" verify >/dev/null
done
echo "rotate-keys: done; every slot opens with its new passphrase and the vault verifies"
