#!/bin/sh
# test.sh - build and run the whole test suite: unit tests (cmocka) and
# end-to-end tests (pytest against the real daemon), once in a normal build
# and once with AddressSanitizer and UndefinedBehaviorSanitizer, then the
# parser fuzzers for a bounded time.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)

run_suite() {
	dir=$1
	shift
	echo "== $dir: configure and build"
	cmake -S . -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j"$jobs" >/dev/null
	echo "== $dir: test"
	ctest --test-dir "$dir" --output-on-failure
}

run_suite build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=abort_on_error=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	run_suite build-sanitize -DCMAKE_BUILD_TYPE=Debug -DVSMTPD_SANITIZE=ON
CC=clang run_suite build-fuzz -DCMAKE_BUILD_TYPE=Debug -DVSMTPD_FUZZ=ON
echo "== all suites passed"
