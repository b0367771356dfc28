#!/usr/bin/env python3
"""Where a spear's heap goes, by component, per session.

Reads the folded stacks heaptrack_print writes with the peak cost of each allocation stack
(`heaptrack_print -f spear.zst --flamegraph-cost-type peak -F spear.stacks`) and sums them
into the components of one socket.io session (bench/results/connections.md, "Where the bytes go"),
divided by the number of sessions the spear held at its peak.

usage: scripts/heap-by-component.py STACKS SESSIONS [--top N]

--top N also lists the N largest allocation sites (the two innermost frames outside the
allocator, the collections and tokio's internals), per session.
"""

import collections
import re
import sys

# The first rule whose pattern matches one of a stack's innermost frames names its component.
RULES = [
    ("hyper's read buffer, pinned by a kept URI or header",
     r"hyper::proto::h1::io::Buffered.*poll_read_from_io"),
    ("engine.io's tasks (reader, writer, heartbeat)", r"Cell<T,S>::new"),
    ("engine.io's channels (packet queue, heartbeat)", r"tokio::sync::mpsc|tokio::sync::watch"),
    ("the request parts a socket keeps (URI, headers, extensions)",
     r"HeaderMap|http::extensions|gru::api::socketio::compact|hyper::proto::h1::role"),
    ("WebSocket stream and buffers (tungstenite)", r"tungstenite"),
    ("socketioxide's socket, rooms and handlers", r"socketioxide::"),
    ("engine.io's socket and its cancellation tokens", r"engineioxide::"),
    ("gru's own state (roster, limits, deadlines, session, connection)",
     r"gru::(api::socketio|services::spear|api::serve|services::history)"),
    ("tokio's IO registration", r"tokio::runtime::io"),
]
OTHER = "the rest (the process's own heap, work in flight)"
INNER_FRAMES = 14
# Frames that say where an allocation happens, not who asked for it.
MACHINERY = re.compile(
    r"hashbrown|^(alloc|core|std)::|tokio::sync::mpsc|tokio::runtime::(task|scheduler|context|"
    r"handle|blocking)|tokio::loom|tokio::task::spawn|tokio::util|^_RNv")


def demangle(frame):
    """A frame of heaptrack's folded output, readable: no file, hash or `$LT$` escapes."""
    frame = re.sub(r"\s*\(.*?\)\s*$", "", frame)
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    for escaped, plain in [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$u7b$", "{"),
                           ("$u7d$", "}"), ("..", "::"), ("$C$", ","), ("$RF$", "&")]:
        frame = frame.replace(escaped, plain)
    return frame


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, sessions = argv[1], int(argv[2])
    top = int(argv[4]) if len(argv) > 4 and argv[3] == "--top" else 0
    components = collections.Counter()
    sites = collections.Counter()
    with open(path, encoding="utf-8", errors="replace") as stacks:
        for line in stacks:
            stack, _, cost = line.rstrip("\n").rpartition(" ")
            if not cost.isdigit():
                continue
            frames = [demangle(f) for f in stack.split(";")]
            inner = ";".join(frames[-INNER_FRAMES:])
            name = next((n for n, p in RULES if re.search(p, inner)), OTHER)
            components[name] += int(cost)
            callers = [f for f in reversed(frames) if not MACHINERY.search(f)][:2]
            sites[" <- ".join(callers)] += int(cost)
    print("| component | bytes per session |")
    print("| --- | ---: |")
    for name in [n for n, _ in RULES] + [OTHER]:
        print(f"| {name} | {components[name] / sessions:,.0f} |")
    print(f"| heap at its peak, per session | {sum(components.values()) / sessions:,.0f} |")
    for site, cost in sites.most_common(top):
        print(f"{cost / sessions:8,.0f} B  {site[:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
