// The dashboard page: one HTML document with its CSS and script inline, so it
// needs no CDN, no network and no files beside it. The live page fetches
// api/fleet; the static one (`dashboard --out`) carries its data in a
// <script type="application/json"> block that is never executed.
//
// A Content-Security-Policy allows exactly this page's own script and style
// (by hash) and nothing else: even if a value from the repository were ever
// put into the page as markup, no script of its own could run.

import { createHash } from 'node:crypto';
import type { DashboardData } from '../model/dashboard.js';
import { dashboardClient } from './client.js';

const CSS = `
:root {
  --bg: #f4f5f7; --card: #fff; --text: #1f2328; --muted: #656d76; --border: #d8dee4; --soft: #f6f8fa;
  --green: #1a7f37; --green-bg: #dafbe1; --amber: #9a6700; --amber-bg: #fff8c5; --red: #cf222e; --red-bg: #ffebe9;
  --blue: #0969da; --blue-bg: #ddf4ff; --purple: #8250df; --purple-bg: #fbefff; --grey: #57606a; --grey-bg: #eaeef2;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; background: var(--bg); color: var(--text); }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
.top { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; align-items: center; gap: 8px 28px; padding: 12px 28px; background: var(--card); border-bottom: 1px solid var(--border); }
.brand { display: flex; align-items: baseline; gap: 10px; }
.brand h1 { margin: 0; font-size: 18px; letter-spacing: -0.01em; }
.brand .sub { color: var(--muted); }
.meta { display: flex; align-items: center; gap: 14px; color: var(--muted); font-size: 13px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--grey-bg); display: inline-block; }
.dot.ok { background: var(--green); box-shadow: 0 0 0 3px var(--green-bg); }
.dot.bad { background: var(--red); box-shadow: 0 0 0 3px var(--red-bg); }
.dot.static { background: var(--grey); }
.counts { display: flex; gap: 6px; margin-left: auto; flex-wrap: wrap; }
.count { padding: 3px 10px; border-radius: 999px; background: var(--soft); border: 1px solid var(--border); font-size: 13px; color: var(--muted); }
.count b { color: var(--text); }
.count.j-running b { color: var(--blue); }
.count.j-failed b { color: var(--red); }
.actions-bar { display: flex; align-items: center; gap: 10px; width: 100%; font-size: 13px; }
.actions-bar form { width: auto; margin: 0; }
.actions-bar input { font: inherit; padding: 4px 8px; border: 1px solid var(--border); border-radius: 6px; width: 260px; }
.action-result.good { color: var(--green); }
.action-result.bad { color: var(--red); }
.banner { margin: 16px 28px 0; padding: 10px 14px; border-radius: 8px; border: 1px solid #ffc1ba; background: var(--red-bg); color: #82071e; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { margin-top: 22px; }
section > h2 { display: flex; align-items: baseline; gap: 12px; margin: 0 0 10px; font-size: 15px; }
section > h2 .note { font-weight: normal; color: var(--muted); font-size: 13px; }
.panel { background: var(--card); border: 1px solid var(--border); border-radius: 10px; overflow: hidden; }
.pad { padding: 14px 16px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
.two { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 0 22px; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } .top, main { padding-left: 14px; padding-right: 14px; } }
.card { background: var(--card); border: 1px solid var(--border); border-left: 4px solid var(--grey-bg); border-radius: 10px; padding: 12px 14px; }
.card.h-healthy { border-left-color: var(--green); }
.card.h-degraded { border-left-color: #d4a72c; }
.card.h-stale { border-left-color: var(--red); }
.card.h-offline, .card.h-unknown { border-left-color: #afb8c1; }
.card header { display: flex; align-items: center; gap: 8px; margin-bottom: 8px; }
.card h3 { margin: 0; font-size: 15px; margin-right: auto; }
.card dl { display: grid; grid-template-columns: 82px minmax(0, 1fr); gap: 4px 10px; margin: 0; font-size: 13px; }
.card dt { color: var(--muted); }
.card dd { margin: 0; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.card .reasons { margin: -2px 0 8px; font-size: 12px; color: var(--amber); }
.card .act { margin-top: 10px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px; font-weight: 600; line-height: 20px; white-space: nowrap; background: var(--grey-bg); color: var(--grey); }
.h-healthy.badge { background: var(--green-bg); color: var(--green); }
.h-degraded.badge { background: var(--amber-bg); color: var(--amber); }
.h-stale.badge { background: var(--red-bg); color: var(--red); }
.s-building, .j-running { background: var(--blue-bg); color: var(--blue); }
.s-success, .j-completed, .e-completed { background: var(--green-bg); color: var(--green); }
.s-failed, .j-failed, .e-failed, .m-error { background: var(--red-bg); color: var(--red); }
.s-paused, .e-pause, .e-resume { background: var(--purple-bg); color: var(--purple); }
.j-blocked, .m-warning, .e-reclaim, .e-cancel, .e-cancelled { background: var(--amber-bg); color: var(--amber); }
.e-claim, .m-request { background: var(--blue-bg); color: var(--blue); }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; background: var(--soft); border-bottom: 1px solid var(--border); padding: 7px 10px; white-space: nowrap; }
td { padding: 7px 10px; border-bottom: 1px solid #eef1f4; vertical-align: middle; white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
tbody tr:hover td { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.desc { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 360px; width: 100%; }
td.elapsed, td.duration { font-variant-numeric: tabular-nums; }
tr.empty td { color: var(--muted); text-align: center; padding: 16px; }
tr[data-status="running"] td:first-child { box-shadow: inset 3px 0 0 var(--blue); }
tr[data-status="failed"] td:first-child { box-shadow: inset 3px 0 0 var(--red); }
.act { font: inherit; font-size: 12px; padding: 2px 10px; border-radius: 6px; border: 1px solid var(--border); background: var(--soft); cursor: pointer; }
.act:hover { background: var(--grey-bg); }
svg.chart { display: block; width: 100%; height: auto; }
svg .label { font-size: 13px; font-weight: 600; fill: var(--text); }
svg .stat { font-size: 12px; fill: var(--text); }
svg .axis { font-size: 11px; fill: var(--muted); }
svg .base { stroke: var(--border); stroke-width: 1; }
svg .bar-completed { fill: #4ac26b; }
svg .bar-failed { fill: #fa4549; }
svg .bar-cancelled { fill: #afb8c1; }
svg .bar:hover { opacity: 0.75; }
.legend { display: flex; gap: 14px; font-size: 12px; color: var(--muted); margin-top: 6px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.legend .l-completed { background: #4ac26b; } .legend .l-failed { background: #fa4549; } .legend .l-cancelled { background: #afb8c1; }
ul.list, ol.list { list-style: none; margin: 0; padding: 0; }
.list li { padding: 8px 14px; border-bottom: 1px solid #eef1f4; font-size: 13px; min-width: 0; }
.list li:last-child { border-bottom: 0; }
#messages .line { display: flex; gap: 8px; align-items: center; min-width: 0; }
#messages .subject { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#messages .meta { color: var(--muted); font-size: 12px; margin-top: 2px; }
#messages .body { color: var(--muted); margin-top: 4px; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 4.4em; overflow: hidden; }
#messages li.unread .subject { color: var(--text); }
#events li { display: grid; grid-template-columns: 64px auto minmax(0, 1fr) auto; gap: 10px; align-items: center; padding: 5px 14px; }
#events time { color: var(--muted); font-variant-numeric: tabular-nums; font-size: 12px; }
#events .subject { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#events .who { font-size: 12px; }
.scroll { max-height: 440px; overflow: auto; }
.tablewrap { overflow-x: auto; }
[hidden] { display: none !important; }
`;

const BODY = `
<header class="top">
  <div class="brand"><h1>buildcoord</h1><span class="sub">fleet dashboard</span></div>
  <div class="meta"><span id="conn" class="dot" title="loading"></span><span id="updated">loading…</span><span id="commit"></span><span id="stale-note"></span></div>
  <div id="counts" class="counts"></div>
  <div id="actions-bar" class="actions-bar" hidden>
    <form id="token-form" class="actions-bar"><label for="token">Actions enabled:</label>
    <input id="token" type="password" autocomplete="off" placeholder="paste the action token"></form>
    <span id="fleet-control"></span>
    <span id="action-result" class="action-result"></span>
  </div>
</header>
<div id="problems" class="banner" hidden></div>
<div id="error" class="banner" hidden></div>
<main>
  <section id="fleet-section">
    <h2>Builders</h2>
    <div id="builders" class="grid"></div>
  </section>
  <section id="queue-section">
    <h2>Queue <span class="note">in the order it will run</span></h2>
    <div class="panel tablewrap"><table id="queue">
      <thead><tr><th class="num">#</th><th>Job</th><th>Type</th><th class="num">Pri</th><th>Status</th><th>Builder</th><th>Elapsed</th><th>Description</th><th></th></tr></thead>
      <tbody id="queue-body"></tbody>
    </table></div>
  </section>
  <section id="history-section">
    <h2>Recent builds <span class="note">newest first</span></h2>
    <div class="panel tablewrap scroll"><table id="history">
      <thead><tr><th>Result</th><th>Job</th><th>Type</th><th>Builder</th><th class="num">Duration</th><th>Finished</th><th>Summary</th><th></th></tr></thead>
      <tbody id="history-body"></tbody>
    </table></div>
  </section>
  <div class="two">
    <section id="chart-section">
      <h2>Build durations <span class="note">per job type, one bar per build</span></h2>
      <div class="panel pad">
        <svg id="durations" class="chart" role="img" aria-label="Build durations per job type" viewBox="0 0 640 40"></svg>
        <div class="legend"><span><i class="l-completed"></i>completed</span><span><i class="l-failed"></i>failed</span><span><i class="l-cancelled"></i>cancelled</span></div>
      </div>
    </section>
    <section id="events-section">
      <h2>Events <span class="note">from the commits on main</span></h2>
      <div class="panel scroll"><ol id="events" class="list"></ol></div>
    </section>
  </div>
  <div class="two">
    <section id="messages-section">
      <h2>Messages</h2>
      <div class="panel scroll"><ul id="messages" class="list"></ul></div>
    </section>
    <section id="locks-section">
      <h2>Locks</h2>
      <div class="panel tablewrap"><table id="locks">
        <thead><tr><th>Name</th><th>Holder</th><th class="num">Token</th><th>Expires</th><th>Note</th></tr></thead>
        <tbody id="locks-body"></tbody>
      </table></div>
    </section>
  </div>
</main>
`;

const SCRIPT = `(${dashboardClient.toString()})();`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The policy for the page: its own inline script and style, requests to its own origin (live only), nothing else. */
export function contentSecurityPolicy(mode: 'live' | 'static'): string {
  return [
    "default-src 'none'",
    `script-src ${sha256(SCRIPT)}`,
    `style-src ${sha256(CSS)}`,
    'img-src data:',
    ...(mode === 'live' ? ["connect-src 'self'"] : []),
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

/** JSON that can sit inside a <script> element: no "</script>", no "<!--", no line separators. */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export interface PageOptions {
  mode: 'live' | 'static';
  /** Embedded for the static page. */
  data?: DashboardData;
  /** How often the live page polls api/fleet. */
  pollMs?: number;
}

export function renderPage(opts: PageOptions): string {
  const data = opts.mode === 'static' ? `\n<script type="application/json" id="dashboard-data">${scriptSafeJson(opts.data ?? null)}</script>` : '';
  const poll = Math.max(1000, Math.round(opts.pollMs ?? 5000));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(opts.mode)}">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="buildcoord dashboard">
<title>buildcoord fleet</title>
<style>${CSS}</style>
</head>
<body data-mode="${opts.mode}" data-poll="${poll}">${BODY}${data}
<script>${SCRIPT}</script>
</body>
</html>
`;
}
