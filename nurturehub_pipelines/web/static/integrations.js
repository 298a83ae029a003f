// The integrations page without reloads: local times, a quiet refresh of the cards, and Sync Now /
// Retry through the JSON API. Without this script the page still reads and its forms still work.
(function () {
  "use strict";

  var container = document.getElementById("cards");
  if (!container) return;
  var refreshUrl = container.getAttribute("data-refresh-url");
  var refreshMs = parseInt(container.getAttribute("data-refresh-ms"), 10) || 3000;
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var note = document.getElementById("refresh-note");
  var lastHtml = {};      // card id -> the server's HTML of it, to swap only cards that changed
  var seenRows = {};      // log ids already shown, to mark new rows
  var notices = {};       // card id -> {text, kind, until}: what a click said, kept across refreshes
  var timer = null;
  var inFlight = false;

  var formats = {
    datetime: new Intl.DateTimeFormat(undefined, {
      day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit"
    }),
    seconds: new Intl.DateTimeFormat(undefined, {
      day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit"
    })
  };
  var full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  var UNITS = [["day", 86400], ["hour", 3600], ["minute", 60]];

  function localiseTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      var format = formats[el.getAttribute("data-local")] || formats.datetime;
      if (isNaN(when.getTime())) return;
      el.textContent = format.format(when);
      el.title = full.format(when);
    });
    updateAgo(root);
  }

  // "5 minutes ago" / "in 3 hours" beside the last and next sync, kept current on every refresh.
  function updateAgo(root) {
    if (!relative) return;
    root.querySelectorAll("[data-ago]").forEach(function (el) {
      var seconds = (new Date(el.getAttribute("data-ago")).getTime() - Date.now()) / 1000;
      if (isNaN(seconds)) return;
      var unit = UNITS.find(function (u) { return Math.abs(seconds) >= u[1]; });
      el.textContent = unit ? relative.format(Math.round(seconds / unit[1]), unit[0]) : (seconds < 0 ? "just now" : "in a moment");
    });
  }

  var tzNote = document.getElementById("tz-note");
  if (tzNote) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    tzNote.textContent = zone ? "Times are in your time zone (" + zone.replace(/_/g, " ") + ")" : "Times are in your time zone";
  }

  function cardsOf(root) {
    var found = {};
    root.querySelectorAll("[data-card]").forEach(function (el) { found[el.getAttribute("data-card")] = el; });
    return found;
  }

  function rememberRows(root, markNew) {
    root.querySelectorAll("tr[data-log-id]").forEach(function (row) {
      var id = row.getAttribute("data-log-id");
      if (markNew && !seenRows[id]) {
        row.classList.add("is-new");
        window.setTimeout(function () { row.classList.remove("is-new"); }, 4000);
      }
      seenRows[id] = true;
    });
  }

  function applyNotice(id, card) {
    var notice = notices[id];
    var el = card.querySelector(".notice");
    if (!notice || !el) return;
    if (notice.until < Date.now()) { delete notices[id]; delete lastHtml[id]; return; }
    el.textContent = notice.text;
    el.className = "notice notice-" + notice.kind;
  }

  // Keep what the reader was doing: open/closed log, its scroll position, and keyboard focus.
  function swapCard(oldCard, newCard) {
    var oldLog = oldCard.querySelector("details.log");
    var newLog = newCard.querySelector("details.log");
    if (oldLog && newLog) newLog.open = oldLog.open;
    var oldWrap = oldCard.querySelector(".table-wrap");
    var scrollTop = oldWrap ? oldWrap.scrollTop : 0;
    var focusedId = oldCard.contains(document.activeElement) ? document.activeElement.id : null;
    oldCard.replaceWith(newCard);
    var newWrap = newCard.querySelector(".table-wrap");
    if (newWrap) newWrap.scrollTop = scrollTop;
    if (focusedId) {
      var again = document.getElementById(focusedId);
      if (again && !again.disabled) again.focus({ preventScroll: true });
    }
  }

  function render(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = cardsOf(template.content);
    var current = cardsOf(container);
    var sameSet = Object.keys(fresh).join() === Object.keys(current).join();
    if (!sameSet) container.replaceChildren(template.content);
    Object.keys(fresh).forEach(function (id) {
      var card = sameSet ? fresh[id] : cardsOf(container)[id];
      var source = card.outerHTML;
      if (sameSet && lastHtml[id] === source) { applyNotice(id, current[id]); return; }
      // Someone is typing new credentials into this card: leave it alone until the form is closed.
      if (sameSet && current[id].querySelector("details.reconnect[open]")) return;
      lastHtml[id] = source;
      if (sameSet) swapCard(current[id], card);
      localiseTimes(card);
      rememberRows(card, true);
      applyNotice(id, card);
    });
  }

  function showNote(text, stale) {
    if (!note) return;
    note.hidden = false;
    note.textContent = text;
    note.classList.toggle("is-stale", !!stale);
  }

  function refresh() {
    if (inFlight || document.hidden) return Promise.resolve();
    inFlight = true;
    return fetch(refreshUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (res) {
        if (res.redirected || res.status === 401) {
          window.location.assign("/signin?next=" + encodeURIComponent(window.location.pathname));
          return;
        }
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text().then(function (html) {
          render(html);
          updateAgo(container);
          showNote("Updates automatically", false);
        });
      })
      .catch(function () { showNote("Can't reach NurtureHub, retrying…", true); })
      .finally(function () { inFlight = false; });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () { refresh().then(schedule); }, refreshMs);
  }

  var KINDS = { 202: "ok", 409: "info", 429: "error" };

  function submitThroughApi(form) {
    var card = form.closest("[data-card]");
    var id = card ? card.getAttribute("data-card") : null;
    var button = form.querySelector("button");
    if (button) { button.disabled = true; button.classList.add("is-busy"); }
    return fetch(form.getAttribute("data-api"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" }
    })
      .then(function (res) {
        if (res.status === 401) { window.location.assign("/signin"); return; }
        return res.json().catch(function () { return {}; }).then(function (body) {
          var text = res.status === 202 ? "Sync requested. It starts within a few seconds." : body.detail;
          var retry = res.headers.get("Retry-After");
          if (res.status === 429 && retry) text += " (you can try again in " + Math.ceil(retry / 60) + " min)";
          if (id) notices[id] = { text: text || "Something went wrong.", kind: KINDS[res.status] || "error", until: Date.now() + 15000 };
        });
      })
      .catch(function () {
        if (id) notices[id] = { text: "Can't reach NurtureHub. Try again.", kind: "error", until: Date.now() + 15000 };
      })
      .then(function () {
        if (id) delete lastHtml[id];  // re-render this card even if the server's HTML is unchanged
        if (button) { button.disabled = false; button.classList.remove("is-busy"); }
        return refresh();
      });
  }

  container.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-api]") || !window.fetch) return;
    event.preventDefault();
    submitThroughApi(form);
  });

  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  // A notice the server rendered after a plain form post (Pause, Resume, Reconnect) stays a while,
  // as a notice from a click does, rather than vanishing with the card's first refresh.
  var rendered = cardsOf(container);
  Object.keys(rendered).forEach(function (id) {
    lastHtml[id] = null;
    var el = rendered[id].querySelector(".notice");
    var kind = el && (el.className.match(/notice-(\w+)/) || [])[1];
    if (kind && el.textContent.trim()) notices[id] = { text: el.textContent.trim(), kind: kind, until: Date.now() + 15000 };
  });
  localiseTimes(container);
  rememberRows(container, false);
  showNote("Updates automatically", false);
  refresh().then(schedule);
})();
