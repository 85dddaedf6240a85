/* /user-activity/<userId>: one user's live state, journey, timeline and errors. */
(function () {
  'use strict';
  var A = window.tippenAdmin;
  var el = A.el;
  var $ = function (id) { return document.getElementById(id); };

  var userId = $('user-root').getAttribute('data-user-id');
  var q = encodeURIComponent(userId);
  var liveUser = null;    // from the socket, or null when not live
  var stored = null;      // the stored summary
  var erased = false;
  var lastEvents = -1;    // totalEvents when the lists were last loaded
  var refreshTimer = null;
  var TIMELINE_TYPES = 'route,click,form_submit,page_time,error,custom,visibility';
  var PAGE = 100;

  // ---- header ------------------------------------------------------------------

  // What the tracked app sent is shown isolated from the text around it.
  ['u-id', 'u-name', 'u-email', 'u-route'].forEach(function (id) { $(id).dir = 'auto'; });

  function renderHead() {
    var u = liveUser || stored;
    $('u-id').textContent = userId;
    if (erased) {
      $('u-email').textContent = 'This user\'s data was erased.';
      A.clear($('u-live'));
      $('u-live').appendChild(el('span', {class: 'badge off', text: 'Erased'}));
      ['u-call', 'u-erase', 'u-ack'].forEach(function (id) { $(id).disabled = true; });
      return;
    }
    if (!u) return;
    $('u-name').textContent = u.name || '';
    $('u-email').textContent = u.email || '';
    var tier = A.tierBadge(u.tier);
    $('u-tier').className = tier.className;
    $('u-tier').textContent = tier.textContent;
    var isLive = !!liveUser;
    A.clear($('u-live'));
    $('u-live').appendChild(A.presenceBadge(isLive ? liveUser : Object.assign({}, u, {live: false})));
    $('u-route').textContent = u.currentRoute || '–';
    $('u-route').title = u.currentRoute || '';
    $('u-events').textContent = String(isLive ? u.totalEvents : (u.sessionEvents !== undefined ? u.sessionEvents : u.totalEvents));
    $('u-errors').textContent = String(isLive ? u.totalErrors : (u.sessionErrors !== undefined ? u.sessionErrors : u.totalErrors));
    tick();

    var banner = $('u-support');
    var triggers = (liveUser && liveUser.triggers) || [];
    A.clear(banner);
    if (liveUser && (liveUser.needsSupport || triggers.length)) {
      banner.hidden = false;
      banner.className = 'support-banner' + (liveUser.needsSupport ? '' : ' acknowledged');
      banner.appendChild(el('strong', {text: liveUser.needsSupport ? 'Needs help' : 'Acknowledged' + (liveUser.acknowledgedBy ? ' by ' + liveUser.acknowledgedBy : '')}));
      triggers.forEach(function (t) {
        banner.appendChild(el('div', null, el('strong', {text: t.title}), t.reason ? ': ' + t.reason : '',
          t.since ? el('span', {class: 'muted', text: ' · since ' + A.clock(t.since)}) : null));
      });
    } else {
      banner.hidden = true;
    }
    $('u-ack').hidden = !(liveUser && liveUser.needsSupport);
  }

  function tick() {
    A.tickAll();
    var u = liveUser || stored;
    if (!u) return;
    var onPage = liveUser && liveUser.routeEnteredAt ? A.serverNow() - liveUser.routeEnteredAt : u.timeOnCurrentPageMs;
    $('u-onpage').textContent = A.duration(onPage);
    $('u-last').textContent = A.ago(u.lastEventAt);
  }

  var lastCalls = [];
  var INVITATION = {pending: 'invitation sent', joined: 'the user joined', declined: 'the user said \u201cnot now\u201d',
                    ignored: 'the user did not answer', replaced: 'replaced by a newer call'};

  function renderCalls(calls) {
    lastCalls = calls || [];
    var box = $('u-calls');
    A.clear(box);
    if (!calls || !calls.length) return;
    var last = calls[0];
    box.appendChild(el('span', null, 'Last video call started by ', el('strong', {text: last.startedBy}),
      ' ' + A.ago(last.startedAt) + ' · ',
      el('a', {href: last.url, target: '_blank', rel: 'noopener noreferrer', text: 'open the call link'}),
      last.invitation ? el('span', {class: 'call-invitation', 'data-invitation': last.invitation,
        text: ' · ' + (INVITATION[last.invitation] || last.invitation)}) : '',
      calls.length > 1 ? ' · ' + calls.length + ' calls in all' : ''));
  }

  /** A ``call`` message for this user: the invitation's news on the call line. */
  function callChanged(c) {
    var u = liveUser || stored;
    A.announceCall(c, u ? A.person(Object.assign({userId: userId}, u)) : userId);
    var shown = lastCalls.filter(function (x) { return x.id === c.callId; })[0];
    if (!shown) { reloadCalls(); return; }
    shown.invitation = c.status;
    renderCalls(lastCalls);
    var note = $('u-calls').querySelector('.call-invitation');
    if (note && c.status === 'pending') note.textContent = ' · ' + A.callStatusText(c);
  }

  function reloadCalls() {
    return A.api('/api/admin/user/video-calls?id=' + q).then(function (body) { renderCalls(body.calls); }).catch(function () {});
  }

  function loadUser() {
    return A.api('/api/admin/user?id=' + q).then(function (body) {
      A.setServerTime(body.serverTime);
      stored = body.summary;
      if (body.live) liveUser = body.live;
      renderCalls(body.videoCalls);
      renderHead();
    }).catch(function (err) {
      if (err.status === 404) {
        $('u-id').textContent = userId;
        $('u-email').textContent = 'No activity recorded for this user.';
      }
    });
  }

  // ---- alerts --------------------------------------------------------------------

  var DELIVERY = {
    sent: 'sent to Slack',
    pending: 'sending to Slack',
    suppressed: 'not sent to Slack: rate limit',
    failed: 'not delivered to Slack',
    disabled: 'dashboard only (no Slack set up)'
  };

  // What a resolved alert's ``resolution`` says: [badge, class, in a sentence].
  var RESOLUTION = {
    recovered: ['Recovered', 'ok', 'recovered'],
    user_left: ['User left', 'off', 'user left'],
    superseded: ['Replaced', 'off', 'replaced by a newer alert'],
    switched_off: ['Trigger off', 'off', 'closed: trigger turned off']
  };

  function alertItem(a) {
    var resolved = RESOLUTION[a.resolution] || ['Resolved', 'ok', 'resolved'];
    var acked = 'acknowledged' + (a.acknowledgedBy ? ' by ' + a.acknowledgedBy : '') + ' ' + A.ago(a.acknowledgedAt);
    var state = a.status === 'resolved'
      ? (a.acknowledgedAt && a.resolution === 'user_left' ? acked + ', then ' : '') + resolved[2] + ' ' + A.ago(a.resolvedAt)
      : a.status === 'acknowledged' ? acked : 'open';
    var badge = a.status === 'resolved'
      ? el('span', {class: 'badge ' + resolved[1], text: resolved[0]})
      : a.status === 'acknowledged'
        ? el('span', {class: 'badge', text: 'Acknowledged'})
        : el('span', {class: 'badge warn', text: 'Open'});
    // An open alert shows where the user is now (when they are live).
    var presence = a.status !== 'resolved' && liveUser ? A.presenceBadge(liveUser) : null;
    var delivery = DELIVERY[a.deliveryStatus] || a.deliveryStatus;
    if (a.deliveryStatus === 'failed' && a.lastError) delivery += ' (' + a.lastError + ')';
    if (a.suppressedCount) delivery += ' · ' + a.suppressedCount + ' later trigger' + (a.suppressedCount === 1 ? '' : 's') + ' held back';
    return el('li', {class: 'status-' + a.status + (a.resolution ? ' resolution-' + a.resolution : ''), 'data-alert': a.id},
      el('div', {class: 'alert-line'}, badge, ' ', el('strong', {text: a.title || a.trigger}), a.reason ? ': ' + a.reason : '',
        presence ? [' ', presence] : null),
      el('div', {class: 'muted'}, A.ago(a.openedAt) + (a.route ? ' on ' + a.route : '') + ' · ' + state),
      el('div', {class: 'delivery' + (a.deliveryStatus === 'failed' ? ' warn' : ' muted'), text: delivery}));
  }

  var alertsShown = null;  // the last alerts body, redrawn when the presence changes
  var alertsPresence = '';

  function presenceKey() {
    var p = liveUser ? A.presenceOf(liveUser) : null;
    return p ? p.state + '|' + p.since : '';
  }

  function renderAlertList() {
    var body = alertsShown;
    if (!body) return;
    alertsPresence = presenceKey();
    var box = $('user-alerts');
    A.clear(box);
    body.alerts.forEach(function (a) { box.appendChild(alertItem(a)); });
  }

  function loadAlerts() {
    return A.api('/api/admin/alerts?limit=20&userId=' + q).then(function (body) {
      alertsShown = body;
      renderAlertList();
      var open = body.alerts.filter(function (a) { return a.status !== 'resolved'; }).length;
      $('user-alerts-count').textContent = body.alerts.length
        ? (open ? open + ' unresolved · ' : '') + (body.nextBefore ? 'latest ' : '') + body.alerts.length + ' in all'
        : '';
      $('user-alerts-empty').textContent = body.alerts.length ? '' : 'No alerts for this user.';
      $('user-alerts-empty').hidden = !!body.alerts.length;
    }).catch(function (err) {
      $('user-alerts-empty').textContent = 'Could not load the alerts: ' + err.message;
    });
  }

  // ---- timeline ----------------------------------------------------------------

  function describe(e) {
    var route = function (r) { return el('span', {class: 'route', text: r, title: r}); };
    switch (e.type) {
      case 'route': return ['Went to ', route(e.route || '')];
      case 'click': return ['Clicked ', el('code', {text: e.element || ''}), e.text ? ' “' + e.text + '”' : ''];
      case 'form_submit': return ['Submitted a form', e.formId ? [' ', el('code', {text: e.formId})] : ''];
      case 'page_time': return ['Spent ' + A.duration(e.durationMs) + ' on ', route(e.route || '')];
      case 'error': return [e.message || 'Error'];
      case 'custom': {
        var data = e.data === undefined ? '' : JSON.stringify(e.data);
        if (data.length > 120) data = data.slice(0, 120) + '…';
        return [el('strong', {text: e.name || 'custom'}), data ? [' ', el('code', {text: data})] : ''];
      }
      case 'visibility':
        return [e.visibility === 'unload' ? 'Closed the page' : e.visibility === 'hidden' ? 'Switched away (tab hidden)' : 'Came back (tab visible)'];
      default: return [e.type];
    }
  }

  var KIND = {route: 'Page', click: 'Click', form_submit: 'Form', page_time: 'Time', error: 'Error', custom: 'Event', visibility: 'Tab', heartbeat: 'Here'};

  function timelineItem(e) {
    return el('li', {'data-id': e.id},
      el('time', {datetime: new Date(e.timestamp).toISOString(), title: A.dateTime(e.timestamp), text: A.clock(e.timestamp)}),
      el('span', {class: 'kind ' + e.type, text: KIND[e.type] || e.type}),
      el('span', {class: 'what'}, describe(e)));
  }

  function errorItem(e) {
    return el('li', {'data-id': e.id},
      el('div', {class: 'message', text: e.message || '(no message)'}),
      el('div', {class: 'where'}, A.dateTime(e.timestamp),
        e.route ? [' · on ', el('span', {class: 'route', text: e.route})] : '',
        e.source ? [' · ', el('code', {text: e.source})] : ''),
      e.stack ? el('details', null, el('summary', {text: 'Stack trace'}), el('pre', {text: e.stack})) : null);
  }

  function List(listId, emptyId, moreId, path, item, emptyText) {
    this.list = $(listId); this.empty = $(emptyId); this.more = $(moreId);
    this.path = path; this.item = item; this.emptyText = emptyText;
    this.before = null; this.newest = 0; this.count = 0;
    var self = this;
    this.more.addEventListener('click', function () { self.loadOlder(); });
  }

  List.prototype.url = function (before) {
    return this.path + (before ? '&before=' + before : '');
  };

  /**
   * Show what is new: the first page the first time; after that every event
   * stored since the newest one shown, page by page and oldest first, so none
   * is skipped however many arrived.  One refresh at a time.
   */
  List.prototype.refresh = function () {
    var self = this;
    self.running = (self.running || Promise.resolve()).then(function () {
      return self.newest ? self.catchUp() : self.loadFirst();
    }).catch(function (err) {
      self.empty.textContent = 'Could not load: ' + err.message;
      self.empty.hidden = false;
    });
    return self.running;
  };

  List.prototype.loadFirst = function () {
    var self = this;
    return A.api(self.url(null)).then(function (body) {
      A.clear(self.list);
      body.events.forEach(function (e) { self.list.appendChild(self.item(e)); });
      self.before = body.nextBefore;
      if (body.events.length) self.newest = body.events[0].id;
      self.count = body.events.length;
      self.done();
      return body;
    });
  };

  List.prototype.catchUp = function () {
    var self = this;
    return A.api(self.path + '&after=' + self.newest).then(function (body) {
      body.events.forEach(function (e) {
        if (e.id > self.newest) {
          self.list.insertBefore(self.item(e), self.list.firstChild);
          self.newest = e.id;
          self.count += 1;
        }
      });
      self.done();
      return body.nextAfter ? self.catchUp() : body;
    });
  };

  List.prototype.loadOlder = function () {
    var self = this;
    if (!self.before) return;
    self.more.disabled = true;
    A.api(self.url(self.before)).then(function (body) {
      body.events.forEach(function (e) { self.list.appendChild(self.item(e)); });
      self.before = body.nextBefore;
      self.count += body.events.length;
      self.done();
    }).finally(function () { self.more.disabled = false; });
  };

  List.prototype.done = function () {
    this.empty.textContent = this.list.children.length ? '' : this.emptyText;
    this.empty.hidden = !!this.list.children.length;
    this.more.hidden = !this.before;
  };

  var timeline = new List('timeline', 'timeline-empty', 'timeline-more',
    '/api/admin/user/events?id=' + q + '&type=' + TIMELINE_TYPES + '&limit=' + PAGE, timelineItem,
    'No activity recorded yet.');
  var errors = new List('errors', 'errors-empty', 'errors-more',
    '/api/admin/user/errors?id=' + q + '&limit=50', errorItem, 'No errors. 🎉');

  // ---- journey chart ---------------------------------------------------------------

  function renderJourney(j) {
    var box = $('journey');
    A.clear(box);
    var steps = j.steps.slice(-30);
    $('journey-note').textContent = j.steps.length > steps.length || j.truncated
      ? 'latest ' + steps.length + ' of ' + j.steps.length + (j.truncated ? '+' : '') + ' steps' : '';
    if (!steps.length) {
      box.appendChild(el('p', {class: 'empty', text: 'No page visits recorded yet.'}));
      return;
    }
    var S = A.svg;
    var rowH = 26, top = 8, width = 1000, timeW = 100, labelW = 240, barX = timeW + labelW + 10;
    var barMax = width - barX - 110;
    var longest = Math.max.apply(null, steps.map(function (s) { return s.timeSpentMs; }).concat([1000]));
    var height = top * 2 + steps.length * rowH;
    var chart = S('svg', {viewBox: '0 0 ' + width + ' ' + height, role: 'img',
      'aria-label': 'Route journey: ' + steps.length + ' steps'});
    chart.appendChild(S('line', {class: 'axis', x1: barX, y1: top - 4, x2: barX, y2: height - top + 4}));
    steps.forEach(function (s, i) {
      var y = top + i * rowH;
      var w = Math.max(3, Math.round(barMax * s.timeSpentMs / longest));
      var label = s.route.length > 30 ? s.route.slice(0, 29) + '…' : s.route;
      var cls = 'bar' + (s.ongoing ? ' ongoing' : s.closedPage ? ' closed' : '');
      var g = S('g', {class: 'step'},
        S('title', {text: s.route + ' · ' + A.duration(s.timeSpentMs) + (s.ongoing ? ' so far' : '')}),
        S('text', {class: 'time', x: 0, y: y + 16, text: A.clock(s.enteredAt)}),
        S('text', {class: 'label', x: timeW, y: y + 16, text: label}),
        S('rect', {class: cls, x: barX, y: y + 4, width: w, height: rowH - 9, rx: 3}),
        S('text', {class: 'time', x: barX + w + 8, y: y + 16,
          text: A.duration(s.timeSpentMs) + (s.ongoing ? ' · now' : s.closedPage ? ' · left' : '')}));
      if (i > 0) {
        g.appendChild(S('path', {class: 'connector', d: 'M' + (barX + 6) + ' ' + (y - 5) + ' v9'}));
      }
      chart.appendChild(g);
    });
    box.appendChild(chart);
    var totals = el('div', {class: 'totals'}, 'Time per page: ');
    j.routes.slice(0, 8).forEach(function (r) {
      totals.appendChild(el('span', null, el('strong', {text: r.route}), ' ' + A.duration(r.totalMs) + ' (' + r.visits + '×)'));
    });
    box.appendChild(totals);
  }

  function loadJourney() {
    return A.api('/api/admin/user/journey?id=' + q).then(function (j) {
      A.setServerTime(j.serverTime);
      renderJourney(j);
    }).catch(function (err) {
      A.clear($('journey'));
      $('journey').appendChild(el('p', {class: 'empty', text: 'Could not load the journey: ' + err.message}));
    });
  }

  function refreshLists() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    return Promise.all([timeline.refresh(), errors.refresh(), loadJourney(), loadAlerts()]).then(function () {
      $('errors-count').textContent = errors.count
        ? (errors.before ? errors.count + '+' : errors.count) + ' errors' : '';
    });
  }

  function scheduleRefresh() {
    if (refreshTimer === null) refreshTimer = setTimeout(refreshLists, 1500);
  }

  // ---- live ---------------------------------------------------------------------

  function onMessage(m) {
    if (erased) return;
    if (m.type === 'snapshot') {
      liveUser = null;
      m.users.forEach(function (u) { if (u.userId === userId) liveUser = u; });
      renderHead();
      if (presenceKey() !== alertsPresence) renderAlertList();
    } else if (m.type === 'user' && m.user.userId === userId) {
      liveUser = m.user;
      renderHead();
      if (presenceKey() !== alertsPresence) renderAlertList();
      if (m.user.totalEvents !== lastEvents) { lastEvents = m.user.totalEvents; scheduleRefresh(); }
    } else if (m.type === 'call' && m.call && m.call.userId === userId) {
      callChanged(m.call);
    } else if (m.type === 'alert' && m.alert && m.alert.userId === userId) {
      loadAlerts();
    } else if (m.type === 'user_left' && m.userId === userId) {
      if (liveUser) {
        stored = Object.assign({}, liveUser, {
          live: false, needsSupport: false, presence: 'gone', presenceSince: liveUser.lastEventAt
        });
      }
      liveUser = null;
      if (m.reason === 'erased') erased = true;
      renderHead();
      scheduleRefresh();
    }
  }

  $('u-call').addEventListener('click', function () {
    var button = this;
    A.startVideoCall(userId, button, liveUser).then(reloadCalls);
  });
  $('u-ack').addEventListener('click', function () { A.acknowledge(userId, this); });
  $('u-erase').addEventListener('click', function () {
    if (!window.confirm('Erase everything stored about ' + userId + '? This cannot be undone.')) return;
    var button = this;
    button.disabled = true;
    A.api('/api/admin/user/erase', {method: 'POST', body: {userId: userId}}).then(function (body) {
      erased = true;
      liveUser = null;
      renderHead();
      A.toast('Erased ' + body.erased.events + ' events of ' + userId + '.');
      A.clear($('timeline')); A.clear($('errors')); A.clear($('journey'));
      timeline.newest = 0; errors.newest = 0; timeline.count = 0; errors.count = 0;
      timeline.before = null; errors.before = null;
      timeline.done(); errors.done();
    }).catch(function (err) {
      button.disabled = false;
      A.toast('Could not erase: ' + err.message, {error: true});
    });
  });

  document.title = userId + ' · User activity · tippen-rt';
  loadUser().then(refreshLists);
  new A.LiveSocket(onMessage);
  setInterval(tick, 1000);
})();
