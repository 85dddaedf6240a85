/* /user-activity: live users, support alerts, summary cards. */
(function () {
  'use strict';
  var A = window.tippenAdmin;
  var el = A.el;

  var MAX_ROWS = 300;
  var live = new Map();      // userId -> live user (from the socket)
  var recent = new Map();    // userId -> stored summary (scope "recent")
  var leftHere = new Map();  // userId -> when a user_left message moved them to ``recent``
  var storedAlerts = new Map();  // alert id -> alert (when the alerts service runs)
  var calls = new Map();         // userId -> their latest call invitation
  var leftAlerts = new Map();    // alert id -> alert resolved because the user left
  var LEFT_SHOWN_MS = 15 * 60000;  // how long a "User left" card stays
  var dismissed = loadDismissed();  // ids of "User left" alerts an admin put away
  var connected = false;     // a snapshot has arrived at least once
  var renderQueued = false;

  var $ = function (id) { return document.getElementById(id); };
  var form = {
    q: $('f-q'), scope: $('f-scope'), tier: $('f-tier'), active: $('f-active'), support: $('f-support'),
    presence: $('f-presence')
  };

  function filters() {
    return {
      q: form.q.value.trim().toLowerCase(),
      scope: form.scope.value,
      tier: form.tier.value,
      activeMin: form.active.value ? parseInt(form.active.value, 10) : null,
      support: form.support.checked,
      presence: form.presence.value
    };
  }

  function presenceMatches(state, wanted) {
    if (!wanted) return true;
    if (wanted === 'present') return A.isPresent(state);
    return state === wanted;
  }

  function matches(user, f) {
    if (f.tier && user.tier !== f.tier) return false;
    if (f.support && !user.needsSupport) return false;
    if (f.presence && !presenceMatches(A.presenceOf(user).state, f.presence)) return false;
    if (f.activeMin && (user.lastEventAt || 0) < A.serverNow() - f.activeMin * 60000) return false;
    if (f.q) {
      var id = String(user.userId).toLowerCase();
      var email = String(user.email || '').toLowerCase();
      var name = String(user.name || '').toLowerCase();
      if (id.indexOf(f.q) < 0 && email.indexOf(f.q) < 0 && name.indexOf(f.q) < 0) return false;
    }
    return true;
  }

  /** A text span that a 1 s ticker keeps current (times on page, "ago"). */
  var ticking = A.ticking;

  // Rows and cards are rebuilt only when their user changed, so a button
  // under the mouse is not replaced while it is being clicked.
  var rowCache = new Map();
  var cardCache = new Map();
  function cached(cache, u, build) {
    var hit = cache.get(u.userId);
    if (hit && hit.user === u) return hit.node;
    var node = build(u);
    cache.set(u.userId, {user: u, node: node});
    return node;
  }

  function place(box, nodes) {
    // Reorder children to ``nodes`` moving as few as possible.
    var keep = new Set(nodes);
    Array.prototype.slice.call(box.children).forEach(function (c) { if (!keep.has(c)) c.remove(); });
    nodes.forEach(function (node, i) {
      if (box.children[i] !== node) box.insertBefore(node, box.children[i] || null);
    });
  }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(function () { renderQueued = false; render(); });
  }

  // ---- the socket ---------------------------------------------------------

  function onMessage(m) {
    if (m.type === 'snapshot') {
      connected = true;
      live.clear();
      m.users.forEach(function (u) { live.set(u.userId, u); });
      storedAlerts.clear();
      (m.alerts || []).forEach(function (a) { storedAlerts.set(a.id, a); });
      calls.clear();
      (m.calls || []).forEach(function (c) { if (!calls.has(c.userId)) calls.set(c.userId, c); });
      cardCache.clear();
      loadLeftAlerts();  // (re)connected: alerts that closed meanwhile
      loadSettings();    // ... and settings that changed meanwhile
    } else if (m.type === 'user') {
      live.set(m.user.userId, m.user);
      statsSoon();
    } else if (m.type === 'user_left') {
      var gone = live.get(m.userId);
      live.delete(m.userId);
      if (gone && m.reason !== 'erased' && form.scope.value === 'recent') {
        // A new object, so its cached row is rebuilt.
        recent.set(gone.userId, Object.assign({}, gone, {
          live: false, needsSupport: false, presence: 'gone', presenceSince: gone.lastEventAt || m.at
        }));
        leftHere.set(gone.userId, Date.now());
      }
      if (m.reason === 'erased') {
        recent.delete(m.userId);
        leftHere.delete(m.userId);
        leftAlerts.forEach(function (a, id) { if (a.userId === m.userId) leftAlerts.delete(id); });
      }
      cardCache.delete(m.userId);  // a "User left" card now says gone
    } else if (m.type === 'settings') {
      settingsSeen += 1;  // newer than any answer still on its way
      renderSettings(m);
      return;
    } else if (m.type === 'call' && m.call) {
      var current = calls.get(m.call.userId);
      if (!current || current.callId <= m.call.callId) calls.set(m.call.userId, m.call);
      cardCache.delete(m.call.userId);
      var known = live.get(m.call.userId);
      A.announceCall(m.call, known ? A.person(known) : m.call.userId);
    } else if (m.type === 'alert' && m.alert) {
      if (m.alert.status === 'resolved') storedAlerts.delete(m.alert.id);
      else storedAlerts.set(m.alert.id, m.alert);
      keepIfLeft(m.alert);
      cardCache.delete(m.alert.userId);  // its Slack line changes
      responseSoon();
    }
    queueRender();
  }

  // ---- alerts closed because the user left ---------------------------------------

  function loadDismissed() {
    try { return new Set(JSON.parse(sessionStorage.getItem('tippen.dismissedLeft') || '[]')); } catch (e) { return new Set(); }
  }

  function saveDismissed() {
    try { sessionStorage.setItem('tippen.dismissedLeft', JSON.stringify(Array.from(dismissed).slice(-200))); } catch (e) { /* private mode */ }
  }

  function keepIfLeft(a) {
    if (a.status === 'resolved' && a.resolution === 'user_left' && !dismissed.has(a.id)) leftAlerts.set(a.id, a);
    else leftAlerts.delete(a.id);
  }

  /** Alerts that closed because the user left, in the last LEFT_SHOWN_MS (they survive a reload). */
  function loadLeftAlerts() {
    A.api('/api/admin/alerts?status=resolved&limit=100').then(function (body) {
      (body.alerts || []).forEach(function (a) {
        if (a.id !== null && a.id !== undefined && (a.resolvedAt || 0) > A.serverNow() - LEFT_SHOWN_MS) keepIfLeft(a);
      });
      queueRender();
    }).catch(function () {});
  }

  function dismissLeft(userId) {
    leftAlerts.forEach(function (a, id) {
      if (a.userId === userId) { dismissed.add(id); leftAlerts.delete(id); }
    });
    saveDismissed();
    queueRender();
  }

  // ---- REST: recent users, figures ------------------------------------------

  var recentTimer = null;
  function loadRecent() {
    clearTimeout(recentTimer);
    var f = filters();
    if (f.scope !== 'recent') { recent.clear(); queueRender(); return; }
    var params = new URLSearchParams({scope: 'recent', limit: String(MAX_ROWS)});
    if (f.tier) params.set('tier', f.tier);
    if (f.support) params.set('needsSupport', 'true');
    if (f.activeMin) params.set('activeWithinMin', String(f.activeMin));
    if (f.q) params.set('q', f.q);
    A.api('/api/admin/users?' + params.toString()).then(function (body) {
      A.setServerTime(body.serverTime);
      var fresh = new Map();
      body.users.forEach(function (u) { if (!u.live) fresh.set(u.userId, u); });
      // Users who left while this answer was on its way stay until it has them.
      leftHere.forEach(function (at, id) {
        if (fresh.has(id) || live.has(id) || at < Date.now() - 120000) leftHere.delete(id);
        else if (recent.has(id)) fresh.set(id, recent.get(id));
      });
      recent = fresh;
      queueRender();
    }).catch(function () {}).finally(function () {
      recentTimer = setTimeout(loadRecent, 30000);
    });
  }

  var statsDue = null;
  /** Figures from the database move with the events: reload them, at most every 5 s. */
  function statsSoon() {
    if (statsDue === null) statsDue = setTimeout(function () { statsDue = null; loadStats(); }, 5000);
  }

  function loadStats() {
    A.api('/api/admin/stats').then(function (s) {
      $('stat-errors').textContent = String(s.errorsLastHour);
      $('stat-events').textContent = String(s.eventsLastHour);
    }).catch(function () {});
  }

  // ---- response times ------------------------------------------------------------

  var responseDue = null;
  /** Figures move with claims, acknowledgements and calls: reload, at most every 3 s. */
  function responseSoon() {
    if (responseDue === null) responseDue = setTimeout(function () { responseDue = null; loadResponse(); }, 3000);
  }

  function loadResponse() {
    var tz = new Date().getTimezoneOffset();
    A.api('/api/admin/stats/response?tzOffsetMin=' + tz).then(renderResponse).catch(function () {});
  }

  function responseCells(f, goal) {
    if (!f) return [el('td', {class: 'num muted', text: '0'}), el('td', {class: 'num muted', text: '–'}),
                    el('td', {class: 'num muted', text: '–'}), el('td', {class: 'num muted', text: '–'})];
    var counted = f.answered + f.missed;
    var share = counted ? Math.round(100 * f.withinGoal / counted) + ' %' : '–';
    return [
      el('td', {class: 'num', text: String(f.answered) + (f.missed ? ' · ' + f.missed + ' missed' : '')}),
      el('td', {class: 'num', text: f.medianMs === null ? '–' : A.roughly(f.medianMs)}),
      el('td', {class: 'num ' + (f.p90Ms === null ? '' : f.p90Ms <= goal ? 'ok' : 'warn'),
                text: f.p90Ms === null ? '–' : A.roughly(f.p90Ms)}),
      el('td', {class: 'num ' + (f.metGoal === null ? '' : f.metGoal ? 'ok' : 'warn'),
                title: f.withinGoal + ' of ' + counted + ' within 10 min', text: share})
    ];
  }

  function renderResponse(r) {
    var rows = [el('tr', {class: 'everyone', 'data-agent': ''}, el('td', {text: 'Everyone'}),
      responseCells(r.today.overall, r.goalMs), responseCells(r.last7Days.overall, r.goalMs))];
    var names = [];
    r.last7Days.agents.concat(r.today.agents).forEach(function (a) { if (names.indexOf(a.agent) < 0) names.push(a.agent); });
    var of = function (list, name) { return list.filter(function (a) { return a.agent === name; })[0]; };
    names.forEach(function (name) {
      rows.push(el('tr', {'data-agent': name}, el('td', {text: name}),
        responseCells(of(r.today.agents, name), r.goalMs), responseCells(of(r.last7Days.agents, name), r.goalMs)));
    });
    var body = $('response-rows');
    A.clear(body);
    rows.forEach(function (row) { body.appendChild(row); });
  }

  // ---- the tenant's settings (changed with `tippen-rt tenant set`) ------------

  var settingsSeen = 0;  // settings messages so far
  function loadSettings() {
    var seen = settingsSeen;
    A.api('/api/admin/settings').then(function (s) {
      if (seen === settingsSeen) renderSettings(s);
    }).catch(function () {});
  }

  function renderSettings(s) {
    if (s.queue) {
      order = s.queue;
      $('q-order').textContent = 'Order: ' + s.queue.inWords;
      cardCache.clear();
      queueRender();
    }
    var on = s.triggers.filter(function (t) { return t.on; }).length;
    $('settings-summary').textContent = on + ' of ' + s.triggers.length + ' triggers on · Slack ' +
      (s.slack.mode === 'off' ? 'off' : s.slack.mode) + ' · identity ' + s.identity;
    A.clear($('settings-triggers'));
    s.triggers.forEach(function (t) {
      $('settings-triggers').appendChild(el('tr', {'data-trigger': t.trigger, 'data-on': t.on ? 'on' : 'off', class: t.on ? '' : 'off'},
        el('th', {scope: 'row'}, el('span', {text: t.title}), ' ', el('code', {class: 'muted', text: t.trigger})),
        el('td', null, el('span', {class: 'badge ' + (t.on ? 'ok' : 'off'), text: t.on ? 'on' : 'off'})),
        el('td', {text: t.tiersInWords}),
        el('td', {text: t.firesWhen})));
    });
    var presence = s.presence.map(function (p) { return p.label + ' ' + p.inWords; });
    var items = [
      ['Presence', presence],
      ['Origins', s.origins.length ? s.origins.join(', ') : 'none: browsers are refused'],
      ['Origin header', s.originRule],
      ['Identity verification', s.identity],
      ['Slack', s.slack.inWords],
      ['Alert rate limit', s.alertRateLimit.inWords],
      ['Slack budget', s.slackMaxPerMinute.value ? 'at most ' + s.slackMaxPerMinute.inWords + ', then one digest' : 'no limit'],
      ['Max live users', s.maxLiveUsers.inWords],
      ['Events kept', s.retention.inWords],
      ['Video calls', s.videoCallTemplate],
      ['Call invitations', s.callInvitations ? s.callInvitations.inWords : ''],
      ['Needs-help order', s.queue ? s.queue.inWords : '']
    ];
    var list = $('settings-list');
    A.clear(list);
    items.forEach(function (item) {
      var lines = Array.isArray(item[1]) ? item[1] : [item[1]];
      list.appendChild(el('div', null, el('dt', {text: item[0]}),
        el('dd', null, lines.map(function (line) { return el('div', {text: line}); }))));
    });
  }

  // ---- rendering -------------------------------------------------------------

  function statusCell(u) {
    if (u.needsSupport) {
      return el('span', {class: 'badge warn', text: 'Needs help'});
    }
    if (u.live && u.triggers && u.triggers.length) return el('span', {class: 'badge', text: 'Acknowledged'});
    if (leftShown.has(u.userId)) return el('span', {class: 'badge off', text: 'User left'});
    return el('span', {class: 'muted', text: '–'});
  }

  function userRow(u) {
    var onPage = function () {
      return A.duration(u.live && u.routeEnteredAt ? A.serverNow() - u.routeEnteredAt : u.timeOnCurrentPageMs);
    };
    var state = A.presenceOf(u).state;
    return el('tr', {class: (u.needsSupport ? 'needs' : '') + (u.live ? '' : ' offline') + ' p-' + state,
                     'data-user': u.userId, 'data-presence': state},
      el('td', null, el('div', {class: 'user-cell'}, A.userNames(u))),
      el('td', {class: 'presence-cell'}, A.presenceBadge(u, {stacked: true})),
      el('td', null, A.tierBadge(u.tier)),
      el('td', null, u.currentRoute ? el('span', {class: 'route', text: u.currentRoute, title: u.currentRoute}) : '–'),
      el('td', {class: 'num'}, ticking(onPage)),
      el('td', {class: 'num'}, ticking(function () { return A.ago(u.lastEventAt); })),
      el('td', {class: 'num'}, String(u.totalEvents)),
      el('td', {class: 'num'}, String(u.totalErrors)),
      el('td', null, statusCell(u)));
  }

  function renderUsers(f) {
    var rows = [];
    live.forEach(function (u) { if (matches(u, f)) rows.push(u); });
    if (f.scope === 'recent') {
      recent.forEach(function (u) { if (!live.has(u.userId) && matches(u, f)) rows.push(u); });
    }
    var rank = new Map();
    rows.forEach(function (u) { rank.set(u, A.PRESENCE_RANK[A.presenceOf(u).state]); });
    rows.sort(function (a, b) {
      // Present users first, then away ones, then those who left; the order
      // within each group as before.
      if (rank.get(a) !== rank.get(b)) return rank.get(a) - rank.get(b);
      if (a.needsSupport !== b.needsSupport) return a.needsSupport ? -1 : 1;
      if (a.live !== b.live) return a.live ? -1 : 1;
      return (b.lastEventAt || 0) - (a.lastEventAt || 0);
    });
    var shown = rows.slice(0, MAX_ROWS);
    place($('users'), shown.map(function (u) { return cached(rowCache, u, userRow); }));
    var ids = new Set(shown.map(function (u) { return u.userId; }));
    rowCache.forEach(function (_, id) { if (!ids.has(id)) rowCache.delete(id); });
    var empty = $('users-empty');
    if (!connected) {
      empty.textContent = 'Loading live users…';
    } else if (rows.length) {
      empty.textContent = rows.length > MAX_ROWS ? 'Showing ' + MAX_ROWS + ' of ' + rows.length + ' users; narrow the filters to see the rest.' : '';
    } else if (f.q || f.tier || f.support || f.activeMin || f.presence) {
      empty.textContent = 'No users match these filters.';
    } else {
      empty.textContent = 'No one is online right now. Users appear here the moment your app sends their first events.';
    }
    empty.hidden = !empty.textContent;
    $('users-table').hidden = !rows.length;
  }

  // What happened on Slack to a user's unresolved alerts, in one line.
  function deliveryNote(userId) {
    var mine = [];
    storedAlerts.forEach(function (a) { if (a.userId === userId) mine.push(a); });
    if (!mine.length) return null;
    mine.sort(function (a, b) { return b.id - a.id; });
    var by = function (status) { return mine.filter(function (a) { return a.deliveryStatus === status; }); };
    var failed = by('failed'), pending = by('pending'), sent = by('sent'), held = by('suppressed');
    var heldText = held.length
      ? held.length + ' later trigger' + (held.length === 1 ? '' : 's') + ' held back by the rate limit'
      : '';
    var text, cls = 'delivery muted', title = null;
    if (failed.length) {
      cls = 'delivery warn';
      title = failed[0].lastError || null;
      text = 'Slack: not delivered' + (failed[0].lastError ? ' (' + failed[0].lastError + ')' : '');
    } else if (pending.length) {
      text = 'Slack: sending' + (pending[0].attempts > 1 ? ', attempt ' + pending[0].attempts : '') + '…';
    } else if (sent.length) {
      text = 'Slack: sent' + (heldText ? ' · ' + heldText : '');
    } else if (held.length) {
      text = 'Slack: not sent, ' + heldText;
    } else {
      text = 'Slack: not set up (dashboard only)';
    }
    return el('div', {class: cls, title: title, text: text});
  }

  // ---- the needs-help queue ---------------------------------------------------
  //
  // One row per live user with an open support episode, first to help first:
  // not yet acknowledged before acknowledged, then the tenant's weight of
  // their tier, then the severity of their most severe trigger, then how
  // long they have waited, then the user id (docs/support.md).  The same key
  // as GET /api/admin/queue, with the weights and severities from
  // GET /api/admin/settings.

  var PAGE_SIZE = 25;
  var order = {
    tierWeights: {enterprise: 3, paid: 2, free_trial: 1},
    severity: {multiple_errors: 3, stuck_on_page: 2, low_activity: 1, long_inactivity: 1}
  };
  var qform = {tier: $('q-tier'), trigger: $('q-trigger'), unclaimed: $('q-unclaimed')};
  var queuePage = 0;
  var cursorUser = null;   // the row j/k moved to (a user id)
  var cursorIndex = 0;
  var selected = new Set();  // user ids ticked for a bulk acknowledge
  var shownQueue = [];     // the ranked, filtered queue as last rendered

  function inQueue(u) { return !!(u.triggers && u.triggers.length); }

  function severityOf(u) {
    return u.triggers.reduce(function (m, t) { return Math.max(m, order.severity[t.trigger] || 0); }, 0);
  }

  function waitingSince(u) {
    return u.triggers.reduce(function (m, t) { return Math.min(m, t.since || m); }, u.lastEventAt || Infinity);
  }

  function queueKey(u) {
    return [u.needsSupport ? 0 : 1, -(order.tierWeights[u.tier] || 0), -severityOf(u), waitingSince(u), String(u.userId)];
  }

  function compareKeys(a, b) {
    for (var i = 0; i < a.length; i++) {
      if (a[i] < b[i]) return -1;
      if (a[i] > b[i]) return 1;
    }
    return 0;
  }

  function queueKeeps(u) {
    if (qform.tier.value && u.tier !== qform.tier.value) return false;
    if (qform.trigger.value && !u.triggers.some(function (t) { return t.trigger === qform.trigger.value; })) return false;
    return !(qform.unclaimed.checked && u.claimedBy);
  }

  function rankedQueue() {
    var rows = [];
    live.forEach(function (u) { if (inQueue(u) && queueKeeps(u)) rows.push({u: u, key: queueKey(u)}); });
    rows.sort(function (a, b) { return compareKeys(a.key, b.key); });
    return rows.map(function (r) { return r.u; });
  }

  function mine(u) { return !!u.claimedBy && !A.claimedByOther(u); }

  function claimLine(u) {
    if (!u.claimedBy) return el('div', {class: 'q-claim muted', text: 'Unclaimed'});
    return ticking(function () {
      return (mine(u) ? 'You are on it' : 'Claimed by ' + u.claimedBy) + ' · ' + A.ago(u.claimedAt);
    }, {class: 'q-claim ' + (mine(u) ? 'mine' : 'theirs')});
  }

  function callLine(userId) {
    var c = calls.get(userId);
    if (!c) return null;
    return el('div', {class: 'q-call muted', 'data-call': c.status},
      'Video call by ' + c.agent + ': ' + A.callStatusText(c));
  }

  function queueRow(u) {
    var open = u.needsSupport;
    var since = waitingSince(u);
    var who = A.person(u);
    var reasons = u.triggers.map(function (t) {
      return el('div', null, el('span', {class: 'title', text: t.title}), t.reason ? ': ' + t.reason : '');
    });
    var check = el('input', {type: 'checkbox', class: 'q-select', 'aria-label': 'Select ' + who});
    check.addEventListener('change', function () { select(u.userId, check.checked); });
    var claim = el('button', {type: 'button', class: 'button small', 'data-action': 'claim',
      text: !u.claimedBy ? 'I\u2019m on it' : mine(u) ? 'Release' : 'Take over'});
    claim.addEventListener('click', function () { toggleClaim(u, claim); });
    var ack = open ? el('button', {type: 'button', class: 'button small', 'data-action': 'acknowledge', text: 'Acknowledge'}) : null;
    if (ack) ack.addEventListener('click', function () { A.acknowledge(u.userId, ack); });
    var call = el('button', {type: 'button', class: 'button small primary', 'data-action': 'call', text: 'Start video call'});
    call.addEventListener('click', function () { A.startVideoCall(u.userId, call, live.get(u.userId)); });
    var row = el('div', {class: 'alert q-row' + (open ? '' : ' acknowledged'), 'data-user': u.userId,
                         role: 'listitem', tabindex: '-1'},
      check,
      el('span', {class: 'rank'}),
      el('div', {class: 'alert-who q-who'},
        el('a', {href: A.userUrl(u.userId), text: who, title: u.userId}),
        A.tierBadge(u.tier),
        A.presenceBadge(u)),
      el('div', {class: 'q-route muted', title: u.currentRoute || ''},
        u.currentRoute ? el('span', {class: 'route', text: u.currentRoute}) : '–'),
      el('div', {class: 'alert-reasons'}, reasons.length ? reasons : el('div', {text: 'Needs help'})),
      deliveryNote(u.userId) || el('div', {class: 'delivery muted'}),
      ticking(function () {
        return open
          ? 'needs help for ' + A.duration(A.serverNow() - since)
          : 'acknowledged' + (u.acknowledgedBy ? ' by ' + u.acknowledgedBy : '') + ' ' + A.ago(u.acknowledgedAt);
      }, {class: 'alert-when q-wait'}),
      claimLine(u),
      callLine(u.userId),
      el('div', {class: 'alert-actions'}, claim, ack, call,
        el('a', {class: 'button small ghost', href: A.userUrl(u.userId), text: 'View'})));
    row.addEventListener('click', function (event) {
      if (event.target === row) moveCursorTo(u.userId);
    });
    return row;
  }

  function toggleClaim(u, button) {
    if (mine(u)) return A.unclaim(u.userId, button);
    if (u.claimedBy && !window.confirm(u.claimedBy + ' is on it (claimed ' + A.ago(u.claimedAt) +
        '). Take over from them?')) return Promise.resolve();
    return A.claim(u.userId, button, !!u.claimedBy);
  }

  function select(userId, on) {
    if (on) selected.add(userId); else selected.delete(userId);
    queueRender();
  }

  function acknowledgeSelected() {
    var ids = Array.from(selected);
    if (!ids.length) return;
    var button = $('q-ack-selected');
    button.disabled = true;
    A.api('/api/admin/users/acknowledge', {method: 'POST', body: {userIds: ids}}).then(function (body) {
      body.acknowledged.forEach(function (id) { selected.delete(id); });
      A.toast('Acknowledged ' + body.acknowledged.length + ' user' + (body.acknowledged.length === 1 ? '' : 's') + '.');
    }).catch(function (err) {
      A.toast('Could not acknowledge: ' + err.message, {error: true});
    }).finally(queueRender);
  }

  // ---- keys: j/k move, x select, a acknowledge, c claim, v video call ----------------

  function moveCursorTo(userId) {
    cursorUser = userId;
    var at = shownQueue.findIndex(function (u) { return u.userId === userId; });
    if (at >= 0) {
      cursorIndex = at;
      queuePage = Math.floor(at / PAGE_SIZE);
    }
    render();
    var node = document.querySelector('.q-row.cursor');
    if (node) node.focus();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    var target = event.target;
    if (target && (/^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName) || target.isContentEditable)) return;
    var key = event.key;
    if ('jkxacv'.indexOf(key) < 0 || key.length !== 1 || !shownQueue.length) return;
    event.preventDefault();
    var at = shownQueue.findIndex(function (u) { return u.userId === cursorUser; });
    if (key === 'j' || key === 'k') {
      var next = at < 0 ? 0 : Math.max(0, Math.min(shownQueue.length - 1, at + (key === 'j' ? 1 : -1)));
      moveCursorTo(shownQueue[next].userId);
      return;
    }
    if (at < 0) return;
    var u = shownQueue[at];
    var row = document.querySelector('.q-row.cursor');
    var button = function (action) { return row && row.querySelector('[data-action="' + action + '"]'); };
    if (key === 'x') select(u.userId, !selected.has(u.userId));
    else if (key === 'a' && u.needsSupport) A.acknowledge(u.userId, button('acknowledge'));
    else if (key === 'c') toggleClaim(u, button('claim'));
    else if (key === 'v') A.startVideoCall(u.userId, button('call'), u);
  }

  /** The user as far as this page knows: live, recent, or only from their alert. */
  function knownUser(userId, alert) {
    return live.get(userId) || recent.get(userId) ||
      {userId: userId, live: false, tier: alert.tier, presence: 'gone', presenceSince: null};
  }

  /**
   * userId -> that user's "user left" alerts (newest first) to show as cards:
   * resolved in the last LEFT_SHOWN_MS, the user not back (not present) and
   * without a live card of their own.
   */
  function leftCardUsers() {
    var out = new Map();
    var oldest = A.serverNow() - LEFT_SHOWN_MS;
    leftAlerts.forEach(function (a, id) {
      if ((a.resolvedAt || 0) < oldest) { leftAlerts.delete(id); return; }
      var u = live.get(a.userId);
      if (u && (u.needsSupport || (u.triggers && u.triggers.length))) return;
      if (u && A.isPresent(A.presenceOf(u).state)) return;
      if (!out.has(a.userId)) out.set(a.userId, []);
      out.get(a.userId).push(a);
    });
    out.forEach(function (list) { list.sort(function (a, b) { return (b.resolvedAt || 0) - (a.resolvedAt || 0); }); });
    return out;
  }

  /** An alert that closed because the user left before anyone helped. */
  function leftCard(userId, alerts) {
    var last = alerts[0];
    var u = knownUser(userId, last);
    var first = alerts.reduce(function (t, a) { return Math.min(t, a.openedAt || t); }, last.openedAt || last.resolvedAt);
    var reasons = alerts.map(function (a) {
      return el('div', null, el('span', {class: 'title', text: a.title || a.trigger}), a.reason ? ': ' + a.reason : '');
    });
    var helped = alerts.filter(function (a) { return a.acknowledgedBy; })[0];
    var dismiss = el('button', {type: 'button', class: 'button small ghost', text: 'Dismiss',
      'aria-label': 'Dismiss the card of ' + userId});
    dismiss.addEventListener('click', function () { dismissLeft(userId); });
    return el('div', {class: 'alert left', 'data-user': userId, 'data-left': ''},
      el('div', {class: 'alert-who'},
        el('a', {href: A.userUrl(userId), text: userId, title: userId}),
        A.tierBadge(last.tier || u.tier),
        el('span', {class: 'badge off left-badge', text: 'User left'}),
        A.presenceBadge(u),
        last.route ? el('span', {class: 'route muted', text: last.route, title: last.route}) : null,
        ticking(function () {
          return 'needed help for ' + A.duration((last.resolvedAt || 0) - first) + ', left ' + A.ago(last.resolvedAt);
        }, {class: 'alert-when'})),
      el('div', {class: 'alert-reasons'}, reasons),
      el('div', {class: 'delivery muted', text: helped
        ? 'Acknowledged by ' + helped.acknowledgedBy + ', then the user left.'
        : 'The user left before anyone helped.'}),
      el('div', {class: 'alert-actions'},
        el('a', {class: 'button small', href: A.userUrl(userId), text: 'View'}), dismiss));
  }

  var leftCache = new Map();  // userId -> {sig, node}
  var okNode = null;

  function renderAlerts(left) {
    var list = rankedQueue();
    shownQueue = list;
    var box = $('alerts');
    var open = 0;
    live.forEach(function (u) { if (u.needsSupport) open += 1; });
    var inAll = 0;
    live.forEach(function (u) { if (inQueue(u)) inAll += 1; });
    var failed = 0;
    storedAlerts.forEach(function (a) { if (a.deliveryStatus === 'failed') failed++; });
    $('alerts-count').textContent = connected
      ? open + ' need' + (open === 1 ? 's' : '') + ' help' +
        (list.length !== inAll ? ' · ' + list.length + ' of ' + inAll + ' shown' : '') +
        (storedAlerts.size ? ' · ' + storedAlerts.size + ' unresolved alert' + (storedAlerts.size === 1 ? '' : 's') : '') +
        (left.size ? ' · ' + left.size + ' left before help' : '')
      : '';
    var warn = $('alerts-failed');
    warn.hidden = !(connected && failed);
    warn.textContent = failed + ' alert' + (failed === 1 ? '' : 's') + ' could not be delivered to Slack: check the Slack setup (tippen-rt slack test).';
    if (!connected) {
      cardCache.clear();
      leftCache.clear();
      okNode = null;
      A.clear(box);
      box.appendChild(el('p', {class: 'empty', text: 'Loading…'}));
      return;
    }
    // The cursor stays on its user as the order changes; if they left the
    // queue, on the row that took their place.
    var at = list.findIndex(function (u) { return u.userId === cursorUser; });
    if (at >= 0) cursorIndex = at;
    else if (cursorUser !== null) cursorUser = list.length ? list[Math.min(cursorIndex, list.length - 1)].userId : null;
    var pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    queuePage = Math.max(0, Math.min(queuePage, pages - 1));
    var first = queuePage * PAGE_SIZE;
    var pageUsers = list.slice(first, first + PAGE_SIZE);
    var ids = new Set(list.map(function (u) { return u.userId; }));
    selected.forEach(function (id) { if (!ids.has(id)) selected.delete(id); });
    var nodes = pageUsers.map(function (u, i) {
      var node = cached(cardCache, u, queueRow);
      node.querySelector('.rank').textContent = '#' + (first + i + 1);
      var isCursor = u.userId === cursorUser;
      node.classList.toggle('cursor', isCursor);
      if (isCursor) node.setAttribute('aria-current', 'true'); else node.removeAttribute('aria-current');
      var ticked = selected.has(u.userId);
      node.classList.toggle('selected', ticked);
      node.querySelector('.q-select').checked = ticked;
      return node;
    });
    if (!list.length) {
      var filtered = inAll > 0;
      okNode = okNode || el('div', {class: 'alerts-ok'});
      okNode.textContent = filtered ? 'Nobody here matches these filters.' : '✓ Nobody needs help right now.';
      nodes.push(okNode);
    }
    var leftIds = Array.from(left.keys()).sort(function (a, b) {
      return (left.get(b)[0].resolvedAt || 0) - (left.get(a)[0].resolvedAt || 0);
    });
    leftIds.forEach(function (userId) {
      var alerts = left.get(userId);
      var p = A.presenceOf(knownUser(userId, alerts[0]));
      var sig = alerts.map(function (a) { return a.id; }).join(',') + '|' + p.state + '|' + p.since;
      var hit = leftCache.get(userId);
      if (!hit || hit.sig !== sig) { hit = {sig: sig, node: leftCard(userId, alerts)}; leftCache.set(userId, hit); }
      nodes.push(hit.node);
    });
    place(box, nodes);
    cardCache.forEach(function (_, id) { if (!ids.has(id)) cardCache.delete(id); });
    leftCache.forEach(function (_, id) { if (!left.has(id)) leftCache.delete(id); });
    // the pager, the page's select-all box, the bulk button
    $('q-pager').hidden = pages < 2;
    $('q-page').textContent = list.length
      ? (first + 1) + '–' + (first + pageUsers.length) + ' of ' + list.length : '';
    $('q-prev').disabled = queuePage === 0;
    $('q-next').disabled = queuePage >= pages - 1;
    var pageIds = pageUsers.map(function (u) { return u.userId; });
    var allTicked = pageIds.length > 0 && pageIds.every(function (id) { return selected.has(id); });
    $('q-select-page').checked = allTicked;
    $('q-select-page').disabled = !pageIds.length;
    $('q-ack-selected').disabled = !selected.size;
    $('q-ack-selected').textContent = 'Acknowledge selected' + (selected.size ? ' (' + selected.size + ')' : '');
  }

  function renderStats() {
    var n = 0, support = 0, trials = 0, away = 0;
    live.forEach(function (u) {
      n += 1;
      if (!A.isPresent(A.presenceOf(u).state)) away += 1;
      if (u.needsSupport) support += 1;
      if (u.tier === 'free_trial') trials += 1;
    });
    if (!connected) return;
    $('stat-live').textContent = String(n);
    $('stat-away').textContent = away ? away + ' away' : '';
    $('stat-support').textContent = String(support);
    $('stat-trials').textContent = String(trials);
  }

  var leftShown = new Map();  // the last render's leftCardUsers()
  // How long the last renders took (ms): bench/support.py reads them.
  var renders = [];
  window.tippenDashboard = {renders: renders};

  function render() {
    var started = performance.now();
    var f = filters();
    var left = leftCardUsers();
    // Rows whose "User left" status comes or goes are rebuilt.
    leftShown.forEach(function (_, id) { if (!left.has(id)) rowCache.delete(id); });
    left.forEach(function (_, id) { if (!leftShown.has(id)) rowCache.delete(id); });
    leftShown = left;
    renderStats();
    renderAlerts(left);
    renderUsers(f);
    renders.push(performance.now() - started);
    if (renders.length > 200) renders.shift();
  }

  // ---- wiring ---------------------------------------------------------------

  ['input', 'change'].forEach(function (kind) {
    $('filters').addEventListener(kind, function (event) {
      if (event.target === form.q && kind === 'change') return;
      queueRender();
      clearTimeout(recentTimer);
      recentTimer = setTimeout(loadRecent, event.target === form.q ? 300 : 0);
    });
  });
  $('filters').addEventListener('submit', function (e) { e.preventDefault(); });
  ['input', 'change'].forEach(function (kind) {
    $('queue-filters').addEventListener(kind, function () { queuePage = 0; queueRender(); });
  });
  $('queue-filters').addEventListener('submit', function (e) { e.preventDefault(); });
  $('q-prev').addEventListener('click', function () { queuePage -= 1; render(); });
  $('q-next').addEventListener('click', function () { queuePage += 1; render(); });
  $('q-select-page').addEventListener('change', function () {
    var on = this.checked;
    shownQueue.slice(queuePage * PAGE_SIZE, (queuePage + 1) * PAGE_SIZE).forEach(function (u) {
      if (on) selected.add(u.userId); else selected.delete(u.userId);
    });
    queueRender();
  });
  $('q-ack-selected').addEventListener('click', acknowledgeSelected);
  document.addEventListener('keydown', onKey);

  new A.LiveSocket(onMessage);
  loadStats();
  loadResponse();
  setInterval(loadResponse, 30000);
  setInterval(loadStats, 30000);
  setInterval(A.tickAll, 1000);  // times on page and "ago" move on
  setInterval(queueRender, 10000);  // "active within" filters move on too
  render();
})();
