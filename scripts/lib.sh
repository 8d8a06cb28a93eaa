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

# ensure_python_module MODULE PACKAGE: installs PACKAGE from PyPI when python3
# cannot import MODULE (into the user's site when the system's Python is
# managed by the OS).
ensure_python_module() {
  local module=$1 pkg=$2
  ensure_command python3 python3
  python3 -c "import $module" >/dev/null 2>&1 && return 0
  echo "restrictd: python module $module not found; installing $pkg" >&2
  if ! python3 -m pip --version >/dev/null 2>&1; then
    ensure_command pip3 python3-pip
  fi
  python3 -m pip install --quiet "$pkg" >/dev/null 2>&1 \
    || python3 -m pip install --quiet --user --break-system-packages "$pkg" >/dev/null
  python3 -c "import $module" >/dev/null 2>&1
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
