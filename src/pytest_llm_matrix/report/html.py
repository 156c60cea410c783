"""The HTML report (``--llm-html``): one self-contained file written from the JSON report.

No network when opened: the styles, the script, the cells' transcripts (one JSON block the
script reads on the first click, so that thousands of them cost the page no DOM) and the
plot (SVG written here) are inline. Sections: the run (selection, date, versions), the
per-model table, the baseline's changes (with ``--llm-baseline``), cost against pass rate
per model (marker size: latency p50; the models on the cost / pass-rate Pareto front
marked; latency p50 in place of cost when no model's cost is known), and the test x model
grid: a cell opens its transcript, a row shows every model's final answer side by side.
Everything comes from the report's plain data, so a report read back from JSON renders the
same; the script puts every text in the page with ``textContent``, never as markup.
"""

from __future__ import annotations

import html
import json
import math
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from pytest_llm_matrix.report.baseline import answers_cost
from pytest_llm_matrix.report.cost import format_usd, sources_text
from pytest_llm_matrix.report.render import change_text

#: A cell's look and its short text, by outcome.
CELLS: Final = {
    "passed": ("pass", "pass"),
    "failed": ("fail", "FAIL"),
    "error": ("error", "ERROR"),
    "skipped": ("skip", "skip"),
    "xfailed": ("skip", "xfail"),
    "xpassed": ("fail", "XPASS"),
}
#: How bad an outcome is, for sorting a model's column (worst first).
SEVERITY: Final = {"error": 0, "failed": 1, "xpassed": 2, "passed": 3, "xfailed": 4, "skipped": 5}
_MESSAGE_LENGTH: Final = 300
#: The id of the page's data: the cells' transcripts, read by the script on the first click.
DATA_ID: Final = "llm-data"
#: The fields of a test entry the panel shows (with its transcript, duration and cost;
#: its test, model, outcome and first line of failure are the cell's attributes).
CELL_FIELDS: Final = ("failure", "verdicts", "verdict", "runs", "transcript_more")
#: Texts of a transcript at least this long are written once in the page's data.
SHARED_TEXT: Final = 40

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2329}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5b6570}.meta span{margin-right:18px}
table{border-collapse:collapse}th,td{padding:4px 9px;border-bottom:1px solid #e3e7eb}
th{text-align:left;background:#f5f7f9;font-weight:600}td.n{text-align:right}
.worse{color:#b3261e;font-weight:600}.better{color:#1b7f3b;font-weight:600}
#grid th.sort{cursor:pointer;user-select:none}#grid th.sort:hover{background:#e8edf2}
#grid td.c{text-align:center;cursor:pointer;font-size:12px;min-width:54px}
.pass{background:#dff3e4;color:#14532d}.fail{background:#fbdad7;color:#7f1d1d}
.error{background:#f8c4a8;color:#7c2d12}.skip{background:#eceff3;color:#4b5563}
#grid td.none{background:#fff;color:#9aa3ad;cursor:default}
#grid th[data-dir=up]::after{content:" \\25B2"}#grid th[data-dir=down]::after{content:" \\25BC"}
#panel{width:min(1000px,92vw);max-height:88vh;padding:0;border:1px solid #c9d1d9;
border-radius:8px;box-shadow:0 8px 30px #0003}#panel::backdrop{background:#1d232955}
#panel .bar{display:flex;gap:12px;align-items:center;justify-content:space-between;
position:sticky;top:0;background:#fff;padding:10px 14px;border-bottom:1px solid #e3e7eb}
#panel h3{font-size:15px;margin:0;overflow-wrap:anywhere}#panel-body{padding:4px 14px 14px}
#panel h4{font-size:13px;margin:14px 0 4px}
.text{white-space:pre-wrap;overflow-wrap:anywhere;font:12px/1.4 ui-monospace,monospace;
background:#f5f7f9;padding:6px 8px;border-radius:4px;margin:2px 0 6px}
.text .cut{color:#7a8794;font-style:italic}.failure{background:#fbeae8}
.exchange{border:1px solid #e3e7eb;border-radius:6px;padding:6px 10px;margin:8px 0}
.exchange.judge{background:#fbfaf3}.exchange .head{font-size:12px;color:#5b6570}
.exchange .head>*{margin-right:10px}.exchange .head strong{color:#1d2329}
.tag{background:#eceff3;border-radius:3px;padding:0 5px}.tag.bad{background:#fbdad7}
.role{font-size:11px;color:#5b6570;text-transform:uppercase;letter-spacing:.04em}
.answer .text{background:#eef5ff}.verdict{margin:4px 0}.verdict.ok strong{color:#1b7f3b}
.verdict.no strong{color:#b3261e}
button.more{border:0;background:none;cursor:pointer;padding:0 6px 0 0;font-size:13px;
color:#5b6570}button.more[aria-expanded=true]{transform:rotate(90deg)}
tr.answers>td{background:#fafbfc;padding:8px}
.side{display:grid;gap:10px;width:calc(100vw - 120px);overflow-x:auto}
.side .col{min-width:0}.side .head{font-size:12px;margin-bottom:4px}
.side .head>*{margin-right:8px}.badge{border-radius:3px;padding:0 5px}
.side .note{color:#5b6570}.side .text{margin:0}
mark{background:#fde68a;color:inherit;border-radius:2px}
ul{margin:4px 0 10px}code{font:12px ui-monospace,monospace}
svg text{font:12px system-ui,sans-serif}
"""

_ANSWERS_BUTTON: Final = (
    '<button type="button" class="more" aria-expanded="false" '
    'title="every model\'s final answer, side by side">&#9656;</button>'
)
#: The transcript panel, filled by the script (text only) when a cell is clicked.
PANEL: Final = (
    '<dialog id="panel" aria-labelledby="panel-title"><div class="bar">'
    '<h3 id="panel-title"></h3><button type="button" id="panel-close">Close</button></div>'
    '<div id="panel-body"></div></dialog>'
)

SCRIPT = """
(function(){
var grid=document.getElementById('grid');if(!grid)return;
var body=grid.tBodies[0],panel=document.getElementById('panel'),data=null;
var natural=new Intl.Collator(undefined,{numeric:true});
var CUT=/\\n?\\[\\.\\.\\. [\\d,]+ more (?:characters|bytes) not kept\\]$/;
function cmp(x,y){return x<y?-1:x>y?1:0;}
function load(){
if(!data)data=JSON.parse(document.getElementById('llm-data').textContent);return data;}
function str(x){return x==null?'':String(x);}
function text(x){return typeof x==='number'?load().texts[x]:str(x);}
function add(parent,tag,cls,content){var e=document.createElement(tag);if(cls)e.className=cls;
if(content!=null)e.textContent=String(content);parent.appendChild(e);return e;}
function block(parent,cls,value){
var t=str(value),e=add(parent,'div','text '+cls),cut=t.match(CUT);
e.textContent=cut?t.slice(0,cut.index):t;if(cut)add(e,'span','cut',cut[0]);return e;}
function secs(s){return typeof s!=='number'?'':s<1?Math.round(s*1000)+' ms':s.toFixed(2)+' s';}
function judged(parent,v,judge){
var ok=v.passed===true,d=add(parent,'div','verdict '+(ok?'ok':'no'));
add(d,'strong',null,(judge?judge+': ':'')+(ok?'passed':'failed')+
(typeof v.score==='number'?' (score '+v.score+')':''));
if(v.reason!=null&&v.reason!=='')block(d,'reason',v.reason);}
function show(td){
var c=load().cells[+td.dataset.i];if(!c)return;
var box=document.getElementById('panel-body'),facts=[td.textContent];box.textContent='';
document.getElementById('panel-title').textContent=td.dataset.test+' on '+td.dataset.model;
if(typeof c.duration==='number')facts.push(secs(c.duration));
if(typeof c.cost_usd==='number'&&c.cost_usd>0)facts.push('$'+c.cost_usd.toPrecision(3));
if(Array.isArray(c.runs)&&c.runs.length)facts.push('runs: '+c.runs.map(function(r){
return '#'+r.index+' '+r.outcome;}).join(', '));
add(box,'p','meta',facts.join(' \\u00b7 '));
var exchanges=Array.isArray(c.transcript)?c.transcript:[];
var failure=c.failure||td.title;
if(failure){add(box,'h4',null,td.dataset.outcome==='skipped'?'reason':'failure');
block(box,'failure',failure);}
var verdicts=Array.isArray(c.verdicts)?c.verdicts.map(function(v){return [v,v.judge];}):
exchanges.filter(function(x){return x.verdict;}).map(function(x){return [x.verdict,x.model];});
if(verdicts.length){add(box,'h4',null,'judge');
verdicts.forEach(function(v){judged(box,v[0],str(v[1]));});}
add(box,'h4',null,'transcript');
if(!('transcript' in c))add(box,'p','meta','no transcript in this report');
else if(!exchanges.length&&!c.transcript_more)add(box,'p','meta','no request kept');
exchanges.forEach(function(x,n){
var sec=add(box,'section','exchange '+str(x.role)),head=add(sec,'div','head');
add(head,'strong',null,'#'+(n+1)+' '+str(x.role));
[str(x.model),str(x.api),x.run!=null?'run '+x.run:'',
x.input_tokens!=null?x.input_tokens+' in / '+x.output_tokens+' out tokens':'',secs(x.latency_s)]
.forEach(function(f){if(f)add(head,'span',null,f);});
add(head,'span','tag'+(x.status>=200&&x.status<300?'':' bad'),'status '+str(x.status));
if(x.stream)add(head,'span','tag','stream');if(x.replayed)add(head,'span','tag','replayed');
(Array.isArray(x.input)?x.input:[]).forEach(function(m){
var msg=add(sec,'div','msg');add(msg,'span','role',str(m.role));block(msg,'in',text(m.text));});
var a=add(sec,'div','msg answer');add(a,'span','role','answer');block(a,'out',text(x.answer));
if(x.verdict)judged(sec,x.verdict,'verdict');});
if(c.transcript_more)add(box,'p','meta',c.transcript_more+' more request'+
(c.transcript_more===1?'':'s')+' of this test not kept');
if(!panel.open)panel.showModal();panel.scrollTop=0;}
function final(c){var xs=c&&Array.isArray(c.transcript)?c.transcript:[];
for(var n=xs.length-1;n>=0;n--)if(xs[n].role==='model')return text(xs[n].answer);return null;}
function words(t){return t.match(/^\\s+|\\S+\\s*/g)||[];}
function changed(ref,other){
var a=ref.map(function(w){return w.trim();}),b=other.map(function(w){return w.trim();});
var n=a.length,m=b.length,i,j,w=m+1,marks=b.map(function(){return true;});
if(n*m>4e6){var seen=new Set(a);return b.map(function(x){return !seen.has(x);});}
var L=new Uint16Array((n+1)*w);
for(i=n-1;i>=0;i--)for(j=m-1;j>=0;j--)L[i*w+j]=a[i]===b[j]?L[(i+1)*w+j+1]+1:
Math.max(L[(i+1)*w+j],L[i*w+j+1]);
for(i=0,j=0;i<n&&j<m;){if(a[i]===b[j]){marks[j]=false;i++;j++;}
else if(L[(i+1)*w+j]>=L[i*w+j+1])i++;else j++;}
return marks;}
function answers(row){
var d=load(),tr=document.createElement('tr'),td=add(tr,'td');
tr.className='answers';td.colSpan=row.cells.length;
var side=add(td,'div','side'),ref=null,refModel='';
side.style.gridTemplateColumns='repeat('+(row.cells.length-1)+',minmax(180px,1fr))';
for(var j=1;j<row.cells.length;j++){
var cell=row.cells[j],c=cell.dataset.i==null?null:d.cells[+cell.dataset.i];
var col=add(side,'div','col'),head=add(col,'div','head'),said=final(c);
add(head,'code',null,d.models[j-1]);
add(head,'span',cell.className.replace(/\\bc\\b/,'badge'),cell.textContent);
if(!said){add(col,'p','meta',!c?'not run':said===''?'empty answer':'transcript' in c?
'no answer kept':'no transcript in this report');continue;}
var box=add(col,'div','text out'),cut=said.match(CUT);
var toks=words(cut?said.slice(0,cut.index):said);
if(ref===null){ref=toks;refModel=d.models[j-1];box.textContent=toks.join('');
add(head,'span','note','the others are compared with this answer');}
else{var marks=changed(ref,toks),mark=null,count=0;
toks.forEach(function(t,k){
if(!marks[k]){mark=null;box.appendChild(document.createTextNode(t));return;}
if(t.trim())count++;if(!mark)mark=add(box,'mark');mark.appendChild(document.createTextNode(t));});
add(head,'span','note',count?count+' word'+(count===1?'':'s')+' not in '+refModel+'\\'s':
'the same words as '+refModel+'\\'s');}
if(cut)add(box,'span','cut',cut[0]);}
return tr;}
function toggle(button){
var row=button.closest('tr'),open=button.getAttribute('aria-expanded')==='true';
if(open){row.answers.remove();row.answers=null;}
else{row.answers=answers(row);row.parentNode.insertBefore(row.answers,row.nextSibling);}
button.setAttribute('aria-expanded',String(!open));}
document.getElementById('panel-close').addEventListener('click',function(){panel.close();});
panel.addEventListener('click',function(e){if(e.target===panel)panel.close();});
document.addEventListener('keydown',function(e){
if(e.key==='Escape'&&panel.open)panel.close();});
grid.addEventListener('click',function(e){
var more=e.target.closest('button.more');if(more){toggle(more);return;}
var cell=e.target.closest('td.c[data-i]');if(cell){show(cell);return;}
var head=e.target.closest('th.sort');if(!head)return;
var col=head.cellIndex,rows=Array.prototype.filter.call(body.rows,function(r){
return r.dataset.i!=null;});
var dir={'':'up',up:'down',down:''}[head.dataset.dir||''];
Array.prototype.forEach.call(head.parentNode.cells,function(h){h.dataset.dir='';});
head.dataset.dir=dir;
rows.sort(function(a,b){
var c=0;if(dir){c=col?cmp(a.cells[col].dataset.key,b.cells[col].dataset.key):
natural.compare(a.cells[0].dataset.key,b.cells[0].dataset.key);if(dir==='down')c=-c;}
return c||a.dataset.i-b.dataset.i;});
rows.forEach(function(r){body.appendChild(r);if(r.answers)body.appendChild(r.answers);});});
})();
"""


def _e(value: object) -> str:
    """Anything taken from the report (ids, names, messages, a merged report's values, even
    where numbers belong) as text, in an element or an attribute: never markup."""
    return html.escape(str(value), quote=True)


def _rate(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "-"


def _usd(value: object) -> str:
    return format_usd(value) if isinstance(value, int | float) else "n/a"


def _ms(value: object) -> str:
    return f"{value * 1000:.0f} ms" if isinstance(value, int | float) else "-"


def render(report: Mapping[str, Any]) -> str:
    models: list[str] = list(report["selection"]["models"])
    stats: Mapping[str, Any] = report["models"]
    tests = [t for t in report["tests"] if t.get("model_free") is not True]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>llm-matrix: {_e(', '.join(models))}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>llm-matrix report</h1>",
        _meta(report),
        "<h2>Models</h2>",
        _model_table(models, stats, report.get("baseline")),
    ]
    parts += _side_notes(report)
    if report.get("baseline"):
        parts += ["<h2>Against the baseline</h2>", _baseline(report["baseline"])]
    parts += [
        _plot(models, stats),
        "<h2>Tests &times; models</h2>",
        "<p class=\"meta\">Tests in the report's order (pytest's collection order). Click a "
        "column title to sort by it (the test: by name, numbers in order; a model: worst "
        "first), again to reverse, a third time for the report's order; click a cell for its "
        "transcript: each request's messages and answer, the judge's verdicts, the failure."
        "</p>",
        _grid(models, tests),
        PANEL,
        f'<script type="application/json" id="{DATA_ID}">{script_json(page_data(models, tests))}'
        "</script>",
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


def page_data(models: Sequence[str], tests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the page's script shows when a cell is clicked: each test entry's fields in
    :data:`CELL_FIELDS`, its transcript with every text of :data:`SHARED_TEXT` characters or
    more replaced by its index in ``texts`` (the same prompt, sent to every model, is
    written once)."""
    texts: dict[str, int] = {}

    def shared(text: object) -> object:
        if text is None:
            return None
        if not isinstance(text, str):  # a merged report's odd value: shown as JSON
            text = json.dumps(text, default=str)
        return text if len(text) < SHARED_TEXT else texts.setdefault(text, len(texts))

    cells = []
    for test in tests:
        cell = {key: test[key] for key in CELL_FIELDS if key in test}
        for key, digits in (("duration", "{:.3f}"), ("cost_usd", "{:.3g}")):  # as shown
            value = _number(test.get(key))
            if value is not None:
                cell[key] = float(digits.format(value))
        transcript = test.get("transcript")
        if isinstance(transcript, list):
            cell["transcript"] = [
                _exchange(exchange, shared)
                for exchange in transcript
                if isinstance(exchange, Mapping)
            ]
        cells.append(cell)
    return {"models": list(models), "texts": list(texts), "cells": cells}


def _exchange(exchange: Mapping[str, Any], shared: Callable[[object], object]) -> dict[str, Any]:
    kept = dict(exchange)
    messages = exchange.get("input")
    if isinstance(messages, list):
        kept["input"] = [
            {**message, "text": shared(message.get("text"))}
            if isinstance(message, Mapping)
            else {"role": "", "text": shared(message)}
            for message in messages
        ]
    if "answer" in kept:
        kept["answer"] = shared(kept["answer"])
    return kept


def script_json(value: object) -> str:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&`` (and
    the line separators JavaScript once refused) as ``\\u`` escapes, so no text in it can
    end the block (``</script>``) or start a comment; ``JSON.parse`` reads it back as it was."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    for character, escape in _SCRIPT_ESCAPES:
        text = text.replace(character, escape)
    return text


_SCRIPT_ESCAPES: Final = tuple((c, f"\\u{ord(c):04x}") for c in "<>&\u2028\u2029")


def _side_notes(report: Mapping[str, Any]) -> list[str]:
    """Model-free tests (not in the table or the grid), auxiliary and judge requests."""
    parts = []
    free = report.get("model_free") or []
    if isinstance(free, list) and free:
        parts.append(
            f'<p class="meta">{len(free)} model-free test{"s" * (len(free) != 1)} (no request '
            "to the model under test on any model) are not in the table or the grid: "
            + ", ".join(f"<code>{_e(test)}</code>" for test in free[:20])
            + (" ..." if len(free) > 20 else "")
            + "</p>"
        )
    for section, title, about, first in (
        (
            "auxiliary",
            "Auxiliary requests",
            "Sent by the code under test for side jobs (embeddings, a judge); in no model's row.",
            "destination",
        ),
        (
            "judges",
            "Judge requests",
            "Sent by the llm_judge fixture to grade answers; in no model's row.",
            "judge",
        ),
    ):
        rows = report.get(section) or {}
        if not isinstance(rows, Mapping) or not rows:
            continue
        body = "".join(
            f"<tr><td><code>{_e(name)}</code></td><td>{_e(row.get('sent_as', ''))}</td>"
            f"<td>{_e(row.get('requests', 0))}</td><td>{_e(row.get('replayed', 0))}</td>"
            f"<td>{_e(row.get('input_tokens', 0))}</td>"
            f"<td>{_e(row.get('output_tokens', 0))}</td><td>{_usd(row.get('cost_usd'))}</td>"
            f"<td>{_usd(row.get('replayed_cost_usd')) if row.get('replayed') else '-'}</td></tr>"
            for name, row in rows.items()
            if isinstance(row, Mapping)
        )
        parts += [
            f"<h2>{title}</h2>",
            f'<p class="meta">{about}</p>',
            f"<table><thead><tr><th>{first}</th><th>model id sent</th><th>requests</th>"
            "<th>replayed</th><th>tokens in</th><th>tokens out</th><th>cost</th>"
            "<th>recorded cost</th></tr></thead>"
            f"<tbody>{body}</tbody></table>",
        ]
    return parts


def _meta(report: Mapping[str, Any]) -> str:
    selection = report["selection"]
    environment = report.get("environment") or {}
    items = [
        f"selection: {_e(', '.join(selection['models']))} (from {_e(selection['selected_by'])})",
        f"created: {_e(report.get('created', '-'))}",
        f"pytest-llm-matrix {_e(report.get('plugin_version', '?'))}",
    ]
    items += [f"{_e(k)} {_e(v)}" for k, v in environment.items()]
    items.append(f"exit status: {_e(report.get('exit_status', '-'))}")
    return '<p class="meta">' + "".join(f"<span>{item}</span>" for item in items) + "</p>"


def _model_table(models: Sequence[str], stats: Mapping[str, Any], base: Any) -> str:
    head = [
        "model", "passed", "failed", "errors", "skipped", "pass rate", "cost", "price",
        "recorded cost",
        "requests", "replayed", "latency p50", "latency p95",
    ]  # fmt: skip
    if base:
        head.append("vs baseline")
    rows = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for name in models:
        m = stats.get(name)
        if m is None:
            continue
        outcomes = m["outcomes"]
        rate = _rate(m["pass_rate"])
        if m.get("pass_rate_interval"):
            low, high = m["pass_rate_interval"]
            rate += f" ({low * 100:.0f}&ndash;{high * 100:.0f})"
        cells = [
            f"<td><code>{_e(name)}</code>{'' if m.get('required', True) else ' (optional)'}</td>",
            *(f'<td class="n">{_e(outcomes[k])}</td>' for k in ("passed", "failed", "error")),
            f'<td class="n">{_e(outcomes["skipped"])}</td>',
            f'<td class="n">{rate}</td>',
            f'<td class="n">{_usd(m["cost_usd"]) if _spent(m) else "-"}</td>',
            f'<td class="n">{_e(sources_text(m.get("price_sources") or ()))}</td>',
            f'<td class="n">{_usd(m.get("replayed_cost_usd")) if m.get("replayed") else "-"}</td>',
            f'<td class="n">{_e(m.get("requests", 0))}</td>',
            f'<td class="n">{_e(m.get("replayed", 0))}</td>',
            f'<td class="n">{_ms(m.get("latency_p50"))}</td>',
            f'<td class="n">{_ms(m.get("latency_p95"))}</td>',
        ]
        if base:
            change = base["models"].get(name)
            cells.append(f'<td class="n">{change_text(change, markup=True)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _baseline(base: Mapping[str, Any]) -> str:
    when = f", {base['created']}" if base.get("created") else ""
    version = f", pytest-llm-matrix {base['plugin_version']}" if base.get("plugin_version") else ""
    parts = [f'<p class="meta">baseline: {_e(base["source"])}{_e(when)}{_e(version)}</p>']
    for name, change in base["models"].items():
        cost = change.get("cost_change_usd")
        p50 = change.get("latency_p50_change")
        line = (
            f"<p><code>{_e(name)}</code>: {_rate(change['baseline_pass_rate'])} &rarr; "
            f"{_rate(change['pass_rate'])}, {change_text(change, markup=True)}"
        )
        if isinstance(cost, int | float):
            line += f"; cost {'+' if cost >= 0 else '-'}{format_usd(abs(cost))}"
        if isinstance(p50, int | float):
            line += f"; latency p50 {p50 * 1000:+.0f} ms"
        parts.append(line + "</p>")
        for key, title in (
            ("now_failing", "now failing (passed in the baseline)"),
            ("now_passing", "now passing (failed in the baseline)"),
            ("added", "added"),
            ("removed", "removed"),
        ):
            if change[key]:
                items = "".join(f"<li><code>{_e(t)}</code></li>" for t in change[key])
                parts.append(f"<div>{title}:<ul>{items}</ul></div>")
    for key, title in (
        ("only_in_baseline", "only in the baseline"),
        ("only_in_this_run", "only in this run"),
    ):
        if base.get(key):
            parts.append(f"<p>{title}: {_e(', '.join(base[key]))}</p>")
    return "\n".join(parts)


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The models no other model beats on both cost or latency (lower) and pass rate
    (higher): for each, no model is at least as cheap and as good, and better in one."""
    front = []
    for name, (cost, rate) in points.items():
        dominated = any(
            other != name and c <= cost and r >= rate and (c < cost or r > rate)
            for other, (c, r) in points.items()
        )
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: points[n][0])


def _spent(model: Mapping[str, Any], replayed: bool = False) -> bool:
    """Whether a model's row spent anything to put a cost on: tokens, or an answer that
    said its cost (``replayed``: replayed answers' tokens count too)."""
    keys: tuple[str, ...] = ("input_tokens", "output_tokens", "reported")
    keys += ("replayed_input_tokens", "replayed_output_tokens") if replayed else ()
    return any(model.get(key) for key in keys)


def _number(value: object) -> float | None:
    """A finite number from the report, or None (a merged report may hold anything)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _plot(models: Sequence[str], stats: Mapping[str, Any]) -> str:
    """Cost against pass rate per model; when no model's cost is known (unpriced models),
    pass rate against latency p50 instead, so that the section still compares them."""
    rates: dict[str, float] = {}
    costs: dict[str, float] = {}
    latency: dict[str, float] = {}
    for name in models:
        m = stats.get(name)
        if m is None:
            continue
        rate = _number(m.get("pass_rate"))
        if rate is not None:
            rates[name] = min(max(rate, 0.0), 1.0)
        # replayed answers: what they cost when recorded
        cost = _number(answers_cost(m)) if _spent(m, replayed=True) else None
        if cost is not None:
            costs[name] = max(cost, 0.0)
        p50 = _number(m.get("latency_p50"))
        if p50 is not None:
            latency[name] = max(p50, 0.0)
    shown = [name for name in models if name in stats]
    by_cost = {n: (costs[n], rates[n]) for n in shown if n in costs and n in rates}
    if by_cost:
        plot = _scatter(by_cost, latency, "cost (USD{log})", format_usd, "cheaper")
        missing = [n for n in shown if n not in by_cost]
        title = "Cost and pass rate"
        why = "no known cost or pass rate"
    else:
        by_latency = {n: (latency[n], rates[n]) for n in shown if n in latency and n in rates}
        plot = _scatter(by_latency, None, "latency p50{log}", _seconds, "faster")
        missing = [n for n in shown if n not in by_latency]
        title = "Latency and pass rate"
        why = "no known latency or pass rate"
        if by_latency:
            plot = (
                '<p class="meta">No model\'s cost is known (unpriced models): pass rate '
                "against latency p50 instead.</p>\n" + plot
            )
    note = f'\n<p class="meta">not plotted ({why}): {_e(", ".join(missing))}</p>' if missing else ""
    return f"<h2>{title}</h2>\n" + (plot or '<p class="meta">no model to plot</p>') + note


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.3g} s"


#: The plot's frame, and the room kept inside it around the points (the largest marker).
_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM, _PAD = 720, 380, 70, 30, 20, 50, 20
#: A label's width per character, generous for 12px system-ui, to keep labels inside.
_CHAR_WIDTH: Final = 7.5
#: A line of labels in the plot.
_LINE: Final = 14


def _scatter(
    points: Mapping[str, tuple[float, float]],
    sizes: Mapping[str, float] | None,
    axis: str,
    unit: Callable[[float], str],
    better: str,
) -> str:
    """An SVG of pass rate (y) against ``points``' x (lower is better), the Pareto front
    marked; marker size from ``sizes`` (latency p50) when given. Every marker and label
    stays inside the frame, whatever the values and the names' lengths."""
    if not points:
        return ""
    width, height = _WIDTH, _HEIGHT
    xs = [x for x, _ in points.values()]
    low, high = min(xs), max(xs)
    logarithmic = low > 0 and high / low > 20
    if logarithmic:
        lo, hi = math.log10(low) - 0.15, math.log10(high) + 0.15
    else:
        lo, hi = 0.0, (high * 1.1 if high > 0 else 1.0)

    def x_of(value: float) -> float:
        at = math.log10(value) if logarithmic else value
        return _LEFT + _PAD + (at - lo) / (hi - lo) * (width - _LEFT - _RIGHT - 2 * _PAD)

    def y_of(rate: float) -> float:
        return _TOP + _PAD + (1 - rate) * (height - _TOP - _BOTTOM - 2 * _PAD)

    slowest = max((sizes or {}).values(), default=0.0) or 1.0
    front = pareto_front(points)
    what = axis.format(log="")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{what} against pass rate">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{width - _LEFT - _RIGHT}" '
        f'height="{height - _TOP - _BOTTOM}" fill="#fbfcfd" stroke="#d5dbe1"/>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        ty = y_of(tick)
        out.append(
            f'<line x1="{_LEFT}" x2="{width - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#eef1f4"/>'
        )
        out.append(f'<text x="{_LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick:.0%}</text>')
    for tick in _ticks(lo, hi, logarithmic):
        out.append(
            f'<text x="{x_of(tick):.1f}" y="{height - _BOTTOM + 18}" text-anchor="middle">'
            f"{_e(unit(tick))}</text>"
        )
    size_note = " &mdash; marker size: latency p50" if sizes is not None else ""
    out.append(
        f'<text x="{(_LEFT + width - _RIGHT) / 2}" y="{height - 8}" text-anchor="middle">'
        f"{_e(axis.format(log=', log scale' if logarithmic else ''))}{size_note}</text>"
    )
    middle = (_TOP + height - _BOTTOM) / 2
    out.append(
        f'<text x="14" y="{middle}" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle})">pass rate</text>'
    )
    if len(front) > 1:
        path = " ".join(f"{x_of(points[n][0]):.1f},{y_of(points[n][1]):.1f}" for n in front)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="#1b7f3b" stroke-dasharray="5 4"/>'
        )
    placed: list[tuple[float, float, float]] = []  # labels drawn: left, right, baseline
    for name, (value, rate) in points.items():
        size = (sizes or {}).get(name)
        radius = 5 + 13 * math.sqrt(size / slowest) if sizes is not None and size else 7.0
        on_front = name in front
        tip = f"{name}: pass rate {rate:.1%}, {what} {unit(value)}"
        if sizes is not None and size is not None:
            tip += f", latency p50 {_seconds(size)}"
        if on_front:
            tip += " (Pareto front)"
        cx, cy = x_of(value), y_of(rate)
        text, tx, anchor = _label(name + (" \u2605" if on_front else ""), cx, radius)
        span = (tx - _text_width(text), tx) if anchor else (tx, tx + _text_width(text))
        ty = _free_line(cy + 4, span, placed)
        placed.append((*span, ty))
        shown = _e(text).replace("\u2605", "&#9733;")
        out.append(
            f'<g><title>{_e(tip)}</title><circle cx="{cx:.1f}" cy="{cy:.1f}" '
            f'r="{radius:.1f}" fill="{"#1b7f3b" if on_front else "#7a8794"}" fill-opacity="0.55" '
            f'stroke="{"#14532d" if on_front else "#4b5563"}"/>'
            f'<text x="{tx:.1f}" y="{ty:.1f}"{anchor}>{shown}</text></g>'
        )
    out.append("</svg>")
    legend = (
        f'<p class="meta">&#9733; on the Pareto front: no other model is both {better} and '
        f"passes more ({_e(', '.join(front))}).</p>"
    )
    return "\n".join(out) + "\n" + legend


def _free_line(
    baseline: float, span: tuple[float, float], placed: Sequence[tuple[float, float, float]]
) -> float:
    """A baseline near ``baseline`` where a label over ``span`` (left, right) overlaps no
    label already placed, inside the frame: models at the same point get one line each."""
    lowest, highest = _TOP + 12, _HEIGHT - _BOTTOM - 2
    for step in range(40):
        shift = (step + 1) // 2 * _LINE * (1 if step % 2 else -1)
        y = baseline + shift
        if not lowest <= y <= highest:
            continue
        if all(
            abs(y - other) >= _LINE or span[1] <= left or right <= span[0]
            for left, right, other in placed
        ):
            return y
    return baseline


def _text_width(text: str) -> float:
    """A generous width of ``text`` in the plot's 12px font (wide characters: 12px)."""
    return sum(12.0 if unicodedata.east_asian_width(c) in "WF" else _CHAR_WIDTH for c in text)


def _label(text: str, cx: float, radius: float) -> tuple[str, float, str]:
    """(text, x, anchor attribute) of a marker's label: right of the marker where it fits
    in the frame, else left of it; cut with an ellipsis where neither side is wide enough
    (the marker's tooltip keeps the whole name)."""
    right = cx + radius + 4
    left = cx - radius - 4
    room_right, room_left = _WIDTH - 4 - right, left - 4
    if _text_width(text) <= room_right:
        return text, right, ""
    if _text_width(text) <= room_left:
        return text, left, ' text-anchor="end"'
    room = max(room_left, room_right) - _CHAR_WIDTH  # the ellipsis
    cut = ""
    for character in text:
        room -= _text_width(character)
        if room < 0:
            break
        cut += character
    cut += "\u2026"
    return (cut, right, "") if room_right >= room_left else (cut, left, ' text-anchor="end"')


def _ticks(lo: float, hi: float, logarithmic: bool) -> list[float]:
    if logarithmic:
        return [10.0**k for k in range(math.ceil(lo), math.floor(hi) + 1)]
    return [hi / 1.1 * k / 4 for k in range(5)]


def _grid(models: Sequence[str], tests: Sequence[Mapping[str, Any]]) -> str:
    """The test x model grid, its rows in the order the tests first appear in the report
    (pytest's collection order; a row's ``data-i`` keeps it for the script's way back to
    it); a cell's ``data-i``: its entry in :func:`page_data`'s cells. A test with a
    transcript on some model gets a button that shows every model's answer side by side."""
    cells: dict[tuple[str, str], int] = {}  # -> the entry's index in tests (and page_data)
    order: dict[str, None] = {}
    for index, test in enumerate(tests):
        cells[test["test"], test["model"]] = index
        order.setdefault(test["test"], None)
    head = '<th class="sort" data-dir="">test</th>' + "".join(
        f'<th class="sort" data-dir=""><code>{_e(m)}</code></th>' for m in models
    )
    rows = [f'<table id="grid"><thead><tr>{head}</tr></thead><tbody>']
    for index, name in enumerate(order):
        kept = any(
            tests[at].get("transcript") for m in models if (at := cells.get((name, m))) is not None
        )
        button = _ANSWERS_BUTTON if kept else ""
        row = [f'<td data-key="{_e(name)}">{button}<code>{_e(name)}</code></td>']
        for model in models:
            at = cells.get((name, model))
            if at is None:
                row.append('<td class="c none" data-key="9">not run</td>')
                continue
            cell = tests[at]
            outcome = cell["outcome"]
            look, text = CELLS.get(outcome, ("skip", outcome))
            verdict = cell.get("verdict")
            if verdict:
                text += f" {verdict['passed']}/{verdict['runs']}"
            message = str(cell.get("message") or "")[:_MESSAGE_LENGTH]
            row.append(
                f'<td class="c {look}" data-key="{SEVERITY.get(outcome, 6)}" data-i="{at}" '
                f'data-test="{_e(name)}" data-model="{_e(model)}" data-outcome="{_e(outcome)}"'
                + (f' title="{_e(message)}"' if message else "")
                + f">{_e(text)}</td>"
            )
        rows.append(f'<tr data-i="{index}">' + "".join(row) + "</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)
