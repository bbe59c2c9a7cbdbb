"""The demo's HTML report: one self-contained page (plain HTML and CSS, no JavaScript,
no external resources; every PNG embedded as a base64 data URI), all text escaped."""
from __future__ import annotations

import base64
import json
import os
from html import escape

__all__ = ["build_report"]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2433;
       background: #f5f6f8; line-height: 1.45; }
header { background: #1d2433; color: #fff; padding: 1.2em 2em; }
header h1 { margin: 0 0 .2em 0; font-size: 1.6em; }
header p { margin: .2em 0; color: #c9d1e0; }
nav { padding: .6em 2em; background: #e6e9ef; font-size: .95em; }
nav a { margin-right: 1.1em; color: #2b4c9b; text-decoration: none; }
main { padding: 0 2em 2em 2em; max-width: 1200px; }
section { background: #fff; border-radius: 8px; margin: 1.2em 0; padding: .8em 1.4em 1.2em 1.4em;
          box-shadow: 0 1px 3px rgba(0, 0, 0, .12); }
h2 { margin: .4em 0; font-size: 1.3em; }
.desc { color: #4a5568; margin-top: 0; }
.time { color: #718096; font-size: .85em; font-weight: normal; margin-left: .6em; }
.error { background: #fff4e5; border-left: 4px solid #dd6b20; padding: .6em 1em; margin: .6em 0; }
.ok { color: #276749; }
ul.summary { padding-left: 1.2em; }
ul.summary li { margin: .15em 0; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border-bottom: 1px solid #e2e8f0; padding: .35em .7em; text-align: left; vertical-align: middle; }
th { background: #f7fafc; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; margin: .6em 0; }
figure { margin: 0; text-align: center; }
figcaption { font-size: .85em; color: #4a5568; max-width: 260px; margin: .3em auto 0 auto; }
img.pixel { width: 192px; height: auto; image-rendering: pixelated; }
img.photo { width: 256px; height: auto; }
img.chart { width: 480px; max-width: 100%; height: auto; }
img.thumb { width: 96px; height: auto; image-rendering: pixelated; display: block; }
details { margin-top: .6em; }
summary { cursor: pointer; color: #2b4c9b; }
pre { background: #f7fafc; padding: .8em; overflow: auto; max-height: 24em; font-size: .8em; }
"""

# the page may load nothing but its own inline style and data: images
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _data_uri(out_dir: str, rel: str) -> str:
    with open(os.path.join(out_dir, *rel.split("/")), "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def _img(out_dir, visual, css_class=None) -> str:
    if css_class is None:
        css_class = "pixel" if visual.pixelated else ("photo" if getattr(visual.image, "ndim", 0) == 3 else "chart")
    return (f'<img class="{css_class}" src="{_data_uri(out_dir, visual.path)}" '
            f'alt="{escape(visual.caption or visual.name)}">')


def _gallery(section, out_dir) -> str:
    figs = [f"<figure>{_img(out_dir, v)}<figcaption>{escape(v.caption)}</figcaption></figure>"
            for v in section.visuals if v.path and not _in_table(section, v)]
    return f'<div class="gallery">{"".join(figs)}</div>' if figs else ""


def _in_table(section, visual) -> bool:
    return any(visual.name in (t.images or []) for t in section.tables)


def _table(table, visuals, out_dir) -> str:
    heads = ([""] if table.images else []) + list(table.headers)
    rows = []
    for i, row in enumerate(table.rows):
        cells = [f"<td>{escape(str(c))}</td>" for c in row]
        if table.images:
            v = visuals.get(table.images[i]) if i < len(table.images) else None
            cells.insert(0, f"<td>{_img(out_dir, v, 'thumb') if v is not None and v.path else ''}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(str(h))}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section_html(section, visuals, out_dir) -> str:
    parts = [f'<section id="{escape(section.key)}">',
             f'<h2>{escape(section.title)}<span class="time">{section.seconds:.1f} s</span></h2>']
    if section.description:
        parts.append(f'<p class="desc">{escape(section.description)}</p>')
    if section.error:
        parts.append(f'<div class="error"><strong>Not shown:</strong> {escape(section.error)}</div>')
    if section.summary:
        parts.append('<ul class="summary">' + "".join(f"<li>{escape(s)}</li>" for s in section.summary) + "</ul>")
    parts.append(_gallery(section, out_dir))
    parts += [_table(t, visuals, out_dir) for t in section.tables]
    if section.numbers:
        numbers = json.dumps(section.numbers, indent=1)
        parts.append("<details><summary>numbers (also in results.json)</summary>"
                     f"<pre>{escape(numbers)}</pre></details>")
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _header(results) -> str:
    lines = [f"gradscope {escape(results.get('gradscope_version', ''))} &middot; seed {results.get('seed')} &middot; "
             f"{'quick mode' if results.get('quick') else 'full run'} &middot; {results.get('seconds', 0):.1f} s",
             "Photos: " + escape(", ".join(f"{im['name']} ({im['source']})" for im in results.get("images", [])))]
    return ("<header><h1>gradscope demo</h1>" + "".join(f"<p>{line}</p>" for line in lines) + "</header>")


def _models_html(results) -> str:
    items = []
    for name, rec in results.get("models", {}).items():
        if rec.get("loaded"):
            items.append(f'<li class="ok">{escape(name)}: {escape(rec.get("description") or "")}</li>')
        else:
            items.append(f'<li><div class="error"><strong>{escape(name)} missing:</strong> '
                         f'{escape(rec.get("error") or "")}</div></li>')
    return f'<section id="models"><h2>Models</h2><ul class="summary">{"".join(items)}</ul></section>'


def build_report(sections, results: dict, out_dir) -> str:
    """The report's HTML text. sections: saved Sections (their Visuals have paths under
    out_dir, which are read and embedded); results: the results.json dict."""
    out_dir = os.fspath(out_dir)
    visuals = {v.name: v for s in sections for v in s.visuals}
    nav = "".join(f'<a href="#{escape(s.key)}">{escape(s.title)}</a>' for s in sections)
    body = "\n".join(_section_html(s, visuals, out_dir) for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gradscope demo</title>
<style>{CSS}</style>
</head>
<body>
{_header(results)}
<nav><a href="#models">Models</a>{nav}</nav>
<main>
{_models_html(results)}
{body}
</main>
</body>
</html>
"""
