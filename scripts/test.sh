#!/bin/sh
# test.sh - build and run the whole test suite: unit tests (cmocka) and
# end-to-end tests (pytest against the real daemon), once in a normal build
# and once with AddressSanitizer and UndefinedBehaviorSanitizer, then the
# parser fuzzers for a bounded time in a clang build (with its unit tests).
# A Release build (-O3, where GCC's flow analysis warns the most) runs the
# unit tests only. Every build treats
# compiler warnings as errors (VSMTPD_WERROR).
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)

# build - configure and build dir with the given cmake arguments.
build() {
	dir=$1
	shift
	echo "== $dir: configure and build"
	cmake -S . -B "$dir" -DVSMTPD_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs" >/dev/null
}

# run_suite - build dir, then run every test of it.
run_suite() {
	build "$@"
	echo "== $1: test"
	ctest --test-dir "$1" --output-on-failure
}

build build-release -DCMAKE_BUILD_TYPE=Release
echo "== build-release: unit tests"
ctest --test-dir build-release --output-on-failure --no-tests=error -R '^unit\.'
run_suite build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=abort_on_error=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	run_suite build-sanitize -DCMAKE_BUILD_TYPE=Debug -DVSMTPD_SANITIZE=ON
# The clang build runs its unit tests and the fuzzers, as many at once as
# there are CPUs (each fuzzer is one process): the end-to-end tests already
# ran against two builds of the same daemon above.
CC=clang build build-fuzz -DCMAKE_BUILD_TYPE=Debug -DVSMTPD_FUZZ=ON
echo "== build-fuzz: unit tests and fuzzers"
ctest --test-dir build-fuzz --output-on-failure --no-tests=error -R '^(unit|fuzz)\.' -j"$jobs"
echo "== all suites passed"
