#!/usr/bin/env bash
# Installs the public clients pinned in package-lock.json (npm ci, no install scripts) next to this file.
set -euo pipefail
cd "$(dirname "$0")"
if [ -d node_modules/@rocket.chat/sdk ] && cmp -s package-lock.json node_modules/.package-lock.json.src 2>/dev/null; then
  exit 0
fi
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
cp package-lock.json node_modules/.package-lock.json.src
