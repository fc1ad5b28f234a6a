// The pages' one script (served from /static: the Content-Security-Policy allows no inline
// script or event attribute). Each part looks for what it works on and does nothing without it.
(function () {
  'use strict';

  // A check box that ticks every box of a name: <input type="checkbox" data-select-all="clue">.
  document.querySelectorAll('input[data-select-all]').forEach(function (all) {
    all.addEventListener('click', function () {
      document.querySelectorAll('input[name="' + all.dataset.selectAll + '"]').forEach(function (b) { b.checked = all.checked; });
    });
  });

  // A form asked about once more before sending: <form data-confirm="确定…？">.
  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // The printed records' buttons: print, and back to where one came from.
  document.querySelectorAll('[data-print]').forEach(function (b) {
    b.addEventListener('click', function () { window.print(); });
  });
  document.querySelectorAll('a[data-back]').forEach(function (a) {
    a.addEventListener('click', function (event) {
      if (window.history.length > 1) { event.preventDefault(); window.history.back(); }
    });
  });

  // The attachment form (_attachments.html). Said before sending, on the phone: a file the server
  // would refuse is not uploaded over a data plan.
  var form = document.getElementById('attachment-form'), say = document.getElementById('att-chosen'),
      send = document.getElementById('att-upload');
  if (form && send && say) {
    var maxBytes = +form.dataset.maxBytes, maxMb = form.dataset.maxMb, left = +form.dataset.left,
        maxFiles = form.dataset.maxFiles;
    var check = function () {
      var files = [];
      form.querySelectorAll('input[type=file]').forEach(function (i) { for (var f of i.files) files.push(f); });
      var problem = '';
      files.forEach(function (f) {
        if (!problem && f.size > maxBytes) problem = '“' + f.name + '”文件超过 ' + maxMb + ' MB，请压缩或拍得小一些后再上传';
      });
      if (!problem && files.length > left) problem = '每次核实最多 ' + maxFiles + ' 个附件，本轮还可上传 ' + left + ' 个';
      say.textContent = problem || (files.length ? '已选 ' + files.length + ' 个文件：' + files.map(function (f) { return f.name; }).join('、') : '');
      say.className = problem ? 'overdue' : 'muted';
      send.disabled = !files.length || !!problem;
    };
    form.addEventListener('change', check);
    // Signing sends the finding only: a file chosen but not uploaded was lost without a word.
    var verify = document.getElementById('verify-form');
    if (verify) {
      verify.addEventListener('submit', function (event) {
        var chosen = 0;
        form.querySelectorAll('input[type=file]').forEach(function (i) { chosen += i.files.length; });
        if (chosen && !window.confirm('您选了 ' + chosen + ' 个附件，但还没有点“上传”。现在签字，附件不会保存。\n' +
                                      '要先上传附件，请点“取消”，再点附件旁的“上传”。')) event.preventDefault();
      });
    }
  }

  // What a clerk typed into the signing form, kept in this window until it is signed: a session
  // that ended meanwhile (idle too long, signed out in another window) led to the login page, and
  // a finding written after a day's visits was lost; so did an attachment uploaded before signing
  // (the page reloads). Keyed by the form, the account and the round of signing (data-draft): once
  // signed or amended, the round moves on and the draft is never offered again, nor to another
  // account signing in on this window. sessionStorage: this window only, gone when it closes, and
  // emptied by signing out.
  var sign = document.getElementById('verify-form');
  var storage = null;
  try { storage = window.sessionStorage; } catch (e) { storage = null; }
  if (sign && storage && sign.dataset.draft !== undefined) {
    var key = 'bidui-draft:' + sign.getAttribute('action') + ':' + sign.dataset.draft;
    var names = ['outcome', 'action', 'verified_on', 'finding', 'detail'];
    var values = function () {
      var d = {};
      names.forEach(function (n) {
        var f = sign.elements[n];
        if (f) d[n] = f.type === 'checkbox' ? f.checked : f.value;
      });
      return d;
    };
    var shown = values(), draft = null;
    try { draft = JSON.parse(storage.getItem(key) || 'null'); } catch (e) { draft = null; }
    if (draft && (draft.finding || draft.outcome) && JSON.stringify(draft) !== JSON.stringify(shown)) {
      names.forEach(function (n) {
        var f = sign.elements[n];
        if (!f || !(n in draft)) return;
        if (f.type === 'checkbox') f.checked = !!draft[n]; else f.value = draft[n];
      });
      var note = document.createElement('p');
      note.className = 'msg ok';
      note.id = 'draft-restored';
      note.textContent = '已恢复您在本窗口填写、但还没有签字的内容，请核对后再签字。';
      sign.insertBefore(note, sign.firstChild);
    }
    var keep = function () {
      try { storage.setItem(key, JSON.stringify(values())); } catch (e) { /* full or refused: nothing kept */ }
    };
    sign.addEventListener('input', keep);
    sign.addEventListener('change', keep);
  }

  // A form sent back with a problem says it beside the form too: at the top only, on a phone it
  // was a long scroll away from the fields to mend.
  var problem = document.getElementById('form-error');
  if (problem) problem.scrollIntoView({block: 'center'});

  // A form that changes something is sent once: a double click on 确认销号 sent it twice, and the
  // second answered 没有销号任何线索 over the clue the first had closed (the ledger also takes a
  // repeat of one's own last action as done: bidui.clues.actions._repeated). Listened for on the
  // document, so a form a confirm() above stopped is not counted as sent; free again after a while
  // (a connection that dropped may be tried again) and when the page comes back from the history.
  document.addEventListener('submit', function (event) {
    var sent = event.target;
    if (!sent || (sent.getAttribute('method') || 'get').toLowerCase() !== 'post' || event.defaultPrevented) return;
    if (sent.dataset.sending) { event.preventDefault(); return; }
    sent.dataset.sending = '1';
    window.setTimeout(function () { delete sent.dataset.sending; }, 8000);
  });
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) document.querySelectorAll('form[data-sending]').forEach(function (f) { delete f.dataset.sending; });
  });

  // Signing out leaves no typed finding in the window (a household's circumstances).
  document.querySelectorAll('form[action="/logout"]').forEach(function (out) {
    out.addEventListener('submit', function () {
      try {
        for (var i = window.sessionStorage.length - 1; i >= 0; i--) {
          var k = window.sessionStorage.key(i);
          if (k && k.indexOf('bidui-draft:') === 0) window.sessionStorage.removeItem(k);
        }
      } catch (e) { /* storage refused: nothing was kept */ }
    });
  });
})();
