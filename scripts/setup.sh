#!/bin/sh
# setup.sh - install the Debian packages vsmtpd needs to build, test and benchmark.
#
# Idempotent: packages already installed are skipped, and apt is not touched
# at all when everything is present. Runs apt-get through sudo when not root.
set -eu

PACKAGES="
build-essential cmake pkg-config
libevent-dev libssl-dev libsasl2-dev liblua5.4-dev libcjson-dev libinih-dev libc-ares-dev libseccomp-dev libopendkim-dev libspf2-dev libopendmarc-dev
publicsuffix
libsasl2-modules sasl2-bin openssl
dnsmasq-base python3-dkim python3-nacl python3-authres
libcmocka-dev clang libclang-rt-14-dev
python3 python3-pytest swaks libnet-ssleay-perl libio-socket-ssl-perl libdigest-hmac-perl
groff-base
postfix
dovecot-core dovecot-lmtpd
clamav-daemon spamd spamassassin
"

# ensure_user - the account the shipped config runs vsmtpd as, like a
# package would create it.
ensure_user() {
	if ! getent passwd vsmtpd >/dev/null; then
		echo "setup: creating system user vsmtpd"
		$SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin vsmtpd
	fi
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "setup: all packages present"
	ensure_user
	exit 0
fi

echo "setup: installing$missing"
# Postfix is only used as a test and benchmark peer (smtp-source, smtp-sink
# and a throw-away instance with its own config): keep the package from setting up
# a system-wide mail service.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
# Dovecot is only a test peer (an LMTP server the tests start with their
# own configuration): no system-wide IMAP service.
if [ -d /run/systemd/system ] && systemctl is-enabled dovecot.service >/dev/null 2>&1; then
	$SUDO systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
fi
# clamd and spamd are test peers too (started by the tests with their own
# configuration and a signature database they make): no system services,
# no signature downloads.
if [ -d /run/systemd/system ]; then
	for unit in clamav-daemon.service clamav-daemon.socket clamav-freshclam.service spamd.service; do
		if systemctl is-enabled "$unit" >/dev/null 2>&1; then
			$SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
		fi
	done
fi
ensure_user
