// sessionlab live dashboard.
//
// Polls its own process, sessionlab-dashboard (same origin; it reads the
// LB's admin API and the nodes), about once a second and draws the cluster. Everything that comes from data is put on the page as text
// (textContent, SVG text nodes), never as markup. No libraries, nothing
// from the network.
'use strict';

const POLL_MS = 1000;
const HISTORY_MS = 2000;
const TOKEN_KEY = 'sessionlab.adminToken';
const MAX_EVENTS = 300;
const SHOWN_EVENTS = 150;
const SHOWN_SESSIONS = 40;
const SHOWN_REQUESTS = 22;
const STRIP_REQUESTS = 60;
const CONFIRM_MS = 4000;
const SVG_NS = 'http://www.w3.org/2000/svg';

// One colour per node, the same in every panel (Okabe-Ito-like, readable
// on white). node-N takes colour N-1, so colours survive reloads.
const PALETTE = ['#2f6fd0', '#e0862b', '#2a9d6a', '#c2457a', '#7a5cc7', '#2fa7b8', '#b5562d', '#5f6b7a'];

const state = {
  cluster: null,
  requests: [],
  requestsNote: null,
  history: null,
  events: new Map(),
  order: [],
  pending: null,
  confirm: new Map(),
};

// ---------------------------------------------------------------- helpers

function $(sel) { return document.querySelector(sel); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'node') e.style.setProperty('--node', colour(v));
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  }
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function colour(id) {
  const m = /(\d+)$/.exec(String(id));
  if (m) return PALETTE[(Number(m[1]) + PALETTE.length - 1) % PALETTE.length];
  const i = state.order.indexOf(id);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function fmtNum(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(x).toFixed(digits === undefined ? (x >= 100 ? 0 : 1) : digits);
}

function fmtBytes(b) {
  if (b === null || b === undefined) return '–';
  if (b >= 1024 * 1024 * 1024) return (b / 1024 / 1024 / 1024).toFixed(1) + ' GiB';
  if (b >= 1024 * 1024) return (b / 1024 / 1024).toFixed(1) + ' MiB';
  return Math.round(b / 1024) + ' KiB';
}

function fmtTime(ms, withMs) {
  const d = new Date(ms);
  const p = (n, w) => String(n).padStart(w || 2, '0');
  const t = p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  return withMs ? t + '.' + p(d.getMilliseconds(), 3) : t;
}

function versionKey(v) {
  // (lamport, node) compared in that order, as the nodes do.
  return v ? [Number(v.lamport) || 0, String(v.node || '')] : null;
}

function cmpVersion(a, b) {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

function versionText(v) { return v ? v.lamport + '@' + v.node : ''; }

// ---------------------------------------------------------------- the API

(function takeTokenFromUrl() {
  const url = new URL(location.href);
  const t = url.searchParams.get('token');
  if (t !== null) {
    sessionStorage.setItem(TOKEN_KEY, t);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
})();

async function api(path, method) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const resp = await fetch(path, { method: method || 'GET', headers, cache: 'no-store' });
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (resp.status === 401) $('#token-box').hidden = false;
  return { ok: resp.ok, status: resp.status, body };
}

function setConn(live, why) {
  const c = $('#conn');
  c.className = 'conn ' + (live ? 'live' : 'down');
  c.textContent = live ? 'live · ' + fmtTime(Date.now()) : why;
}

async function poll() {
  try {
    const [cluster, requests] = await Promise.all([
      api('/admin/v1/cluster'),
      api('/admin/v1/requests?limit=' + STRIP_REQUESTS),
    ]);
    if (cluster.ok && cluster.body) {
      state.cluster = cluster.body;
      state.order = cluster.body.nodes.map((n) => n.id);
      mergeEvents(cluster.body.nodes);
      setConn(true);
    } else {
      setConn(false, cluster.status === 401 ? 'needs the admin token' : 'admin API answered ' + cluster.status);
    }
    if (requests.ok && requests.body) {
      state.requests = requests.body.requests || [];
      // HAProxy and nginx: no routing log to read; the answer says so.
      state.requestsNote = requests.body.note || null;
    }
    render();
  } catch (e) {
    setConn(false, 'the dashboard does not answer');
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

async function pollHistory() {
  try {
    const h = await api('/admin/v1/history');
    if (h.ok && h.body) {
      state.history = h.body;
      drawCharts();
    }
  } catch (_) {
    // The main poll reports the connection.
  } finally {
    setTimeout(pollHistory, HISTORY_MS);
  }
}

// ---------------------------------------------------------------- state

function nodeState(n) {
  const st = n.status;
  if (n.lb.state === 'down') {
    return n.reachable && st && st.ready === false ? 'starting' : 'down';
  }
  if (n.reachable === false) return 'unreachable';
  if (st && st.ready === false) return 'starting';
  return 'up';
}

function isCut(n) {
  return !!(n.replication && n.replication.links && n.replication.links.some((l) => l.cut));
}

function replicates(n) {
  return !!(n.replication || (n.status && n.status.peers && n.status.peers.length));
}

function mergeEvents(nodes) {
  for (const n of nodes) {
    const r = n.replication;
    if (!r || !r.events) continue;
    for (const e of r.events) {
      const key = n.id + '|' + r.boot_ms + '|' + e.seq;
      if (!state.events.has(key)) state.events.set(key, Object.assign({ node: n.id }, e));
    }
  }
  if (state.events.size > MAX_EVENTS) {
    const sorted = [...state.events.entries()].sort((a, b) => a[1].time_ms - b[1].time_ms);
    for (const [k] of sorted.slice(0, state.events.size - MAX_EVENTS)) state.events.delete(k);
  }
}

// ---------------------------------------------------------------- render

function render() {
  const c = state.cluster;
  if (!c) return;
  $('#strategy').textContent = 'LB strategy: ' + c.strategy;
  renderTopology(c);
  renderCards(c);
  renderSessions(c);
  renderRequests();
  renderEvents();
  renderLegend(c);
}

function renderTopology(c) {
  const nodes = c.nodes;
  const box = $('#topology');
  const W = 900;
  const n = nodes.length;
  const nodeY = 150;
  const R = 34;
  const arcTop = nodeY + R;
  const depth = (span) => 28 + 44 * (span - 1);
  const maxDepth = n > 1 ? depth(n - 1) : 0;
  const H = Math.max(230, arcTop + maxDepth + 30);
  box.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  while (box.firstChild) box.removeChild(box.firstChild);
  if (n === 0) {
    box.appendChild(svg('text', { x: W / 2, y: 120, 'text-anchor': 'middle', fill: '#9aa5b1' }, 'no backends'));
    return;
  }
  const xs = nodes.map((_, i) => (W * (i + 0.5)) / n);
  const byId = new Map(nodes.map((nd, i) => [nd.id, i]));

  // Replication links, below the nodes.
  const drawn = new Set();
  for (let i = 0; i < n; i++) {
    const links = (nodes[i].replication && nodes[i].replication.links) || [];
    for (const l of links) {
      const j = byId.get(l.peer);
      if (j === undefined || i === j) continue;
      const [a, b] = i < j ? [i, j] : [j, i];
      const key = a + '-' + b;
      if (drawn.has(key)) continue;
      drawn.add(key);
      const back = ((nodes[j].replication && nodes[j].replication.links) || []).find((x) => x.peer === nodes[i].id);
      drawLink(box, nodes, a, b, xs, arcTop, depth(b - a), l, back, i < j);
    }
  }

  // The LB and its edges to the nodes.
  const lbX = W / 2;
  const lbY = 22;
  const lbH = 46;
  for (let i = 0; i < n; i++) {
    const nd = nodes[i];
    const s = nodeState(nd);
    const up = s === 'up' || s === 'unreachable';
    const attrs = {
      x1: lbX, y1: lbY + lbH, x2: xs[i], y2: nodeY - R,
      stroke: up ? colour(nd.id) : '#c53030',
      'stroke-width': up ? 2.5 : 2,
      'stroke-dasharray': up ? (nd.lb.draining ? '2 5' : null) : '6 5',
      opacity: up ? 0.85 : 0.7,
    };
    box.appendChild(svg('line', attrs));
    const rps = lastRate(nd);
    const mx = (lbX + xs[i]) / 2;
    const my = (lbY + lbH + nodeY - R) / 2 + 4;
    const label = up ? fmtNum(rps) + '/s' + (nd.lb.draining ? ' · draining' : '') : 'down';
    box.appendChild(svg('text', {
      x: mx + (xs[i] < lbX ? -8 : xs[i] > lbX ? 8 : 10), y: my, 'text-anchor': xs[i] < lbX ? 'end' : 'start',
      'font-size': 12, fill: up ? '#4a5560' : '#c53030', 'paint-order': 'stroke', stroke: '#fff', 'stroke-width': 4,
    }, label));
  }
  box.appendChild(svg('rect', { x: lbX - 110, y: lbY, width: 220, height: lbH, rx: 10, fill: '#1f2933' }));
  box.appendChild(svg('text', { x: lbX, y: lbY + 20, 'text-anchor': 'middle', fill: '#fff', 'font-size': 15, 'font-weight': 700 }, 'load balancer'));
  const total = nodes.reduce((acc, nd) => acc + (lastRate(nd) || 0), 0);
  box.appendChild(svg('text', { x: lbX, y: lbY + 37, 'text-anchor': 'middle', fill: '#aab4bf', 'font-size': 12 }, c.strategy + ' · ' + fmtNum(total) + ' req/s'));

  // The nodes.
  for (let i = 0; i < n; i++) {
    const nd = nodes[i];
    const s = nodeState(nd);
    const alive = s === 'up';
    const g = svg('g', { 'data-node': nd.id });
    g.appendChild(svg('title', {}, nd.id + ': ' + s));
    g.appendChild(svg('circle', {
      cx: xs[i], cy: nodeY, r: R,
      fill: alive ? colour(nd.id) : '#f1f3f5',
      stroke: colour(nd.id), 'stroke-width': alive ? 0 : 3,
      'stroke-dasharray': alive ? null : '5 4',
    }));
    g.appendChild(svg('text', {
      x: xs[i], y: nodeY - 2, 'text-anchor': 'middle', 'font-size': 14, 'font-weight': 700,
      fill: alive ? '#fff' : colour(nd.id),
    }, nd.id));
    const sessions = nd.status ? nd.status.sessions : null;
    const sub = alive ? (sessions === null || sessions === undefined ? '' : sessions + ' sess.') : s;
    g.appendChild(svg('text', {
      x: xs[i], y: nodeY + 15, 'text-anchor': 'middle', 'font-size': 11,
      fill: alive ? 'rgba(255,255,255,.9)' : '#c53030', 'font-weight': alive ? 400 : 700,
    }, sub));
    box.appendChild(g);
  }
  const repl = nodes.some(replicates);
  $('#topo-note').textContent = repl
    ? 'arcs are replication links: lag of the last copied write, queued messages'
    : 'no replication between the nodes in this mode';
}

function drawLink(box, nodes, a, b, xs, y0, depth, l, back, aIsFirst) {
  const views = [l, back].filter(Boolean);
  const cut = views.some((v) => v.cut);
  const down = views.some((v) => !v.up);
  const resync = views.some((v) => v.needs_resync);
  const queue = views.reduce((acc, v) => acc + (v.queue_depth || 0), 0);
  const lags = views.map((v) => v.lag_ms).filter((x) => x !== null && x !== undefined);
  const lag = lags.length ? Math.max(...lags) : null;
  const unknown = nodeState(nodes[a]) !== 'up' && nodeState(nodes[b]) !== 'up';
  let stroke = '#2a9d6a';
  let dash = null;
  let label = lag === null ? 'up' : 'lag ' + fmtNum(lag, lag < 10 ? 1 : 0) + ' ms';
  if (cut) { stroke = '#c53030'; dash = '7 5'; label = 'cut'; }
  else if (down || unknown) { stroke = '#9aa5b1'; dash = '4 4'; label = 'down'; }
  else if (resync) { stroke = '#b7791f'; label = 'resync'; }
  if (queue > 0 && !cut) label += ' · q ' + queue;
  const x1 = xs[a];
  const x2 = xs[b];
  const g = svg('g', {});
  const title = nodes[a].id + ' ↔ ' + nodes[b].id + ': ' + views
    .map((v) => (v.up ? 'up' : 'down') + (v.cut ? ', cut' : '') + ', queue ' + v.queue_depth + (v.lag_ms !== null && v.lag_ms !== undefined ? ', lag ' + fmtNum(v.lag_ms, 1) + ' ms' : ''))
    .join(' / ');
  g.appendChild(svg('title', {}, title));
  g.appendChild(svg('path', {
    d: 'M ' + x1 + ' ' + y0 + ' Q ' + (x1 + x2) / 2 + ' ' + (y0 + 2 * depth) + ' ' + x2 + ' ' + y0,
    fill: 'none', stroke, 'stroke-width': 2.5, 'stroke-dasharray': dash, 'stroke-linecap': 'round',
  }));
  if (nodes.length <= 6) {
    g.appendChild(svg('text', {
      x: (x1 + x2) / 2, y: y0 + depth + 4, 'text-anchor': 'middle', 'font-size': 11.5,
      fill: cut ? '#c53030' : '#4a5560', 'font-weight': cut ? 700 : 400,
      'paint-order': 'stroke', stroke: '#fff', 'stroke-width': 5,
    }, label));
  }
  box.appendChild(g);
}

function lastRate(nd) {
  // Prefer the dashboard history (fresher), else the LB's per-second ring.
  const h = state.history && state.history.backends.find((b) => b.id === nd.id);
  if (h && h.points.length) return h.points[h.points.length - 1][1];
  const r = nd.lb.requests_per_sec;
  return r && r.length ? r[r.length - 1] : 0;
}

// Node cards are kept and updated in place, so a button is never replaced
// under the pointer between mouse-down and mouse-up.
const cards = new Map();

function makeCard(id) {
  const f = {};
  f.state = el('span', { class: 'chip' });
  f.drain = el('span', { class: 'chip draining', text: 'draining' });
  f.addr = el('div', { class: 'card-addr' });
  const stat = (label) => {
    const dd = el('dd');
    f[label] = dd;
    return el('div', {}, el('dt', { text: label }), dd);
  };
  f.buttons = {};
  const button = (action, text, cls) => {
    const b = el('button', { type: 'button', class: cls || null, 'data-action': action, 'data-node': id, text });
    f.buttons[action] = b;
    return b;
  };
  const root = el('article', { class: 'card', node: id, 'data-node-card': id },
    el('div', { class: 'card-head' },
      el('div', { class: 'card-id' }, el('span', { class: 'dot', node: id }), id),
      el('div', {}, f.drain, ' ', f.state)),
    f.addr,
    el('dl', { class: 'stats' },
      stat('sessions'), stat('memory'), stat('req/s'), stat('p99 since start'), stat('in flight'), stat('peers up')),
    el('div', { class: 'actions' },
      button('drain', 'drain'), button('partition', 'partition'), button('heal', 'heal'),
      button('kill', 'kill', 'danger'), button('restart', 'restart')));
  return { root, f };
}

function renderCards(c) {
  const box = $('#nodes');
  const seen = new Set();
  const lab = c.lab || { enabled: false, reason: 'unknown' };
  const busy = state.pending !== null;
  c.nodes.forEach((nd, i) => {
    seen.add(nd.id);
    let card = cards.get(nd.id);
    if (!card) {
      card = makeCard(nd.id);
      cards.set(nd.id, card);
    }
    if (box.children[i] !== card.root) box.insertBefore(card.root, box.children[i] || null);
    const f = card.f;
    const s = nodeState(nd);
    f.state.className = 'chip ' + s;
    f.state.textContent = s;
    f.state.setAttribute('data-state', s);
    f.drain.hidden = !nd.lb.draining;
    card.root.classList.toggle('is-down', s !== 'up');
    f.addr.textContent = addresses(nd.lb.addr, nd.admin_addr);
    f.addr.title = 'app ' + nd.lb.addr + (nd.admin_addr ? ', cluster listener ' + nd.admin_addr : '');
    const st = nd.status;
    f['sessions'].textContent = st ? String(st.sessions) : '–';
    f['memory'].textContent = st ? fmtBytes(st.memory_rss_bytes) : '–';
    f['req/s'].textContent = fmtNum(lastRate(nd));
    f['p99 since start'].textContent = nd.lb.latency_ms_p99 === null ? '–' : fmtNum(nd.lb.latency_ms_p99) + ' ms';
    f['in flight'].textContent = String(nd.lb.in_flight);
    const peers = st && st.peers ? st.peers : [];
    f['peers up'].textContent = peers.length ? peers.filter((p) => p.up).length + '/' + peers.length : '–';

    const b = f.buttons;
    setButton(b.drain, nd.lb.draining ? 'undrain' : 'drain', busy, null, nd.lb.draining ? 'take new users again' : 'send no new users here; sticky users stay');
    b.drain.setAttribute('data-action', nd.lb.draining ? 'undrain' : 'drain');
    const labWhy = lab.enabled ? null : lab.reason;
    const cut = isCut(nd);
    b.partition.hidden = cut;
    b.heal.hidden = !cut;
    const noRepl = replicates(nd) ? null : 'this mode has no replication to cut';
    setButton(b.partition, 'partition', busy, labWhy || noRepl, 'cut this node\'s replication to and from every other node (the LB still reaches it)');
    setButton(b.heal, 'heal all', busy, labWhy, 'remove every partition');
    setButton(b.kill, 'kill', busy, labWhy || (s === 'down' || s === 'unreachable' ? 'not running' : null), 'SIGKILL, as in a crash');
    setButton(b.restart, 'restart', busy, labWhy, 'start again with the same flags (stops it first if running)');
    for (const action of ['kill', 'restart', 'partition', 'heal']) {
      const btn = b[action];
      const key = action + ':' + nd.id;
      if (state.confirm.has(key)) {
        btn.classList.add('confirm');
        btn.textContent = 'confirm ' + action + '?';
      } else {
        btn.classList.remove('confirm');
      }
      if (state.pending === key) btn.textContent = action + 'ing…';
    }
  });
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.root.remove();
      cards.delete(id);
    }
  }
}

// "127.0.0.1 · app :8081 · cluster :9081" (hosts written once when equal).
function addresses(app, cluster) {
  const split = (a) => {
    const i = String(a).lastIndexOf(':');
    return i < 0 ? [String(a), ''] : [a.slice(0, i), a.slice(i + 1)];
  };
  const [host, port] = split(app);
  if (!cluster) return 'app ' + app + ' · no --node-admin, so no node data';
  const [chost, cport] = split(cluster);
  if (host !== chost) return 'app ' + app + ' · cluster ' + cluster;
  return (host === '127.0.0.1' ? '' : host + ' ') + 'app :' + port + ' · cluster :' + cport;
}

function setButton(btn, text, busy, whyNot, help) {
  btn.textContent = text;
  btn.disabled = busy || !!whyNot;
  btn.title = whyNot || help;
}

function renderSessions(c) {
  const nodes = c.nodes;
  const table = $('#sessions');

  // id prefix -> { user, last access, per node meta, owners }
  const rows = new Map();
  nodes.forEach((nd, i) => {
    for (const s of nd.sessions || []) {
      let r = rows.get(s.id_prefix);
      if (!r) {
        r = { id: s.id_prefix, user: s.user, last: 0, held: new Array(nodes.length).fill(null), owners: null };
        rows.set(s.id_prefix, r);
      }
      r.held[i] = s;
      r.user = r.user || s.user;
      r.last = Math.max(r.last, s.last_access_ms || 0);
      // The backup topology: the members that should keep a copy, as the
      // listing node sees them (they agree once membership has settled).
      r.owners = r.owners || (Array.isArray(s.owners) ? s.owners : null);
    }
  });
  const backup = [...rows.values()].some((r) => r.owners);
  const head = el('tr', {}, el('th', { text: 'session' }), el('th', { text: 'user' }),
    ...nodes.map((nd) => el('th', {}, el('span', { class: 'th-node' }, el('span', { class: 'dot', node: nd.id }), nd.id))),
    ...(backup ? [el('th', { text: 'owners', title: 'primary first: the members that keep a copy' })] : []),
    el('th', { text: 'copies' }));
  table.tHead.replaceChildren(head);
  const known = nodes.map((nd) => Array.isArray(nd.sessions));
  const live = known.filter(Boolean).length;
  const sorted = [...rows.values()].sort((a, b) => b.last - a.last);
  const body = [];
  for (const r of sorted.slice(0, SHOWN_SESSIONS)) {
    const versions = r.held.filter(Boolean).map((s) => versionKey(s.version));
    const newest = versions.reduce((m, v) => (m === null || cmpVersion(v, m) > 0 ? v : m), null);
    const distinct = new Set(versions.map((v) => v.join('@'))).size;
    const holders = versions.length;
    const owners = r.owners || [];
    // primary, backup or '' (not an owner, or all-to-all)
    const role = (i) => {
      const at = owners.indexOf(nodes[i].id);
      return at < 0 ? '' : at === 0 ? 'primary' : 'backup';
    };
    const cells = r.held.map((s, i) => {
      const owner = role(i);
      const attrs = { 'data-node': nodes[i].id };
      if (owner) attrs['data-owner'] = owner;
      const mark = owner ? ' owner' : '';
      if (!known[i]) return el('td', { ...attrs, class: 'ver unknown' + mark, title: 'node not reachable', text: '?' });
      if (!s) {
        const why = owner ? 'an owner (' + owner + ') without a copy yet' : (backup ? 'not an owner' : 'not held');
        return el('td', { ...attrs, class: 'ver missing' + mark, title: why, text: '—' });
      }
      const v = versionKey(s.version);
      const same = cmpVersion(v, newest) === 0;
      const what = same ? 'the newest copy' : 'an older copy: not yet replicated here';
      return el('td', {
        ...attrs,
        class: 'ver ' + (same ? 'same' : 'behind') + mark,
        'data-version': versionText(s.version),
        title: owner ? what + ' · the ' + owner : (backup ? what + ' · not an owner: on its way to the owners' : what),
        text: versionText(s.version),
      });
    });
    let summary;
    if (backup) {
      // The backup topology: the copies should be exactly the owners'.
      const onOwners = r.held.filter((s, i) => s && role(i)).length;
      const extra = holders - onOwners;
      const text = onOwners + '/' + owners.length + ' owners' + (extra > 0 ? ' · +' + extra + ' moving' : '')
        + (distinct > 1 ? ' · ' + distinct + ' versions' : '');
      const settled = onOwners === owners.length && extra === 0 && distinct === 1;
      summary = el('span', { class: 'chip' + (settled ? ' up' : ' draining'), text });
    } else if (distinct > 1) summary = el('span', { class: 'chip draining', text: holders + '/' + live + ' · ' + distinct + ' versions' });
    else if (holders === live && live > 1) summary = el('span', { class: 'chip up', text: holders + '/' + live + ' agree' });
    else summary = el('span', { class: 'chip', text: holders + '/' + live });
    const ownerCell = backup
      ? [el('td', { class: 'owners', 'data-owners': owners.join(' '), text: owners.join(' · ') || '?' })]
      : [];
    body.push(el('tr', { 'data-session': r.id, 'data-user': r.user || '' },
      el('td', {}, el('code', { text: r.id + '…' })),
      el('td', { text: r.user || 'anonymous' }),
      ...cells,
      ...ownerCell,
      el('td', {}, summary)));
  }
  if (!body.length) {
    body.push(el('tr', { class: 'empty' }, el('td', { colspan: nodes.length + (backup ? 4 : 3), text: live ? 'no sessions yet: log in through the app' : 'no node answers (are --node-admin addresses set?)' })));
  }
  table.tBodies[0].replaceChildren(...body);
  $('#sessions-note').textContent = rows.size > SHOWN_SESSIONS
    ? 'the ' + SHOWN_SESSIONS + ' most recently used of ' + rows.size
    : rows.size + ' session' + (rows.size === 1 ? '' : 's') + ' · which node holds which version'
      + (backup ? ' · ◆ primary owner, ◇ backup' : '');
}

function renderRequests() {
  const reqs = state.requests;
  const strip = $('#strip');
  const oldestFirst = reqs.slice(0, STRIP_REQUESTS).reverse();
  strip.replaceChildren(...oldestFirst.map((r) => {
    const cls = !r.backend ? 'failed' : (r.failover || r.redispatch ? 'moved' : null);
    const s = el('span', { class: cls, title: (r.backend || 'no backend') + ' · ' + r.method + ' ' + r.path + ' · ' + r.status });
    if (r.backend) s.style.setProperty('--node', colour(r.backend));
    return s;
  }));
  const rows = reqs.slice(0, SHOWN_REQUESTS).map((r) => el('tr', { 'data-backend': r.backend || '' },
    el('td', { text: fmtTime(r.time_ms, true) }),
    el('td', {}, r.backend ? el('span', { class: 'chip node', node: r.backend, text: r.backend }) : el('span', { class: 'chip', text: 'none' })),
    el('td', { class: 'req', title: r.method + ' ' + r.path },
      el('span', { class: 'path', text: r.method + ' ' + r.path }),
      r.failover ? el('span', { class: 'flag failover', title: 'a candidate failed; the next one answered', text: 'failover' }) : null,
      r.redispatch ? el('span', { class: 'flag redispatch', title: 'the sticky node was gone; sent elsewhere', text: 'redispatch' }) : null),
    el('td', { class: r.status >= 400 ? 'status-bad' : null, text: String(r.status) }),
    el('td', { class: 'num', text: fmtNum(r.latency_ms) })));
  if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 5, text: state.requestsNote || 'no requests yet' })));
  $('#requests').tBodies[0].replaceChildren(...rows);
}

const EVENT_CLASS = {
  peer_down: 'bad', resync_needed: 'warn', peer_restarted: 'warn',
  peer_up: 'good', resync_done: 'good', ready: 'good',
};

function renderEvents() {
  const showTouch = $('#show-touch').checked;
  const list = [...state.events.values()]
    .filter((e) => showTouch || e.kind !== 'touch')
    .sort((a, b) => b.time_ms - a.time_ms || b.seq - a.seq)
    .slice(0, SHOWN_EVENTS);
  const items = list.map((e) => el('li', { class: EVENT_CLASS[e.kind] || null, 'data-kind': e.kind },
    el('span', { class: 'when', text: fmtTime(e.time_ms) }),
    el('span', {}, el('span', { class: 'chip node', node: e.node, text: e.node })),
    el('span', {}, el('span', { class: 'chip kind', text: e.kind.replace('_', ' ') })),
    el('span', { class: 'text', title: e.text, text: e.text })));
  if (!items.length) {
    const anyRepl = state.cluster && state.cluster.nodes.some((n) => n.replication);
    items.push(el('li', { class: 'empty', text: anyRepl ? 'no replication events yet' : 'no node replicates in this mode (or none answers)' }));
  }
  $('#events').replaceChildren(...items);
}

function renderLegend(c) {
  $('#legend').replaceChildren(...c.nodes.map((nd) => el('span', {}, el('span', { class: 'dot', node: nd.id }), nd.id)));
}

// ---------------------------------------------------------------- charts

function drawCharts() {
  const h = state.history;
  if (!h) return;
  const now = h.now_ms;
  const span = 5 * 60 * 1000;
  const series = h.backends.map((b) => ({ id: b.id, points: b.points }));
  drawChart($('#chart-rps'), series, 1, now, span, fmtTick);
  drawChart($('#chart-p99'), series, 2, now, span, fmtTick);
}

function fmtTick(v) {
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(2).replace(/\.?0+$/, '');
}

function niceMax(x) {
  if (!(x > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function drawChart(canvas, series, field, now, span, fmt) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 400;
  const hgt = canvas.clientHeight || 150;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, hgt);
  const left = 40;
  const right = 8;
  const top = 8;
  const bottom = 20;
  const pw = w - left - right;
  const ph = hgt - top - bottom;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p[field] !== null && p[0] >= now - span) max = Math.max(max, p[field]);
  max = niceMax(max);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#66717d';
  g.strokeStyle = '#eceff2';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.beginPath();
    g.moveTo(left, Math.round(y) + 0.5);
    g.lineTo(left + pw, Math.round(y) + 0.5);
    g.stroke();
    g.fillText(fmt((max * i) / 4), left - 6, y);
  }
  g.textBaseline = 'top';
  for (let m = 0; m <= 5; m++) {
    const x = left + pw - (pw * m) / 5;
    g.textAlign = m === 0 ? 'right' : m === 5 ? 'left' : 'center';
    g.fillText(m === 0 ? 'now' : '-' + m + ' min', x, top + ph + 5);
  }
  g.textAlign = 'center';
  const X = (t) => left + pw - ((now - t) / span) * pw;
  const Y = (v) => top + ph - (v / max) * ph;
  if (!series.some((s) => s.points.length)) {
    g.fillText('collecting…', left + pw / 2, top + ph / 2 - 6);
    return;
  }
  for (const s of series) {
    g.strokeStyle = colour(s.id);
    g.lineWidth = 2;
    g.lineJoin = 'round';
    g.beginPath();
    let pen = false;
    for (const p of s.points) {
      if (p[0] < now - span) continue;
      const v = p[field];
      if (v === null) { pen = false; continue; }
      const x = X(p[0]);
      const y = Y(v);
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
    }
    g.stroke();
  }
}

// ---------------------------------------------------------------- actions

function showResult(ok, title, detail) {
  const box = $('#action-log');
  box.className = 'banner ' + (ok ? 'ok' : 'bad');
  box.replaceChildren(el('strong', { text: (ok ? '✓ ' : '✗ ') + title }), ' ', el('small', { text: fmtTime(Date.now()) }),
    detail ? el('pre', { text: detail }) : null);
  box.hidden = false;
}

async function act(action, node) {
  const key = action + ':' + node;
  let path;
  if (action === 'heal') path = '/admin/v1/lab/heal';
  else path = '/admin/v1/lab/' + action + '/' + encodeURIComponent(node);
  state.pending = key;
  render();
  try {
    const r = await api(path, 'POST');
    const b = r.body || {};
    const what = action === 'heal' ? 'heal' : action + ' ' + node;
    if (r.ok) {
      showResult(true, what, [b.command, b.output].filter(Boolean).join('\n'));
    } else {
      showResult(false, what + ' failed (' + r.status + ')', [b.command, b.detail].filter(Boolean).join('\n'));
    }
  } catch (e) {
    showResult(false, action + ' ' + node + ' failed', String(e));
  } finally {
    state.pending = null;
    render();
  }
}

function onCardClick(ev) {
  const btn = ev.target.closest('button[data-action]');
  if (!btn || btn.disabled) return;
  const action = btn.getAttribute('data-action');
  const node = btn.getAttribute('data-node');
  if (action === 'drain' || action === 'undrain') {
    act(action, node);
    return;
  }
  // Lab actions ask once more: a second click within a few seconds.
  const key = action + ':' + node;
  if (state.confirm.has(key)) {
    clearTimeout(state.confirm.get(key));
    state.confirm.delete(key);
    act(action, node);
  } else {
    state.confirm.set(key, setTimeout(() => { state.confirm.delete(key); render(); }, CONFIRM_MS));
    render();
  }
}

function start() {
  $('#nodes').addEventListener('click', onCardClick);
  $('#show-touch').addEventListener('change', renderEvents);
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('#token-input').value);
    $('#token-input').value = '';
    $('#token-box').hidden = true;
  });
  window.addEventListener('resize', drawCharts);
  poll();
  pollHistory();
}

document.addEventListener('DOMContentLoaded', start);
