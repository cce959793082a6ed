/* Takt console: times in the browser's time zone, UTC on hover.

   The server renders every time as <time datetime="2030-01-07T10:00:00Z"
   data-precision="second|minute">2030-01-07 10:00:00 UTC</time>: correct without this
   script. Here the text becomes the browser's local time (to the second with the zone's
   short name, or to the minute where a column header names the zone) and the title the
   UTC text. Elements marked data-local-zone get the zone's short name (title: its IANA
   name); a chart's hour labels (svg text[data-datetime]) the local hour. Times added
   later (the schedule preview, live updates) are shown the same way. */
"use strict";

(function () {
  function pad(number) { return String(number).padStart(2, "0"); }

  const zoneFormat = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" });

  function zoneName(date) {
    const parts = zoneFormat.formatToParts(date);
    const zone = parts.find(function (part) { return part.type === "timeZoneName"; });
    return zone ? zone.value : "";
  }

  function localText(date, precision) {
    const text = date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes());
    return precision === "minute" ? text : text + ":" + pad(date.getSeconds()) + " " + zoneName(date);
  }

  function utcText(date, precision) {
    const iso = date.toISOString();  // 2030-01-07T10:00:00.000Z
    return iso.slice(0, precision === "minute" ? 16 : 19).replace("T", " ") + " UTC";
  }

  function show(element) {
    const date = new Date(element.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) { return; }  // left as the server wrote it
    const precision = element.dataset.precision || "second";
    element.textContent = localText(date, precision);
    element.title = utcText(date, precision);
  }

  /* An hour label in an SVG chart (<text data-datetime="…Z">10:00</text>): the local
     hour and minute, and a <title> child with the UTC text (SVG text has no title). */
  function showChartLabel(element) {
    const date = new Date(element.getAttribute("data-datetime"));
    if (Number.isNaN(date.getTime())) { return; }
    element.textContent = pad(date.getHours()) + ":" + pad(date.getMinutes());
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = utcText(date, "minute");
    element.appendChild(title);
  }

  function showZone(element) {
    element.textContent = zoneName(new Date());
    element.title = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  }

  function showAll(root) {
    if (root.matches("time[datetime]")) { show(root); }
    if (root.matches("[data-local-zone]")) { showZone(root); }
    root.querySelectorAll("time[datetime]").forEach(show);
    root.querySelectorAll("[data-local-zone]").forEach(showZone);
    root.querySelectorAll("svg text[data-datetime]").forEach(showChartLabel);
  }

  showAll(document.body);
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      if (record.type === "attributes") {
        show(record.target);
        return;
      }
      record.addedNodes.forEach(function (node) {
        if (node.nodeType === Node.ELEMENT_NODE) { showAll(node); }
      });
    });
  }).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["datetime"],
  });
})();
