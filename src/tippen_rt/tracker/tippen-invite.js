/*! tippen-rt call invitations, docs/tracker.md#call-invitations */
// Loaded by tippen-app-tracker.js only while the server says this user is
// flagged (an open support episode or a waiting invitation: the answers to
// the tracker's batches carry X-Tippen-Poll). It asks the ingest endpoint
// with an empty batch every X-Tippen-Poll ms, and stops when the header
// stops; the tracker wakes it again with tippen.p() when it comes back.
// An invitation goes to the app's own tippen.on('invite', fn) handlers, or,
// when there are none, to a small dialog of its own.
(function (w, d) {
  'use strict';
  var t = w.tippen;
  if (!t || !t.u || t.invite) return;
  // shown: the invitation on screen; done: those answered or timed out here
  var timer, busy, shown, box, before, done = {};

  function safe(f) {
    return function () {
      try { return f.apply(this, arguments); } catch (e) {}
    };
  }

  // One empty batch (or the answer to an invitation: kept alive, the page
  // may be left right after) to the ingest endpoint, as text/plain.
  function post(extra) {
    var head = t.u();
    if (!head.userId) return Promise.reject();
    return fetch(t.e, {
      method: 'POST', credentials: 'omit', keepalive: !!extra,
      body: JSON.stringify(Object.assign(head, { events: [], sentAt: Date.now() }, extra))
    });
  }

  function poll() {
    clearTimeout(timer);
    timer = 0;
    if (busy) return;
    busy = 1;
    post().then(function (r) {
      var wait = +r.headers.get('X-Tippen-Poll');
      return r.json().then(function (j) {
        busy = 0;
        j.invite ? offer(j.invite) : hide();
        if (wait) timer = setTimeout(safe(poll), wait);
      });
    }).catch(function () {
      // a network error: try again a little later, as long as the page is open
      busy = 0;
      timer = setTimeout(safe(poll), 5000);
    });
  }

  function answer(inv, a) {
    if (done[inv.id]) return;
    done[inv.id] = 1;
    hide();
    post({ inviteAnswer: { id: inv.id, answer: a } }).catch(function () {});
  }

  // The app's own handlers get the invitation with join() and decline();
  // without any, the dialog below shows it.
  function offer(j) {
    if (done[j.id] || shown === j.id) return;
    hide();
    shown = j.id;
    var inv = {
      id: j.id, agent: j.agent, url: j.url, expiresAt: j.expiresAt,
      join: safe(function () {
        w.open(j.url, '_blank', 'noopener');
        answer(j, 'joined');
      }),
      decline: safe(function () { answer(j, 'declined'); })
    };
    // hidden when its time is up (the server counts it as ignored)
    setTimeout(safe(function () {
      done[j.id] = 1;
      if (shown === j.id) hide();
    }), j.expiresInMs || 120000);
    var hs = (t.h && t.h.invite) || [];
    if (hs.length) hs.forEach(function (f) { safe(f)(inv); });
    else dialog(inv);
  }

  function hide() {
    if (box) {
      box.remove();
      box = 0;
      if (before && before.focus) before.focus();
    }
    shown = 0;
  }

  function el(tag, text, attrs) {
    var n = d.createElement(tag);
    if (text) n.textContent = text;
    for (var k in attrs || {}) n.setAttribute(k, attrs[k]);
    return n;
  }

  // A small dialog, bottom right: its own styles in a shadow root, so the
  // page's CSS cannot change it and it changes nothing of the page.
  function dialog(inv) {
    box = el('div', '', { 'data-tippen-ignore': '', 'data-tippen-invite': '' });
    var root = box.attachShadow({ mode: 'open' });
    var card = el('div', '', {
      role: 'alertdialog', 'aria-modal': 'false', 'aria-labelledby': 'h', 'aria-describedby': 'p',
      part: 'dialog'
    });
    var style = el('style',
      ':host{all:initial}' +
      'div{position:fixed;right:16px;bottom:16px;z-index:2147483647;max-width:320px;' +
      'background:#fff;color:#111;border:2px solid #1a56db;border-radius:10px;padding:16px;' +
      'box-shadow:0 6px 24px rgba(0,0,0,.25);font:15px/1.4 system-ui,sans-serif}' +
      'h2{font-size:16px;margin:0 0 6px}p{margin:0 0 12px}' +
      'button{font:inherit;min-height:44px;padding:0 16px;margin-right:8px;border-radius:6px;' +
      'border:2px solid #1a56db;cursor:pointer;background:#fff;color:#1a56db}' +
      'button.join{background:#1a56db;color:#fff}' +
      'button:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}' +
      '@media (prefers-color-scheme:dark){div{background:#111;color:#eee}' +
      'button{background:#111;color:#9bb8ff;border-color:#9bb8ff}' +
      'button.join{background:#9bb8ff;color:#111}}');
    var join = el('button', 'Join', { type: 'button', class: 'join' });
    var later = el('button', 'Not now', { type: 'button' });
    join.onclick = inv.join;
    later.onclick = inv.decline;
    card.onkeydown = function (e) { if (e.key === 'Escape') inv.decline(); };
    card.append(
      el('h2', 'Video call with ' + inv.agent, { id: 'h' }),
      el('p', inv.agent + ' from support would like to help you on a video call.', { id: 'p' }),
      join, later);
    root.append(style, card);
    d.body.appendChild(box);
    before = d.activeElement;
    join.focus();
  }

  t.invite = 1;
  // the tracker's batches were answered with X-Tippen-Poll: poll, unless already
  t.p = safe(function () { if (!timer && !busy) poll(); });
  // a background tab's timers may be slowed: look at once when it is shown
  d.addEventListener('visibilitychange', safe(function () {
    if (d.visibilityState === 'visible' && timer) poll();
  }));
  poll();
})(window, document);
