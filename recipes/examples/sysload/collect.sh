#!/bin/sh
# sysload: a KeyStone metrics plugin in POSIX sh, using only shell
# built-ins. It reads the run's JSON document on stdin, keeps a run counter
# in the returned state, and reports the load average, uptime and available
# memory read from /proc.
set -eu

input=''
while IFS= read -r line || [ -n "$line" ]; do
	input="$input$line"
done

# "state":{"runs":N} from the previous run, if any.
runs=0
case $input in
*'"runs":'*)
	rest=${input#*\"runs\":}
	rest=${rest# }
	digits=${rest%%[!0-9]*}
	[ -n "$digits" ] && runs=$digits
	;;
esac
runs=$((runs + 1))

read -r load1 load5 load15 _ < /proc/loadavg
read -r uptime _ < /proc/uptime
avail_kb=0
while read -r key value _; do
	if [ "$key" = "MemAvailable:" ]; then
		avail_kb=$value
		break
	fi
done < /proc/meminfo

printf '{"metrics":['
printf '{"name":"load1","type":"gauge","value":%s,"help":"1-minute load average"},' "$load1"
printf '{"name":"load5","type":"gauge","value":%s,"help":"5-minute load average"},' "$load5"
printf '{"name":"load15","type":"gauge","value":%s,"help":"15-minute load average"},' "$load15"
printf '{"name":"uptime_seconds","type":"gauge","value":%s,"help":"Seconds since boot"},' "$uptime"
printf '{"name":"memory_available_bytes","type":"gauge","value":%s,"help":"MemAvailable from /proc/meminfo"},' "$((avail_kb * 1024))"
printf '{"name":"runs_total","type":"counter","value":%s,"help":"Runs of this plugin"}' "$runs"
printf '],"state":{"runs":%s}}\n' "$runs"
