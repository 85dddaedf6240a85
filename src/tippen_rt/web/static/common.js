/* tippen-rt dashboard: helpers shared by the pages.
 *
 * Everything a tracked app controls (user ids, emails, routes, error messages)
 * goes into the page through el()/text nodes and setAttribute, never through
 * innerHTML: it is shown, never run.  And isolated: text set with el() gets
 * dir="auto" and text children are <bdi>, so bidi controls or right-to-left
 * text in one value cannot reorder what is shown around it.
 */
(function () {
  'use strict';

  /** el('a', {href: '/x', class: 'y'}, 'text', otherNode): build an element. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === 'text') { node.textContent = String(value); if (!attrs.dir) node.dir = 'auto'; }
        else if (name.slice(0, 2) === 'on' && typeof value === 'function') {
          node.addEventListener(name.slice(2), value);
        } else node.setAttribute(name, value === true ? '' : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    if (child instanceof Node) { node.appendChild(child); return; }
    var text = document.createTextNode(String(child));
    if (node.namespaceURI === SVG_NS) { node.appendChild(text); return; }
    var bdi = document.createElement('bdi');
    bdi.appendChild(text);
    node.appendChild(bdi);
  }

  var SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === 'text') node.textContent = String(attrs[name]);
      else node.setAttribute(name, String(attrs[name]));
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function userUrl(userId) { return '/user-activity/' + encodeURIComponent(userId); }

  /** Who a user is, for people: "Ann Lee (ann@example.com)", else the name, the email or the id. */
  function person(u) {
    if (u.name && u.email) return u.name + ' (' + u.email + ')';
    return u.name || u.email || String(u.userId);
  }

  /**
   * A link to the user's page saying who they are, with what else identifies
   * them underneath: the user id under a name, the email under a bare id.
   */
  function userNames(u) {
    var main = u.name ? person(u) : String(u.userId);
    var second = u.name ? String(u.userId) : u.email;
    return el('div', {class: 'names'},
      el('a', {href: userUrl(u.userId), text: main, title: main}),
      second ? el('div', {class: 'email', text: second, title: second}) : null);
  }

  // ---- time ---------------------------------------------------------------

  // Server time minus this browser's, from the last message that carried it.
  var skew = 0;
  function serverNow() { return Date.now() + skew; }
  function setServerTime(ms) { if (typeof ms === 'number') skew = ms - Date.now(); }

  function duration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return '–';
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    var m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(s % 60).padStart(2, '0') + 's';
    var h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function ago(ms) {
    if (!ms) return '–';
    var d = serverNow() - ms;
    if (d < 5000) return 'just now';
    return duration(d) + ' ago';
  }

  function clock(ms) {
    if (!ms) return '';
    return new Date(ms).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});
  }

  function dateTime(ms) {
    if (!ms) return '';
    return new Date(ms).toLocaleString([], {
      month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit'
    });
  }

  /** A time span in words, coarse: "12 s", "3 min", "2 h 5 min", "3 d". */
  function roughly(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return '–';
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min';
    var h = Math.floor(m / 60);
    if (h < 48) return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
    return Math.floor(h / 24) + ' d';
  }

  // ---- ticking text ---------------------------------------------------------

  /** A span whose text fn() gives; tickAll() (every second) keeps it current. */
  function ticking(fn, attrs) {
    var span = el('span', attrs || null, fn());
    span.classList.add('tick');
    span.tickFn = fn;
    return span;
  }

  function tickAll() {
    var nodes = document.querySelectorAll('.tick');
    for (var i = 0; i < nodes.length; i++) {
      var text = nodes[i].tickFn ? nodes[i].tickFn() : null;
      if (text !== null && nodes[i].textContent !== text) nodes[i].textContent = text;
    }
  }

  // ---- presence ---------------------------------------------------------------

  // What each presence state means, for the title (tooltip) next to its word.
  var PRESENCE = {
    active: 'Active: the page is open and the user is interacting with it',
    idle: 'Idle: the page is open and visible, no input for a while',
    hidden: 'Hidden: the tab is in the background',
    away: 'Away: the page stopped answering (browser closed, asleep or offline)',
    gone: 'Gone: the session is over'
  };
  // Sort rank: present users first, then away, then gone.
  var PRESENCE_RANK = {active: 0, idle: 0, hidden: 0, away: 1, gone: 2};

  /**
   * {state, since} of a user as the server sent it.  A user who is not live is
   * gone; a live user without ``presence`` (a server that does not send it) is
   * active, or hidden when its tab is.
   */
  function presenceOf(u) {
    var state = u.presence;
    if (u.live === false) state = 'gone';
    else if (!PRESENCE[state]) state = u.visible === false ? 'hidden' : 'active';
    var since = typeof u.presenceSince === 'number' ? u.presenceSince : null;
    if (since === null && state === 'gone') since = u.lastEventAt || null;
    return {state: state, since: since};
  }

  function isPresent(state) { return PRESENCE_RANK[state] === 0; }

  /** "for 3 min" / "last seen 2 min ago" (away, gone); '' when unknown. */
  function presenceSince(p) {
    if (!p.since) return '';
    var d = serverNow() - p.since;
    if (p.state === 'away' || p.state === 'gone') {
      return 'last seen ' + (d < 5000 ? 'just now' : roughly(d) + ' ago');
    }
    return 'for ' + roughly(d);
  }

  /** "idle for 3 min", "away · last seen 2 min ago", "gone". */
  function presenceText(p) {
    var since = presenceSince(p);
    if (!since) return p.state;
    return p.state + (p.state === 'away' || p.state === 'gone' ? ' · ' : ' ') + since;
  }

  /**
   * A coloured dot and the presence word, then since when (ticking).  The word
   * is text, so the state never depends on the colour alone; ``stacked`` puts
   * "since" on a second line (table cells).
   */
  function presenceBadge(u, options) {
    var p = presenceOf(u);
    var stacked = options && options.stacked;
    var sep = (p.state === 'away' || p.state === 'gone') ? ' · ' : ' ';
    var node = el('span', {
      class: 'presence p-' + p.state + (stacked ? ' stacked' : ''),
      'data-presence': p.state,
      title: PRESENCE[p.state]
    },
      el('span', {class: 'pdot', 'aria-hidden': 'true'}),
      el('span', {class: 'presence-word', text: p.state}));
    if (p.since) {
      node.appendChild(el('span', {class: 'presence-sep', text: sep}));
      node.appendChild(ticking(function () { return presenceSince(p); }, {class: 'presence-since'}));
    }
    return node;
  }

  var TIERS = {free_trial: 'Free trial', paid: 'Paid', enterprise: 'Enterprise'};
  function tierBadge(tier) {
    return el('span', {class: 'badge ' + (TIERS[tier] ? tier : ''), text: TIERS[tier] || tier});
  }

  // ---- HTTP -----------------------------------------------------------------

  function loginAgain() {
    var next = location.pathname + location.search;
    location.assign('/login?next=' + encodeURIComponent(next));
  }

  /** fetch JSON from the admin API; rejects with an Error carrying .status. */
  function api(path, options) {
    options = options || {};
    var init = {method: options.method || 'GET', credentials: 'same-origin', headers: {}};
    if (options.body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    return fetch(path, init).then(function (response) {
      if (response.status === 401) { loginAgain(); throw new Error('logged out'); }
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var message = (body && body.error && body.error.message) || ('HTTP ' + response.status);
          var err = new Error(message);
          err.status = response.status;
          err.body = body;
          throw err;
        }
        return body;
      });
    });
  }

  function toast(message, options) {
    var box = document.getElementById('toasts');
    if (!box) return;
    var node = el('div', {class: 'toast' + (options && options.error ? ' error' : ''), role: 'status'}, message);
    box.appendChild(node);
    setTimeout(function () { node.remove(); }, (options && options.ms) || 6000);
  }

  function me() {
    return {
      name: document.body.getAttribute('data-agent-name') || '',
      id: Number(document.body.getAttribute('data-agent-id') || 0)
    };
  }

  /** True if someone else than this page's agent has claimed user ``u``. */
  function claimedByOther(u) {
    var self = me();
    return !!(u && u.claimedBy) && (u.claimedBy !== self.name || (u.claimedByAgent || 0) !== self.id);
  }

  function claimWarning(by, at) {
    return by + ' is on it (claimed ' + ago(at) + '). Start a video call anyway?';
  }

  /**
   * Start a video call with userId: record it, open the link, show it.  If
   * another agent has claimed the user (``user``, the live user, says so; or
   * the server does), ask first.
   */
  function startVideoCall(userId, button, user) {
    if (claimedByOther(user) && !window.confirm(claimWarning(user.claimedBy, user.claimedAt))) {
      return Promise.resolve(null);
    }
    var confirmed = claimedByOther(user);
    if (button) button.disabled = true;
    // Opened now, inside the click, so no popup blocker stops it; filled in below.
    var win = window.open('', '_blank');
    var call = function (confirm) {
      return api('/api/admin/user/video-call', {method: 'POST', body: {userId: userId, confirm: confirm}});
    };
    return call(confirmed)
      .catch(function (err) {
        // Claimed meanwhile by someone else: ask, then call anyway if told to.
        if (err.status !== 409 || !err.body || err.body.error.code !== 'claimed') throw err;
        var claim = err.body.claim;
        if (!window.confirm(claimWarning(claim.by, claim.at))) { err.quiet = true; throw err; }
        return call(true);
      })
      .then(function (body) {
        var url = body.call.url;
        if (win && !win.closed) { win.opener = null; win.location.replace(url); }
        toast(['Video call started: ', el('a', {href: url, target: '_blank', rel: 'noopener noreferrer', text: 'open the call'}),
          body.invitation ? ' · the user is invited on their page' : ' · share the link with the user']);
        return body.call;
      })
      .catch(function (err) {
        if (win) win.close();
        if (!err.quiet) toast('Could not start the call: ' + err.message, {error: true});
        return null;
      })
      .finally(function () { if (button) button.disabled = false; });
  }

  // ---- call invitations -------------------------------------------------------

  /** How a call's invitation to the user's page stands, in words. */
  function callStatusText(c) {
    if (!c) return '';
    if (c.status === 'pending') return c.deliveredAt ? 'invitation shown on their page' : 'invitation sent';
    return {joined: 'joined the call', declined: 'said \u201cnot now\u201d',
            ignored: 'did not answer the invitation', replaced: 'invitation replaced by a newer call'}[c.status] || c.status;
  }

  var announced = new Set();
  /** Tell this page's agent, once, how the user answered the call they started. */
  function announceCall(c, who) {
    var self = me();
    if (!c || c.agent !== self.name || (c.agentId || 0) !== self.id) return;
    if (['joined', 'declined', 'ignored'].indexOf(c.status) < 0 || announced.has(c.callId)) return;
    announced.add(c.callId);
    toast([el('strong', {text: who}), ' ' + callStatusText(c) + '.'], {error: c.status !== 'joined', ms: 10000});
  }

  /** "I'm on it": claim userId (``force``: take over someone else's claim). */
  function claim(userId, button, force) {
    if (button) button.disabled = true;
    return api('/api/admin/user/claim', {method: 'POST', body: {userId: userId, force: !!force}})
      .then(function (body) {
        toast(body.takenOverFrom ? 'Taken over from ' + body.takenOverFrom + '.' : 'You are on it.');
      })
      .catch(function (err) {
        var by = err.body && err.body.claim ? err.body.claim.by : null;
        toast(by ? by + ' is on it already.' : 'Could not claim: ' + err.message, {error: true});
      })
      .finally(function () { if (button) button.disabled = false; });
  }

  function unclaim(userId, button) {
    if (button) button.disabled = true;
    return api('/api/admin/user/unclaim', {method: 'POST', body: {userId: userId}})
      .then(function () { toast('Released: nobody is on it now.'); })
      .catch(function (err) { toast('Could not release: ' + err.message, {error: true}); })
      .finally(function () { if (button) button.disabled = false; });
  }

  function acknowledge(userId, button) {
    if (button) button.disabled = true;
    return api('/api/admin/user/acknowledge', {method: 'POST', body: {userId: userId}})
      .then(function () { toast('Acknowledged: ' + userId); })
      .catch(function (err) { toast('Could not acknowledge: ' + err.message, {error: true}); })
      .finally(function () { if (button) button.disabled = false; });
  }

  // ---- the live socket --------------------------------------------------------

  /**
   * The dashboard WebSocket, reconnecting by itself with backoff (1 s, 2 s,
   * 4 s ... 30 s, with jitter). onMessage gets every decoded message; the
   * first after each (re)connect is a snapshot.
   */
  function LiveSocket(onMessage) {
    this.onMessage = onMessage;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.status = document.getElementById('connection');
    this.banner = document.getElementById('banner');
    this.connect();
  }

  LiveSocket.prototype.setStatus = function (kind, text, bannerText) {
    if (this.status) {
      this.status.className = 'connection is-' + kind;
      this.status.textContent = text;
    }
    if (this.banner) {
      this.banner.textContent = bannerText || '';
      this.banner.hidden = !bannerText;
    }
  };

  LiveSocket.prototype.connect = function () {
    var self = this;
    var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    self.setStatus('connecting', self.attempt ? 'Reconnecting…' : 'Connecting…',
                   self.attempt ? 'Live updates are disconnected. Reconnecting…' : '');
    var ws;
    try { ws = new WebSocket(scheme + location.host + '/ws/admin'); } catch (e) { self.retry(); return; }
    self.ws = ws;
    ws.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === 'snapshot') {
        self.attempt = 0;
        self.setStatus('live', 'Live', '');
      }
      if (message.type === 'session_expired') { loginAgain(); return; }
      if (message.serverTime) setServerTime(message.serverTime);
      self.onMessage(message);
    };
    ws.onclose = function (event) {
      self.ws = null;
      if (self.stopped) return;
      if (event.code === 4401) { loginAgain(); return; }
      self.retry();
    };
    ws.onerror = function () { /* onclose follows */ };
  };

  LiveSocket.prototype.retry = function () {
    var self = this;
    self.attempt += 1;
    var delay = Math.min(30000, 1000 * Math.pow(2, self.attempt - 1));
    delay = delay * (0.75 + Math.random() * 0.5);
    var until = Date.now() + delay;
    var tick = function () {
      var left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      self.setStatus('down', 'Disconnected',
                     'Live updates are disconnected. Reconnecting in ' + left + 's…');
    };
    tick();
    var countdown = setInterval(tick, 1000);
    // A failed handshake may mean the login ended: check before retrying.
    fetch('/api/admin/me', {credentials: 'same-origin'}).then(function (r) {
      if (r.status === 401) loginAgain();
    }).catch(function () {});
    self.timer = setTimeout(function () { clearInterval(countdown); self.connect(); }, delay);
  };

  LiveSocket.prototype.resync = function () {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send('resync');
  };

  window.tippenAdmin = {
    el: el, svg: svg, clear: clear, userUrl: userUrl, person: person, userNames: userNames, duration: duration, ago: ago, roughly: roughly,
    ticking: ticking, tickAll: tickAll, presenceOf: presenceOf, isPresent: isPresent,
    presenceText: presenceText, presenceBadge: presenceBadge, PRESENCE: PRESENCE, PRESENCE_RANK: PRESENCE_RANK,
    clock: clock, dateTime: dateTime, serverNow: serverNow, setServerTime: setServerTime,
    tierBadge: tierBadge, api: api, toast: toast, startVideoCall: startVideoCall,
    claim: claim, unclaim: unclaim, claimedByOther: claimedByOther, me: me,
    callStatusText: callStatusText, announceCall: announceCall,
    acknowledge: acknowledge, LiveSocket: LiveSocket, TIERS: TIERS
  };
})();
