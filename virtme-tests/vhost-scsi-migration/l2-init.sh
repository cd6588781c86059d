#!/bin/busybox sh
# kpipe vhost-scsi-migration: /init of the L2 guest (busybox). It talks to the suite on the
# serial console: it prints "KPIPE-L2 <word>" lines and reads one cue a line from its stdin.
#   at boot  read every block of the disk once (the page cache then holds generation 1)
#   dirty    start rewriting 1 MiB of /tmp in place, again and again, until the next cue:
#            every pass of a capped migration then finds pages dirty (it cannot converge)
#   read     drop the page cache and read every block again, buffered (the device writes
#            each page: generation 2 now on the disk)
#   check    compare the page cache's copy of each block with the disk read with O_DIRECT,
#            in one pass, and print every block that differs (on one line)
# Debian's busybox runs its applets from its shell without links (FEATURE_SH_STANDALONE,
# through /proc/self/exe), so nothing is installed and /proc is mounted first, by full path.
# Every process costs about a second under TCG inside TCG: this script starts few. The
# initramfs holds /proc, /sys, /tmp and the /dev nodes already (initramfs.py), and the
# kernel scans no SCSI target itself (scsi_mod.scan=manual: it would probe each of the
# 256 targets virtio-scsi offers); the disk's target (kpipe.target=, vhost-scsi's TPG tag)
# LUN 0 is scanned here.
/bin/busybox mount -t proc proc /proc
mount -t sysfs sysfs /sys
DISK=/dev/sda
read -r cmdline < /proc/cmdline
BLOCKS=${cmdline##*kpipe.blocks=}
BLOCKS=${BLOCKS%% *}
TARGET=${cmdline##*kpipe.target=}
TARGET=${TARGET%% *}
echo "0 $TARGET 0" > /sys/class/scsi_host/host0/scan
say() { echo "KPIPE-L2 $*"; }
case "$BLOCKS$TARGET" in ""|*[!0-9]*)
    say "ERROR no kpipe.blocks= or kpipe.target= in: $cmdline"; exec sleep 100000 ;; esac
# sd attaches the disk asynchronously: wait for it with shell builtins only (no process)
n=0
while [ ! -e /sys/block/sda ] && [ $n -lt 20000 ]; do n=$((n + 1)); done
if [ ! -e /sys/block/sda ]; then
    say "ERROR no disk $DISK after scanning target $TARGET LUN 0: $(cat /proc/partitions)"
    exec sleep 100000
fi
# Hold the disk open: the last close of a block device drops its page cache (kill_bdev),
# which would make the destination read every block from the disk afresh.
exec 3<"$DISK"
dd if="$DISK" of=/dev/null bs=4096 count="$BLOCKS" 2>/dev/null
say "READY (waited $n rounds for the disk)"
while read -r cue; do
    # stop the dirtying loop first (the dd it runs last still ends on its own)
    [ -n "$dirtier" ] && kill "$dirtier" && dirtier=
    case "$cue" in
    dirty)
        # the same pages each time (conv=notrunc), with data that is not zero (zero pages
        # cost a migration 9 bytes each, so they would keep nothing from converging)
        dd if=/bin/busybox of=/tmp/dirt bs=64k count=16 2>/dev/null
        (while :; do
            dd if=/bin/busybox of=/tmp/dirt bs=64k count=16 conv=notrunc 2>/dev/null
        done) &
        dirtier=$!
        say DIRTYING
        ;;
    read)
        # a page cache not dropped, or reads cut short, would leave no page for the device to
        # write during the migration: the base would pass unseen, so either is an error
        if ! echo 3 > /proc/sys/vm/drop_caches; then
            say "ERROR cannot drop the page cache (/proc/sys/vm/drop_caches)"; continue
        fi
        got=$(dd if="$DISK" of=/dev/null bs=4096 count="$BLOCKS" 2>&1)
        case "$got" in
        "$BLOCKS+0 records in"*) say READ-DONE ;;
        *) say "ERROR the reads through the page cache came short: $(echo $got)" ;;
        esac
        ;;
    check)
        # Both copies to files, then cmp: equal copies (the fixed kernel) need no more. Else
        # each copy as od prints it, 32 bytes a line (od prints a run of equal lines once,
        # then "*"), compared block by block by check.awk: one pass, a few processes (cmp
        # per block, an exec each, was most of the suite's time, and every program run on
        # the destination is translated afresh there). The O_DIRECT read is one request.
        # (dd's own report says each copy is whole: cmp of two short copies proves nothing;
        # busybox dd reports records only, "N+0 records in" for N whole ones, no bytes line)
        cached=$(dd if="$DISK" of=/tmp/cached bs=4096 count="$BLOCKS" 2>&1)
        direct=$(dd if="$DISK" of=/tmp/direct bs=$((BLOCKS * 4096)) count=1 iflag=direct 2>&1)
        case "$cached" in "$BLOCKS+0 records in"*) ;; *) cached= ;; esac
        case "$direct" in "1+0 records in"*) ;; *) direct= ;; esac
        if [ -n "$cached" ] && [ -n "$direct" ] && cmp -s /tmp/cached /tmp/direct; then
            say "CHECK-DONE stale=0 of=$BLOCKS"
        else
            od -A d -t x8 -w32 /tmp/cached > /tmp/cached.od
            od -A d -t x8 -w32 /tmp/direct > /tmp/direct.od
            awk -v want="$BLOCKS" -f /check.awk /tmp/cached.od /tmp/direct.od
        fi
        ;;
    esac
done
say "ERROR console closed"
exec sleep 100000
