// switchboard hosted verification page: progressive enhancement only. The page works without
// this script; with it, the number is checked as it is typed (by the sidecar, with the same
// parser as the API), the resend button counts its cooldown down, a code delivered by SMS is
// offered by the browser (WebOTP), and a form cannot be sent twice.
"use strict";
(function () {
  var form = document.querySelector("form[action$='/send']");
  var phone = document.getElementById("phone_number");
  var country = document.getElementById("country");
  var hint = document.getElementById("phone_hint");
  if (form && phone && country && hint) {
    var base = form.getAttribute("action").replace(/\/send$/, "");
    var original = hint.textContent;
    var timer = null;
    var check = function () {
      var digits = phone.value.replace(/[^0-9+]/g, "");
      if (digits.length < 4) {
        hint.textContent = original;
        phone.removeAttribute("aria-invalid");
        return;
      }
      var url = base + "/validate?country=" + encodeURIComponent(country.value) +
        "&phone_number=" + encodeURIComponent(phone.value);
      fetch(url, { credentials: "omit" }).then(function (r) { return r.json(); }).then(function (a) {
        if (a.valid) {
          hint.textContent = a.display;
          phone.setAttribute("aria-invalid", "false");
        } else {
          hint.textContent = original;
          phone.setAttribute("aria-invalid", "true");
        }
      }).catch(function () {});
    };
    var later = function () {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    };
    phone.addEventListener("input", later);
    country.addEventListener("change", later);
  }

  var resend = document.querySelector("button[data-cooldown]");
  var note = document.getElementById("cooldown");
  if (resend && note) {
    var left = parseInt(resend.getAttribute("data-cooldown"), 10) || 0;
    var template = note.getAttribute("data-template") || "";
    var tick = function () {
      if (left <= 0) {
        resend.disabled = false;
        note.textContent = "";
        return;
      }
      resend.disabled = true;
      note.textContent = template.replace("{n}", String(left));
      left -= 1;
      setTimeout(tick, 1000);
    };
    tick();
  }

  var code = document.getElementById("code");
  if (code && "OTPCredential" in window) {
    var abort = new AbortController();
    navigator.credentials.get({ otp: { transport: ["sms"] }, signal: abort.signal })
      .then(function (otp) {
        if (otp && otp.code) {
          code.value = otp.code;
          code.form.requestSubmit();
        }
      }).catch(function () {});
    code.form.addEventListener("submit", function () { abort.abort(); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("form"), function (f) {
    f.addEventListener("submit", function () {
      var b = f.querySelector("button[type=submit]");
      if (b) {
        setTimeout(function () { b.disabled = true; }, 0);
      }
    });
  });
})();
