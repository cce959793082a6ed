/* Takt console: small enhancements over server-rendered pages. No framework, no build. */
"use strict";

(function () {
  const csrf = document.body.dataset.csrf || "";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }

  /* -- every page ------------------------------------------------------------------- */

  const picker = $("[data-collection-picker] select");
  if (picker) {
    picker.addEventListener("change", function () {
      if (picker.value) { window.location.assign(picker.value); }
    });
  }
  $$("[data-back]").forEach(function (button) {
    button.addEventListener("click", function () { window.history.back(); });
  });
  $$("[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  $$("dialog [data-close]").forEach(function (button) {
    button.addEventListener("click", function () { button.closest("dialog").close(); });
  });

  /* -- Jobs table: selection, context menu, dialogs ---------------------------------- */

  const layout = $(".jobs-layout");
  if (layout) { jobsPage(layout); }

  function jobsPage(layout) {
    const base = layout.dataset.base;
    const canWrite = layout.dataset.canWrite === "true";
    const menu = $("#job-menu");
    const rows = $$("#jobs-table tbody tr");
    let current = null;   // the row the menu acts on
    let opener = null;    // where focus returns when the menu closes

    function select(row) {
      rows.forEach(function (r) { r.setAttribute("aria-selected", String(r === row)); });
      $$("[data-panel]").forEach(function (panel) {
        panel.hidden = panel.dataset.panel !== row.dataset.job;
      });
      const url = new URL(window.location.href);
      url.searchParams.set("job", row.dataset.job);
      url.searchParams.delete("done");
      window.history.replaceState(null, "", url);
    }

    function jobUrl(row, suffix) {
      return base + "/jobs/" + encodeURIComponent(row.dataset.job) + (suffix || "");
    }

    function enabledItems() { return $$("button:not([disabled])", menu); }

    function openMenu(row, x, y, from) {
      current = row;
      opener = from || row;
      select(row);
      const final = row.dataset.final === "true";
      const enabled = row.dataset.state === "Enabled";
      const toggle = $("[data-op=state]", menu);
      toggle.setAttribute("aria-checked", String(enabled));
      toggle.disabled = !canWrite || final;
      $("[data-op=rename]", menu).disabled = !canWrite || final;
      $("[data-op=owner]", menu).disabled = !canWrite || final;
      $("[data-op=start]", menu).disabled = !canWrite || !enabled;
      $("[data-op=delete]", menu).disabled = !canWrite;
      menu.hidden = false;
      const box = menu.getBoundingClientRect();
      const left = Math.max(4, Math.min(x, window.innerWidth - box.width - 4));
      const top = Math.max(4, Math.min(y, window.innerHeight - box.height - 4));
      menu.style.left = left + window.scrollX + "px";
      menu.style.top = top + window.scrollY + "px";
      $$(".menu-button").forEach(function (b) { b.setAttribute("aria-expanded", "false"); });
      const button = $(".menu-button", row);
      if (button) { button.setAttribute("aria-expanded", "true"); }
      const first = enabledItems()[0];
      if (first) { first.focus(); }
    }

    function closeMenu(restore) {
      if (menu.hidden) { return; }
      menu.hidden = true;
      $$(".menu-button").forEach(function (b) { b.setAttribute("aria-expanded", "false"); });
      if (restore && opener) { opener.focus(); }
    }

    function post(row, operation, extra) {
      const form = $("#op-form");
      form.action = jobUrl(row, "/" + operation);
      form.elements.enabled.value = extra || "";
      form.submit();
    }

    function openDialog(id, row, operation) {
      const dialog = document.getElementById(id);
      const form = $("form", dialog);
      form.action = jobUrl(row, "/" + operation);
      const title = $("[data-job-title]", dialog);
      if (title) { title.textContent = row.dataset.title; }
      if (operation === "rename") { form.elements.displayName.value = row.dataset.title; }
      if (operation === "owner") { form.elements.owner.value = row.dataset.owner; }
      dialog.addEventListener("close", function () { row.focus(); }, { once: true });
      dialog.showModal();
      const field = $("input:not([type=hidden]), select", dialog) || $("button", dialog);
      field.focus();
    }

    function act(operation, row) {
      closeMenu(false);
      if (operation === "state") {
        post(row, "state", row.dataset.state === "Enabled" ? "0" : "1");
      } else if (operation === "start") {
        post(row, "start");
      } else if (operation === "properties") {
        window.location.assign(jobUrl(row));
      } else if (operation === "rename") {
        openDialog("rename-dialog", row, "rename");
      } else if (operation === "owner") {
        openDialog("owner-dialog", row, "owner");
      } else if (operation === "delete") {
        openDialog("delete-dialog", row, "delete");
      }
    }

    rows.forEach(function (row, index) {
      row.addEventListener("click", function (event) {
        if (!event.target.closest(".menu-button")) { select(row); }
      });
      row.addEventListener("dblclick", function () { window.location.assign(jobUrl(row)); });
      row.addEventListener("contextmenu", function (event) {
        event.preventDefault();
        openMenu(row, event.clientX, event.clientY, row);
      });
      row.addEventListener("keydown", function (event) {
        if (event.target !== row) { return; }
        if (event.key === "Enter") {
          window.location.assign(jobUrl(row));
        } else if (event.key === " ") {
          event.preventDefault();
          select(row);
        } else if (event.key === "ContextMenu" || (event.key === "F10" && event.shiftKey)) {
          event.preventDefault();
          const box = row.getBoundingClientRect();
          openMenu(row, box.left + 24, box.bottom, row);
        } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          const next = rows[index + (event.key === "ArrowDown" ? 1 : -1)];
          if (next) { next.focus(); select(next); }
        }
      });
      const button = $(".menu-button", row);
      button.addEventListener("click", function (event) {
        event.stopPropagation();
        if (!menu.hidden && current === row) { closeMenu(true); return; }
        const box = button.getBoundingClientRect();
        openMenu(row, box.right - 200, box.bottom + 2, button);
      });
    });

    menu.addEventListener("click", function (event) {
      const item = event.target.closest("button[data-op]");
      if (item && !item.disabled && current) { act(item.dataset.op, current); }
    });
    menu.addEventListener("keydown", function (event) {
      const items = enabledItems();
      const at = items.indexOf(document.activeElement);
      if (event.key === "Escape") {
        event.preventDefault();
        closeMenu(true);
      } else if (event.key === "Tab") {
        closeMenu(false);
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        items[(at + step + items.length) % items.length].focus();
      } else if (event.key === "Home" || event.key === "End") {
        event.preventDefault();
        items[event.key === "Home" ? 0 : items.length - 1].focus();
      }
    });
    document.addEventListener("click", function (event) {
      if (!menu.contains(event.target)) { closeMenu(false); }
    });
    window.addEventListener("resize", function () { closeMenu(false); });
  }

  /* -- All results: double-click or Enter opens a result ------------------------------ */

  $$("#results-table tbody tr").forEach(function (row) {
    row.addEventListener("dblclick", function () { window.location.assign(row.dataset.href); });
    row.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.target === row) { window.location.assign(row.dataset.href); }
    });
  });

  /* -- Job form: the fields that apply, and the live schedule preview ------------------ */

  const jobForm = $("#job-form");
  if (jobForm) { jobFormPage(jobForm); }

  function jobFormPage(form) {
    const readOnly = !!$("[data-read-only]");
    function value(name) {
      const field = form.elements[name];
      if (!field) { return ""; }
      if (field instanceof RadioNodeList) { return field.value; }
      return field.value;
    }
    function showOnly(selector, attribute, wanted) {
      $$(selector, form).forEach(function (element) {
        element.hidden = !element.getAttribute(attribute).split(" ").includes(wanted);
      });
    }
    function refresh() {
      showOnly("[data-action]", "data-action", value("actionType"));
      showOnly("[data-mode]", "data-mode", value("mode"));
      showOnly("[data-frequency]", "data-frequency", value("frequency"));
      showOnly("[data-end]", "data-end", value("endKind"));
      showOnly("[data-retry]", "data-retry", value("retryType"));
      $$("[data-retry] input", form).forEach(function (input) {
        input.disabled = input.closest("[data-retry]").hidden;  // not sent, not validated
      });
      $("[data-recurring]", form).hidden = value("scheduleKind") !== "recurring";
      $("#schedule").classList.toggle("unused", value("mode") === "json");
    }
    form.addEventListener("change", refresh);
    refresh();
    if (readOnly) { return; }

    const list = $("#preview-list");
    const words = $("#preview-words");
    const problem = $("#preview-error");
    let timer = null;
    let sequence = 0;

    function showPreview(data) {
      list.replaceChildren();
      data.value.forEach(function (stamp, index) {
        const time = document.createElement("time");  // times.js shows it in the browser's zone
        time.dateTime = stamp;
        time.textContent = data.text[index];
        const item = document.createElement("li");
        item.appendChild(time);
        list.appendChild(item);
      });
      if (!data.value.length) {
        const none = document.createElement("li");
        none.className = "muted";
        none.textContent = "none";
        list.appendChild(none);
      }
      words.textContent = data.words;
      problem.hidden = true;
      list.classList.remove("stale");
    }

    function updatePreview() {
      const mine = ++sequence;
      const body = new URLSearchParams(new FormData(form));
      fetch(form.dataset.previewUrl, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf },
        body: body,
        credentials: "same-origin",
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      }).then(function (answer) {
        if (mine !== sequence) { return; }
        if (answer.ok) {
          showPreview(answer.data);
        } else {
          problem.textContent = answer.data.error ? answer.data.error.message : "not a schedule";
          problem.hidden = false;
          list.classList.add("stale");
        }
      }).catch(function () {
        problem.textContent = "The preview is not available right now.";
        problem.hidden = false;
      });
    }

    function schedulePreview() {
      window.clearTimeout(timer);
      timer = window.setTimeout(updatePreview, 150);
    }
    const schedule = $("#schedule");
    schedule.addEventListener("input", schedulePreview);
    schedule.addEventListener("change", schedulePreview);
  }
})();
