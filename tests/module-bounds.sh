#!/bin/bash
# The module boundaries of docs/architecture.md, checked on the source:
# - a container record's key is spelled only in runtime/record.[ch] (every
#   other module uses its typed accessors);
# - migrate/ drives containers through agent/ only: it calls no runc, CRIU,
#   iproute2/netlink, image-store, volume-store or container-store function;
# - struct agent is opaque outside agent/ (agent/agent_private.h);
# Which layer may include which header is the build's to check (one library
# per layer, each seeing only the headers it may use: src/lib/meson.build).
set -uo pipefail
src=${1:-$(dirname "$0")/../src}
bad=0
report() { # TITLE HITS
  if [ -n "$2" ]; then
    echo "not ok: $1"
    echo "$2"
    bad=$((bad + 1))
  else
    echo "ok: $1"
  fi
}
keys='op|netns|veth|migration|migrated_to|migrated_from|migrated_at|restored_from|started_at|finished_at|image_name'
report "container record keys only in runtime/record.[ch]" \
  "$(grep -rnE "json_(str_or|object_get|object_set_new|object_set|object_del|get_str)\([^,]+, \"($keys)\"" \
       "$src/lib" --include='*.c' --include='*.h' | grep -v '/runtime/record\.[ch]:')"
report "migrate/ calls no runtime, image-store, network or CRIU function (agent/ does)" \
  "$(grep -nE '\b(runc_[a-z_]+|ctr_(find|save|load_all|refresh|path|memory_bytes|wait_exit)|volume_(path|get|create|remove|list|set_mark)|image_(lookup|save|remove|list|layer_dir)|net_[a-z_]+|ckpt_(dump|restore|criu)[a-z_]*)\(' \
       "$src"/lib/migrate/*.c)"
report "struct agent is agent/'s own: agent_private.h is included only there" \
  "$(grep -rn '#include "agent/agent_private.h"' "$src" --include='*.c' --include='*.h' | grep -v '/lib/agent/')"
if [ "$bad" -gt 0 ]; then
  echo "$bad failed"
  exit 1
fi
