#!/bin/busybox sh
# kpipe vhost-scsi-migration: /init of the L2 guest (busybox). It talks to the suite on the
# serial console: it prints "KPIPE-L2 <word>" lines and reads one cue a line from its stdin.
#   at boot  read every block of the disk once (the page cache then holds generation 1)
#   read     drop the page cache and read every block again, buffered (the device writes
#            each page: generation 2 now on the disk)
#   check    compare the page cache's copy of each block with the disk read with O_DIRECT
#            and print every block that differs
/bin/busybox mkdir -p /proc /sys /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
DISK=/dev/sda
BLOCKS=$(sed -n 's/.*kpipe.blocks=\([0-9]*\).*/\1/p' /proc/cmdline)
say() { echo "KPIPE-L2 $*"; }
if [ ! -b "$DISK" ] || [ -z "$BLOCKS" ]; then
    say "ERROR no disk $DISK (blocks=$BLOCKS): $(cat /proc/partitions | tr '\n' ' ')"
    exec sleep 100000
fi
# Hold the disk open: the last close of a block device drops its page cache (kill_bdev),
# which would make the destination read every block from the disk afresh.
exec 3<"$DISK"
dd if="$DISK" of=/dev/null bs=4096 count="$BLOCKS" 2>/dev/null
say READY
while read -r cue; do
    case "$cue" in
    read)
        echo 3 > /proc/sys/vm/drop_caches
        dd if="$DISK" of=/dev/null bs=4096 count="$BLOCKS" 2>/dev/null
        say READ-DONE
        ;;
    check)
        dd if="$DISK" of=/tmp/cached bs=4096 count="$BLOCKS" 2>/dev/null
        dd if="$DISK" of=/tmp/direct bs=4096 count="$BLOCKS" iflag=direct 2>/dev/null
        off=0
        n=0
        # cmp stops at the first difference: restart it at the next block each time
        while out=$(cmp /tmp/cached /tmp/direct "$off" "$off" 2>&1); [ $? -eq 1 ]; do
            char=${out##*char }
            char=${char%%,*}
            case "$char" in *[!0-9]*|"") say "ERROR cmp said: $out"; break ;; esac
            block=$(( (off + char - 1) / 4096 ))
            say "STALE $block"
            n=$((n + 1))
            off=$(( (block + 1) * 4096 ))
        done
        say "CHECK-DONE stale=$n of=$BLOCKS"
        ;;
    esac
done
say "ERROR console closed"
exec sleep 100000
