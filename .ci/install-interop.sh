#!/bin/sh
# Installs what `npm run test:interop` needs on Debian 12: dovecot-pop3d, vsftpd and postfix (the
# tests run their own private instances), curl (the POP3 and FTP client), lftp (the FTPS client that
# insists on TLS session reuse), swaks (the SMTP client), openssl (the tests make their certificates
# with it), and g++, make and python3, with which `npm ci` builds the optional splice(2) addon
# (native/splice; without them Concierge falls back to its JavaScript relay).
# Idempotent and quiet; run as root (or via sudo). The packaged dovecot, vsftpd and postfix services
# are neither needed nor started, and postfix is installed unconfigured ("No configuration").
set -eu

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -- "$0" "$@"
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
versions() {
  echo "dovecot $(dovecot --version | cut -d' ' -f1), postfix $(dpkg-query -W -f='${Version}' postfix), swaks $(dpkg-query -W -f='${Version}' swaks), lftp $(dpkg-query -W -f='${Version}' lftp) and $(curl --version | head -n1 | cut -d' ' -f1-2)"
}

if installed dovecot-pop3d && installed vsftpd && installed postfix && installed swaks && installed lftp &&
   command -v curl >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 &&
   command -v python3 >/dev/null 2>&1; then
  echo "interop: $(versions) already installed"
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
# postfix asks what kind of mail system this is; "No configuration" writes no /etc/postfix/main.cf
# and delivers nothing: the tests give their own instance its own config directory.
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 dovecot-pop3d vsftpd postfix swaks lftp curl openssl g++ make python3 >/dev/null

# The packages enable their services for the next boot; the tests never use them.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now dovecot.service dovecot.socket vsftpd.service postfix.service >/dev/null 2>&1 || true
fi

echo "interop: installed $(versions)"
