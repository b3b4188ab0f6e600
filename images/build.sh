#!/usr/bin/env bash
# images/build.sh OUT: builds every image under images/ into OUT/<name>/ as
#   OUT/<name>/rootfs/     the image's root filesystem (a container's overlayfs lower layer)
#   OUT/<name>/image.json  its default command, working directory and environment
# An image is a directory with a `recipe` script that fills $ROOTFS, and an image.json.
# No registry, no network: everything comes from this tree and Debian packages.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
for dir in "$here"/*/; do
  name=$(basename "$dir")
  [[ -x $dir/recipe ]] || continue
  tmp="$out/.$name.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp/rootfs"
  ROOTFS="$tmp/rootfs" IMAGES_SRC="$here" CC="${CC:-cc}" "$dir/recipe"
  cp "$dir/image.json" "$tmp/image.json"
  rm -rf "${out:?}/$name"
  mv "$tmp" "$out/$name"
  echo "image $name: $(du -sh "$out/$name/rootfs" | cut -f1)"
done
