#!/usr/bin/env bash
# Regenerates the mbox samples in this folder from the imported Debian 6.12 tree.
# Usage: tests/golden/mbox/make_samples.sh   (needs `kpipe tree` first)
# Then refresh the expected summaries:  KPIPE_UPDATE_GOLDEN=1 pytest tests/test_series_golden.py
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tree=${KPIPE_CACHE:-$HOME/.cache/kpipe}/tree.git
base=$(git -C "$tree" rev-parse main)
work=$(mktemp -d)
trap 'git -C "$tree" worktree remove --force "$work/wt" 2>/dev/null; rm -rf "$work"' EXIT
git -C "$tree" worktree add -q --no-checkout --detach "$work/wt" "$base"
cd "$work/wt"
# Sparse by hand: `git sparse-checkout` would change the shared repository's config.
mkdir -p "$(git rev-parse --absolute-git-dir)/info"
echo /drivers/vhost/ > "$(git rev-parse --absolute-git-dir)/info/sparse-checkout"
git -c core.sparseCheckout=true checkout -q
export GIT_AUTHOR_NAME="Ada Patchwright" GIT_AUTHOR_EMAIL="ada@example.org"
export GIT_COMMITTER_NAME="Ada Patchwright" GIT_COMMITTER_EMAIL="ada@example.org"
export GIT_AUTHOR_DATE="2026-11-20T10:00:00Z" GIT_COMMITTER_DATE="2026-11-20T10:00:00Z"

sed -i '0,/^#include <linux\/module.h>$/s//#include <linux\/module.h>\n\/* sample: first change *\//' drivers/vhost/scsi.c
git commit -qas -m "vhost-scsi: first sample change" -m "Adds a comment so the series has a real diff."
sed -i '0,/^#include <linux\/module.h>$/s//#include <linux\/module.h>\n\/* sample: second change *\//' drivers/vhost/vhost.c
git commit -qas -m "vhost: second sample change" -m "Touches vhost.c next."

rm -rf "$here/folder" && mkdir "$here/folder"
git format-patch -q --thread --cover-letter --base="$base" -o "$here/folder" HEAD~2..HEAD
sed -i 's/\*\*\* SUBJECT HERE \*\*\*/vhost: two sample changes/; s/\*\*\* BLURB HERE \*\*\*/A sample series for kpipe tests./' "$here/folder/0000-cover-letter.patch"
cat "$here"/folder/*.patch > "$here/series.mbox"

# A reply to patch 1 carrying a Reviewed-by: b4 must add it to the patch.
p1id=$(grep -m1 '^Message-ID:\|^Message-Id:' "$here/folder/0001-"*.patch | sed 's/^[^<]*<\(.*\)>.*/\1/')
cat "$here/series.mbox" > "$here/with-reply.mbox"
cat >> "$here/with-reply.mbox" <<MAIL
From rev@example.org Fri Nov 20 12:00:00 2026
From: Rita Reviewer <rita@example.org>
Subject: Re: [PATCH 1/2] vhost-scsi: first sample change
Date: Fri, 20 Nov 2026 12:00:00 +0000
Message-Id: <reply-1@example.org>
In-Reply-To: <$p1id>
References: <$p1id>

Looks right to me.

Reviewed-by: Rita Reviewer <rita@example.org>

MAIL

# Without patch 2.
cat "$here/folder/0000-cover-letter.patch" "$here/folder/0001-"*.patch > "$here/missing.mbox"
# Patch 1 posted twice (second copy with another Message-Id).
cat "$here/series.mbox" > "$here/duplicate.mbox"
sed 's/^Message-ID: <\(.*\)>/Message-ID: <dup-\1>/I' "$here/folder/0001-"*.patch >> "$here/duplicate.mbox"
# The Message-Id headers removed.
grep -vi '^Message-Id:' "$here/series.mbox" > "$here/no-msgid.mbox"
# A mail that is not a patch.
cat > "$here/not-a-patch.mbox" <<'MAIL'
From someone@example.org Fri Nov 20 12:00:00 2026
From: Some One <someone@example.org>
Subject: lunch on friday?
Date: Fri, 20 Nov 2026 12:00:00 +0000
Message-Id: <lunch@example.org>

Anyone up for lunch?
MAIL
: > "$here/empty.mbox"
printf 'BZh91AY&SY\0\0\1\2\3binary\0data' > "$here/binary.mbox"

# Two revisions: v1 (above) and a v2 with the second patch reworded.
git commit -q --amend -m "vhost: second sample change, reworded" -m "v2 of the second patch."
rm -rf "$work/v2" && git format-patch -q -v2 --thread --cover-letter --base="$base" -o "$work/v2" HEAD~2..HEAD
sed -i 's/\*\*\* SUBJECT HERE \*\*\*/vhost: two sample changes/; s/\*\*\* BLURB HERE \*\*\*/v2: reworded patch 2./' "$work/v2/v2-0000-cover-letter.patch"
# format-patch derives Message-Ids from the commit and the time: make v2's its own.
sed -i 's/\.git\.ada@example\.org>/.v2.git.ada@example.org>/' "$work"/v2/*.patch
cat "$here/series.mbox" "$work"/v2/*.patch > "$here/two-revisions.mbox"

# No base-commit: trailer (the base must be guessed from the index lines).
rm -rf "$work/nobase" && git format-patch -q --thread --cover-letter -o "$work/nobase" HEAD~2..HEAD
sed -i 's/\*\*\* SUBJECT HERE \*\*\*/vhost: no base-commit here/' "$work/nobase/0000-cover-letter.patch"
cat "$work"/nobase/*.patch > "$here/no-base.mbox"

# A maildir holding the series.
rm -rf "$here/maildir" && mkdir -p "$here/maildir"/{cur,new,tmp}
i=0; for f in "$here"/folder/*.patch; do i=$((i+1)); tail -n +2 "$f" > "$here/maildir/cur/$i.sample:2,S"; done
echo "base $base"
