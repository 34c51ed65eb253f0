# Shared helpers for the scripts in this folder. Sourced, not run.
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "need root to $1 (run as root, or do it by hand)"; }
apt_quiet() { DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0 "$@" >/dev/null; }

# The Debian mirror this machine already uses (never a host name written into the project).
debian_mirror() {
  local uri
  uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  [ -n "$uri" ] || uri=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /^[a-z]+:\/\//){print $i; exit}}' \
    /etc/apt/sources.list 2>/dev/null)
  [ -n "$uri" ] || die "cannot find a Debian mirror in /etc/apt"
  printf '%s\n' "$uri"
}

# apt against Debian sid, with its own lists, never touching the system's sources.
SID_DIR=${SID_DIR:-/var/cache/pbx-sid}
SID_DEBS=$SID_DIR/debs
sid_apt() {
  mkdir -p "$SID_DIR/lists/partial" "$SID_DEBS"
  [ -f "$SID_DIR/sources.list" ] ||
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) sid main" \
      >"$SID_DIR/sources.list"
  apt-get -q -o Dir::Etc::sourcelist="$SID_DIR/sources.list" -o Dir::Etc::sourceparts=- \
    -o Dir::State::Lists="$SID_DIR/lists" -o Acquire::Check-Valid-Until=false \
    -o Dir::Cache::archives="$SID_DEBS" "$@"
}
sid_download() {
  [ -n "$(ls -A "$SID_DIR/lists" 2>/dev/null | grep -v partial)" ] || sid_apt update >/dev/null
  (cd "$SID_DEBS" && sid_apt download "$@" >/dev/null)
}
