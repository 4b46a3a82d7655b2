// Backstop's page behaviour: small, dependency-free, and optional. Every page
// reads correctly without it; this script only adds copy buttons, live relative
// times, confirmation prompts, the live-update indicator, local times on the
// restore page and the audit log, and choices that fill in the form.
(function () {
  "use strict";

  var root = document.documentElement;
  root.classList.add("js");

  // Clock skew between this browser and the server, in milliseconds, so that
  // "4 min ago" agrees with what the server rendered even if the clocks differ.
  var skew = 0;
  var serverNow = Date.parse(root.getAttribute("data-server-now") || "");
  if (!isNaN(serverNow)) {
    skew = serverNow - Date.now();
    // Ignore tiny differences (network latency) and absurd ones (cached page).
    if (Math.abs(skew) < 2000 || Math.abs(skew) > 86400000) {
      skew = 0;
    }
  }

  // relative mirrors web.RelText in Go: keep the two in step.
  function relative(then, now) {
    var diff = now - then;
    var future = diff < 0;
    var s = Math.floor(Math.abs(diff) / 1000);
    if (s < 5) {
      return "just now";
    }
    var text;
    if (s < 60) {
      text = s + " s";
    } else if (s < 3600) {
      text = Math.floor(s / 60) + " min";
    } else if (s < 86400) {
      text = Math.floor(s / 3600) + " h";
    } else if (s < 45 * 86400) {
      text = Math.floor(s / 86400) + " d";
    } else {
      return null; // keep the server's absolute date
    }
    return future ? "in " + text : text + " ago";
  }

  function updateTimes() {
    var now = Date.now() + skew;
    var nodes = document.querySelectorAll("time[data-rel][datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var then = Date.parse(el.getAttribute("datetime"));
      if (isNaN(then)) {
        continue;
      }
      var text = relative(then, now);
      if (text !== null && el.textContent !== text) {
        el.textContent = text;
      }
    }
  }

  // Copy buttons are rendered hidden (they do nothing without script) and
  // shown here.
  function showCopyButtons() {
    var buttons = document.querySelectorAll("button[data-copy][hidden]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
    }
  }

  var statusEl = null;
  function announce(message) {
    if (!statusEl) {
      statusEl = document.createElement("div");
      statusEl.className = "visually-hidden";
      statusEl.setAttribute("role", "status");
      statusEl.setAttribute("aria-live", "polite");
      document.body.appendChild(statusEl);
    }
    statusEl.textContent = "";
    window.setTimeout(function () {
      statusEl.textContent = message;
    }, 50);
  }

  // ---- Restore page ----

  // utcOffset formats the browser's offset from UTC at date d: "UTC+1",
  // "UTC-4", "UTC+5:30".
  function utcOffset(d) {
    var m = -d.getTimezoneOffset();
    var sign = m < 0 ? "-" : "+";
    m = Math.abs(m);
    var h = Math.floor(m / 60);
    var rest = m % 60;
    return "UTC" + sign + h + (rest ? ":" + (rest < 10 ? "0" : "") + rest : "");
  }

  // An element [data-local-time-for=ID] shows the value of the datetime-local
  // input #ID, which holds a UTC time, in the browser's own time zone.
  function showLocalTime(out) {
    var input = document.getElementById(out.getAttribute("data-local-time-for"));
    if (!input) {
      return;
    }
    var ms = input.value ? Date.parse(input.value + "Z") : NaN;
    if (isNaN(ms)) {
      out.textContent = "";
      return;
    }
    var d = new Date(ms);
    if (d.getTimezoneOffset() === 0) {
      out.textContent = "= the same in your time zone (UTC)";
      return;
    }
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      zone = "";
    }
    var text;
    try {
      text = new Intl.DateTimeFormat(undefined, {
        month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
      }).format(d);
    } catch (e) {
      text = d.toLocaleString();
    }
    out.textContent = "= " + text + " your time (" + (zone ? zone + ", " : "") + utcOffset(d) + ")";
  }

  function localTimes() {
    var outs = document.querySelectorAll("[data-local-time-for]");
    for (var i = 0; i < outs.length; i++) {
      showLocalTime(outs[i]);
    }
  }

  // Editing a field that belongs to a choice ([data-selects=RADIO-ID]) selects
  // that choice. Focus alone does not, so that tabbing through the form changes
  // nothing.
  function selectChoice(event) {
    var el = event.target;
    var id = el && el.getAttribute && el.getAttribute("data-selects");
    if (!id) {
      return;
    }
    var radio = document.getElementById(id);
    if (radio && !radio.checked && !radio.disabled) {
      radio.checked = true;
      radio.dispatchEvent(new Event("change", { bubbles: true }));
    }
  }
  document.addEventListener("input", selectChoice, true);
  document.addEventListener("change", selectChoice, true);
  document.addEventListener("click", selectChoice, true);

  document.addEventListener("input", function (event) {
    if (event.target && event.target.type === "datetime-local") {
      localTimes();
    }
  });

  // A link [data-fill-mode][data-fill-value] (a backup on the timeline, the
  // nearest valid target) fills in the target instead of reloading the page;
  // the form's change handler then fetches the plan. Without the form's inputs
  // or without htmx, the link is followed as usual.
  var fillInputs = { time: "restore-time", lsn: "restore-lsn", name: "restore-point" };
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-fill-mode]");
    if (!link || !window.htmx || event.ctrlKey || event.metaKey || event.shiftKey) {
      return;
    }
    var mode = link.getAttribute("data-fill-mode");
    var radio = document.querySelector('input[name="mode"][value="' + mode + '"]');
    if (!radio || radio.disabled) {
      return;
    }
    var input = null;
    if (fillInputs[mode]) {
      input = document.getElementById(fillInputs[mode]);
      var value = link.getAttribute("data-fill-value") || "";
      if (!input) {
        return;
      }
      input.value = value;
      if (input.value !== value) {
        return; // e.g. a select without that option: let the server decide
      }
    }
    event.preventDefault();
    radio.checked = true;
    (input || radio).dispatchEvent(new Event("change", { bubbles: true }));
    (input || radio).focus();
    localTimes();
  });

  // After the plan is swapped in, tell screen readers what changed and keep the
  // time input's invalid state and descriptions in step with the new plan.
  var shownPlan = null;
  function planSwapped() {
    var plan = document.getElementById("restore-plan");
    if (!plan || plan === shownPlan) {
      return;
    }
    var first = shownPlan === null;
    shownPlan = plan;
    var planErr = !!document.getElementById("restore-plan-error");
    var inputs = document.querySelectorAll("[data-error-slot]");
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      var slot = document.getElementById(input.getAttribute("data-error-slot"));
      var slotErr = !!(slot && slot.firstElementChild);
      var radio = document.querySelector('input[name="mode"][value="' + input.getAttribute("data-target-mode") + '"]');
      var refused = planErr && !!radio && radio.checked;
      var ids = (input.getAttribute("data-help") || "").split(" ").filter(Boolean);
      if (slotErr) {
        ids.push(slot.id);
      }
      if (refused) {
        ids.push("restore-plan-error");
      }
      if (ids.length) {
        input.setAttribute("aria-describedby", ids.join(" "));
      } else {
        input.removeAttribute("aria-describedby");
      }
      if (slotErr || refused) {
        input.setAttribute("aria-invalid", "true");
      } else {
        input.removeAttribute("aria-invalid");
      }
      var fields = input.closest(".choice-fields");
      if (fields) {
        fields.classList.toggle("field--invalid", slotErr || refused);
      }
    }
    if (!first && plan.getAttribute("data-announce")) {
      announce(plan.getAttribute("data-announce"));
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallbackCopy(text);
      });
    }
    return fallbackCopy(text);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    event.preventDefault();
    var label = button.querySelector(".copy-label");
    copy(button.getAttribute("data-copy")).then(
      function () {
        button.classList.add("is-copied");
        if (label) {
          label.textContent = "Copied";
        }
        announce("Copied to clipboard");
      },
      function () {
        announce("Could not copy; select the text and copy it by hand");
      }
    ).then(function () {
      window.setTimeout(function () {
        button.classList.remove("is-copied");
        if (label) {
          label.textContent = "Copy";
        }
      }, 1500);
    });
  });

  // Forms marked data-confirm ask before they submit.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }, true);

  // The live-update indicator tells whether the websocket is connected.
  function setLive(state, text) {
    var nodes = document.querySelectorAll("[data-live-status]");
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].hidden = false;
      nodes[i].setAttribute("data-state", state);
      var label = nodes[i].querySelector(".live-label");
      if (label) {
        label.textContent = text;
      }
    }
  }

  // Absolute times (time[data-abs], the audit log) are rendered in UTC; a button
  // [data-time-toggle] switches them to this browser's time zone and back, and the
  // choice is remembered for the next page.
  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function absText(d, local) {
    if (!local) {
      return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
        pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
    }
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function absLocal() {
    try {
      return window.localStorage.getItem("backstop.localTimes") === "1";
    } catch (e) {
      return false;
    }
  }

  function absTimes() {
    var local = absLocal();
    var nodes = document.querySelectorAll("time[data-abs][datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var d = new Date(nodes[i].getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        nodes[i].textContent = absText(d, local);
        nodes[i].title = absText(d, !local) + (local ? " UTC" : " your time");
      }
    }
    var zones = document.querySelectorAll("[data-time-zone]");
    for (var j = 0; j < zones.length; j++) {
      zones[j].textContent = local ? "(your time, " + utcOffset(new Date()) + ")" : "(UTC)";
    }
    var buttons = document.querySelectorAll("button[data-time-toggle]");
    for (var k = 0; k < buttons.length; k++) {
      buttons[k].hidden = false;
      buttons[k].textContent = local ? "Show UTC" : "Show local time";
      buttons[k].setAttribute("aria-pressed", local ? "true" : "false");
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-time-toggle]");
    if (!button) {
      return;
    }
    try {
      window.localStorage.setItem("backstop.localTimes", absLocal() ? "0" : "1");
    } catch (e) {
      return;
    }
    absTimes();
  });

  function refresh() {
    showCopyButtons();
    updateTimes();
    localTimes();
    absTimes();
    planSwapped();
  }

  // ---- Live updates ----
  //
  // The server sends, on every connection, the state of what the page shows and then
  // what changes; so the page only has to stay connected. The websocket extension
  // (static/ws.js, vendored unmodified) reconnects by itself only after closes 1006
  // (abnormal), 1011, 1012 and 1013: after 1001 (going away), which the server sends
  // when it stops or restarts or drops a page that fell behind, and after any other
  // code, it gives up and the page would stay disconnected. The page reconnects after those as well, with the same backoff;
  // not after 1008, which says the session ended: signing in again loads a new page.
  var wsRetriedByExtension = [1006, 1011, 1012, 1013];
  var wsSessionEnded = 1008;

  // wsDelay is the wait before reconnect attempt n (0 first): doubling from half a
  // second up to 15 s, half of it random so that pages do not all come back at once.
  function wsDelay(n) {
    var ceiling = Math.min(15000, 500 * Math.pow(2, Math.min(n, 5)));
    return ceiling / 2 + Math.random() * ceiling / 2;
  }
  if (window.htmx) {
    htmx.config.wsReconnectDelay = wsDelay;
  }

  // Per connecting element: how many reconnects were tried since the last open, and
  // whether it was ever open (a later connect is a reconnect).
  var wsRetries = new WeakMap();
  var wsOpened = new WeakSet();

  document.addEventListener("htmx:wsConnecting", function (e) {
    if (wsOpened.has(e.target)) {
      setLive("closed", "Reconnecting…");
    } else {
      setLive("connecting", "Connecting…");
    }
  });
  document.addEventListener("htmx:wsOpen", function (e) {
    wsRetries.delete(e.target);
    wsOpened.add(e.target);
    setLive("open", "Live");
  });
  document.addEventListener("htmx:wsClose", function (e) {
    var elt = e.target;
    if (!document.body.contains(elt)) {
      return; // the live part left the page: nothing to reconnect
    }
    var code = e.detail && e.detail.event ? e.detail.event.code : 0;
    wsOpened.add(elt);
    if (code === wsSessionEnded) {
      setLive("closed", "Signed out");
      return;
    }
    setLive("closed", "Reconnecting…");
    if (wsRetriedByExtension.indexOf(code) >= 0) {
      return; // ws.js reconnects, after wsDelay
    }
    var wrapper = e.detail && e.detail.socketWrapper;
    if (!wrapper || typeof wrapper.reconnect !== "function") {
      return;
    }
    var n = wsRetries.get(elt) || 0;
    wsRetries.set(elt, n + 1);
    window.setTimeout(function () {
      if (document.body.contains(elt)) {
        wrapper.reconnect();
      }
    }, wsDelay(n));
  });

  // The server pushes one fragment per message, addressed by id to what may be on
  // the page; one whose target this page does not show is dropped here, where htmx
  // would report a missing swap target as an error. A row inserted at the top or the
  // end of a list (hx-swap-oob="afterbegin" or "beforeend") that the page already
  // has replaces it there instead: every connection starts with the list's rows, and
  // each must be shown once, in place, whether the page had it or not.
  document.addEventListener("htmx:wsBeforeMessage", function (e) {
    var tpl = document.createElement("template");
    tpl.innerHTML = e.detail.message;
    var el = tpl.content.firstElementChild;
    if (!el || !el.id) {
      return;
    }
    if (!document.getElementById(el.id)) {
      e.preventDefault();
      return;
    }
    var how = (el.getAttribute("hx-swap-oob") || "").split(":")[0].trim();
    var item = el.firstElementChild;
    var present = (how === "afterbegin" || how === "beforeend") && item && item.id &&
      document.getElementById(item.id);
    if (present) {
      e.preventDefault();
      htmx.swap(present, item.outerHTML, { swapStyle: "outerHTML", ignoreTitle: true });
    }
  });
  // Content swapped in over the websocket or by htmx gets the same treatment
  // as the page itself.
  document.addEventListener("htmx:wsAfterMessage", refresh);
  document.addEventListener("htmx:afterSettle", refresh);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", refresh);
  } else {
    refresh();
  }
  window.setInterval(updateTimes, 15000);
})();
