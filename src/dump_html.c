/* SPDX-License-Identifier: MIT */
/*
 * CCTX_DUMP_HTML: a viewer page around the JSON dump.
 *
 * The page is one self-contained file (inline CSS and JavaScript, no network,
 * no external fonts), so it can be written from a process in trouble, copied
 * off a machine with no browser and attached to a bug report. The tree itself
 * is not rendered here in C: the JSON dump sits, unchanged, in a
 * <script type="application/json"> element (the JSON writer escapes '<', so a
 * name cannot close it), and a small script builds the view from it with
 * createElement and textContent only. Names, messages and file names come
 * from users; never letting them become markup is what keeps the page safe.
 *
 * The rows are a flat list indented by depth rather than nested elements, and
 * they are built with an explicit stack: a dump 20,000 contexts deep renders
 * without deep recursion or a 20,000-level DOM; rows out of view are not laid
 * out (content-visibility), so a dump of thousands of contexts opens quickly.
 *
 * Every time shown is as it stood at the dump, and says so: a page is opened
 * later, often much later (attached to a report, copied off a machine), so a
 * deadline counted down from the page's opening would show time that belongs
 * to no moment of the process. Only the age of the dump itself moves.
 *
 * begin writes the head, the styles and the page's frame, then opens the data
 * element with the dump time on cctx_now()'s clock (deadlines and causes are
 * on that clock; the JSON's "dump_time" is the same) and on the wall clock
 * (for the reader); end closes it and writes the script.
 */
#include <time.h>

#include "internal.h"

/* The page's two halves are longer than the 4095 characters ISO C has a
 * compiler take in a string literal (every compiler cctx builds with takes
 * them): said so, for a parent project that builds cctx in with -Wpedantic
 * -Werror. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const char page_head[] =
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
    "<title>cctx context tree</title>\n"
    "<style>\n"
    ":root{--bg:#fff;--fg:#1f2328;--dim:#6e7781;--line:#d8dee4;--hov:#f6f8fa;--chip:#eef1f4;"
    "--ok:#1a7f37;--okb:#dafbe1;--cx:#cf222e;--cxb:#ffebe9;--to:#9a6700;--tob:#fff1c2;"
    "--card:#fff;--shadow:0 8px 24px rgba(31,35,40,.16)}\n"
    "@media(prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--dim:#8b949e;"
    "--line:#30363d;--hov:#161b22;--chip:#21262d;--ok:#3fb950;--okb:#12261e;--cx:#f85149;"
    "--cxb:#2d1416;--to:#d29922;--tob:#2b2111;--card:#161b22;--shadow:0 8px 24px #000a}}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);"
    "font:13px/1.55 ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace}\n"
    "header{position:sticky;top:0;z-index:2;background:var(--bg);padding:12px 20px 10px;"
    "border-bottom:1px solid var(--line)}\n"
    ".bar{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;"
    "gap:6px 18px}.bar+.bar{margin-top:6px}\n"
    "h1{font-size:15px;margin:0;font-weight:600}h1 b{color:var(--dim);font-weight:400}\n"
    "#sum,#taken{color:var(--dim)}#sum b{color:var(--fg);font-weight:600}\n"
    ".legend{display:flex;align-items:center;gap:14px;color:var(--dim)}#open{margin-left:10px}\n"
    ".legend>span::before,.dot{content:'';display:inline-block;width:8px;height:8px;"
    "border-radius:50%;margin-right:6px;vertical-align:1px;background:var(--c)}\n"
    "button{font:inherit;font-size:12px;color:var(--fg);background:var(--hov);cursor:pointer;"
    "border:1px solid var(--line);border-radius:6px;padding:2px 10px}\n"
    "button:hover{border-color:var(--dim)}\n"
    ".active{--c:var(--ok);--cb:var(--okb)}.canceled{--c:var(--cx);--cb:var(--cxb)}"
    ".expired{--c:var(--to);--cb:var(--tob)}\n"
    ".row{display:flex;align-items:center;padding:2px 20px 2px 17px;white-space:nowrap;"
    "border-left:3px solid transparent}\n"
    ".node{border-bottom:1px solid var(--hov);content-visibility:auto;"
    "contain-intrinsic-size:auto 25px}.node:hover{background:var(--hov)}\n"
    ".node:not(.active){background:linear-gradient(90deg,var(--cb),transparent 60%)}\n"
    ".node:not(.active)>.row{border-left-color:var(--c)}\n"
    ".cols{color:var(--dim);font-size:11px;text-transform:uppercase;letter-spacing:.04em;"
    "border-bottom:1px solid var(--line);padding-top:6px}\n"
    ".main{flex:1 1 0;min-width:0;overflow:hidden;text-overflow:ellipsis}\n"
    ".ind{display:inline-block;height:1.55em;vertical-align:top;"
    "background:repeating-linear-gradient(90deg,var(--line) 0 1px,transparent 1px 2ch);"
    "background-position:.6ch 0}\n"
    ".tg{display:inline-block;width:2ch;padding:0;border:0;background:none;color:var(--dim);"
    "font-size:12px;text-align:left}.tg:hover{color:var(--fg)}\n"
    ".kind{font-size:11px;color:var(--dim);background:var(--chip);border-radius:4px;"
    "padding:0 5px;margin-right:8px}\n"
    ".name{font-weight:600}.anon{font-weight:400;font-style:italic;color:var(--dim)}\n"
    ".via{font-size:11px;color:var(--dim);border:1px dashed var(--line);border-radius:4px;"
    "padding:0 4px;margin-left:6px}\n"
    ".col{flex:none;overflow:hidden;text-overflow:ellipsis;padding-left:12px}\n"
    ".st{width:148px}.dl{width:170px}.num{width:56px;text-align:right}.num+.num{width:80px}"
    ".site{width:310px;padding-left:20px;color:var(--dim)}\n"
    ".node .st{color:var(--c)}.node .dl{font-variant-numeric:tabular-nums}.late{color:var(--to)}\n"
    ".cause{font-size:12px;color:var(--c);padding:0 20px 3px;white-space:nowrap;"
    "overflow:hidden;text-overflow:ellipsis}.cause b{font-weight:600}\n"
    "#msg{padding:24px 20px;color:var(--dim)}footer{padding:12px 20px;font-size:12px;"
    "color:var(--dim)}\n"
    "#card{position:fixed;z-index:3;max-width:560px;background:var(--card);color:var(--fg);"
    "border:1px solid var(--line);border-radius:8px;box-shadow:var(--shadow);padding:10px 12px;"
    "font-size:12px;pointer-events:none}\n"
    "#card .hd{font-weight:600;margin-bottom:6px;border-bottom:1px solid var(--line);"
    "padding-bottom:4px;white-space:pre-wrap;word-break:break-all}\n"
    "#card .sub{margin-top:6px;color:var(--c);font-weight:600}\n"
    "#card .kv{display:flex;gap:10px}#card .k{flex:none;width:9ch;color:var(--dim)}"
    "#card .v{white-space:pre-wrap;word-break:break-all}\n"
    "[hidden]{display:none!important}\n"
    "</style></head><body>\n"
    "<header><div class=\"bar\"><h1>cctx <b>context tree</b></h1>"
    "<span class=\"legend\"><span class=\"active\">active</span>"
    "<span class=\"canceled\">canceled</span>"
    "<span class=\"expired\">deadline exceeded</span>"
    "<button id=\"open\">Expand all</button><button id=\"shut\">Collapse all</button></span>"
    "</div>\n<div class=\"bar\"><span id=\"sum\"></span><span id=\"taken\">dumped "
    "<span id=\"when\"></span></span></div></header>\n"
    "<div class=\"row cols\"><span class=\"main\">context</span><span class=\"col st\">state</span>"
    "<span class=\"col dl\">deadline at dump time</span><span class=\"col num\">refs</span>"
    "<span class=\"col num\">children</span><span class=\"col site\">created at</span></div>\n"
    "<main id=\"tree\"></main>\n"
    "<footer>Hover over a context for its details. Deadlines and causes are timed from the "
    "moment of the dump (above), not from when this page was opened: nothing here counts "
    "down.</footer><div id=\"card\" hidden></div>\n";

static const char page_tail[] =
    "<script>\n"
    "(function(){'use strict';\n"
    "var data=document.getElementById('cctx-data'),now=+data.dataset.now,\n"
    " wall=+data.dataset.wall;\n"
    "var tree=document.getElementById('tree'),card=document.getElementById('card');\n"
    "var rows=[],n={all:0,active:0,canceled:0,expired:0},vias={},nvia=0;\n"
    "var LABEL={active:'active',canceled:'canceled',expired:'deadline exceeded'};\n"
    /* Every element is made here; data only ever goes in through textContent. */
    "function h(tag,cls,text,parent){var e=document.createElement(tag);\n"
    " if(cls)e.className=cls;if(text!=null)e.textContent=String(text);\n"
    " if(parent)parent.appendChild(e);return e}\n"
    "function pad(x){return(x<10?'0':'')+x}\n"
    /* A duration in nanoseconds written as the text dump writes it (dump.c's
     * human()), so that the page and a text dump read alike. */
    "var UNITS=[[1e3,1e3,'us'],[1e6,1e3,'ms'],[1e9,60,'s'],[6e10,60,'min'],[36e11,0,'h']];\n"
    "function dur(ns){ns=Math.abs(ns);if(ns<1e3)return Math.round(ns)+' ns';\n"
    " for(var i=0;;i++){var u=UNITS[i],t=Math.floor((ns+u[0]/20)/(u[0]/10));\n"
    "  if(!u[1]||t<u[1]*10)return Math.floor(t/10)+'.'+t%10+' '+u[2]}}\n"
    /* A deadline as it stood at the dump: the page is read later, maybe much
     * later, so it never counts down from when it is opened. */
    "function due(r){return r>0?'in '+dur(r):'passed '+dur(r)+' ago'}\n"
    "function stamp(ms){var d=new Date(ms);return d.getFullYear()+'-'+pad(d.getMonth()+1)+'-'+\n"
    " pad(d.getDate())+' '+pad(d.getHours())+':'+pad(d.getMinutes())+':'+pad(d.getSeconds())}\n"
    "function since(ms){var s=Math.floor(ms/1e3);return s<1?'just now':(s<60?s+' s':\n"
    " s<3600?Math.floor(s/60)+' min':s<86400?Math.floor(s/3600)+' h':\n"
    " Math.floor(s/86400)+' d')+' ago'}\n"
    "function site(o){return o.file+':'+o.line+(o.func?' '+o.func+'()':'')}\n"
    "function ago(when){return dur(now-when)+(when<=now?' before':' after')+' the dump'}\n"
    "function stateOf(x){return x.state==='active'?'active':\n"
    " x.err==='ETIMEDOUT'?'expired':'canceled'}\n"
    "function nameOf(x){return x.name==null?'(unnamed)':x.name}\n"
    "function causeText(x){var c=x.cause;\n"
    " return x.err+': code '+c.code+', '+c.msg+'\\nat '+site(c)+', '+ago(c.when)}\n"
    /* One row per context in tree order, indented by depth, from an explicit
     * stack. */
    "function render(roots){var stack=[];\n"
    " for(var i=roots.length-1;i>=0;i--)stack.push([roots[i],0]);\n"
    " while(stack.length){\n"
    "  var top=stack.pop(),x=top[0],d=top[1],st=stateOf(x),kids=x.children||[];\n"
    "  n.all++;n[st]++;\n"
    "  var node=h('div','node '+st,null,tree),row=h('div','row',null,node);\n"
    "  var main=h('span','main',null,row),indent=Math.min(d,40)*2;\n"
    "  node.dataset.i=rows.length;node.dataset.depth=d;\n"
    "  h('span','ind',null,main).style.width=indent+'ch';\n"
    "  var tg=h(kids.length?'button':'span','tg',null,main);\n"
    "  h('span','dot',null,main);h('span','kind',x.kind.replace('_',' '),main);\n"
    "  h('span',x.name==null?'name anon':'name',nameOf(x),main);\n"
    "  (x.via||[]).slice().reverse().forEach(function(v){\n"
    "   if(!vias[v.id]){vias[v.id]=1;nvia++}\n"
    "   var k=v.kind==='value'?'':v.kind.replace('_',' ')+' ';\n"
    "   h('span','via','via '+k+(v.name||'(unnamed)'),main).title=\n"
    "    v.kind+' context '+JSON.stringify(v.name)+' made at '+v.file+':'+v.line});\n"
    "  var stc=h('span','col st',LABEL[st],row),dl=h('span','col dl','\\u2014',row);\n"
    "  if(x.remaining!=null){var r=x.remaining;dl.textContent=due(r);\n"
    "   dl.title='deadline '+dur(r)+(r>0?' after':' before')+' the dump';\n"
    "   if(r<=0)dl.className+=' late'}\n"
    "  h('span','col num',x.refs,row);h('span','col num',x.child_count,row);\n"
    "  h('span','col site',site(x),row).title=site(x);\n"
    "  if(x.cause){var ct=causeText(x),cl=h('div','cause',null,node);stc.title=cl.title=ct;\n"
    "   cl.style.paddingLeft='calc(20px + '+(indent+4)+'ch)';\n"
    "   h('b',null,'\\u21b3 code '+x.cause.code+': '+x.cause.msg,cl);\n"
    "   h('span',null,' \\u00b7 at '+site(x.cause)+' \\u00b7 ended '+ago(x.cause.when),cl)}\n"
    "  rows.push({el:node,x:x,st:st,d:d,tg:kids.length?tg:null,open:true});\n"
    "  for(var j=kids.length-1;j>=0;j--)stack.push([kids[j],d+1])}}\n"
    /* Collapsing hides the rows below a closed one, up to the next row as
     * shallow as it. */
    "function refresh(){var hide=Infinity;rows.forEach(function(r){\n"
    " if(r.d<=hide)hide=Infinity;r.el.hidden=r.d>hide;\n"
    " if(!r.tg)return;r.tg.textContent=r.open?'\\u25be':'\\u25b8';\n"
    " r.tg.setAttribute('aria-expanded',r.open);if(!r.el.hidden&&!r.open)hide=r.d})}\n"
    "function all(open){rows.forEach(function(r){r.open=open});refresh()}\n"
    /* The one thing that moves: how long ago the dump was taken. */
    "function tick(){\n"
    " document.getElementById('when').textContent=stamp(wall)+' ('+since(Date.now()-wall)+')'}\n"
    /* The hover card: everything the dump says about one context. */
    "function kv(k,v){var r=h('div','kv',null,card);h('span','k',k,r);h('span','v',v,r)}\n"
    "function fill(r){var x=r.x;card.textContent='';card.className=r.st;\n"
    " h('div','hd',nameOf(x),card);kv('kind',x.kind);kv('id',x.id);kv('created',site(x));\n"
    " kv('state',LABEL[r.st]+(x.err!=='0'?' ('+x.err+')':''));\n"
    " kv('refs',x.refs);kv('children',x.child_count);kv('depth',r.d);\n"
    " if(x.remaining!=null)kv('deadline',due(x.remaining)+' at dump time');\n"
    " (x.via||[]).forEach(function(v){\n"
    "  kv('via',v.kind+' '+JSON.stringify(v.name)+' '+v.file+':'+v.line)});\n"
    " if(x.cause){var c=x.cause;h('div','sub','cause',card);kv('code',c.code);\n"
    "  kv('message',c.msg);kv('origin',site(c));kv('ended',ago(c.when))}}\n"
    "var shown=null;\n"
    "tree.addEventListener('click',function(e){var t=e.target.closest('button.tg');\n"
    " if(t){var r=rows[+t.closest('.node').dataset.i];r.open=!r.open;refresh()}});\n"
    "tree.addEventListener('mousemove',function(e){var el=e.target.closest('.node');\n"
    " if(!el){card.hidden=true;shown=null;return}\n"
    " if(el!==shown){shown=el;fill(rows[+el.dataset.i])}card.hidden=false;\n"
    " var x=e.clientX+16,y=e.clientY+14,w=card.offsetWidth,ht=card.offsetHeight;\n"
    " if(x+w>innerWidth-8)x=Math.max(8,e.clientX-w-16);\n"
    " if(y+ht>innerHeight-8)y=Math.max(8,e.clientY-ht-14);\n"
    " card.style.left=x+'px';card.style.top=y+'px'});\n"
    "tree.addEventListener('mouseleave',function(){card.hidden=true;shown=null});\n"
    "document.getElementById('open').onclick=function(){all(true)};\n"
    "document.getElementById('shut').onclick=function(){all(false)};\n"
    "var sum=document.getElementById('sum'),roots=null;\n"
    "try{roots=JSON.parse(data.textContent)}\n"
    "catch(err){h('div',null,'This dump could not be read: '+err.message,tree).id='msg'}\n"
    "if(roots){render(roots);refresh();\n"
    " if(!rows.length)h('div',null,'No live contexts.',tree).id='msg';\n"
    " h('b',null,n.all,sum);sum.append(' contexts \\u00b7 ');h('b',null,n.active,sum);\n"
    " sum.append(' active \\u00b7 ');h('b',null,n.canceled+n.expired,sum);\n"
    " sum.append(' done ('+n.canceled+' canceled, '+n.expired+' deadline exceeded)'+\n"
    "  (nvia?' \\u00b7 +'+nvia+' value context'+(nvia>1?'s':'')+' on the way':''))}\n"
    "tick();setInterval(tick,1000);\n"
    "})();\n"
    "</script>\n"
    "</body></html>\n";
#pragma GCC diagnostic pop

void cctx__html_begin(FILE *out, int64_t now)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    fputs(page_head, out);
    fprintf(out,
            "<script id=\"cctx-data\" type=\"application/json\" data-now=\"%lld\" "
            "data-wall=\"%lld\">",
            (long long)now, (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000);
}

void cctx__html_end(FILE *out)
{
    fputs("</script>\n", out);
    fputs(page_tail, out);
}
