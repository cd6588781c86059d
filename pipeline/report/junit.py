"""JUnit XML of a run: one <testsuite> per step and config, one <testcase> per matrix cell.

Reads a record; returns XML text. Each step's suite has the cases apply, build, new-warnings,
boot, each guest test case and splats; `fail`/`conflict` become <failure>, `error` an <error>,
`skip`/`blocked`/`not-run` a <skipped> with the reason. Text goes through `text.clean` (XML
cannot carry most control characters) and ElementTree escapes it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pipeline.report import model
from pipeline.report.text import clean, one_line

FAILED = ("fail", "conflict")
SKIPPED = ("skip", "blocked", "not-run")


def _case(suite: ET.Element, classname: str, name: str, cell: model.Cell,
          seconds: float | None = None, details: str = "") -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname=classname, name=clean(name))
    if seconds is not None:
        case.set("time", f"{float(seconds):.3f}")
    message = one_line(cell.title) or cell.status
    if cell.status in FAILED:
        ET.SubElement(case, "failure", message=message, type=cell.status).text = \
            clean(details) or message
    elif cell.status == "error":
        ET.SubElement(case, "error", message=message, type="error").text = \
            clean(details) or message
    elif cell.status in SKIPPED:
        ET.SubElement(case, "skipped", message=f"{cell.status}: {message}")
    if cell.link:
        ET.SubElement(case, "system-out").text = f"log: {cell.link}"
    return case


def _build_details(step: dict) -> str:
    errors = step["build"].get("errors") or []
    return "\n\n".join(e.get("context") or e.get("message", "") for e in errors)


def render_junit(rec: dict) -> str:
    root = ET.Element("testsuites", name=f"kpipe {rec['run_id']}")
    for config in model.configs(rec):
        for row in model.rows(rec, config):
            step = row.step
            classname = f"kpipe.{config}.step{row.index}"
            suite = ET.SubElement(root, "testsuite", name=f"{classname}: {row.subject}",
                                  timestamp=rec["created"])
            props = ET.SubElement(suite, "properties")
            for key, value in (("config", config), ("commit", step.get("commit") or ""),
                               ("patch", row.subject), ("reused_from",
                                                        step.get("reused_from") or "")):
                ET.SubElement(props, "property", name=key, value=clean(value))
            c = row.cells
            _case(suite, classname, "apply", c["apply"])
            _case(suite, classname, "build", c["build"], step["build"].get("seconds"),
                  _build_details(step))
            _case(suite, classname, "new-warnings", c["warnings"], details="\n".join(
                f"{w['file']}:{w['line']}: {w['message']}"
                for w in step["build"].get("warnings_new") or []))
            _case(suite, classname, "boot", c["boot"], step["boot"].get("seconds"))
            for test in step["tests"]:
                key = model.test_key(test)
                _case(suite, classname, key, row.tests[key], test.get("seconds"),
                      test.get("message", ""))
            _case(suite, classname, "splats", c["splats"], details="\n\n".join(
                f"{s['kind']}: {s['title']}\n{s.get('trace', '')}" for s in step["splats"]))
            _count(suite)
    _count(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _count(elem: ET.Element) -> None:
    cases = list(elem.iter("testcase"))
    elem.set("tests", str(len(cases)))
    for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        elem.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    elem.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")
