# command_probe.sh MODE [ARG] - the program of the command services of
# test_service_command.py, run as "/bin/sh command_probe.sh MODE".
case "$1" in
env)
	# every variable, then the bytes of the message on standard input
	env | sort
	echo "STDIN_BYTES=$(wc -c | tr -d ' ')"
	;;
exit)
	cat >/dev/null
	echo "leaving with $2"
	exit "$2"
	;;
sleep)
	# a child in the background and one in front: both must be killed
	sleep 300 &
	sleep 300
	;;
big)
	head -c 200000 /dev/zero | tr '\0' x
	;;
echo)
	cat
	;;
esac
