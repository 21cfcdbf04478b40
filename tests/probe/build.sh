#!/bin/sh
# Build the static probe next to its source (tests build their own copy; this
# is for poking at containers by hand: add it to a rootfs as /probe).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
${CC:-gcc} -static -O2 -Wall -Werror -o "${1:-$here/probe}" "$here/probe.c"
echo "${1:-$here/probe}"
