// The dashboard's maintenance buttons: queue the task, then poll its state until it ends.
"use strict";

(function () {
  const POLL_MS = 1000;
  const POLL_LIMIT = 600; // ten minutes, then stop asking (the task goes on regardless)

  function render(status, text, task, state) {
    status.replaceChildren();
    status.append(text + " ");
    if (task) {
      const code = document.createElement("code");
      code.textContent = task;
      status.append(code, " ");
    }
    if (state) {
      const badge = document.createElement("span");
      badge.className = "rd-state";
      badge.dataset.state = state;
      badge.textContent = state;
      status.append(badge);
    }
  }

  async function poll(url, status, label, task, button) {
    for (let n = 0; n < POLL_LIMIT; n++) {
      let body;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        body = await response.json();
      } catch (error) {
        render(status, label + ": could not read the task state (" + error + ")", task, null);
        break;
      }
      let state = body.state;
      if (body.ready && body.result !== null && body.result !== undefined) {
        state += " " + JSON.stringify(body.result);
      }
      if (body.error) state += " " + body.error;
      render(status, label + ": task", task, state);
      status.querySelector(".rd-state").dataset.state = body.state;
      if (body.ready) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    button.disabled = false;
  }

  function start() {
    const box = document.querySelector(".rd-actions");
    const status = document.querySelector("[data-testid=task-status]");
    if (!box || !status) return;
    box.querySelectorAll("form[data-task-form]").forEach((form) => {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = form.querySelector("button");
        const label = button.textContent.trim();
        button.disabled = true;
        render(status, label + ": queueing…", null, null);
        const token = form.querySelector("[name=csrfmiddlewaretoken]").value;
        try {
          const response = await fetch(form.action, {
            method: "POST",
            headers: { Accept: "application/json", "X-CSRFToken": token },
            credentials: "same-origin",
          });
          const body = await response.json().catch(() => ({}));
          if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
          render(status, label + ": task", body.task, "PENDING");
          const url = box.dataset.statusUrl.replace("TASK_ID", encodeURIComponent(body.task));
          poll(url, status, label, body.task, button);
        } catch (error) {
          render(status, label + ": could not queue the task (" + error.message + ")", null, null);
          button.disabled = false;
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
