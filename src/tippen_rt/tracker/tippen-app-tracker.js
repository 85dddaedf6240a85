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
  function put(s, k, v) { try { v ? s.setItem(k, v) : s.removeItem(k); } catch (e) {} }
  function rid() { return crypto.getRandomValues(new Uint32Array(4)).join('-'); }

  var MAX_BATCH = 50, MAX_KEPT = 2000, OPT = 'tippen_opt_out';
  // KEY: this tab's state in sessionStorage; KEY + '.' + a page id: this
  // page's outbox in localStorage, which the next page load of the app sends.
  var apiKey = attr('api-key'), KEY = 'tippen_q_' + apiKey, me = KEY + '.' + rid();
  var endpoint = attr('endpoint',
    (script.src ? new URL(script.src).origin : location.origin) + '/api/track/user-activity');
  var flushMs = +attr('flush-interval') || 5000, beatMs = +attr('heartbeat-interval') || 30000;
  // Off: opted out ('1' stored), or no choice stored ('0' is optIn's consent)
  // while consent is required or the browser asks not to be tracked.
  var nav = navigator, choice = get(ls, OPT);
  var off = !apiKey || attr('opt-out') === 'true' || w.tippenOptOut === true || choice === '1' ||
    (choice !== '0' && (attr('require-consent') === 'true' || (attr('respect-dnt') !== 'false' &&
      (nav.doNotTrack === '1' || w.doNotTrack === '1' || nav.globalPrivacyControl === true))));
  // q: events not in a batch yet; out: batches to send, oldest first. A batch
  // keeps its batchId across retries and reloads, so the server dedups it.
  var q = [], out = [], user = {}, busy, tries = 0, retryAt = 0, flushT, beatT, dirty;
  var cur, mark, gone, seen = {}, errors = 0, room, inputs = 0, quiet;
  try { var kept = JSON.parse(get(ss, KEY)); q = kept.q; out = kept.o; } catch (e) {}
  if (!Array.isArray(q) || !Array.isArray(out)) q = [], out = [];

  // Only what the server accepts: one bad field would cost the whole batch.
  // No NUL, no lone surrogate (a cut emoji), no blank required strings.
  function wf(s) { return s.toWellFormed ? s.toWellFormed() : s; }
  function clip(s, n) { return s == null ? undefined : wf(String(s).replace(/\0/g, '').slice(0, n)); }
  function txt(s, n) { s = clip(s, n); return /\S/.test(s) ? s : undefined; }
  function bytes(s) { return new TextEncoder().encode(s).length; }
  // the server takes events of the last 24 h only
  q = q.filter(function (e) { return Date.now() - e.timestamp < 8e7; });
  function visible() { return d.visibilityState !== 'hidden'; }
  function now() { return Date.now(); }

  // Everything to sessionStorage (this tab). Sealed batches (s: sent or
  // kept at page hide; they never change, so any page may send them again)
  // to localStorage: the newest that fit in ~200 kB for all pages of the origin.
  function saveNow() {
    dirty = 0;
    var o = off ? [] : out.filter(function (x) { return x.s; }), t = 0, k;
    for (k in ls) if (!k.indexOf('tippen_q_') && k != me) t += ls[k].length;
    o.forEach(function (x) { t += x.n; });
    while (t > 2e5 && o.length) t -= o.shift().n;
    put(ls, me, o.length && JSON.stringify(o));
    put(ss, KEY, !off && JSON.stringify({ q: q, o: out }));
  }
  function save() {
    if (!dirty) { dirty = 1; Promise.resolve().then(safe(saveNow)); }
  }

  function push(type, ev) {
    // at most MAX_KEPT events kept; nothing after page hide or opt-out
    var n = out.reduce(function (a, x) { return a + x.b.events.length; }, q.length);
    if (off || gone || n >= MAX_KEPT) return;
    ev.type = type;
    ev.timestamp = now();
    ev.route = ev.route || cur;
    q.push(ev);
    save();
    if (q.length >= MAX_BATCH) flush();
    else if (!flushT) flushT = setTimeout(safe(flush), flushMs);
  }

  // Who the events are from: every batch starts so (tippen-invite.js too).
  function head() {
    return {
      apiKey: apiKey, userId: user.id, userEmail: user.email, userName: user.name,
      subscriptionTier: user.tier, userHash: user.hash
    };
  }

  // Queue -> batches of <= MAX_BATCH events and 60 kB (what a keepalive
  // request may carry); a batch once sent never changes.
  function batch() {
    var last = out[out.length - 1], n;
    while (user.id && q.length) {
      n = bytes(JSON.stringify(q[0]));
      if (!last || last.s || last.b.userId !== user.id || last.b.events.length >= MAX_BATCH ||
        (last.n || 0) + n > 6e4) {
        out.push(last = { s: 0, b: Object.assign(head(), { events: [], batchId: 'b-' + rid() }) });
      }
      last.b.events.push(q.shift());
      last.n = (last.n || 600) + n;
    }
    save();
  }

  // keep: page is hiding, send now with keepalive, oldest first, what fits
  // in the 64 KiB of keepalive bodies a page may have in flight (Fetch
  // standard); the rest (and what was sent, until acknowledged) stays
  // stored for the next page load.
  function flush(keep) {
    clearTimeout(flushT);
    flushT = 0;
    if (off) return;
    batch();
    room = 65e3;
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
    save();
    var body = JSON.stringify(Object.assign({ sentAt: now() }, item.b)), n = bytes(body);
    // what does not fit stays stored
    if (keep && (room -= n) < 0) return room += n;
    return new Promise(function (ok) {
      // a string body is text/plain: no CORS preflight
      ok(fetch(endpoint, { method: 'POST', body: body, keepalive: !!keep, credentials: 'omit' }));
    }).then(function (r) {
      var st = r.status;
      // The server has something for this user (an open support need, a call
      // invitation): the invitation script asks it every few seconds.
      if (r.headers.get('X-Tippen-Poll')) (api.p || invite)();
      if (st < 400 || (st < 500 && st !== 408 && st !== 429)) {
        var i = out.indexOf(item);
        if (i >= 0) out.splice(i, 1);
        save();
        return 0;
      }
      return backoff(r.headers.get('Retry-After'));
    }, function () {
      return backoff();
    });
  }

  // Exponential backoff with jitter, or Retry-After if longer.
  function backoff(ra) {
    var ms = Math.min(60000, 1000 * Math.pow(2, tries++)) * (0.5 + Math.random() / 2);
    var s = ra ? (isNaN(ra) ? (Date.parse(ra) - now()) / 1000 : +ra) : 0;
    return Math.max(ms, Math.min(s * 1000 || 0, 600000));
  }

  // What is not acknowledged stays stored for the next page load. The
  // leave events get a small batch of their own, so they fit the keepalive.
  function hide(state) {
    batch();
    out.forEach(function (x) { x.s = 1; });
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

  // Heartbeats, also while the page is hidden: the user is still there, how
  // many input events happened since the last one (a count, never what they
  // were) and whether the window has focus. Sent at once.
  function hb(f) {
    push('heartbeat', { input: Math.min(inputs, 1e6), focused: f == null ? d.hasFocus() : f });
    quiet = !inputs;
    inputs = 0;
    beat();
  }
  function beat() {
    clearTimeout(beatT);
    if (!off && !gone) beatT = setTimeout(safe(function () { hb(); flush(); }), beatMs);
  }
  // The first input after a heartbeat without any: a heartbeat now.
  'pointerdown pointermove keydown wheel touchstart'.split(' ').forEach(function (t) {
    w.addEventListener(t, safe(function (e) {
      if (e.isTrusted) {
        inputs++;
        if (quiet) hb();
      }
    }), { capture: 1, passive: 1 });
  });

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
    // f.id could be a field named "id": use getAttribute
    var f = e.target;
    if (!ignored(f)) {
      push('form_submit', { formId: clip(f.getAttribute('id') || f.getAttribute('name') || sel(f), 256) });
    }
  }), true);

  function err(msg, src, stack) {
    var k = msg + '|' + src, t = now();
    // at most 50, and not the same one again within 10 s
    if (errors >= 50 || t - (seen[k] || -1e9) < 10000) return;
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
    clearTimeout(beatT);
  }));
  w.addEventListener('pageshow', safe(function (e) {
    // back from the bfcache
    if (e.persisted) { gone = 0; shown(); enter(); }
  }));
  w.addEventListener('focus', safe(function () { hb(true); }));
  w.addEventListener('blur', safe(function () { hb(false); }));
  w.addEventListener('online', safe(function () { retryAt = 0; pump(); }));

  // identify(id, email, tier, hash, name), or identify({name: ...}) to
  // change some of them
  function identify(id, email, tier, hash, name) {
    // what is queued belongs to the previous user
    batch();
    var o = id === Object(id) ? Object.assign({}, user, id) :
      { id: id, email: email, tier: tier, hash: hash, name: name };
    user = {
      id: txt(o.id, 256), email: clip(o.email, 320), hash: clip(o.hash, 256),
      // a name is shown as who someone is: no invisible or bidi characters
      name: txt(o.name && String(o.name).replace(/[\0-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]/g, ''), 256),
      tier: /^(paid|enterprise)$/.test(o.tier) ? o.tier : 'free_trial'
    };
    flush();
  }
  function track(name, data) {
    var ev = { name: txt(name, 256) }, j;
    if (data != null) {
      // a copy, at most 8 KiB; a cycle throws
      try {
        j = JSON.stringify(data, function (k, v) { return typeof v == 'string' ? wf(v) : v; });
      } catch (e) {}
      ev.data = j && bytes(j) <= 8000 ? JSON.parse(j) : { dropped: 1 };
    }
    if (ev.name) push('custom', ev);
  }
  // Batches other pages of the app left: sent again under their batchIds.
  function adopt() {
    for (var k in ls) if (!k.indexOf(KEY + '.')) {
      try {
        if (!off) JSON.parse(ls[k]).forEach(function (x) {
          if (!out.some(function (y) { return y.b.batchId === x.b.batchId; })) out.push(x);
        });
      } catch (e) {}
      put(ls, k);
    }
  }
  // tippen-invite.js, from the directory this script came from: loaded once
  // (api.p does nothing until it has loaded; then it is the script's poll).
  function invite() {
    api.p = Boolean;
    var s = d.createElement('script');
    s.src = attr('invite-src', script.src.replace(/[^/]*$/, 'tippen-invite.js'));
    d.head.appendChild(s);
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
    // consent: remembered, and tracking starts now
    optIn: safe(function () {
      put(ls, OPT, '0');
      if (off && apiKey) { off = 0; adopt(); enter(); beat(); flush(); }
    }),
    // true while nothing is sent (opted out, no consent yet, DNT or GPC)
    hasOptedOut: function () { return !!off; },
    optOut: safe(function () {
      off = 1;
      q = [];
      // the timers find off set and stop
      out = [];
      put(ls, OPT, '1');
      // drops what other pages left
      adopt();
      saveNow();
    }),
    // tippen.on('invite', fn): the app shows call invitations itself
    on: safe(function (name, fn) { (api.h[name] = api.h[name] || []).push(fn); }),
    q: { push: safe(run) },
    // for tippen-invite.js: the endpoint, who the user is, the app's handlers
    e: endpoint, u: head, h: {}
  };

  safe(function () {
    w.tippen = api;
    if (!off) adopt();
    identify(attr('user-id'), attr('user-email'), attr('subscription-tier'), attr('user-hash'), attr('user-name'));
    if (!off) { enter(); beat(); }
    [].concat((old && old.q) || []).forEach(safe(run));
  })();
})(window, document);
