// The approvals page: lists pending approvals from the JSON API every second and resolves them.
// The token comes from the URL fragment (never sent to the server) and stays in this tab only.
// Every value is inserted with textContent, never as HTML.
"use strict";
(function () {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("portcullis-token", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  const token = sessionStorage.getItem("portcullis-token");
  const status = document.getElementById("status");
  const rows = document.getElementById("rows");

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
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

  async function resolve(id, action) {
    const note = document.getElementById("note").value || undefined;
    const as = document.getElementById("as").value || undefined;
    try {
      await api("POST", "/api/approvals/" + encodeURIComponent(id) + "/" + action, { note, as });
      status.textContent = action + "d " + id;
      status.className = "";
    } catch (e) {
      status.textContent = action + " " + id + " failed: " + e.message;
      status.className = "error";
    }
    refresh();
  }

  async function refresh() {
    if (!token) {
      status.textContent = "open this page as /approvals#token=TOKEN (the token is in admin.token in the state directory)";
      status.className = "error";
      return;
    }
    let data;
    try {
      data = await api("GET", "/api/approvals");
    } catch (e) {
      status.textContent = "cannot load approvals: " + e.message;
      status.className = "error";
      return;
    }
    rows.replaceChildren();
    for (const a of data.approvals) {
      const tr = document.createElement("tr");
      tr.dataset.id = a.id;
      cell(tr, a.id);
      cell(tr, a.server + "." + a.tool + " (" + a.method + ", " + a.mode + ")");
      cell(tr, a.effect, "effect");
      cell(tr, a.rule);
      const args = cell(tr, "");
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(a.arguments, null, 2);
      args.appendChild(pre);
      cell(tr, a.expires_at);
      const actions = cell(tr, "");
      for (const action of ["approve", "deny"]) {
        const b = document.createElement("button");
        b.textContent = action;
        b.className = action;
        b.addEventListener("click", () => resolve(a.id, action));
        actions.appendChild(b);
      }
      rows.appendChild(tr);
    }
    if (!status.className) status.textContent = data.approvals.length + " pending, updated " + new Date().toLocaleTimeString();
  }

  refresh();
  setInterval(refresh, 1000);
})();
