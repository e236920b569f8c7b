// The page's own script. It runs in the browser, not in node: page.ts inlines
// `(${dashboardClient.toString()})()`, so this function must stay
// self-contained (no imports at run time, nothing from module scope).
//
// Everything from the repository is hand-editable JSON: it reaches the page
// only through textContent, createTextNode and setAttribute, never as HTML.

import type { DashboardData } from '../model/dashboard.js';

export function dashboardClient(): void {
  type Data = DashboardData & { served_at?: string };
  type Child = Node | string | null | undefined | false;

  const body = document.body;
  const live = body.dataset.mode === 'live';
  const pollMs = Math.max(1000, Number(body.dataset.poll) || 5000);
  const $ = (id: string) => document.getElementById(id)!;

  function h(tag: string, attrs: Record<string, string | null | undefined> | null, ...children: Child[]): HTMLElement {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs ?? {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
    for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
    return el;
  }
  // The page's markup holds one <svg>: its namespace is taken from there rather than spelled out.
  const SVG_NS = $('durations').namespaceURI!;
  function s(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
    const el = document.createElementNS(SVG_NS, tag) as SVGElement;
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function span(sec: number | null | undefined): string {
    if (sec === null || sec === undefined || !Number.isFinite(sec)) return '-';
    const t = Math.max(0, Math.round(sec));
    if (t < 60) return `${t}s`;
    const m = Math.floor(t / 60);
    if (m < 60) return `${m}m${String(t % 60).padStart(2, '0')}s`;
    const hr = Math.floor(m / 60);
    if (hr < 48) return `${hr}h${String(m % 60).padStart(2, '0')}m`;
    return `${Math.floor(hr / 24)}d${hr % 24}h`;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  function when(iso: string | null | undefined): string {
    if (!iso) return '-';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }
  const short = (sha: string | null | undefined) => (sha ? sha.slice(0, 10) : '-');

  // Ages and elapsed times keep counting between polls (live only): each such
  // element carries its value at the snapshot and the page adds the time since.
  let snapshotAtMs = Date.now();
  function ticking(base: number | null | undefined, suffix = ''): HTMLElement {
    const el = h('span', { class: 'tick' }, base === null || base === undefined ? '-' : span(base) + suffix);
    if (base !== null && base !== undefined) {
      el.dataset.base = String(base);
      el.dataset.suffix = suffix;
    }
    return el;
  }
  function tick(): void {
    if (!live) return;
    const extra = (Date.now() - snapshotAtMs) / 1000;
    for (const el of document.querySelectorAll<HTMLElement>('.tick[data-base]')) {
      el.textContent = span(Number(el.dataset.base) + extra) + (el.dataset.suffix ?? '');
    }
  }

  const badge = (cls: string, text: string, title?: string) => h('span', { class: `badge ${cls}`, title: title ?? null }, text);
  const code = (text: string, cls = '') => h('code', { class: cls || null, title: text }, text);
  const empty = (cols: number, text: string) => h('tr', { class: 'empty' }, h('td', { colspan: String(cols) }, text));

  // ------------------------------------------------------------ actions

  let token = '';
  let current: Data | null = null;
  async function act(payload: Record<string, string | null>, what: string): Promise<void> {
    const out = $('action-result');
    if (!token) {
      out.textContent = 'Enter the action token first.';
      out.className = 'action-result bad';
      return;
    }
    if (!window.confirm(`${what}?`)) return;
    out.textContent = `${what}…`;
    out.className = 'action-result';
    try {
      const r = await fetch('api/actions', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: JSON.stringify(payload) });
      const answer = (await r.json().catch(() => ({}))) as { message?: string; error?: string };
      out.textContent = r.ok ? answer.message ?? 'done' : `${r.status}: ${answer.error ?? r.statusText}`;
      out.className = `action-result ${r.ok ? 'good' : 'bad'}`;
      if (r.ok) void refresh();
    } catch (e) {
      out.textContent = `failed: ${(e as Error).message}`;
      out.className = 'action-result bad';
    }
  }
  function button(label: string, payload: Record<string, string | null>, what: string): HTMLElement | null {
    if (!current?.actions_enabled) return null;
    const b = h('button', { type: 'button', class: 'act' }, label) as HTMLButtonElement;
    b.addEventListener('click', () => void act(payload, what));
    return b;
  }

  // ------------------------------------------------------------ sections

  function renderHeader(d: Data): void {
    const c = d.queue.counts;
    $('counts').replaceChildren(
      ...(
        [
          ['running', c.running],
          ['queued', c.queued],
          ['failed', c.failed],
          ['completed', c.completed],
          ['cancelled', c.cancelled],
        ] as Array<[string, number]>
      ).map(([k, n]) => h('span', { class: `count j-${k}`, 'data-count': k }, h('b', null, String(n)), ` ${k}`)),
    );
    $('commit').replaceChildren('main @ ', code(short(d.commit)));
    const st = d.stale_after_seconds;
    $('stale-note').textContent = `stale after ${st % 3600 === 0 && st ? `${st / 3600}h` : st % 60 === 0 && st ? `${st / 60}m` : span(st)} without a heartbeat`;
    const updated = $('updated');
    if (live) updated.replaceChildren('updated ', ticking(0, ' ago'));
    else updated.replaceChildren(`snapshot of ${when(d.generated_at)}`);
    const probs = $('problems');
    probs.hidden = d.problems.length === 0;
    probs.replaceChildren(h('strong', null, 'Files that could not be read: '), ...d.problems.map((p) => h('div', null, p)));
    $('actions-bar').hidden = !d.actions_enabled;
    const fleet = $('fleet-control');
    fleet.replaceChildren(
      d.fleet.paused ? badge('s-paused', 'fleet paused', d.fleet.paused_by ? `by ${d.fleet.paused_by} at ${d.fleet.paused_at ?? '?'}` : undefined) : '',
      d.fleet.paused ? button('Resume fleet', { action: 'resume', builder: null }, 'Resume the whole fleet') ?? '' : button('Pause fleet', { action: 'pause', builder: null }, 'Pause the whole fleet') ?? '',
    );
  }

  function renderBuilders(d: Data): void {
    const cards = d.builders.map((b) => {
      const job = b.current_job;
      const rows: Array<[string, Node | string]> = [
        ['state', badge(`s-${b.state}`, b.state)],
        ['heartbeat', b.heartbeat_age_seconds === null ? 'never' : ticking(b.heartbeat_age_seconds, ' ago')],
        ['job', job ? code(job.id, 'job-id') : h('span', { class: 'muted' }, '-')],
      ];
      if (job) {
        rows.push([
          'running',
          h('span', { class: 'job', title: job.description ?? '' }, h('span', { class: 'job-elapsed' }, ticking(job.elapsed_seconds)), h('span', { class: 'muted' }, [job.type, job.attempt ? `attempt ${job.attempt}` : ''].filter(Boolean).map((x) => ` · ${x}`).join(''))),
        ]);
      }
      rows.push(
        ['last build', b.last_build ? h('span', { title: `${b.last_build.id} at ${b.last_build.completed_at}` }, badge(`j-${b.last_build.status}`, b.last_build.status), ` ${span(b.last_build.duration_seconds)}`, h('span', { class: 'muted' }, ` · ${when(b.last_build.completed_at)}`)) : h('span', { class: 'muted' }, '-')],
        ['version', h('span', { class: 'version' }, b.agent_version ?? '-')],
        ['distcc', h('span', { class: 'distcc' }, b.distcc_mode ?? '-')],
      );
      if (b.system && (b.system.cpu_usage !== null || b.system.disk_free_gb !== null)) {
        const parts = [b.system.cpu_usage !== null ? `cpu ${Math.round(b.system.cpu_usage)}%` : '', b.system.memory_used_gb !== null ? `mem ${b.system.memory_used_gb} GB` : '', b.system.disk_free_gb !== null ? `disk free ${b.system.disk_free_gb} GB` : ''];
        rows.push(['system', parts.filter(Boolean).join(' · ')]);
      }
      const title = b.heartbeat_at ? `last heartbeat ${b.heartbeat_at}` : 'no heartbeat seen';
      return h(
        'article',
        { class: `card builder h-${b.health}`, 'data-builder': b.builder, 'data-health': b.health, 'data-state': b.state },
        h(
          'header',
          null,
          h('h3', null, b.builder),
          b.paused ? badge('s-paused', 'paused') : null,
          h('span', { class: `badge health h-${b.health}`, title }, b.health),
        ),
        b.degraded_reasons.length && b.health !== 'healthy' ? h('div', { class: 'reasons' }, b.degraded_reasons.join('; ')) : null,
        h('dl', null, ...rows.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
        b.paused ? button('Resume', { action: 'resume', builder: b.builder }, `Resume ${b.builder}`) : button('Pause', { action: 'pause', builder: b.builder }, `Pause ${b.builder}`),
      );
    });
    $('builders').replaceChildren(...(cards.length ? cards : [h('p', { class: 'muted' }, 'No builders have reported yet.')]));
  }

  function renderQueue(d: Data): void {
    const rows = d.queue.jobs.map((j, i) => {
      const state =
        j.status === 'running'
          ? badge('j-running', j.cancel_requested ? 'cancelling' : 'running')
          : j.blocked
            ? badge('j-blocked', j.blocked === 'dependencies' ? 'waiting' : j.blocked, j.blocked === 'dependencies' ? 'waits for its dependencies' : 'a dependency failed or was cancelled')
            : badge('j-queued', 'queued');
      return h(
        'tr',
        { 'data-job': j.id, 'data-status': j.status },
        h('td', { class: 'num' }, String(i + 1)),
        h('td', null, code(j.id)),
        h('td', null, j.type),
        h('td', { class: 'num' }, String(j.priority)),
        h('td', { class: 'status' }, state),
        h('td', { class: 'builder' }, j.assigned_to ?? (j.on ? `(on ${j.on})` : '')),
        h('td', { class: 'elapsed', title: j.status === 'running' ? `started ${j.started_at ?? '?'}` : `queued ${j.created_at}` }, ticking(j.elapsed_seconds), j.status === 'queued' ? h('span', { class: 'muted' }, ' waiting') : null),
        h('td', { class: 'desc', title: j.description }, j.description || h('span', { class: 'muted' }, j.branch)),
        h('td', { class: 'actions' }, button('Cancel', { action: 'cancel', job: j.id }, `Cancel ${j.id}`)),
      );
    });
    $('queue-body').replaceChildren(...(rows.length ? rows : [empty(9, 'Nothing queued or running.')]));
  }

  function renderHistory(d: Data): void {
    const rows = d.history.map((j) =>
      h(
        'tr',
        { 'data-job': j.id, 'data-status': j.status },
        h('td', { class: 'result' }, badge(`j-${j.status}`, j.status)),
        h('td', null, code(j.id)),
        h('td', null, j.type),
        h('td', null, j.builder ?? '-'),
        h('td', { class: 'num duration' }, span(j.duration_seconds)),
        h('td', { class: 'finished', title: j.completed_at }, when(j.completed_at)),
        h('td', { class: 'desc', title: j.summary ?? '' }, j.summary ?? ''),
        h('td', { class: 'actions' }, j.status !== 'completed' ? button('Retry', { action: 'retry', job: j.id }, `Retry ${j.id}`) : null),
      ),
    );
    $('history-body').replaceChildren(...(rows.length ? rows : [empty(8, 'No finished jobs yet.')]));
  }

  function renderChart(d: Data): void {
    const svg = $('durations');
    const series = d.durations;
    svg.replaceChildren();
    const W = 640;
    const labelW = 120;
    const statsW = 200;
    const rowH = 54;
    const top = 8;
    if (!series.length) {
      svg.setAttribute('viewBox', `0 0 ${W} 40`);
      svg.append(s('text', { x: 0, y: 24, class: 'axis' }, 'No finished builds yet.'));
      return;
    }
    const max = Math.max(1, ...series.flatMap((x) => x.builds.map((b) => b.duration_seconds)));
    const height = top + series.length * rowH + 20;
    svg.setAttribute('viewBox', `0 0 ${W} ${height}`);
    const x0 = labelW;
    const x1 = W - statsW;
    series.forEach((ser, row) => {
      const y0 = top + row * rowH;
      const base = y0 + rowH - 12;
      const barMax = rowH - 20;
      svg.append(s('text', { x: 0, y: base - barMax / 2 + 4, class: 'label' }, ser.type));
      svg.append(s('line', { x1: x0, x2: x1, y1: base + 0.5, y2: base + 0.5, class: 'base' }));
      const slot = Math.min(20, (x1 - x0) / Math.max(ser.builds.length, 1));
      ser.builds.forEach((b, i) => {
        const hgt = Math.max(2, (b.duration_seconds / max) * barMax);
        const rect = s('rect', { x: (x0 + i * slot + 1).toFixed(1), y: (base - hgt).toFixed(1), width: Math.max(2, slot - 3).toFixed(1), height: hgt.toFixed(1), rx: 2, class: `bar bar-${b.status}` });
        rect.append(s('title', {}, `${b.id}: ${b.status} in ${span(b.duration_seconds)} (${when(b.completed_at)})`));
        svg.append(rect);
      });
      const ds = ser.builds.map((b) => b.duration_seconds);
      const avg = ds.reduce((a, b) => a + b, 0) / ds.length;
      svg.append(s('text', { x: x1 + 12, y: base - barMax / 2 - 2, class: 'stat' }, `avg ${span(avg)} · max ${span(Math.max(...ds))}`));
      svg.append(s('text', { x: x1 + 12, y: base - barMax / 2 + 13, class: 'axis' }, `${ds.length} build${ds.length === 1 ? '' : 's'}, oldest first`));
    });
    svg.append(s('text', { x: x0, y: height - 4, class: 'axis' }, `bar height: duration (tallest ${span(max)})`));
  }

  function renderMessages(d: Data): void {
    const items = d.messages.map((m) =>
      h(
        'li',
        { 'data-message': m.id, class: m.read ? 'read' : 'unread' },
        h('div', { class: 'line' }, badge(`m-${m.type}`, m.type), h('strong', { class: 'subject' }, m.subject), m.ack_required ? badge('m-request', 'ack') : null),
        h('div', { class: 'meta' }, `${m.from} → ${m.to} · ${when(m.timestamp)}`),
        m.body ? h('div', { class: 'body' }, m.body) : null,
      ),
    );
    $('messages').replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, 'No messages.')]));
  }

  function renderLocks(d: Data): void {
    const nowMs = Date.parse(d.generated_at);
    const rows = d.locks.map((l) => {
      const left = (Date.parse(l.expires_at) - nowMs) / 1000;
      return h(
        'tr',
        { 'data-lock': l.name },
        h('td', null, code(l.name)),
        h('td', null, l.locked_by),
        h('td', { class: 'num' }, String(l.token)),
        h('td', { title: l.expires_at }, l.expired ? badge('j-failed', 'expired') : `in ${span(left)}`),
        h('td', { class: 'desc', title: l.note ?? '' }, l.note ?? ''),
      );
    });
    $('locks-body').replaceChildren(...(rows.length ? rows : [empty(5, 'No locks held.')]));
  }

  function renderEvents(d: Data): void {
    const items = d.events.slice(0, 60).map((e) =>
      h(
        'li',
        { 'data-kind': e.kind, 'data-commit': e.commit },
        h('time', { datetime: e.at, title: e.at }, when(e.at)),
        badge(`e-${e.kind}`, e.kind),
        h('span', { class: 'subject', title: e.subject }, e.subject),
        e.builder ? h('span', { class: 'muted who' }, e.builder) : null,
      ),
    );
    $('events').replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, 'No events yet.')]));
  }

  function render(d: Data): void {
    current = d;
    // Ages in the data are as of generated_at on the server's clock; served_at
    // (same clock) says how old the snapshot already was when it arrived.
    const lag = d.served_at ? Math.max(0, Date.parse(d.served_at) - Date.parse(d.generated_at)) : 0;
    snapshotAtMs = Date.now() - (Number.isFinite(lag) ? lag : 0);
    renderHeader(d);
    renderBuilders(d);
    renderQueue(d);
    renderHistory(d);
    renderChart(d);
    renderMessages(d);
    renderLocks(d);
    renderEvents(d);
    tick();
    body.dataset.ready = 'true';
  }

  // ------------------------------------------------------------ data

  const conn = $('conn');
  async function refresh(): Promise<void> {
    try {
      const r = await fetch('api/fleet', { cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!r.ok) {
        const e = (await r.json().catch(() => ({}))) as { error?: string };
        throw new Error(e.error ?? `${r.status} ${r.statusText}`);
      }
      render((await r.json()) as Data);
      conn.className = 'dot ok';
      conn.title = 'live: refreshing every few seconds';
      $('error').hidden = true;
    } catch (e) {
      conn.className = 'dot bad';
      conn.title = 'cannot refresh';
      const err = $('error');
      err.hidden = false;
      err.textContent = `Cannot refresh: ${(e as Error).message}. Showing the last data received.`;
    }
  }

  // The token field sits in a form only so browsers treat it as a password field; it is never submitted.
  document.getElementById('token-form')?.addEventListener('submit', (e) => e.preventDefault());
  const tokenInput = document.getElementById('token') as HTMLInputElement | null;
  tokenInput?.addEventListener('input', () => {
    token = tokenInput.value.trim();
  });

  if (live) {
    void refresh();
    let timer = window.setInterval(() => void refresh(), pollMs);
    window.setInterval(tick, 1000);
    document.addEventListener('visibilitychange', () => {
      // A hidden tab stops polling; it catches up as soon as it is shown.
      window.clearInterval(timer);
      if (!document.hidden) {
        void refresh();
        timer = window.setInterval(() => void refresh(), pollMs);
      }
    });
  } else {
    const el = document.getElementById('dashboard-data');
    conn.className = 'dot static';
    conn.title = 'a static snapshot: it does not refresh';
    if (el?.textContent) render(JSON.parse(el.textContent) as Data);
  }
}
