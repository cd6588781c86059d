"""Message-Ids for local mail that has none (git format-patch without --thread, a lone file).

Reads the raw mbox gather wrote; writes it back with each mail lacking a Message-Id given a
stable one (a hash of the whole mail and its position, under kpipe's own domain) and threaded
under the first mail in `[PATCH n/m]` order (file order when unnumbered), the way b4 reads a
posted series. A cover letter still reading `*** SUBJECT HERE ***` takes the first patch's
subject. Returns what it did, for the record's warnings.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import re
from email.message import EmailMessage
from pathlib import Path

DOMAIN = "msgid.kpipe.invalid"
PLACEHOLDER = "*** SUBJECT HERE ***"
_COUNTER = re.compile(r"^\s*\[[^\]]*?(\d+)/(\d+)\s*\]")
_PREFIX = re.compile(r"^\s*\[[^\]]*\]\s*")


def made_id(data: bytes, position: int) -> str:
    """The id kpipe gives the mail `data` at `position` (0-based) of its input."""
    digest = hashlib.sha256(f"{position}\n".encode() + data).hexdigest()[:32]
    return f"<{digest}@{DOMAIN}>"


def _counter(msg: EmailMessage) -> int | None:
    m = _COUNTER.match(str(msg.get("Subject", "")))
    return int(m[1]) if m else None


def assign(raw: Path) -> list[str]:
    """Give ids to the mails of `raw` that lack one, thread them, rewrite `raw`; return notes."""
    box = mailbox.mbox(str(raw), create=False)
    datas = [box.get_bytes(key) for key in box.keys()]
    box.close()
    msgs = [email.message_from_bytes(d, policy=email.policy.default) for d in datas]
    lacking = [i for i, m in enumerate(msgs) if not m.get("Message-Id")]
    if not lacking:
        return []
    for i in lacking:
        msgs[i]["Message-Id"] = made_id(datas[i], i)
    order = sorted(lacking, key=lambda i: (_counter(msgs[i]) is None, _counter(msgs[i]) or 0, i))
    root = msgs[order[0]]
    notes = [f"{len(lacking)} mail(s) had no Message-Id: kpipe made them (@{DOMAIN}, from a "
             f"hash of each mail and its position) and threaded them in [PATCH n/m] order"]
    for i in order[1:]:
        if not msgs[i].get("In-Reply-To"):
            msgs[i]["In-Reply-To"] = root["Message-Id"]
            msgs[i]["References"] = root["Message-Id"]
    if PLACEHOLDER in str(root.get("Subject", "")) and len(order) > 1:
        first = str(msgs[order[1]].get("Subject", ""))
        old = str(root["Subject"])
        root.replace_header("Subject", old.replace(PLACEHOLDER, _PREFIX.sub("", first)))
        notes.append(f"the cover letter's subject was `{PLACEHOLDER}`: using the first "
                     f"patch's")
    with open(raw, "wb") as fh:
        for msg in msgs:
            fh.write(b"From kpipe@localhost Thu Jan  1 00:00:00 1970\n")
            data = msg.as_bytes(policy=email.policy.default.clone(linesep="\n"))
            fh.write(data if data.endswith(b"\n") else data + b"\n")
            fh.write(b"\n")
    return notes
