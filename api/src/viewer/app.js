// The audit-log viewer: signs in against the API, then reads /v1/tenants/{id}/audit-logs (or, for platform admins,
// /v1/admin/audit-logs) with the filters, pages with next_cursor, shows an event, exports CSV and the chain's status.
// The access token lives in this page's memory only.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const PLATFORM = "*";
  let token = null;
  let cursor = null;

  async function api(path, options = {}) {
    const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401 && token) {
      signOut("Your session has ended; sign in again.");
      throw new Error("signed out");
    }
    if (!response.ok) {
      let detail = `${response.status}`;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(detail);
    }
    return response;
  }

  function signOut(message) {
    token = null;
    $("viewer").hidden = true;
    $("signout").hidden = true;
    $("badge").hidden = true;
    $("who").textContent = "";
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
  }

  function base() {
    const tenant = $("tenant").value;
    return tenant === PLATFORM ? "/v1/admin/audit-logs" : `/v1/tenants/${tenant}/audit-logs`;
  }

  function utc(local) {
    return local ? new Date(`${local}:00Z`).toISOString() : "";
  }

  function filters() {
    const query = new URLSearchParams();
    const add = (name, value) => { if (value) query.append(name, value.trim()); };
    add("action", $("action").value);
    add("actor_type", $("actor-type").value);
    add("actor_id", $("actor-id").value);
    add("outcome", $("outcome").value);
    add("since", utc($("since").value));
    add("until", utc($("until").value));
    add("q", $("q").value);
    return query;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (className) td.className = className;
    return td;
  }

  function row(event) {
    const tr = document.createElement("tr");
    tr.dataset.id = event.id;
    tr.dataset.tenant = event.tenant_id;
    tr.append(
      cell(event.created_at.replace("T", " ").replace(/\.\d+Z$/, "Z")),
      cell(event.action),
      cell(event.actor.display || event.actor.id || event.actor.type),
      cell(`${event.target.type}${event.target.display ? ": " + event.target.display : event.target.id ? " " + event.target.id : ""}`),
      cell(event.outcome, `outcome-${event.outcome}`),
      cell(event.client.ip_address),
    );
    tr.addEventListener("click", () => showEvent(event.tenant_id, event.id));
    return tr;
  }

  async function load(reset) {
    const body = $("events").querySelector("tbody");
    if (reset) { body.replaceChildren(); cursor = null; }
    const query = filters();
    query.set("limit", "50");
    if (cursor) query.set("cursor", cursor);
    $("status").textContent = "Loading…";
    try {
      const page = await (await api(`${base()}?${query}`)).json();
      body.append(...page.items.map(row));
      cursor = page.next_cursor;
      $("more").hidden = !cursor;
      const shown = body.children.length;
      $("status").textContent = `${shown} event${shown === 1 ? "" : "s"} shown${cursor ? "; more on the next page" : ""}.`;
    } catch (e) {
      $("status").textContent = `Could not load the events: ${e.message}`;
    }
  }

  async function badge() {
    const tenant = $("tenant").value;
    const target = tenant === PLATFORM ? "/v1/admin/audit-logs/verify?tenant_id=00000000-0000-0000-0000-000000000000"
                                       : `/v1/tenants/${tenant}/audit-logs/verify`;
    const el = $("badge");
    el.hidden = false;
    el.className = "badge";
    el.textContent = "chain: checking…";
    try {
      const v = await (await api(target)).json();
      el.className = `badge ${v.intact ? "intact" : "broken"}`;
      el.textContent = v.intact ? `chain intact (${v.checked} sealed, ${v.unsealed} pending)` : `chain BROKEN: ${v.problem}`;
      el.title = v.head && v.head.hash ? `head ${v.head.seq}: ${v.head.hash}` : "";
    } catch (e) {
      el.textContent = `chain: ${e.message}`;
    }
  }

  async function showEvent(tenant, id) {
    const path = $("tenant").value === PLATFORM ? `/v1/admin/audit-logs/${id}` : `/v1/tenants/${tenant}/audit-logs/${id}`;
    try {
      const event = await (await api(path)).json();
      $("detail-json").textContent = JSON.stringify(event, null, 2);
      $("detail").hidden = false;
    } catch (e) {
      $("status").textContent = `Could not open the event: ${e.message}`;
    }
  }

  async function exportCsv() {
    const query = filters();
    query.set("format", "csv");
    $("status").textContent = "Exporting…";
    try {
      const blob = await (await api(`${base()}/export?${query}`)).blob();
      const text = await blob.text();
      const rows = text.split("\n").filter((line) => line.length > 0).length - 1;
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `audit-log-${$("tenant").value === PLATFORM ? "platform" : $("tenant").value}.csv`;
      link.id = "download";
      document.body.append(link);
      link.click();
      $("status").textContent = `Exported ${rows} event${rows === 1 ? "" : "s"} as CSV.`;
    } catch (e) {
      $("status").textContent = `Could not export: ${e.message}`;
    }
  }

  async function signIn(event) {
    event.preventDefault();
    $("signin-error").textContent = "";
    try {
      const response = await fetch("/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ email: $("email").value, password: $("password").value }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || response.status);
      token = body.tokens.access_token;
      $("password").value = "";
      const me = await (await api("/v1/me")).json();
      const select = $("tenant");
      select.replaceChildren();
      if (me.user.is_platform_admin) select.append(new Option("All tenants (platform)", PLATFORM));
      for (const m of me.memberships.filter((m) => m.role === "owner" || m.role === "admin")) {
        select.append(new Option(m.tenant.name, m.tenant.id));
      }
      if (!select.options.length) throw new Error("You administer no tenant: only owners and admins read the audit log.");
      $("who").textContent = me.user.email;
      $("signin").hidden = true;
      $("viewer").hidden = false;
      $("signout").hidden = false;
      await Promise.all([load(true), badge()]);
    } catch (e) {
      token = null;
      $("signin-error").textContent = e.message;
    }
  }

  $("signin-form").addEventListener("submit", signIn);
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); load(true); });
  $("tenant").addEventListener("change", () => { load(true); badge(); });
  $("more").addEventListener("click", () => load(false));
  $("export").addEventListener("click", exportCsv);
  $("close-detail").addEventListener("click", () => { $("detail").hidden = true; });
  $("signout").addEventListener("click", () => signOut());
})();
