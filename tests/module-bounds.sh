#!/bin/bash
# The module boundaries of docs/architecture.md, checked on the source:
# - a container record's key is spelled only in runtime/record.[ch] (every
#   other module uses its typed accessors);
# - migrate/ drives containers through agent/ only: it calls no runc, CRIU,
#   iproute2/netlink, image-store, volume-store or container-store function;
# - agent/ never includes a migrate/ header (the pipeline drives the agent);
# - http/ knows nothing of agents or coordinators.
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
  "$(grep -nE '\b(runc_[a-z_]+|ctr_(find|save|load_all|refresh|path|memory_bytes|wait_exit)|volume_(path|get|create|remove|list|set_mark)|image_(lookup|save|remove|list|layer_dir)|net_[a-z_]+|ckpt_(dump|restore))\(' \
       "$src"/lib/migrate/*.c)"
report "agent/ includes no migrate/ header" "$(grep -n '#include "migrate/' "$src"/lib/agent/*.[ch])"
report "http/ includes no agent, migrate or coord header" \
  "$(grep -nE '#include "(agent|migrate|coord|api)/' "$src"/lib/http/*.[ch])"
if [ "$bad" -gt 0 ]; then
  echo "$bad failed"
  exit 1
fi
