#!/bin/sh
# ExecStopPost helper of blut's systemd units. It runs inside the unit's own
# cgroup just before systemd removes it, so it can still read the memory
# cgroup's OOM counter and peak usage, which systemd 252 on hybrid hierarchies
# does not report (an OOM kill there looks exactly like a plain SIGKILL).
# Usage: stoppost.sh RESULT_FILE   (writes key=value lines atomically, see below)
set -u
umask 077  # the record is private like everything under BLUT_HOME, whatever the unit's umask
out=$1
v1=$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup)
v2=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
oom=
peak=
memcg=
if [ -n "$v1" ] && [ -r "/sys/fs/cgroup/memory$v1/memory.oom_control" ]; then
  memcg=$v1
  oom=$(sed -n 's/^oom_kill //p' "/sys/fs/cgroup/memory$v1/memory.oom_control")
  peak=$(cat "/sys/fs/cgroup/memory$v1/memory.max_usage_in_bytes" 2>/dev/null)
elif [ -n "$v2" ] && [ -r "/sys/fs/cgroup$v2/memory.events" ]; then
  memcg=$v2
  oom=$(sed -n 's/^oom_kill //p' "/sys/fs/cgroup$v2/memory.events")
  peak=$(cat "/sys/fs/cgroup$v2/memory.peak" 2>/dev/null)
fi
record="service_result=${SERVICE_RESULT:-}
exit_code=${EXIT_CODE:-}
exit_status=${EXIT_STATUS:-}
memcg=$memcg
oom_kill=${oom:-}
peak_bytes=${peak:-}
finished=$(date +%s.%N)"
# The launcher pre-filled "$out.reserve" with blank lines: writing over it in place (1<>
# opens without truncating) needs no free space, so a unit that ended on a full disk
# still says how it ended. Then one rename makes the record appear whole.
reserve="$out.reserve"
if [ -f "$reserve" ] && printf '%s\n' "$record" 1<>"$reserve" && mv -f "$reserve" "$out"; then
  exit 0
fi
tmp="$out.tmp.$$"
if printf '%s\n' "$record" >"$tmp" && mv -f "$tmp" "$out"; then
  exit 0
fi
rm -f "$tmp"
exit 1
