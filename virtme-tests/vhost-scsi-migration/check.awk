# kpipe vhost-scsi-migration: the destination L2's check (busybox awk, run by l2-init.sh as
#   awk -v want=BLOCKS -f /check.awk CACHED DIRECT).
# Reads two copies of the disk as `od -A d -t x8 -w32` prints them: the page cache's and the
# O_DIRECT read's. od prints a run of equal 32-byte lines once and then "*" (a block of the
# disk's pattern is one 32-byte line 128 times, so two lines), and ends with the size alone.
# Groups each copy's lines by the 4 KiB block their offset is in (a "*" goes with the line
# before it) and compares the copies block by block. Prints "KPIPE-L2 STALE b1 b2 ..." when
# blocks differ, then "KPIPE-L2 CHECK-DONE stale=N of=BLOCKS"; or "KPIPE-L2 ERROR ..." when a
# copy is missing or not BLOCKS blocks long.
# busybox awk reads a number with a leading 0 as octal: od pads its offsets
function offset(field) { sub(/^0+/, "", field); return field + 0 }
FNR == 1 { f++ }
$1 == "*" { rep[f, cur] = rep[f, cur] " *"; next }
NF == 1 { size[f] = offset($1); next }
{ cur = int(offset($1) / 4096); rep[f, cur] = rep[f, cur] " " $0 }
END {
    if (f != 2 || size[1] != want * 4096 || size[2] != want * 4096) {
        print "KPIPE-L2 ERROR check read " size[1] + 0 " B cached and " \
              size[2] + 0 " B direct, not " want * 4096
        exit
    }
    for (b = 0; b < want; b++)
        if (rep[1, b] != rep[2, b]) { stale = stale " " b; n++ }
    if (n) print "KPIPE-L2 STALE" stale
    print "KPIPE-L2 CHECK-DONE stale=" n + 0 " of=" want
}
