#!/bin/sh
# run.sh - build vsmtpd and run it in the foreground on 127.0.0.1:2525 with
# the shipped configuration and rules, a spool under ./run/spool and logs on stderr.
# No root needed; as root it drops to the vsmtpd user like in production.
# Extra arguments are passed on, e.g. -o server.log_level=debug.
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p run
exec ./build/vsmtpd -c conf/vsmtpd.conf \
	-o listener:smtp.address=127.0.0.1:2525 \
	-o server.spool_dir="$PWD/run/spool" \
	-o server.log=stderr \
	-o rules.file="$PWD/rules/main.lua" \
	-o rules.app_dir="$PWD/run/app" \
	-o server.control_socket="$PWD/run/control" \
	-o rules.local_domains=example.org \
	-o delivery.maildir_path="$PWD/run/mail/%d/%u/Maildir" \
	-o delivery.mbox_path="$PWD/run/mail/%d/%u.mbox" \
	"$@"
