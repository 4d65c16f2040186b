/*
 * Desk keyboard shortcuts and small enhancements of the ticket page. Plain JavaScript, no dependencies, loaded with
 * `defer` on desk pages; every page works without it.
 *
 *   j / k     move the highlight down / up the rows of a queue table (#queue-table tr[data-row-link])
 *   Enter     open the highlighted row
 *   r / n     ticket page: write a public reply / an internal note
 *   ?         show the shortcuts (a <dialog>; Esc closes it)
 *
 * Shortcuts never fire while the focus is in a field, with Ctrl, Alt or Meta held, or while a dialog is open.
 */
(() => {
  "use strict";

  const FIELD_SELECTOR = "input, textarea, select, [contenteditable]:not([contenteditable='false'])";

  function isInField(target) {
    return target instanceof Element && (target.isContentEditable || target.closest(FIELD_SELECTOR) !== null);
  }

  function within(root, selector) {
    if (!(root instanceof Element || root instanceof Document)) return [];
    const found = Array.from(root.querySelectorAll(selector));
    if (root instanceof Element && root.matches(selector)) found.unshift(root);
    return found;
  }

  // --- help dialog ---------------------------------------------------------------------------------------------------

  const dialog = document.getElementById("shortcuts-dialog");

  function openHelp() {
    if (!dialog || dialog.open || typeof dialog.showModal !== "function") return false;
    dialog.showModal(); // modal: focus moves in, Esc closes, focus returns to the opener
    return true;
  }

  for (const opener of document.querySelectorAll("[data-shortcuts-open]")) {
    if (!dialog) continue;
    opener.hidden = false;
    opener.addEventListener("click", (event) => {
      event.preventDefault();
      openHelp();
    });
  }

  // --- queue tables --------------------------------------------------------------------------------------------------

  function queueRows() {
    return Array.from(document.querySelectorAll("#queue-table tr[data-row-link]"));
  }

  function currentRowIndex(rows) {
    return rows.findIndex((row) => row.classList.contains("is-current"));
  }

  function highlightRow(step) {
    const rows = queueRows();
    if (rows.length === 0) return false;
    const from = currentRowIndex(rows);
    const to = from === -1 ? 0 : Math.max(0, Math.min(rows.length - 1, from + step));
    rows.forEach((row, index) => {
      const isCurrent = index === to;
      row.classList.toggle("is-current", isCurrent);
      if (isCurrent) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    const row = rows[to];
    // Focusing the row gives it the visible focus ring and lets a screen reader read it.
    if (!row.hasAttribute("tabindex")) row.tabIndex = -1;
    row.focus();
    row.scrollIntoView({ block: "nearest" });
    return true;
  }

  function openRow(row) {
    const link = row && row.dataset.rowLink;
    if (!link) return false;
    const url = new URL(link, window.location.href);
    if (url.origin !== window.location.origin) return false; // only ever navigate within the desk
    window.location.assign(url.href);
    return true;
  }

  // --- ticket page: reply box ----------------------------------------------------------------------------------------

  function syncReplyForm(form) {
    const internal = form.querySelector("input[name='visibility'][value='internal']");
    const isInternal = Boolean(internal && internal.checked);
    form.classList.toggle("reply-form--internal", isInternal);
    const button = form.querySelector("button[data-label-public]");
    if (button) button.textContent = isInternal ? button.dataset.labelInternal : button.dataset.labelPublic;
  }

  function focusReply(mode) {
    const form = document.querySelector("[data-reply-form]");
    if (!form) return false;
    const radio = form.querySelector(`input[name='visibility'][value='${mode}']`);
    if (radio) radio.checked = true;
    syncReplyForm(form);
    const body = form.querySelector("textarea[name='body']");
    if (!body) return false;
    body.focus();
    return true;
  }

  // --- ticket page: state form ---------------------------------------------------------------------------------------

  // Show "Waiting for" only for Pending, and mark the reason required where the move needs one. Without JavaScript
  // both fields stay visible with their help text and the service says what is missing.
  function syncTransitionForm(form) {
    const select = form.querySelector("select[name='state']");
    const option = select && select.selectedOptions[0];
    const pending = form.querySelector("[name='pending_reason']");
    const reason = form.querySelector("[name='reason']");
    if (pending) {
      const wrapper = pending.closest("div");
      const needed = Boolean(option && option.dataset.needsPendingReason);
      if (wrapper && !wrapper.querySelector(".errorlist")) wrapper.hidden = !needed;
      pending.required = needed;
    }
    if (reason) reason.required = Boolean(option && option.dataset.needsReason);
  }

  function enhance(root) {
    within(root, "[data-reply-form]").forEach(syncReplyForm);
    within(root, "[data-transition-form]").forEach(syncTransitionForm);
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (!(target instanceof Element)) return;
    const replyForm = target.closest("[data-reply-form]");
    if (replyForm) syncReplyForm(replyForm);
    const transitionForm = target.closest("[data-transition-form]");
    if (transitionForm) syncTransitionForm(transitionForm);
  });

  enhance(document);

  // --- htmx ----------------------------------------------------------------------------------------------------------

  // In development django-htmx's debug helper shows any 400 answer as a whole page. On the ticket page a 400 is the
  // form again with its errors, meant for its target: stop the event here (capture phase, before the helper's
  // listener); htmx itself carries on and swaps it like production does.
  window.addEventListener(
    "htmx:beforeOnLoad",
    (event) => {
      const xhr = event.detail && event.detail.xhr;
      const source = event.target;
      if (xhr && xhr.status === 400 && source instanceof Element && source.closest("[data-fragment-errors]")) {
        event.stopPropagation();
      }
    },
    true,
  );

  document.addEventListener("htmx:load", (event) => enhance(event.detail.elt));

  // After a save, the "Edit" link of the field that was saved takes the focus back (the server marks it), unless
  // the person has already moved the focus somewhere else: only focus lost with the swapped-out form is given back.
  document.addEventListener("htmx:afterSettle", () => {
    const target = document.querySelector("[data-focus-after-swap]");
    if (!(target instanceof HTMLElement)) return;
    target.removeAttribute("data-focus-after-swap");
    const active = document.activeElement;
    if (active === null || active === document.body || target.closest("#ticket-header")?.contains(active)) {
      target.focus();
    }
  });

  function showStatus(text) {
    const status = document.getElementById("ticket-status");
    if (!status) return;
    const message = document.createElement("p");
    message.className = "message message--error";
    message.textContent = text;
    status.replaceChildren(message);
  }

  document.addEventListener("htmx:responseError", (event) => {
    const code = event.detail && event.detail.xhr ? event.detail.xhr.status : "";
    showStatus(`That did not work (error ${code}). Reload the page and try again.`);
  });
  document.addEventListener("htmx:sendError", () => {
    showStatus("The service desk could not be reached. Check your connection and try again.");
  });

  // --- keys ----------------------------------------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey || event.isComposing) return;
    if (isInField(event.target)) return;
    if (document.querySelector("dialog[open]")) return; // the dialog handles its own keys (Esc closes it)
    let handled = false;
    switch (event.key) {
      case "?":
        handled = openHelp();
        break;
      case "j":
        handled = highlightRow(1);
        break;
      case "k":
        handled = highlightRow(-1);
        break;
      case "Enter": {
        // Only a highlighted row: Enter on a link or a button keeps its own meaning.
        const row = event.target instanceof Element ? event.target.closest("#queue-table tr[data-row-link]") : null;
        handled = row !== null && event.target === row && openRow(row);
        break;
      }
      case "r":
        handled = focusReply("public");
        break;
      case "n":
        handled = focusReply("internal");
        break;
      default:
        return;
    }
    if (handled) event.preventDefault();
  });
})();

// SLA countdown: running clocks inside working hours (data-ticks="true") count their remaining business time down
// every second; paused and finished clocks, and clocks outside working hours, stay as the server rendered them.
(() => {
  "use strict";

  function short(seconds) {
    const s = Math.abs(seconds);
    if (s < 60) return `${s} s`;
    const days = Math.floor(s / 86400);
    const hours = Math.floor((s % 86400) / 3600);
    const minutes = Math.floor((s % 3600) / 60);
    const parts = days ? [`${days} d`] : [];
    if (hours) parts.push(`${hours} h`);
    if (minutes && !days) parts.push(`${minutes} m`);
    return parts.join(" ") || "0 s";
  }

  const clocks = Array.from(document.querySelectorAll('.sla-clock[data-ticks="true"][data-remaining-seconds]'));
  if (clocks.length === 0) return;
  window.setInterval(() => {
    for (const clock of clocks) {
      const remaining = Number(clock.dataset.remainingSeconds) - 1;
      clock.dataset.remainingSeconds = String(remaining);
      const text = clock.querySelector(".sla-remaining");
      if (text) text.textContent = remaining > 0 ? `${short(remaining)} left` : `overdue by ${short(remaining)}`;
    }
  }, 1000);
})();
