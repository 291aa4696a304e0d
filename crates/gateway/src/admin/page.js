// The approvals page: lists pending approvals from the JSON API every second and resolves them.
// The token comes from the URL fragment (never sent to the server) and stays in this tab only.
// Every value is inserted with textContent, never as HTML. A pending approval never changes, so a
// card, once shown, stays as it is until its approval is no longer pending (text stays selectable).
"use strict";
(function () {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("portcullis-token", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  const token = sessionStorage.getItem("portcullis-token");
  const status = document.getElementById("status");
  const list = document.getElementById("approvals");
  const empty = document.getElementById("empty");
  const resolved = document.getElementById("resolved");
  const cards = new Map(); // approval id -> card element

  function setStatus(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }

  function log(a, outcome, detail) {
    const li = el("li", outcome + " " + a.id + " (" + a.server + "." + a.tool + ")" + (detail ? ": " + detail : "") +
      " at " + new Date().toLocaleTimeString(), outcome);
    li.dataset.id = a.id;
    li.dataset.outcome = outcome;
    resolved.prepend(li);
    resolved.parentElement.hidden = false;
  }

  async function resolve(a, action, card) {
    const note = document.getElementById("note").value || undefined;
    const as = document.getElementById("as").value || undefined;
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try {
      await api("POST", "/api/approvals/" + encodeURIComponent(a.id) + "/" + action, { note, as });
      log(a, action === "approve" ? "approved" : "denied");
    } catch (e) {
      log(a, "failed", action + ": " + e.message);
      for (const b of card.querySelectorAll("button")) b.disabled = false;
    }
    refresh();
  }

  function card(a) {
    const c = el("article", undefined, "approval");
    c.dataset.id = a.id;
    c.appendChild(el("h2", a.server + "." + a.tool));
    const dl = el("dl");
    const field = (name, value, cls) => {
      dl.appendChild(el("dt", name));
      const dd = el("dd");
      dd.appendChild(el("span", value, cls));
      dl.appendChild(dd);
    };
    field("effect", a.effect, "effect");
    field("rule", a.rule, "rule");
    field("reason", a.reason);
    field("method / mode", a.method + " / " + a.mode);
    field("principal", a.principal == null ? "(none)" : a.principal);
    field("session", a.session);
    field("approval", a.id, "id");
    field("expires", a.expires_at);
    c.appendChild(dl);
    c.appendChild(el("p", "exact arguments", "label"));
    c.appendChild(el("pre", JSON.stringify(a.arguments, null, 2), "arguments"));
    for (const action of ["approve", "deny"]) {
      const b = el("button", action === "approve" ? "Approve" : "Deny", action);
      b.type = "button";
      b.addEventListener("click", () => resolve(a, action, c));
      c.appendChild(b);
    }
    return c;
  }

  async function refresh() {
    if (!token) {
      setStatus("open this page as /approvals#token=TOKEN (the token is in admin.token in the state directory)", true);
      return;
    }
    let data;
    try {
      data = await api("GET", "/api/approvals");
    } catch (e) {
      setStatus("cannot load approvals: " + e.message, true);
      return;
    }
    const pending = new Set(data.approvals.map((a) => a.id));
    for (const [id, c] of cards) {
      if (!pending.has(id)) {
        c.remove();
        cards.delete(id);
      }
    }
    // The API lists newest first; keep that order on the page.
    let before = list.firstChild;
    for (const a of data.approvals) {
      let c = cards.get(a.id);
      if (!c) {
        c = card(a);
        cards.set(a.id, c);
        list.insertBefore(c, before);
      }
      before = c.nextSibling;
    }
    empty.hidden = cards.size > 0;
    setStatus(cards.size + " pending · updated " + new Date().toLocaleTimeString(), false);
  }

  refresh();
  setInterval(refresh, 1000);
})();
