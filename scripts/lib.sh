# Shared by scripts/run and scripts/test: install what is missing from the OS
# packages (Debian/Ubuntu), as root or through sudo.

# ensure_command COMMAND PACKAGE: installs PACKAGE when COMMAND is not on PATH.
ensure_command() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  echo "restrictd: $cmd not found; installing the $pkg package" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "restrictd: no apt-get here; install $pkg with your package manager" >&2
    return 1
  fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
  command -v "$cmd" >/dev/null 2>&1
}

# redis_port URL: the port of a redis:// URL (6379 when it names none).
redis_port() {
  local hostport=${1#*://}
  hostport=${hostport%%/*}
  hostport=${hostport##*@}
  case "$hostport" in
    \[*\]:*) echo "${hostport##*:}" ;;
    \[*\]) echo 6379 ;;
    *:*) echo "${hostport##*:}" ;;
    *) echo 6379 ;;
  esac
}

# redact_url URL: the URL without user name and password, for messages.
redact_url() {
  printf '%s' "$1" | sed -E 's#^([a-z]+://)[^/@]*@#\1***@#'
}
