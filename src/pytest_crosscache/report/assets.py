"""The page's stylesheet and script, inlined into every report.

The script only adds sorting and filtering to tables that are complete
without it; the page reads the same with JavaScript off.  Both are
allowed by hash in the page's Content-Security-Policy, so nothing else,
such as markup smuggled in through a node id, could ever run or load.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """\
:root{color-scheme:light dark;--bg:#fff;--fg:#1b2230;--muted:#5c6878;--line:#dde3ea;
--card:#f5f7fa;--accent:#2f55c8;--pass:#2c8c55;--fail:#cf3427;--error:#9c2494;
--skip:#8a96a3;--xfail:#6f7c8a;--xpass:#b86200;--rerun:#d99a00;--bar:#5b7bd5;
--track:#e6ebf1;--spark:#2f55c8;--seg0:#5b7bd5;--seg1:#97addf;--rest:#c9d3df}
@media screen and (prefers-color-scheme:dark){:root{--bg:#0f1318;--fg:#e2e7ee;
--muted:#97a2b1;--line:#2a323d;--card:#171c23;--accent:#86a8ff;--pass:#2f9a5e;
--fail:#e0524a;--error:#c15fc0;--skip:#5f6a77;--xfail:#6b7684;--xpass:#d98a1d;
--rerun:#d9a520;--bar:#6d8de3;--track:#252d38;--spark:#8fb0ff;--seg0:#5675d2;
--seg1:#3a5290;--rest:#2f3946}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 24px 48px}
a{color:var(--accent)}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:18px;margin:0 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h2 .count{color:var(--muted);font-weight:400}
h3{font-size:14px;margin:18px 0 6px}
.meta,.note,.more,.legend{color:var(--muted);margin:4px 0}
.more{font-style:italic}
nav{margin:10px 0 0;display:flex;gap:16px;flex-wrap:wrap}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(148px,1fr));gap:10px;
margin:16px 0 4px}
.card{display:block;background:var(--card);border:1px solid var(--line);
border-radius:8px;padding:9px 13px;color:inherit;text-decoration:none;min-width:0}
a.card:hover{border-color:var(--accent)}
.card .n{display:block;font-size:22px;font-weight:650;font-variant-numeric:tabular-nums;
white-space:nowrap}
.card .k{display:block;font-size:12px;color:var(--muted);text-transform:uppercase;
letter-spacing:.04em}
.card .s{display:block;font-size:12px;color:var(--muted);overflow:hidden;
text-overflow:ellipsis;white-space:nowrap}
.card.bad .n{color:var(--fail)}.card.good .n{color:var(--pass)}
section{margin-top:30px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);
vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;white-space:nowrap}
th.num,td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td small{display:block;color:var(--muted)}
th button{font:inherit;color:inherit;background:none;border:0;padding:0;cursor:pointer}
th[aria-sort=descending] button::after{content:" \\25BE"}
th[aria-sort=ascending] button::after{content:" \\25B4"}
code.id{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
overflow-wrap:anywhere;unicode-bidi:isolate}
.strip{display:flex;gap:2px;margin-top:4px;flex-wrap:nowrap}
.o{display:inline-block;flex:none;width:15px;height:18px;border-radius:3px;text-align:center;
font:700 11px/18px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#fff}
.o-P{background:var(--pass)}.o-F{background:var(--fail)}.o-E{background:var(--error)}
.o-S{background:var(--skip)}.o-x{background:var(--xfail)}.o-X{background:var(--xpass)}
.o-R{background:var(--rerun);color:#1b1b1b}
.o-_{border:1px dashed var(--line);color:var(--muted);font-weight:400}
.o.c{margin-left:5px}
.legend .o{vertical-align:middle;margin-right:3px}
.legend span.item{margin-right:12px;white-space:nowrap}
.trend{white-space:nowrap;font-size:12px}.trend.up{color:var(--fail);font-weight:600}
.spark-cell{display:flex;align-items:center;gap:8px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%)}
svg.bar .track{fill:var(--track)}svg.bar .fill{fill:var(--bar)}
svg.bar{vertical-align:middle}
svg.spark polyline{fill:none;stroke:var(--spark);stroke-width:1.5;stroke-linejoin:round}
svg.spark circle{fill:var(--spark)}svg.spark .base{stroke:var(--line)}
svg.chart{display:block;width:100%;height:auto;margin:6px 0 4px}
svg.chart .grid{stroke:var(--line)}
svg.chart text{fill:var(--muted);font-size:12px;font-family:inherit}
svg.chart .run rect{fill:var(--bar)}
svg.chart .mark{fill:var(--fail);font-weight:700}
svg.chart text.lane,svg.chart text.total{fill:var(--fg)}
.seg rect{stroke:var(--bg);stroke-width:1}
.seg.s0 rect{fill:var(--seg0)}.seg.s1 rect{fill:var(--seg1)}
.seg.more rect{fill:url(#rest)}
.rest-bg{fill:var(--rest)}.rest-line{stroke:var(--seg0);stroke-width:2}
input.filter{font:inherit;padding:4px 8px;margin:4px 0 8px;width:min(360px,100%);
color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:6px}
.empty{padding:10px 0;color:var(--muted)}
footer{margin-top:40px;color:var(--muted);font-size:12px}
@media print{main{max-width:none;padding:0}nav,input.filter{display:none}
a{color:inherit;text-decoration:none}section{break-before:auto}
tr,.card,svg{break-inside:avoid}h2,h3{break-after:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""

JS = """\
"use strict";
for (const input of document.querySelectorAll("input.filter")) {
  const body = document.getElementById(input.dataset.table).tBodies[0];
  input.hidden = false;
  input.addEventListener("input", () => {
    const words = input.value.trim().toLowerCase();
    for (const row of body.rows) {
      const text = row.cells[0].textContent.toLowerCase();
      row.hidden = words !== "" && !text.includes(words);
    }
  });
}
for (const th of document.querySelectorAll("th[data-sort]")) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = th.textContent;
  th.textContent = "";
  th.append(button);
  button.addEventListener("click", () => {
    const body = th.closest("table").tBodies[0];
    const column = th.cellIndex;
    const numeric = th.dataset.sort === "num";
    const current = th.getAttribute("aria-sort");
    const down = current ? current === "ascending" : numeric;
    for (const other of th.parentNode.cells) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", down ? "descending" : "ascending");
    const key = (row) => {
      const cell = row.cells[column];
      return numeric ? Number(cell.dataset.v) : cell.textContent.toLowerCase();
    };
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1);
    });
    body.append(...rows);
  });
}
"""


def _digest(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


#: The page may use its own stylesheet and script and nothing else: no
#: network, no other script, no plugin, no form submission, no base URL.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_digest(CSS)}; script-src {_digest(JS)}; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
