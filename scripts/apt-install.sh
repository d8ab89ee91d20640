# Sourced by scripts/setup.sh and bench/setup.sh:
#   apt_install WHO PACKAGE...
# installs those of the Debian packages that are missing (one apt-get
# update, only when something is missing). Needs root.
apt_install() {
  local who=$1
  shift
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "$who: all packages present"
    return 0
  fi
  echo "$who: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
