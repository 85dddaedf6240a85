/*! tippen-rt tracker, docs/tracker.md */
(function (w, d) {
  'use strict';
  // Never throws into the host page: every entry point goes through safe().
  function safe(f) {
    return function () {
      try { return f.apply(this, arguments); } catch (e) {}
    };
  }
  var old = w.tippen, script = d.currentScript || d.querySelector('script[data-tippen-api-key]');
  if ((old && old.loaded) || !script) return;
  function attr(n, def) {
    var v = script.getAttribute('data-tippen-' + n);
    return v == null || v === '' ? def : v;
  }
  var ss, ls;
  try { ss = w.sessionStorage; ls = w.localStorage; } catch (e) {}
  function get(s, k) { try { return s.getItem(k); } catch (e) {} }

  var MAX_BATCH = 50, MAX_KEPT = 2000, OPT = 'tippen_opt_out';
  var apiKey = attr('api-key'), KEY = 'tippen_q_' + apiKey;
  var endpoint = attr('endpoint',
    (script.src ? new URL(script.src).origin : location.origin) + '/api/track/user-activity');
  var flushMs = +attr('flush-interval') || 5000, beatMs = +attr('heartbeat-interval') || 30000;
  var off = !apiKey || attr('opt-out') === 'true' || w.tippenOptOut === true ||
    get(ls, OPT) === '1';
  // q: events not in a batch yet; out: batches to send, oldest first. A batch
  // keeps its batchId across retries and reloads, so the server dedups it.
  var q = [], out = [], user = {}, busy, tries = 0, retryAt = 0, flushT, beatT, dirty;
  var cur, mark, gone, seen = {}, errors = 0;
  try { var kept = JSON.parse(get(ss, KEY)); q = kept.q; out = kept.o; } catch (e) {}
  if (!Array.isArray(q) || !Array.isArray(out)) q = [], out = [];

  // Only what the server accepts: one bad field would cost the whole batch.
  // No NUL, no lone surrogate (a cut emoji), no blank required strings.
  function wf(s) { return s.toWellFormed ? s.toWellFormed() : s; }
  function clip(s, n) { return s == null ? undefined : wf(String(s).replace(/\0/g, '').slice(0, n)); }
  function txt(s, n) { s = clip(s, n); return /\S/.test(s) ? s : undefined; }
  function bytes(s) { return new TextEncoder().encode(s).length; }
  q = q.filter(function (e) { return Date.now() - e.timestamp < 8e7; }); // server: 24 h
  function visible() { return d.visibilityState !== 'hidden'; }
  function now() { return Date.now(); }

  function saveNow() {
    dirty = 0;
    try {
      if (off) ss.removeItem(KEY); else ss.setItem(KEY, JSON.stringify({ q: q, o: out }));
    } catch (e) {}
  }
  function save() {
    if (!dirty) { dirty = 1; Promise.resolve().then(saveNow); }
  }

  function push(type, ev) {
    if (off || q.length + out.length * MAX_BATCH >= MAX_KEPT) return; // bounded
    ev.type = type;
    ev.timestamp = now();
    ev.route = ev.route || cur;
    q.push(ev);
    save();
    if (q.length >= MAX_BATCH) flush();
    else if (!flushT) flushT = setTimeout(safe(flush), flushMs);
  }

  // Queue -> batches of <= MAX_BATCH events and 60 kB (what a keepalive
  // request may carry); a batch once sent never changes.
  function batch() {
    var last = out[out.length - 1], n;
    while (user.id && q.length) {
      n = bytes(JSON.stringify(q[0]));
      if (!last || last.s || last.b.userId !== user.id || last.b.events.length >= MAX_BATCH ||
        (last.n || 0) + n > 6e4) {
        var r = crypto.getRandomValues(new Uint32Array(4));
        out.push(last = { s: 0, b: {
          apiKey: apiKey, userId: user.id, userEmail: user.email,
          subscriptionTier: user.tier, userHash: user.hash, events: [],
          batchId: 'b-' + Array.from(r, function (x) { return x.toString(36); }).join('')
        } });
      }
      last.b.events.push(q.shift());
      last.n = (last.n || 600) + n;
    }
    save();
  }

  // keep: page is hiding, send every batch now with keepalive.
  function flush(keep) {
    clearTimeout(flushT);
    flushT = 0;
    if (off) return;
    batch();
    if (keep) out.forEach(function (item) { send(item, 1); }); else pump();
  }

  // One request at a time, oldest batch first.
  function pump() {
    var item = out[0];
    if (busy || !item || off || now() < retryAt) return;
    busy = 1;
    send(item).then(function (wait) {
      busy = 0;
      if (!wait) { tries = 0; return pump(); }
      retryAt = now() + wait;
      setTimeout(safe(function () { retryAt = 0; pump(); }), wait);
    });
  }

  // -> 0 when done (stored, or refused for good), else ms to wait and retry.
  function send(item, keep) {
    item.s = 1;
    var body = JSON.stringify(Object.assign({ sentAt: now() }, item.b));
    return new Promise(function (ok) {
      // a string body is text/plain: no CORS preflight
      ok(fetch(endpoint, { method: 'POST', body: body, keepalive: !!keep, credentials: 'omit' }));
    }).then(function (r) {
      var st = r.status;
      if (st < 400 || (st < 500 && st !== 408 && st !== 429)) {
        var i = out.indexOf(item);
        if (i >= 0) out.splice(i, 1);
        save();
        return 0;
      }
      return backoff(r.headers.get('Retry-After'));
    }, function () {
      if (keep && navigator.sendBeacon) navigator.sendBeacon(endpoint, body);
      return backoff();
    });
  }

  // Exponential backoff with jitter, or Retry-After if longer.
  function backoff(ra) {
    var ms = Math.min(60000, 1000 * Math.pow(2, tries++)) * (0.5 + Math.random() / 2);
    var s = ra ? (isNaN(ra) ? (Date.parse(ra) - now()) / 1000 : +ra) : 0;
    return Math.max(ms, Math.min(s * 1000 || 0, 600000));
  }

  // What is not acknowledged stays in sessionStorage for the next page load.
  function hide(state) {
    clearTimeout(beatT);
    leave();
    push('visibility', { state: state });
    flush(1);
    saveNow();
  }

  // The path, plus the hash for hash routers (#/ or #!); never the query.
  function route() {
    var h = location.hash;
    return clip(location.pathname + (/^#[!/]/.test(h) ? h : ''), 2048);
  }
  function leave() {
    if (mark) push('page_time', { route: cur, duration: now() - mark });
    mark = 0;
  }
  function enter() {
    cur = route();
    mark = visible() && now();
    push('route', {});
  }
  function onNav() {
    if (route() !== cur) { leave(); enter(); }
  }

  function beat() {
    clearTimeout(beatT);
    if (!off && visible()) {
      beatT = setTimeout(safe(function () {
        push('heartbeat', { focused: d.hasFocus() });
        beat();
      }), beatMs);
    }
  }

  // A short stable selector, the label of buttons and links; never a value.
  function ignored(el) { return el.closest('[data-tippen-ignore]'); }
  function sel(el) {
    var tag = el.tagName.toLowerCase(), id = el.getAttribute('id'), v;
    if (id && /^[A-Za-z][\w:.-]{0,63}$/.test(id)) return tag + '#' + id;
    var names = ['data-tippen-name', 'data-testid', 'name'];
    for (var i = 0; i < 3; i++) {
      if ((v = el.getAttribute(names[i]))) return tag + '[' + names[i] + '="' + clip(v, 64).replace(/"/g, '') + '"]';
    }
    return [tag].concat([].filter.call(el.classList, function (c) {
      return /^[A-Za-z_-][\w-]{0,39}$/.test(c) && !/\d{3}/.test(c);
    }).slice(0, 2)).join('.');
  }

  d.addEventListener('click', safe(function (e) {
    var t = e.target;
    if (ignored(t)) return;
    var el = t.closest('a,button,summary,label,select,input,textarea,[role=button],' +
      '[role=link],[role=menuitem],[data-tippen-name]') || t, ev = { element: sel(el) };
    if ((/^(A|BUTTON|SUMMARY|LABEL)$/.test(el.tagName) ||
      /^(button|link|menuitem)$/.test(el.getAttribute('role'))) && !el.isContentEditable) {
      ev.text = clip((el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim(), 80);
    }
    push('click', ev);
  }), true);

  d.addEventListener('submit', safe(function (e) {
    var f = e.target; // f.id could be a field named "id": use getAttribute
    if (!ignored(f)) {
      push('form_submit', { formId: clip(f.getAttribute('id') || f.getAttribute('name') || sel(f), 256) });
    }
  }), true);

  function err(msg, src, stack) {
    var k = msg + '|' + src, t = now();
    if (errors >= 50 || t - (seen[k] || -1e9) < 10000) return; // dedup
    seen[k] = t;
    errors++;
    push('error', { message: txt(msg, 1000) || 'error', source: clip(src, 500), stack: clip(stack, 4000) });
  }
  w.addEventListener('error', safe(function (e) {
    err(e.message, e.filename && e.filename + ':' + e.lineno + ':' + e.colno, e.error && e.error.stack);
  }));
  w.addEventListener('unhandledrejection', safe(function (e) {
    var r = e.reason;
    err('Unhandled rejection: ' + ((r && r.message) || String(r)), '', r && r.stack);
  }));

  ['pushState', 'replaceState'].forEach(function (m) {
    var orig = history[m];
    history[m] = function () {
      var r = orig.apply(this, arguments);
      safe(onNav)();
      return r;
    };
  });
  w.addEventListener('popstate', safe(onNav));
  w.addEventListener('hashchange', safe(onNav));
  function shown() {
    push('visibility', { state: 'visible' });
    mark = now();
    beat();
    pump();
  }
  d.addEventListener('visibilitychange', safe(function () {
    if (!gone) visible() ? shown() : hide('hidden');
  }));
  w.addEventListener('pagehide', safe(function () {
    if (!gone) hide('unload');
    gone = 1;
  }));
  w.addEventListener('pageshow', safe(function (e) {
    if (e.persisted) { gone = 0; shown(); enter(); } // back from the bfcache
  }));
  w.addEventListener('focus', safe(function () { push('heartbeat', { focused: true }); beat(); }));
  w.addEventListener('blur', safe(function () { push('heartbeat', { focused: false }); }));
  w.addEventListener('online', safe(function () { retryAt = 0; pump(); }));

  function identify(id, email, tier, hash) {
    batch(); // what is queued belongs to the previous user
    user = {
      id: txt(id, 256), email: clip(email, 320), hash: clip(hash, 256),
      tier: /^(paid|enterprise)$/.test(tier) ? tier : 'free_trial'
    };
    flush();
  }
  function track(name, data) {
    var ev = { name: txt(name, 256) }, j;
    if (data != null) {
      try { // a copy, at most 8 KiB; a cycle throws
        j = JSON.stringify(data, function (k, v) { return typeof v == 'string' ? wf(v) : v; });
      } catch (e) {}
      ev.data = j && bytes(j) <= 8000 ? JSON.parse(j) : { dropped: 1 };
    }
    if (ev.name) push('custom', ev);
  }
  function run(c) {
    var f = api[c[0]];
    if (typeof f === 'function') f.apply(api, [].slice.call(c, 1));
  }
  var api = {
    loaded: 1,
    track: safe(track),
    identify: safe(identify),
    flush: safe(function () { flush(); }),
    optOut: safe(function () {
      off = 1;
      q = [];
      out = [];
      clearTimeout(beatT);
      clearTimeout(flushT);
      try { ls.setItem(OPT, '1'); } catch (e) {}
      saveNow();
    }),
    q: { push: safe(run) }
  };

  safe(function () {
    w.tippen = api;
    identify(attr('user-id'), attr('user-email'), attr('subscription-tier'), attr('user-hash'));
    if (!off) { enter(); beat(); }
    [].concat((old && old.q) || []).forEach(safe(run));
  })();
})(window, document);
