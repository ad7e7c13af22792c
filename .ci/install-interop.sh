#!/bin/sh
# Installs what `npm run test:interop` needs on Debian 12: dovecot-pop3d and vsftpd (the tests run their
# own private instances) and curl (the POP3 and FTP client). Idempotent and quiet; run as root (or via sudo).
# The packaged dovecot service is neither needed nor started.
set -eu

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -- "$0" "$@"
fi

if dpkg-query -W -f='${Status}' dovecot-pop3d 2>/dev/null | grep -q 'install ok installed' &&
   dpkg-query -W -f='${Status}' vsftpd 2>/dev/null | grep -q 'install ok installed' &&
   command -v curl >/dev/null 2>&1; then
  echo "interop: dovecot $(dovecot --version | cut -d' ' -f1) and $(curl --version | head -n1 | cut -d' ' -f1-2) already installed"
  exit 0
fi

# policy-rc.d exit 101 forbids invoke-rc.d / deb-systemd-invoke from starting services during
# the install; only install our own and only remove what we created.
policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=yes
fi
cleanup() { if [ "$created_policy" = yes ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 dovecot-pop3d vsftpd curl >/dev/null

# The package enables the service for the next boot; the tests never use it.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now dovecot.service dovecot.socket vsftpd.service >/dev/null 2>&1 || true
fi

echo "interop: installed dovecot $(dovecot --version | cut -d' ' -f1) and $(curl --version | head -n1 | cut -d' ' -f1-2)"
