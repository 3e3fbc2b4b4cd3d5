# bash completion for ferry(1): verbs, their flags, and the names of the
# containers, images and volumes of the agent the command line talks to.
# shellcheck shell=bash

# The agent options already on the line (--host, --token-file, --tls-ca),
# so that names come from the same agent.
_ferry_agent_args() {
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      --host | --token-file | --tls-ca) printf '%s\n%s\n' "${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}" ;;
    esac
  done
}

# _ferry_names containers|running|images|volumes
_ferry_names() {
  local -a a
  mapfile -t a < <(_ferry_agent_args)
  case "$1" in
    containers) "${COMP_WORDS[0]}" "${a[@]}" ps -a 2>/dev/null | awk 'NR > 1 {print $2}' ;;
    running) "${COMP_WORDS[0]}" "${a[@]}" ps 2>/dev/null | awk 'NR > 1 {print $2}' ;;
    images) "${COMP_WORDS[0]}" "${a[@]}" image ls 2>/dev/null | awk 'NR > 1 && $1 != "<none>" {print $1}' ;;
    volumes) "${COMP_WORDS[0]}" "${a[@]}" volume ls 2>/dev/null | awk 'NR > 1 {print $1}' ;;
  esac
}

_ferry() {
  local cur prev verb i
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD - 1]}
  local verbs="run create start stop resume unpause kill rm ps inspect logs exec attach cp checkpoint restore
               migrate image images pull push volume info version port restart wait rmi tag save top stats pause
               container node"
  local globals="--host --token-file --tls-ca --coord --json --help"
  # the verb: the first word that is not a global option or its value
  verb=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      --host | --token-file | --tls-ca | --coord) ((i++)) ;;
      -*) ;;
      *) verb=${COMP_WORDS[i]}; break ;;
    esac
  done
  case "$prev" in
    --token-file | --tls-ca | --to-token-file | --authfile) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
    --cert-dir) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
    --host | --to | --from | --coord | --name | --ip | -t | --time | -s | --signal | --timeout | \
      --redirect-for | -e | --env | -w | --workdir | -u | --user | -p | --publish | --creds) return ;;
    --memory) mapfile -t COMPREPLY < <(compgen -W "auto stream precopy lazy copy" -- "$cur"); return ;;
    -v | --volume) mapfile -t COMPREPLY < <(compgen -W "$(_ferry_names volumes | sed 's/$/:/')" -- "$cur")
      compopt -o nospace 2>/dev/null; return ;;
    --tmpfs) return ;;
    --mount) mapfile -t COMPREPLY < <(compgen -W "type=volume, type=bind, type=tmpfs," -- "$cur")
      compopt -o nospace 2>/dev/null; return ;;
  esac
  if [ -z "$verb" ]; then
    mapfile -t COMPREPLY < <(compgen -W "$verbs $globals" -- "$cur")
    return
  fi
  local flags="" names=""
  case "$verb" in
    run | create) flags="-d --detach -i --interactive -t --tty --detach-keys --name --ip -v --volume --tmpfs --mount -p --publish -e --env -w --workdir -u --user --rm --json
                         --authfile --creds --cert-dir --tls-verify="
                  names=$(_ferry_names images) ;;
    start) names=$(_ferry_names containers) ;;
    stop) flags="-t --time"; names=$(_ferry_names running) ;;
    kill) flags="-s --signal"; names=$(_ferry_names running) ;;
    rm) flags="-f --force"; names=$(_ferry_names containers) ;;
    resume | unpause | inspect) names=$(_ferry_names containers) ;;
    ps) flags="-a --all -q --quiet -n --last -l --latest --no-trunc --format --json" ;;
    pull) flags="--authfile --creds --cert-dir --tls-verify= --json" ;;
    push) flags="--authfile --creds --cert-dir --tls-verify= --json"; names=$(_ferry_names images) ;;
    logs) flags="-f --follow"; names=$(_ferry_names containers) ;;
    exec) flags="-i --interactive -t --tty --detach-keys -e --env --json"; names=$(_ferry_names running) ;;
    attach) flags="--no-stdin --detach-keys"; names=$(_ferry_names running) ;;
    cp) names=$(_ferry_names running); mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    tag) names=$(_ferry_names images) ;;
    save) flags="-o --output --format"; names=$(_ferry_names images) ;;
    top) flags="--json"; names=$(_ferry_names running) ;;
    stats) flags="--no-stream --json"; names=$(_ferry_names running) ;;
    checkpoint) flags="--leave-running --json"; names=$(_ferry_names running) ;;
    restore) flags="--name --json"; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
    migrate) flags="--to --from --to-token-file --keep --timeout --memory --downtime-target --no-compress --no-hold --redirect-for --json"
             names=$(_ferry_names running) ;;
    image)
      if [ "$COMP_CWORD" -gt 1 ] && [ "$prev" = image ]; then
        mapfile -t COMPREPLY < <(compgen -W "import pull push ls rm tag save inspect prune" -- "$cur"); return
      fi
      case " ${COMP_WORDS[*]} " in
        *" import "*) flags="--name"; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
        *" rm "* | *" inspect "* | *" tag "* | *" save "*) names=$(_ferry_names images) ;;
      esac ;;
    volume)
      if [ "$prev" = volume ]; then
        mapfile -t COMPREPLY < <(compgen -W "create ls rm inspect" -- "$cur"); return
      fi
      case " ${COMP_WORDS[*]} " in
        *" rm "* | *" inspect "*) names=$(_ferry_names volumes) ;;
      esac ;;
    node) [ "$prev" = node ] && { mapfile -t COMPREPLY < <(compgen -W "ls" -- "$cur"); return; } ;;
  esac
  local more
  if [[ "$cur" == -* ]]; then
    mapfile -t more < <(compgen -W "$flags --help" -- "$cur")
  else
    mapfile -t more < <(compgen -W "$names" -- "$cur")
  fi
  COMPREPLY+=("${more[@]}")
}
complete -F _ferry ferry
