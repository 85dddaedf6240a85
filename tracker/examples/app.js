// A tiny single-page app: history.pushState routing, no framework.
(function () {
  'use strict';
  var view = document.getElementById('view');
  var pages = {
    '/demo/app': 'page-home',
    '/demo/app/billing': 'page-billing',
    '/demo/app/settings': 'page-settings'
  };
  var clicks = 0;

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
      case 'secret-button':
        status.textContent = 'Recovery codes: (hidden in this demo)';
        break;
    }
  });

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
