#!/usr/bin/env bash
# Loads an HTML report in headless Chromium and checks that it renders: no console error
# (an uncaught exception, a failed load, console.error) and a screenshot that is not blank.
#
#   scripts/check-report-in-chromium.sh REPORT.html [SCREENSHOT.png]
#
# Exit 0: it renders; 1: console errors or a blank page; 2: usage, or no chromium (install it
# with scripts/install-test-deps.sh). Console lines go to stderr, the screenshot stays for a
# person to look at.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: $0 REPORT.html [SCREENSHOT.png] (REPORT.html must exist)" >&2
  exit 2
fi
report=$(realpath "$1")
shot=${2:-${report%.html}.png}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$browser" ]; then
  echo "no chromium found: run scripts/install-test-deps.sh (or set CHROMIUM=/path)" >&2
  exit 2
fi

profile=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$profile" "$log"' EXIT
# A fresh profile, no network side-traffic, console messages logged to stderr.
# timeout: a hung browser must fail the check, not the whole test run.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --disable-background-networking --disable-component-update --disable-sync \
  --no-first-run --no-default-browser-check --hide-scrollbars \
  --user-data-dir="$profile" --enable-logging=stderr --v=0 \
  --window-size=1280,2000 --screenshot="$shot" "file://$report" >"$log" 2>&1 || {
  echo "chromium failed:" >&2
  cat "$log" >&2
  exit 1
}

# Chromium logs page console output as ':INFO:CONSOLE:LINE] "message", source: URL' at INFO
# whatever the console level, so the level cannot be told apart. The report has no script:
# any console line (an uncaught exception, a blocked or failed load) is an error.
errors=$(grep -E ':CONSOLE[:(]' "$log" || true)
if [ -n "$errors" ]; then
  echo "console errors in $report:" >&2
  echo "$errors" >&2
  exit 1
fi
if [ ! -s "$shot" ]; then
  echo "no screenshot written to $shot" >&2
  cat "$log" >&2
  exit 1
fi

# Not blank: decode the PNG (stdlib only) and count pixels that differ from the background.
python3 - "$shot" <<'EOF'
import struct, sys, zlib

path = sys.argv[1]
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"{path}: not a PNG")
pos, idat, width, height, bpp = 8, b"", 0, 0, 4
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        bpp = {2: 3, 6: 4, 0: 1, 4: 2}.get(colour, 4) * max(depth // 8, 1)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
raw = zlib.decompress(idat)
stride = width * bpp
prev = bytearray(stride)
background, differing = None, 0
for y in range(height):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1:
            line[x] = (line[x] + a) & 255
        elif f == 2:
            line[x] = (line[x] + b) & 255
        elif f == 3:
            line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[x] = (line[x] + pred) & 255
    for x in range(0, stride, bpp):
        px = bytes(line[x:x + bpp])
        if background is None:
            background = px
        elif px != background:
            differing += 1
    prev = line
share = differing / (width * height)
print(f"{path}: {width}x{height}, {share:.1%} of pixels differ from the background", file=sys.stderr)
# A page with a table and charts colours several percent of the screen; a blank one ~0.
sys.exit(0 if share > 0.01 else f"{path}: the screenshot is blank")
EOF
