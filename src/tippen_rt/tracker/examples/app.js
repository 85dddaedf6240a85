// A tiny single-page app: history.pushState routing, no framework.
(function () {
  'use strict';
  var view = document.getElementById('view');
  var pages = {
    '/demo/app': 'page-home',
    '/demo/app/billing': 'page-billing',
    '/demo/app/settings': 'page-settings'
  };
  var clicks = 0, tries = 0, thrown = 0;

  function render() {
    var id = pages[location.pathname.replace(/\/$/, '')] || 'page-home';
    view.replaceChildren(document.getElementById(id).content.cloneNode(true));
    document.getElementById('help').hidden = location.hash !== '#/help';
    document.title = view.querySelector('h1').textContent + ' · Acme Notes';
  }

  function go(path) {
    history.pushState({}, '', path);
    render();
  }

  document.addEventListener('click', function (e) {
    var link = e.target.closest('a[data-link]');
    if (link) {
      e.preventDefault();
      go(link.getAttribute('href'));
      return;
    }
    var button = e.target.closest('button');
    if (!button) return;
    var status = document.getElementById('status');
    switch (button.id) {
      case 'count':
        clicks += 1;
        document.getElementById('count-value').textContent = String(clicks);
        break;
      case 'create-note':
        status.textContent = 'Note created.';
        break;
      case 'invite':
        // A custom event, with data of the app's choosing.
        tippen.track('invite_clicked', { plan: 'team', seats: 3 });
        status.textContent = 'Invitation sent.';
        break;
      case 'break':
        // An uncaught error in the host page: reported, and the page keeps working.
        throw new Error('Demo failure: could not create the report');
      case 'reject':
        Promise.reject(new Error('Demo failure: request rejected'));
        break;
      case 'throw-error':
        // A different message each time: the tracker reports one error once in 10 s.
        thrown += 1;
        throw new Error('Demo failure #' + thrown + ': the note could not be saved');
      case 'keep-trying':
        tries += 1;
        document.getElementById('tries').textContent = String(tries);
        break;
      case 'switch-thresholds':
        switchThresholds(button);
        break;
      case 'secret-button':
        status.textContent = 'Recovery codes: (hidden in this demo)';
        break;
    }
  });

  // The demo tenant's short thresholds on or off; the page comes back with them.
  function switchThresholds(button) {
    var status = document.getElementById('switch-status');
    button.disabled = true;
    fetch('/demo/thresholds', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ short: button.getAttribute('data-switch-to') === 'short' })
    }).then(function (response) {
      if (response.ok) return location.reload();
      return response.json().then(function (body) { throw new Error(body.error.message); });
    }).catch(function (e) {
      status.textContent = 'Could not switch: ' + e.message;
      button.disabled = false;
    });
  }

  document.addEventListener('submit', function (e) {
    e.preventDefault(); // the demo keeps everything in the page
    if (e.target.id === 'account-form') {
      document.getElementById('saved').textContent = 'Saved.';
      e.target.reset();
    }
  });

  window.addEventListener('popstate', render);
  window.addEventListener('hashchange', render);
  render();
})();
