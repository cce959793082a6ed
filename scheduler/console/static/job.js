/* Takt console: a job's live status, flash messages that go away, Flower links that say
   when Flower no longer holds the task. No framework, no build; the pages work without it.

   - [data-job-live] (the Jobs page's panel, the job page): polls its data-status-url
     (GET, JSON) every second while the job has an attempt in progress, every 5 s
     otherwise, only while it is visible; shows Queued/Running/Retrying and then the new
     result. On the job page, a new result also refreshes the [data-live-region]s (the
     run history chart, the results) from the page itself.
   - .message.note (the "Started…" banner): the ?done= that asked for it leaves the
     address, so a reload does not bring it back; it goes away after a few seconds.
   - [data-flower-link]: asks /console/flower/tasks/{id} (the API asks Flower with its
     login, which never reaches the browser) and says when Flower no longer holds it. */
"use strict";

(function () {
  const FAST_MS = 1000;
  const SLOW_MS = 5000;
  const NOTE_MS = 6000;
  const FLOWER_DELAY_MS = 3000;
  const WORDS = {
    Queued: "waiting for a worker",
    Running: "a worker is running it now",
    Retrying: "the last attempt failed; the next one waits for its time",
  };

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }
  function visible(element) { return element.getClientRects().length > 0; }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) {
        if (!answer.ok) { throw new Error(String(answer.status)); }
        return answer.json();
      });
  }

  /* -- flash messages ---------------------------------------------------------------- */

  const url = new URL(window.location.href);
  if (url.searchParams.has("done")) {
    url.searchParams.delete("done");
    window.history.replaceState(null, "", url);
  }
  $$(".message.note").forEach(function (note) {
    window.setTimeout(function () { note.hidden = true; }, NOTE_MS);
  });

  /* -- Flower links ------------------------------------------------------------------ */

  const asked = new Map();  // task id -> Promise of Flower's answer

  function checkFlower(link) {
    const task = link.dataset.flowerTask;
    if (!task || link.dataset.flowerChecked === task || !visible(link)) { return; }
    if (Date.now() < Number(link.dataset.flowerAfter || 0)) { return; }
    link.dataset.flowerChecked = task;
    if (!asked.has(task)) {
      asked.set(task, getJson("/console/flower/tasks/" + encodeURIComponent(task)));
    }
    asked.get(task).then(function (answer) {
      if (link.dataset.flowerTask !== task) { return; }  // a newer run replaced it
      const scope = link.closest("[data-job-live]") || link.parentElement;
      const note = $("[data-flower-note]", scope);
      link.classList.toggle("flower-gone", answer.held === false);
      link.dataset.flowerHeld = String(answer.held);  // true, false or null (unknown)
      link.title = answer.message;
      // Without Flower's login the console cannot tell: the link stays, quietly.
      const say = answer.held !== true && answer.reason !== "no-login";
      if (note) {
        note.textContent = say ? answer.message : "";
        note.hidden = !say;
      }
    }).catch(function () { link.dataset.flowerChecked = ""; });
  }

  /* -- live status ------------------------------------------------------------------- */

  function showActivity(live, activity) {
    live.dataset.activity = activity || "";
    const line = $("[data-live-activity]", live);
    const badge = $("[data-activity-badge]", live);
    line.hidden = !activity;
    badge.textContent = activity || "";
    badge.className = "activity activity-" + (activity || "").toLowerCase();
    $("[data-activity-words]", live).textContent = WORDS[activity] || "";
  }

  function timeElement(stamp, text) {
    const time = document.createElement("time");  // times.js shows it in the browser's zone
    time.setAttribute("datetime", stamp);
    time.textContent = text;
    return time;
  }

  function showLast(live, last) {
    $("[data-last]", live).hidden = !last;
    $("[data-never]", live).hidden = Boolean(last);
    if (!last) { return; }
    const status = $("[data-last-status]", live);
    status.textContent = last.status;
    status.className = "result result-" + last.status.toLowerCase();
    $("[data-last-time]", live).replaceChildren(timeElement(last.startedAt, last.started));
    $("[data-last-details]", live).href = last.details;
    const flower = $("[data-flower-link]", live);
    if (flower) {
      flower.hidden = !last.flowerTask;
      if (flower.dataset.flowerTask !== (last.flowerTask || "")) {
        flower.dataset.flowerHeld = "";
        flower.classList.remove("flower-gone");
        const note = $("[data-flower-note]", live);
        if (note) { note.hidden = true; }
        // Flower hears of a task by events a moment after Takt records it: ask a bit later.
        flower.dataset.flowerAfter = String(Date.now() + FLOWER_DELAY_MS);
      }
      flower.dataset.flowerTask = last.flowerTask || "";
      flower.href = live.dataset.flower + "/task/" + (last.flowerTask || "");
    }
  }

  function showStatus(live, status) {
    showActivity(live, status.activity);
    const before = live.dataset.lastEntry;
    const entry = status.last ? status.last.entryId : "";
    live.dataset.lastEntry = entry;
    showLast(live, status.last);
    $("[data-count=executions]", live).textContent = status.executions;
    $("[data-count=failures]", live).textContent = status.failures;
    const next = $("[data-next-run]", live);
    next.replaceChildren(status.nextRunAt ? timeElement(status.nextRunAt, status.nextRun) : "—");
    if (entry !== before) { refreshRegions(); }
  }

  /* The job page's chart and results, rendered by the server again: fetched, not reloaded. */
  function refreshRegions() {
    const regions = $$("[data-live-region][id]");
    if (!regions.length) { return; }
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(); })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html");
        regions.forEach(function (region) {
          const replacement = fresh.getElementById(region.id);
          if (replacement) { region.replaceChildren(...Array.from(replacement.childNodes)); }
          $$("tr[data-href]", region).forEach(openable);
        });
      })
      .catch(function () { /* the next result tries again */ });
  }

  /* A refreshed result row opens its details as console.js's rows do. */
  function openable(row) {
    row.addEventListener("dblclick", function () { window.location.assign(row.dataset.href); });
    row.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.target === row) { window.location.assign(row.dataset.href); }
    });
  }

  const lives = $$("[data-job-live]");
  const lastPoll = new Map();
  let stopped = false;

  function poll(live) {
    lastPoll.set(live, Date.now());
    live.dataset.polling = "true";
    getJson(live.dataset.statusUrl)
      .then(function (status) { showStatus(live, status); })
      .catch(function (problem) {
        if (problem.message === "401") { stopped = true; }  // signed out: stop asking
        if (problem.message === "404") { live.dataset.gone = "true"; }  // the job was deleted
      })
      .finally(function () { live.dataset.polling = ""; });
  }

  function tick() {
    if (stopped) { return; }
    $$("[data-flower-link]").forEach(checkFlower);
    if (document.hidden) { return; }
    lives.forEach(function (live) {
      if (live.dataset.polling === "true" || live.dataset.gone || !visible(live)) { return; }
      const wait = live.dataset.activity ? FAST_MS : SLOW_MS;
      if (Date.now() - (lastPoll.get(live) || 0) >= wait) { poll(live); }
    });
  }

  lives.forEach(function (live) { if (visible(live)) { lastPoll.set(live, Date.now()); } });
  tick();
  window.setInterval(tick, FAST_MS / 2);
})();
