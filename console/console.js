// The ringcast console: polls the HTTP API for streams and clients, kicks
// clients (DELETE /api/v1/clients/ID) and plays streams with mpegts.js
// (HTTP-FLV) and hls.js (HLS), both served by ringcast itself.
//
// Query parameters: ?api=http://host:port (the API, when not on this host
// at the port the server names), ?refresh=SECONDS (polling period, 2).
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const refreshMs = Math.max(500, 1000 * (Number(params.get('refresh')) || 2));
  const DEFAULT_VHOST = '__defaultVhost__';

  const state = {
    cfg: null,
    api: null,
    auth: sessionStorage.getItem('ringcast.auth') || null,
    players: new Map(), // "flv|vhost/app/stream" -> open player
    streams: [],
    timer: null,
  };

  const $ = (sel) => document.querySelector(sel);

  // Builds an element: el('td', {class: 'num'}, 'text', child, ...).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function notice(id, ...content) {
    let n = document.getElementById(id);
    if (!n) {
      n = el('div', { id, class: 'notice' });
      $('#notices').append(n);
    }
    n.replaceChildren(...content);
  }

  function dropNotice(id) {
    const n = document.getElementById(id);
    if (n) n.remove();
  }

  function setStatus(text, bad) {
    const s = $('#status');
    s.textContent = text;
    s.className = bad ? 'bad' : 'muted';
  }

  function duration(secs) {
    secs = Math.floor(secs);
    if (secs < 60) return secs + ' s';
    if (secs < 3600) return Math.floor(secs / 60) + ' min ' + (secs % 60) + ' s';
    return Math.floor(secs / 3600) + ' h ' + Math.floor((secs % 3600) / 60) + ' min';
  }

  function streamKey(s) {
    return s.vhost + '/' + s.app + '/' + s.name;
  }

  // Player URLs on this server: the default vhost has no vhost segment.
  function playUrl(s, kind) {
    const vhost = s.vhost === DEFAULT_VHOST ? '' : '/' + encodeURIComponent(s.vhost);
    const ext = kind === 'flv' ? '.flv' : '.m3u8';
    return location.origin + vhost + '/' + encodeURIComponent(s.app) + '/' + encodeURIComponent(s.name) + ext;
  }

  function vhostPlay(vhost) {
    const v = state.cfg.vhosts[vhost] || state.cfg.vhosts[DEFAULT_VHOST] || {};
    return { flv: !!v.flv, hls: !!v.hls };
  }

  // ---- the API ------------------------------------------------------------

  async function api(method, path) {
    const headers = {};
    if (state.auth) headers.Authorization = 'Basic ' + state.auth;
    const r = await fetch(state.api + path, { method, headers, cache: 'no-store' });
    if (r.status === 401) {
      askCredentials();
      throw new Error('the API wants a user name and password');
    }
    const body = await r.json().catch(() => null);
    if (!r.ok || !body || body.code !== 0) {
      throw new Error(method + ' ' + path + ': HTTP ' + r.status + (body ? ', code ' + body.code : ''));
    }
    return body;
  }

  function askCredentials() {
    if (document.getElementById('auth')) return;
    const user = el('input', { placeholder: 'user', autocomplete: 'username' });
    const pass = el('input', { placeholder: 'password', type: 'password', autocomplete: 'current-password' });
    const form = el('form', {
      class: 'auth',
      onsubmit: (ev) => {
        ev.preventDefault();
        state.auth = btoa(user.value + ':' + pass.value);
        sessionStorage.setItem('ringcast.auth', state.auth);
        dropNotice('auth');
        refresh();
      },
    }, user, pass, el('button', { type: 'submit' }, 'sign in'));
    notice('auth', 'The HTTP API asks for credentials ([http_api] username): ', form);
  }

  async function refresh() {
    clearTimeout(state.timer);
    try {
      const [streams, clients] = await Promise.all([
        api('GET', '/api/v1/streams'),
        api('GET', '/api/v1/clients?count=1000'),
      ]);
      state.streams = streams.streams || [];
      renderStreams(state.streams);
      renderClients(clients.clients || []);
      setStatus('updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus('API ' + state.api + ': ' + e.message, true);
    }
    state.timer = setTimeout(refresh, refreshMs);
  }

  async function kick(id, button) {
    button.disabled = true;
    try {
      await api('DELETE', '/api/v1/clients/' + id);
      setStatus('kicked client ' + id);
    } catch (e) {
      setStatus('kick ' + id + ': ' + e.message, true);
    }
    refresh();
  }

  // ---- tables -------------------------------------------------------------

  function renderStreams(streams) {
    const rows = streams.map((s) => {
      const key = streamKey(s);
      const v = s.video;
      const a = s.audio;
      const can = vhostPlay(s.vhost);
      const button = (kind, label, enabled, why) => {
        const open = state.players.has(kind + '|' + key);
        return el('button', {
          class: 'play ' + kind + (open ? ' on' : ''),
          'data-kind': kind,
          title: enabled ? (open ? 'close the ' + label + ' player' : 'play over ' + label) : why,
          disabled: !enabled,
          onclick: () => togglePlayer(s, kind),
        }, label);
      };
      const flvWhy = !state.cfg.players.mpegts ? 'mpegts.js was not bundled' : 'HTTP-FLV is off for this vhost';
      const hlsWhy = !state.cfg.players.hls ? 'hls.js was not bundled' : 'HLS is off for this vhost';
      return el('tr', { 'data-stream': key },
        el('td', { title: key }, (s.vhost === DEFAULT_VHOST ? '' : s.vhost + ' ') + s.url),
        el('td', { class: s.publish && s.publish.active ? 'live' : 'idle' }, s.publish && s.publish.active ? 'publishing' : 'idle'),
        el('td', {}, v ? [v.codec, v.profile, v.level].filter(Boolean).join(' ') : '-'),
        el('td', { class: 'size' }, v ? v.width + 'x' + v.height : '-'),
        el('td', {}, a ? a.codec + ' ' + a.profile + ' ' + a.sample_rate + ' Hz ' + a.channel + ' ch' : '-'),
        el('td', { class: 'num bitrate' }, (s.kbps ? s.kbps.recv_30s : 0) + ' kbps'),
        el('td', { class: 'num players' }, s.clients),
        el('td', { class: 'num' }, duration((s.live_ms || 0) / 1000)),
        el('td', {},
          button('flv', 'FLV', !!state.cfg.players.mpegts && can.flv, flvWhy), ' ',
          button('hls', 'HLS', !!state.cfg.players.hls && can.hls, hlsWhy)),
      );
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'empty', colspan: 9 }, 'no streams')));
    $('#streams tbody').replaceChildren(...rows);
  }

  function renderClients(clients) {
    const rows = clients.map((c) => el('tr', { 'data-client': c.id, 'data-type': c.type },
      el('td', { class: 'num' }, c.id),
      el('td', {}, c.type),
      el('td', {}, (c.vhost === DEFAULT_VHOST ? '' : c.vhost + ' ') + c.url + (c.param ? '?' + c.param : '')),
      el('td', {}, c.ip),
      el('td', { class: 'num' }, duration(c.alive || 0)),
      el('td', { class: 'num' }, c.shard),
      el('td', {}, el('button', {
        class: 'kick',
        'data-id': c.id,
        title: 'disconnect this client (DELETE /api/v1/clients/' + c.id + ')',
        onclick: (ev) => kick(c.id, ev.currentTarget),
      }, 'kick')),
    ));
    if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'empty', colspan: 7 }, 'no clients')));
    $('#clients tbody').replaceChildren(...rows);
  }

  // ---- players ------------------------------------------------------------

  function togglePlayer(s, kind) {
    const id = kind + '|' + streamKey(s);
    if (state.players.has(id)) closePlayer(id);
    else openPlayer(s, kind);
    renderStreams(state.streams);
  }

  function closePlayer(id) {
    const p = state.players.get(id);
    if (!p) return;
    clearInterval(p.ticker);
    try { p.destroy(); } catch (e) { /* already gone */ }
    p.card.remove();
    state.players.delete(id);
  }

  function openPlayer(s, kind) {
    const id = kind + '|' + streamKey(s);
    const url = playUrl(s, kind);
    const video = el('video', { muted: true, autoplay: true, playsinline: true, controls: true });
    video.muted = true; // the attribute alone does not mute a created element
    const status = el('div', { class: 'state' }, 'connecting…');
    const card = el('div', { class: 'player', 'data-kind': kind, 'data-stream': streamKey(s), 'data-url': url },
      el('div', { class: 'bar' },
        el('span', { title: url }, kind.toUpperCase() + ' ' + s.url),
        el('button', { class: 'close', onclick: () => { closePlayer(id); renderStreams(state.streams); } }, 'close')),
      video, status);
    $('#players').append(card);
    const p = { card, video, destroy: () => {}, error: null };
    const fail = (what) => {
      p.error = what;
      status.textContent = what;
      status.className = 'state bad';
    };
    try {
      if (kind === 'flv') {
        const player = window.mpegts.createPlayer(
          { type: 'flv', isLive: true, url },
          { enableStashBuffer: false, liveBufferLatencyChasing: true },
        );
        player.on(window.mpegts.Events.ERROR, (type, detail) => fail('mpegts.js: ' + type + ' ' + detail));
        player.attachMediaElement(video);
        player.load();
        p.destroy = () => { player.pause(); player.unload(); player.detachMediaElement(); player.destroy(); };
      } else if (window.Hls.isSupported()) {
        const hls = new window.Hls({ liveDurationInfinity: true });
        hls.on(window.Hls.Events.ERROR, (_, data) => {
          if (data.fatal) fail('hls.js: ' + data.type + ' ' + data.details);
        });
        hls.loadSource(url);
        hls.attachMedia(video);
        p.destroy = () => hls.destroy();
      } else {
        video.src = url; // native HLS (Safari)
        p.destroy = () => { video.removeAttribute('src'); video.load(); };
      }
    } catch (e) {
      fail(kind + ' player: ' + e.message);
    }
    const started = Date.now();
    p.ticker = setInterval(() => {
      if (p.error) return;
      const b = video.buffered;
      const ahead = b.length ? b.end(b.length - 1) - video.currentTime : 0;
      status.className = 'state';
      status.textContent = (video.paused ? 'paused' : 'playing') + ' · t = ' + video.currentTime.toFixed(1) +
        ' s · buffer ' + ahead.toFixed(1) + ' s' +
        (video.videoWidth ? ' · ' + video.videoWidth + 'x' + video.videoHeight : '') +
        ' · open ' + duration((Date.now() - started) / 1000);
    }, 500);
    video.play().catch(() => { /* autoplay refused: the controls are there */ });
    state.players.set(id, p);
  }

  // ---- start --------------------------------------------------------------

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = el('script', { src });
      s.onload = resolve;
      s.onerror = () => reject(new Error('cannot load ' + src));
      document.head.append(s);
    });
  }

  async function start() {
    try {
      const r = await fetch('config.json', { cache: 'no-store' });
      state.cfg = await r.json();
    } catch (e) {
      setStatus('cannot read config.json: ' + e.message, true);
      return;
    }
    const cfg = state.cfg;
    $('#server').textContent = 'ringcast ' + cfg.version;
    const missing = [];
    if (cfg.players.mpegts) await loadScript('lib/mpegts.js?v=' + cfg.players.mpegts).catch(() => { delete cfg.players.mpegts; });
    if (cfg.players.hls) await loadScript('lib/hls.min.js?v=' + cfg.players.hls).catch(() => { delete cfg.players.hls; });
    if (!cfg.players.mpegts || !window.mpegts) { delete cfg.players.mpegts; missing.push('mpegts.js (HTTP-FLV)'); }
    if (!cfg.players.hls || !window.Hls) { delete cfg.players.hls; missing.push('hls.js (HLS)'); }
    if (missing.length) {
      notice('no-players', 'The players were not bundled into this build of ringcast: ' + missing.join(' and ') +
        ' missing. The tables below work without them. To bundle them, run ', el('code', {}, 'npm ci --prefix console'),
        ' in the ringcast source tree, then build ringcast again (', el('code', {}, 'cargo build --release'), ').');
    }
    state.api = params.get('api') ||
      (cfg.api_port ? location.protocol + '//' + location.hostname + ':' + cfg.api_port : null);
    if (!state.api) {
      notice('no-api', 'The HTTP API is off: set ', el('code', {}, '[http_api] enabled = true'),
        ' to list streams and clients here (or open this page with ', el('code', {}, '?api=http://HOST:PORT'), ').');
      setStatus('no API', true);
      return;
    }
    state.api = state.api.replace(/\/+$/, '');
    $('#server').textContent += ' · API ' + state.api;
    refresh();
  }

  start();
})();
