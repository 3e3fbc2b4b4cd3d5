#!/bin/bash
# A container record's fields are reached through runtime/record.h's typed
# accessors: no code outside runtime/record.[ch] spells a key that only a
# container record has (a typo there would silently read nothing).
set -euo pipefail
src=${1:-$(dirname "$0")/../src}
keys='op|netns|veth|migration|migrated_to|migrated_from|migrated_at|restored_from|started_at|finished_at|image_name'
hits=$(grep -rnE "json_(str_or|object_get|object_set_new|object_set|object_del|get_str)\([^,]+, \"($keys)\"" \
         "$src/lib" --include='*.c' --include='*.h' | grep -v '/runtime/record\.[ch]:' || true)
if [ -n "$hits" ]; then
  echo "container record keys spelled outside runtime/record.[ch] (use its accessors):"
  echo "$hits"
  echo "1 failed"
  exit 1
fi
n=$(grep -cE '^ +X\(' "$src/lib/runtime/record.h")
echo "ok: record fields only through runtime/record.h ($n text fields and the typed ones)"
