#!/bin/sh
# run.sh - build vsmtpd and run it in the foreground on 127.0.0.1:2525 with
# the shipped configuration and rules, a spool under ./run/spool, logs on
# stderr, and mail for example.org delivered into
# ./run/mail/example.org/<user>/Maildir.
#
# No root needed. As root the daemon drops to the vsmtpd user like in
# production, so run/ and run/mail are made that user's first. The
# delivery worker may write only beneath the mailbox folder, which must
# exist before it starts and hold neither the spool nor app_dir: that is
# run/mail, made here. Extra arguments are passed on to vsmtpd, e.g.
# -o server.log_level=debug; -o listener:smtp.address=127.0.0.1:2526
# listens there instead of on port 2525.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
# The account the shipped conf/vsmtpd.conf runs as when started as root.
run_user=vsmtpd

# fail - say what is wrong and how to mend it, then stop.
fail() {
	echo "run.sh: $*" >&2
	exit 1
}

# prepare_as_root - run/ for a daemon that drops to $run_user.
prepare_as_root() {
	getent passwd "$run_user" >/dev/null ||
		fail "no user $run_user: run ./scripts/setup.sh first"
	mkdir -p run/mail
	chown -R "$run_user:$run_user" run
	setpriv --reuid="$run_user" --regid="$run_user" --init-groups \
		test -w "$top/run/mail" -a -x "$top/run/mail" ||
		fail "the $run_user user cannot reach $top/run (a folder above it is closed to" \
			"other users, e.g. /root): use a checkout in a folder everyone may enter," \
			"or run ./scripts/run.sh as an ordinary user"
}

# prepare_as_user - run/ for a daemon that keeps the caller's identity.
prepare_as_user() {
	mkdir -p run/mail 2>/dev/null && [ -w run ] && [ -w run/mail ] &&
		{ [ ! -e run/spool ] || [ -O run/spool ]; } ||
		fail "$top/run belongs to another user (a run as root leaves it to $run_user):" \
			"remove it (sudo rm -rf run) or run ./scripts/run.sh as root again"
}

# A listening address among the arguments replaces the default one (a
# second -o of a list key would add to it).
listen="-o listener:smtp.address=127.0.0.1:2525"
for arg; do
	case $arg in
	listener:smtp.address=* | -olistener:smtp.address=*) listen= ;;
	esac
done

if [ "$(id -u)" -eq 0 ]; then
	prepare_as_root
else
	prepare_as_user
fi

echo "run.sh: building vsmtpd in build/ (about a minute the first time)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target vsmtpd vsmtpctl
echo "run.sh: starting vsmtpd; mail for example.org goes into run/mail/, Ctrl-C stops it"
# shellcheck disable=SC2086
exec ./build/vsmtpd -c conf/vsmtpd.conf $listen \
	-o server.spool_dir="$top/run/spool" \
	-o server.log=stderr \
	-o rules.file="$top/rules/main.lua" \
	-o rules.app_dir="$top/run/app" \
	-o server.control_socket="$top/run/control" \
	-o rules.local_domains=example.org \
	-o delivery.maildir_path="$top/run/mail/%d/%u/Maildir" \
	-o delivery.mbox_path="$top/run/mail/%d/%u.mbox" \
	"$@"
