#!/bin/sh
# Installs the system tools the tests need, from Debian's packages, when missing:
# Chromium (driven by the playwright Python package, never `playwright install`) and the
# Noto CJK fonts so Chinese labels render, and exiftool to read back XMP sidecars.
set -e
need=""
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -x /usr/bin/exiftool ] || need="$need libimage-exiftool-perl"
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need="$need fonts-noto-cjk"
[ -z "$need" ] && exit 0
echo "installing for the tests:$need"
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
