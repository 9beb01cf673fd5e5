#!/usr/bin/env python3
"""Check engagement-status's report page against its summary.

    status_page.py PAGE.html SUMMARY.json

The page must parse as HTML with every element closed in order, hold no
script, no event handler, no style or link fetched from elsewhere and no
http(s) address, and no phone number. Every element with data-figure (a
JSON pointer into the summary) must show that value as data-format says
(lib/report/eng_page.h): its text, or its data-value for an SVG shape.
Prints how many figures were checked; exits 1 with a line per problem.
"""
import json
import math
import re
import sys
from html.parser import HTMLParser

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base",
        "source", "track", "embed", "param"}
SELF_CLOSING_SVG = {"rect", "line", "circle", "path", "polyline", "polygon"}


def pointer(doc, ptr):
    v = doc
    for seg in ptr.split("/")[1:]:
        seg = seg.replace("~1", "/").replace("~0", "~")
        if isinstance(v, list):
            v = v[int(seg)]
        elif isinstance(v, dict):
            v = v[seg]
        else:
            raise KeyError(ptr)
    return v


def duration(s):
    t = int(s)
    if s < 60:
        return "%.1fs" % (math.floor(s * 10) / 10)
    if t < 3600:
        return "%dm %02ds" % (t // 60, t % 60)
    if t < 86400:
        return "%dh %02dm" % (t // 3600, t % 3600 // 60)
    return "%dd %02dh" % (t // 86400, t % 86400 // 3600)


def shown(v, fmt):
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    if fmt == "text":
        return v if isinstance(v, str) else "—"
    if fmt == "int":
        return "%.0f" % v if num else "—"
    if not num or (fmt == "duration" and v < 0):
        return "never"
    if fmt == "duration":
        return duration(v)
    return "%.0f" % v if v == math.floor(v) else "%.1f" % v


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.figures = [], [], []
        self.open_fig = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.problems.append("a <script> element")
        if tag in ("link", "iframe", "object", "embed", "img"):
            self.problems.append("an external asset element <%s>" % tag)
        for k in a:
            if k.startswith("on"):
                self.problems.append("an event handler %s on <%s>" % (k, tag))
        if "data-figure" in a:
            fig = [a["data-figure"], a.get("data-format"), a.get("data-value"), ""]
            self.figures.append(fig)
            if a.get("data-value") is None:
                self.open_fig = (fig, len(self.stack))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append("</%s> closes %s" % (tag, self.stack[-1:] or "nothing"))
            return
        self.stack.pop()
        if self.open_fig and len(self.stack) == self.open_fig[1]:
            self.open_fig = None

    def handle_data(self, data):
        if self.open_fig:
            self.open_fig[0][3] += data


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    summary = json.load(open(sys.argv[2], encoding="utf-8"))
    p = Page()
    p.feed(text)
    p.close()
    problems = list(p.problems)
    if p.stack:
        problems.append("elements left open: %s" % p.stack)
    if not text.startswith("<!DOCTYPE html>"):
        problems.append("no doctype")
    if re.search(r"https?:", text, re.I) or "url(" in text or "@import" in text:
        problems.append("an address of something elsewhere")
    phone = re.search(r"\+?\d[\d ()-]{8,}\d",
                      re.sub(r"\d{4}-\d\d-\d\d(T[\d:]+Z?)?", "", text))
    if phone:
        problems.append("something like a phone number: %s" % phone.group(0))
    for ptr, fmt, value, body in p.figures:
        try:
            want = shown(pointer(summary, ptr), fmt)
        except (KeyError, IndexError, ValueError):
            problems.append("%s: not in the summary" % ptr)
            continue
        got = value if value is not None else body
        if got != want:
            problems.append("%s (%s): the page shows %r, the summary says %r" %
                            (ptr, fmt, got, want))
    for line in problems:
        print("status_page: " + line, file=sys.stderr)
    print(len(p.figures))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
