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
})();
