"""The status document as one HTML page: readable at a glance, no script, no external asset.

The node it is served on may be cut off from everything, so the page carries its own style
and needs nothing else; every value is escaped.  The most urgent facts come first: is the
cloud there (and since when), can the node run without it, what did the hub refuse.
Auto-refresh is off unless asked for (``/status?refresh=10``).
"""

from __future__ import annotations

from html import escape
from typing import Any

from yurthub.cache.inventory import age

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.2em 2em;
color:#1b1f24;background:#fff}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em;
border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.2em 0}th,td{text-align:left;padding:.2em .8em .2em 0;
vertical-align:top}th{font-weight:600;color:#57606a;font-size:.9em;text-transform:uppercase}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.15em .6em;border-radius:.8em;font-weight:700;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}.warn{background:#9a6700}
.badge,.nw{white-space:nowrap}.muted{color:#57606a}.why{color:#cf222e}.small{font-size:.9em}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}code.req{overflow-wrap:anywhere}
"""


def render(doc: dict[str, Any], refresh: int = 0) -> str:
    """The page for ``doc`` (status.StatusSource.document); ``refresh`` seconds, 0 = off."""
    cloud = doc["cloud"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>yurthub {_e(doc['node'])}: {'online' if cloud['online'] else 'OFFLINE'}"
        "</title>",
        f'<meta http-equiv="refresh" content="{refresh}">' if refresh else "",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>yurthub on {_e(doc['node'])} {_state(cloud)}</h1>",
        f'<p class="muted small">{_e(doc["mode"])} mode · version {_e(doc["version"])} · '
        f'generated {_e(doc["time"])} · auto-refresh '
        + (f'every {refresh}s (<a href="?">off</a>)' if refresh
           else 'off (<a href="?refresh=10">every 10s</a>)') + "</p>",
        _ready(doc.get("ready")),
        _autonomy(doc.get("autonomy")),
        _servers(cloud),
        _cache(doc["cache"]),
        _watches(doc["watches"]),
        _events(doc["events"], doc["eventCounts"]),
        _tee(doc["tee"]),
        _config(doc["filters"], doc["identity"]),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _ago(seconds: int | None) -> str:
    return "never" if seconds is None else f"{age(seconds)} ago"


def _badge(text: str, cls: str) -> str:
    return f'<span class="badge {cls}">{_e(text)}</span>'


def _state(cloud: dict[str, Any]) -> str:
    since = f" since {_e(_ago(cloud['sinceSeconds']))}" if cloud["since"] else ""
    if cloud["online"]:
        return _badge("ONLINE", "ok") + f'<span class="muted small">{since}</span>'
    return (_badge("OFFLINE", "bad") +
            f'<span class="small"> cloud unreachable{since}: serving from the cache</span>')


def _table(head: list[str], rows: list[list[str]], numeric: frozenset[int] = frozenset()
           ) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
        for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _ready(r: dict[str, Any] | None) -> str:
    """What /v1/readyz says, so that a hub that stopped caching or waits for its identity
    says so where the operator looks."""
    if r is None:
        return ""
    if r["ready"]:
        return "<p>" + _badge("ready", "ok") + "</p>"
    reasons = r.get("reasons") or [r["reason"]]
    if len(reasons) == 1:
        return ("<p>" + _badge("NOT READY", "bad") +
                f' <span class="why">{_e(reasons[0])}</span></p>')
    items = "".join(f'<li class="why">{_e(why)}</li>' for why in reasons)
    return "<p>" + _badge("NOT READY", "bad") + f"</p><ul>{items}</ul>"


def _autonomy(a: dict[str, Any] | None) -> str:
    if a is None:
        return ""
    reported = ("on the Node since " + _e(a["reportedAt"]) if a["reportedToNode"]
                else f'<span class="why">not on the Node yet: {_e(a["reportError"])}</span>'
                if a["reportError"] else "not on the Node yet (the cloud is away)")
    return ("<h2>Autonomy</h2><p>" + (_badge("True", "ok") if a["status"] == "True"
                                       else _badge(a["status"], "bad")) +
            f' <b>{_e(a["reason"])}</b> <span class="small">{_e(a["message"])}</span></p>'
            f'<p class="muted small">condition {reported}</p>')


def _servers(cloud: dict[str, Any]) -> str:
    rows = []
    for s in cloud["servers"]:
        health = _badge("healthy", "ok") if s["healthy"] else _badge("unhealthy", "bad")
        rows.append([f"<code>{_e(s['url'])}</code>", health, _e(_ago(s["sinceSeconds"])),
                     _e(_ago(s["lastProbeSeconds"])),
                     f'<span class="why">{_e(s["reason"])}</span>' if s["reason"] else
                     '<span class="muted">ok</span>'])
    note = "" if cloud["healthChecked"] else \
        '<p class="muted small">cloud mode: servers are not probed</p>'
    return ("<h2>Cloud servers</h2>" + note +
            _table(["server", "health", "since", "last probe", "reason"], rows))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _cache(c: dict[str, Any]) -> str:
    disk = c["disk"]
    if "error" in disk:
        free = f'<span class="why">cannot read: {_e(disk["error"])}</span>'
    else:
        cls = "why" if disk["freePercent"] < 10 else ""
        free = (f'<span class="{cls}">{_e(_size(disk["freeBytes"]))} free of '
                f'{_e(_size(disk["totalBytes"]))} ({disk["freePercent"]}%)</span>')
        if "freeInodes" in disk:
            low = disk["freeInodes"] < max(disk["totalInodes"] // 10, 1024)
            free += (f', <span class="{"why" if low else ""}">{disk["freeInodes"]} of '
                     f'{disk["totalInodes"]} inodes free</span>')
    rows = []
    for r in c["collections"]:
        res = r["resource"] + (f".{r['group']}" if r["group"] else "")
        views = "<br>".join(
            f"<code>{_e(v['selector'])}</code> rv {v['resourceVersion']}, synced "
            f"{_e(_ago(v['ageSeconds']))}"
            + (f' <span class="why">stale: {_e(v["staleReason"])}</span>' if v["stale"] else "")
            + (f' <span class="why">incomplete: {_e(v["incompleteReason"])}</span>'
               if v["incomplete"] else "")
            for v in r["views"]) or (
                f'<span class="why">none: {_e(r["staleReason"])}</span>' if r["staleReason"]
                else '<span class="muted">none (not served offline)</span>')
        state = (_badge("stale", "warn") if r["stale"] else
                 _badge("fresh", "ok") if r["views"] else _badge("no view", "warn"))
        rows.append([_e(r["component"]), _e(res), str(r["objects"]), _e(_size(r["bytes"])),
                     _e(_ago(r["ageSeconds"])) if r["views"] else "—", state, views])
    quarantined = (f' · <span class="why">{c["quarantined"]} file(s) quarantined</span>'
                   if c["quarantined"] else "")
    damaged = c.get("damagedDocuments") or []
    if damaged:
        quarantined += (' · <span class="why">damaged, not used until the cloud sends them '
                        "again: " + ", ".join(f"<code>{_e(d)}</code>" for d in damaged) +
                        "</span>")
    stopped = (f'<p>{_badge("caching stopped", "bad")} <span class="why">'
               f'{_e(c["stopped"])}</span></p>' if c.get("stopped") else "")
    return (f"<h2>Cache</h2><p><code>{_e(c['root'])}</code> · {c['objects']} objects, "
            f"{_e(_size(c['bytes']))} · disk {free}{quarantined}</p>" + stopped +
            (_table(["component", "resource", "objects", "size", "last sync", "state",
                     "views (selectors)"], rows, frozenset({2, 3}))
             if rows else '<p class="muted">nothing cached yet</p>'))


def _watches(w: list[dict[str, Any]]) -> str:
    if not w:
        return '<h2>Open watches</h2><p class="muted">none</p>'
    rows = [[_e(x["component"]), str(x["remote"]), str(x["local"]), str(x.get("shared", 0))]
            for x in w]
    return "<h2>Open watches</h2>" + _table(
        ["component", "remote (cloud)", "local (cache)", "shared (multiplexer)"], rows,
        frozenset({1, 2, 3}))


def _events(events: list[dict[str, Any]], counts: dict[str, int]) -> str:
    head = (f"<h2>Recent fallbacks and refusals</h2><p class=\"muted small\">last "
            f"{len(events)} shown · since start: {counts['fallbacks']} answered from the "
            f"cache, {counts['refusals']} refused</p>")
    if not events:
        return head
    rows = []
    for e in events:
        kind = _badge("refused", "bad") if e["kind"] == "refusal" else \
            _badge("from cache", "warn")
        when = f'<span class="nw">{_e(e["time"].replace("T", " "))}</span>'
        rows.append([when, kind, str(e["code"]), _e(e["component"]),
                     f'<code class="req">{_e(e["request"])}</code>', _e(e["reason"])])
    return head + _table(["time", "what", "code", "component", "request", "reason"], rows)


def _tee(t: dict[str, Any]) -> str:
    rows = [[_e(d["component"]), _e(d["resource"]), _e(d["reason"]), str(d["count"])]
            for d in t["dropped"]]
    return (f"<h2>Cache writer</h2><p>{t['overflows']} tee overflow(s) (budget "
            f"{_e(_size(t['budgetBytes']))}) · {sum(d['count'] for d in t['dropped'])} "
            "response(s) not cached</p>" +
            (_table(["component", "resource", "reason", "count"], rows, frozenset({3}))
             if rows else ""))


def _config(f: dict[str, Any], ident: dict[str, Any]) -> str:
    filters = ("off" if not f["enabled"] else ", ".join(f["active"]) or "none active")
    disabled = f" (disabled: {_e(', '.join(f['disabled']))})" if f["disabled"] else ""
    waiting = (f' <span class="why">{_e(f["notReady"])}</span>' if f.get("notReady") else "")
    rows = [["filters", _e(filters) + disabled + waiting],
            ["node pool", _e(f["pool"]) if f["pool"] else '<span class="muted">unknown</span>'],
            ["identity", _e(ident["method"]) + (
                f' <span class="why">{_e(ident["problem"])}</span>' if ident.get("problem")
                else "")], ["TLS", _e(ident["tls"])]]
    cert = ident.get("certificate")
    if cert is not None:
        cls = "why" if cert["due"] or cert["expired"] else "muted"
        renewal = f', renewal at {_e(cert["renewalAt"])}' if cert["renewalAt"] else ""
        rows.append(["certificate", f'valid {_e(cert["notBefore"])} to {_e(cert["notAfter"])}'
                     f'{renewal} <span class="{cls}">{_e(cert["state"])}</span>'])
    for key, label in (("clientCertificate", "client certificate"), ("tokenFile", "token")):
        if key in ident:
            v = ident[key]
            rows.append([label, f"<code>{_e(v['file'])}</code> " +
                         (f'<span class="why">{_e(v["error"])}</span>' if "error" in v
                          else f'<span class="muted">modified {_e(v["modified"])}</span>')])
    return "<h2>Configuration</h2>" + _table(["", ""], rows)
