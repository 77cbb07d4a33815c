#!/bin/sh
# accept.sh - run the vsmtpd vs Postfix accept benchmark (accept.py).
# All options are accept.py's; see "accept.sh --help" and bench/README.md.
exec /usr/bin/python3 "$(dirname "$0")/accept.py" "$@"
