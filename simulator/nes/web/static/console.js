// Live pages: poll the server's change stamp and refresh <main> when it changes.
"use strict";
(function () {
  const main = document.getElementById("main");
  if (!main || !main.hasAttribute("data-live")) { return; }
  const base = document.body.dataset.base || "";
  let stamp = null;
  let busy = false;

  function editing() {
    const active = document.activeElement;
    return active && main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  async function refresh() {
    const page = await fetch(window.location.href, { credentials: "same-origin" });
    if (!page.ok) { return; }
    const doc = new DOMParser().parseFromString(await page.text(), "text/html");
    const fresh = doc.getElementById("main");
    if (fresh) { main.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.adoptNode(n))); }
  }

  async function poll() {
    if (busy) { return; }
    busy = true;
    try {
      const answer = await fetch(base + "/live", { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) { window.location.reload(); return; }
      if (answer.ok) {
        const seen = (await answer.json()).stamp;
        if (stamp !== null && seen !== stamp && !editing()) { await refresh(); }
        if (!editing()) { stamp = seen; }
      }
    } catch (error) {
      // The server is restarting or unreachable: try again at the next tick.
    } finally {
      busy = false;
    }
  }

  poll();
  window.setInterval(poll, 1500);
})();
