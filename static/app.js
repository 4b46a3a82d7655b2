// Backstop's page behaviour: small, dependency-free, and optional. Every page
// reads correctly without it; this script only adds copy buttons, live relative
// times, confirmation prompts and the live-update indicator.
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

  function refresh() {
    showCopyButtons();
    updateTimes();
  }

  document.addEventListener("htmx:wsConnecting", function () {
    setLive("connecting", "Connecting…");
  });
  document.addEventListener("htmx:wsOpen", function () {
    setLive("open", "Live");
  });
  document.addEventListener("htmx:wsClose", function () {
    setLive("closed", "Reconnecting…");
  });
  // The server pushes one fragment per message, addressed by id to what may be on
  // the page; one whose target this page does not show is dropped here, where htmx
  // would report a missing swap target as an error.
  document.addEventListener("htmx:wsBeforeMessage", function (e) {
    var tpl = document.createElement("template");
    tpl.innerHTML = e.detail.message;
    var el = tpl.content.firstElementChild;
    if (el && el.id && !document.getElementById(el.id)) {
      e.preventDefault();
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
