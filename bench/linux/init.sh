#!/bin/sh
# init.sh: /init of the Linux reference guest (run by busybox sh as PID 1).
#
# The benchmark (make bench) compares blimp's balloon with Linux's on the same
# QEMU, driven by the same host code (tools/blimp/vm.py). So this guest speaks
# blimp's console protocol, the part the benchmark uses:
#
#   - event lines, one JSON object each, at the start of a line:
#       @ev {"ev":"ready","t_ms":T,"boot":"linux","mem_usable":BYTES,"swap_bytes":BYTES}
#       @ev {"ev":"cmd","t_ms":T,"name":"touch","rc":STATUS}
#       @ev {"ev":"cmd_error","t_ms":T,"name":"WORD"}
#     t_ms is milliseconds since the kernel started (/proc/uptime); the host
#     rejects any line starting with "@ev " that is not such an object.
#   - commands, one a line on the console (ttyS0):
#       touch N    run /touchmem N: map N MiB, write every page, unmap
#       meminfo    print /proc/meminfo
#       vmstat     print /proc/vmstat
#       press ARGS start /pressmem ARGS (the squeeze's workload) in the
#                  background: the cmd event comes at once, with "pid";
#                  the program's own lines follow on the console
#       presswait  wait for it to end; the cmd event's rc is its exit status
#       cacheread N  read the first N MiB of the read-only disk into the page
#                  cache (dd to /dev/null through the block device's cache:
#                  clean pages the guest can drop without I/O, as blimp's
#                  `cache read`; bench/hostswap.py's idle scenario). rc 2: no
#                  read-only disk or N not a positive number; 1: dd failed.
#                  (`touch N` is the scenario's touch-and-free.)
#       wss [PID]  one period of the classic working-set estimate on process
#                  PID (default: the one `press` started), by the kernel's
#                  own clock (bench/wsscan.py): read /proc/PID/smaps (its
#                  Referenced: lines, the pages used since the last clear),
#                  then `echo 1 > /proc/PID/clear_refs` (clear every Accessed
#                  bit). The process is stopped (SIGSTOP) for the span, so
#                  only the scan runs. One event before the cmd event:
#         @ev {"ev":"wss","t_ms":T,"pid":P,"clock_ns":C,"smaps_ns":S,"exec_ns":E,
#              "clear_ns":R,"rss_kib":K,"referenced_kib":F,"anon_huge_kib":H}
#                  clock_ns: two clock reads back to back (the clock's own
#                  cost); smaps_ns: `cat smaps` to a file, fork and exec
#                  included; exec_ns: `cat statm` the same way (what of
#                  smaps_ns is not the scan); clear_ns: the clear_refs write
#                  (a builtin: no fork); the sums of smaps' Rss, Referenced
#                  and AnonHugePages. rc 2: no such process; 1: a step failed.
#       poweroff   power off at once (QEMU exits with status 0)
#
# Before "ready": mount proc, sysfs and devtmpfs; quieten the kernel so its
# messages cannot land inside an event line; load the virtio modules the
# balloon needs, in the order build_guest.py wrote to /lib/modules/load-order;
# turn off the console's echo so what the host types does not come back.
# If a writable virtio disk is there (the squeeze, bench/squeeze.py, adds
# one; the other benchmarks none), it becomes swap: mkswap, swapon. A
# read-only one (bench/hostswap.py's idle scenario) is `cacheread`'s.
# Any step failing prints "init: ..." and powers off, so the host sees QEMU
# exit with the reason on the serial log instead of waiting for "ready".

PATH=/bin
export PATH
set -f    # command words are data: no pathname expansion of "*" and friends

fail() {
    echo "init: $*" >&2
    poweroff -f
    exit 1
}

# Milliseconds since boot. /proc/uptime reads "SECONDS.HUNDREDTHS IDLE".
now_ms() {
    read -r uptime_text idle_text < /proc/uptime
    whole=${uptime_text%.*}
    hundredths=${uptime_text#*.}
    hundredths=${hundredths#0}    # "05" -> "5": a leading zero would mean octal
    echo $((whole * 1000 + hundredths * 10))
}

# event NAME [',"field":value...']  -- one event line; the extra fields are JSON.
event() {
    echo "@ev {\"ev\":\"$1\",\"t_ms\":$(now_ms)$2}"
}

# The kernel's monotonic clock (ktime_get) in ns, into $clock_ns, without a
# fork: the third line of /proc/timer_list is "now at NS nsecs". ($(...)
# would fork a subshell: too slow to time a scan with.)
read_clock() {
    { read -r clock_line; read -r clock_line; read -r clock_line; } < /proc/timer_list
    clock_ns=${clock_line#now at }
    clock_ns=${clock_ns% nsecs}
    case "$clock_ns" in
    '' | *[!0-9]*) echo "init: no clock in /proc/timer_list: '$clock_line'" >&2; return 1 ;;
    esac
}

# wss_scan PID: the `wss` command (see the top); returns its rc.
wss_scan() {
    wss_pid=${1:-$press_pid}
    case "$wss_pid" in
    '' | *[!0-9]*) echo "wss: no process given and none pressing"; return 2 ;;
    esac
    [ -r "/proc/$wss_pid/smaps" ] || { echo "wss: no process $wss_pid"; return 2; }
    kill -STOP "$wss_pid" || return 1
    wss_rc=1
    if read_clock && t0=$clock_ns && read_clock && t1=$clock_ns \
        && cat "/proc/$wss_pid/smaps" > /tmp/wss.smaps && read_clock && t2=$clock_ns \
        && cat "/proc/$wss_pid/statm" > /tmp/wss.statm && read_clock && t3=$clock_ns \
        && echo 1 > "/proc/$wss_pid/clear_refs" && read_clock && t4=$clock_ns; then
        wss_rc=0
    fi
    kill -CONT "$wss_pid"
    [ "$wss_rc" = 0 ] || { echo "wss: a step failed"; return 1; }
    wss_sums=$(awk '$1 == "Rss:" { r += $2 } $1 == "Referenced:" { f += $2 }
                    $1 == "AnonHugePages:" { h += $2 } END { print r + 0, f + 0, h + 0 }' /tmp/wss.smaps)
    set -- $wss_sums
    event wss ",\"pid\":$wss_pid,\"clock_ns\":$((t1 - t0)),\"smaps_ns\":$((t2 - t1)),\"exec_ns\":$((t3 - t2)),\"clear_ns\":$((t4 - t3)),\"rss_kib\":$1,\"referenced_kib\":$2,\"anon_huge_kib\":$3"
}

# A word typed by the host made safe inside a JSON string.
json_word() {
    printf '%s' "$1" | sed 's/[^A-Za-z0-9_.:+=-]/?/g'
}

mount -t proc proc /proc || fail "cannot mount /proc"
# Only emergencies reach the console from now on (quiet already hides info).
echo 1 > /proc/sys/kernel/printk || fail "cannot set the console log level"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "cannot mount devtmpfs on /dev"

while read -r module_file; do
    [ -n "$module_file" ] || continue
    insmod "/lib/modules/$module_file" || fail "insmod /lib/modules/$module_file failed"
done < /lib/modules/load-order

stty -echo || fail "cannot turn off the console echo (stty -echo)"

# The first writable virtio disk, if any, is the swap device, the first
# read-only one the page cache's (devtmpfs made the nodes when virtio_blk
# found them; /sys/block/vdX/ro is 1 for QEMU's readonly=on).
swap_disk=
cache_disk=
for block in $(ls /sys/block); do
    case "$block" in
    vd*)
        read -r block_ro < "/sys/block/$block/ro" || fail "cannot read /sys/block/$block/ro"
        if [ "$block_ro" = 1 ]; then
            [ -n "$cache_disk" ] || cache_disk=/dev/$block
        else
            [ -n "$swap_disk" ] || swap_disk=/dev/$block
        fi
        ;;
    esac
done
# Linux drops a block device's page cache when its last opener closes it
# (blkdev_put -> kill_bdev): init holds the cache disk open on fd 7 so that
# what `cacheread` reads stays cached after dd exits.
if [ -n "$cache_disk" ]; then
    exec 7< "$cache_disk" || fail "cannot open $cache_disk"
fi
if [ -n "$swap_disk" ]; then
    mkswap "$swap_disk" > /dev/null || fail "mkswap $swap_disk failed"
    swapon "$swap_disk" || fail "swapon $swap_disk failed"
fi
swap_total_kib=$(sed -n 's/^SwapTotal: *\([0-9]*\) kB$/\1/p' /proc/meminfo)

mem_total_kib=$(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' /proc/meminfo)
[ -n "$mem_total_kib" ] || fail "no MemTotal in /proc/meminfo"
event ready ",\"boot\":\"linux\",\"mem_usable\":$((mem_total_kib * 1024)),\"swap_bytes\":$((${swap_total_kib:-0} * 1024))"

press_pid=

while read -r line; do
    set -- $line
    [ $# -gt 0 ] || continue
    command_word=$1
    shift
    case "$command_word" in
    touch)
        /touchmem "$@"
        event cmd ",\"name\":\"touch\",\"rc\":$?"
        ;;
    meminfo)
        cat /proc/meminfo
        event cmd ",\"name\":\"meminfo\",\"rc\":0"
        ;;
    vmstat)
        cat /proc/vmstat
        event cmd ",\"name\":\"vmstat\",\"rc\":0"
        ;;
    press)
        /pressmem "$@" &
        press_pid=$!
        event cmd ",\"name\":\"press\",\"rc\":0,\"pid\":$press_pid"
        ;;
    presswait)
        if [ -n "$press_pid" ]; then
            wait "$press_pid"
            press_rc=$?
            press_pid=
        else
            press_rc=127    # nothing was started
        fi
        event cmd ",\"name\":\"presswait\",\"rc\":$press_rc"
        ;;
    cacheread)
        case "$1" in
        '' | 0 | *[!0-9]*) echo "cacheread: '$1' is not a positive number of MiB"; cache_rc=2 ;;
        *)
            if [ -z "$cache_disk" ]; then
                echo "cacheread: no read-only disk"
                cache_rc=2
            elif dd if="$cache_disk" of=/dev/null bs=1048576 count="$1" 2> /tmp/dd.err; then
                cache_rc=0
            else
                cat /tmp/dd.err
                cache_rc=1
            fi
            ;;
        esac
        event cmd ",\"name\":\"cacheread\",\"rc\":$cache_rc"
        ;;
    wss)
        wss_scan "$@"
        event cmd ",\"name\":\"wss\",\"rc\":$?"
        ;;
    poweroff)
        poweroff -f
        fail "poweroff -f returned"
        ;;
    *)
        event cmd_error ",\"name\":\"$(json_word "$command_word")\""
        ;;
    esac
done

# The console closed (the host went away): nothing more will come.
poweroff -f
