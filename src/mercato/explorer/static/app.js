// Mercato explorer: a dependency-free single page over the read-only JSON API (/api/*).
"use strict";
const REFRESH_MS = 3000;
const UNIT = 1000000; // the settlement token has 6 decimals
const view = document.getElementById("view");
const statusEl = document.getElementById("status");
let timer = null;

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function money(n) { // integer base units -> "1,234.567890"
  if (n == null) return "-";
  const neg = n < 0; n = Math.abs(n);
  const whole = Math.floor(n / UNIT), frac = String(n % UNIT).padStart(6, "0");
  return (neg ? "-" : "") + whole.toLocaleString("en-US") + "." + frac;
}
function perUnit(x) { return x == null ? "-" : (x / UNIT).toFixed(6); }
function short(h) { return h ? h.slice(0, 10) + "…" + h.slice(-4) : "-"; }
function when(t) { return t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "-"; }
function pill(s) { return `<span class="pill ${esc(s)}">${esc(s)}</span>`; }
function dealLink(id) { return `<a class="mono" data-testid="deal-link" href="#/deals/${esc(id)}">${esc(short(id))}</a>`; }
function txLink(h) { return h ? `<a class="mono" data-testid="tx-link" href="#/tx/${esc(h)}">${esc(h)}</a>` : "-"; }
function addr(a) { return `<span class="mono" title="${esc(a)}">${esc(short(a))}</span>`; }
async function api(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}
function card(id, label, value) {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value" data-testid="${id}">${esc(value)}</div></div>`;
}

function chart(points, unit = "CU") {
  if (!points.length) return `<div class="empty">no cleared deal with known work units yet</div>`;
  const W = 1000, H = 200, P = 30;
  const xs = points.map(p => p.at), ys = points.map(p => p.per_unit);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y1 = Math.max(...ys) * 1.1 || 1;
  const sx = t => P + (x1 === x0 ? (W - 2 * P) / 2 : (t - x0) / (x1 - x0) * (W - 2 * P));
  const sy = v => H - P + 10 - v / y1 * (H - P);
  const line = points.map((p, i) => `${i ? "L" : "M"}${sx(p.at).toFixed(1)},${sy(p.per_unit).toFixed(1)}`).join(" ");
  const dots = points.map(p => `<circle cx="${sx(p.at).toFixed(1)}" cy="${sy(p.per_unit).toFixed(1)}" r="4" fill="#4fb3ff"><title>${esc(when(p.at))}: ${perUnit(p.per_unit)} mUSD/${unit} (${p.units} ${unit})</title></circle>`).join("");
  return `<svg data-testid="price-chart" viewBox="0 0 ${W} ${H + 10}" preserveAspectRatio="none">
    <line x1="${P}" y1="${sy(0)}" x2="${W - P}" y2="${sy(0)}" stroke="#263040"/>
    <text x="${P}" y="14" fill="#8b96a5" font-size="12">${perUnit(y1)} mUSD/${unit}</text>
    <text x="${P}" y="${H + 8}" fill="#8b96a5" font-size="12">${esc(when(x0))}</text>
    <text x="${W - P}" y="${H + 8}" fill="#8b96a5" font-size="12" text-anchor="end">${esc(when(x1))}</text>
    <path d="${line}" fill="none" stroke="#4fb3ff" stroke-width="2"/>${dots}</svg>`;
}

function dealsTable(deals) {
  if (!deals.length) return `<div class="empty">no deals yet</div>`;
  return `<table data-testid="deals-table"><tr><th>deal</th><th>status</th><th>provider</th><th>requester</th>
    <th class="num">price</th><th class="num">units</th><th class="num">per CU</th><th>opened</th></tr>` +
    deals.map(d => `<tr data-testid="deal-row" data-deal="${esc(d.deal_id)}"><td>${dealLink(d.deal_id)}</td><td>${pill(d.status)}</td>
      <td>${addr(d.provider)}</td><td>${addr(d.requester)}</td><td class="num">${money(d.price)}</td>
      <td class="num">${d.units == null ? "-" : esc(d.units + " " + d.unit)}</td><td class="num">${perUnit(d.per_unit)}</td>
      <td>${esc(when(d.opened_at))}</td></tr>`).join("") + `</table>`;
}

const pages = {
  async overview() {
    const [o, prices, boxes, deals] = await Promise.all([api("/api/overview"), api("/api/prices"),
      api("/api/prices?unit=vcpu_s"), api("/api/deals?limit=10")]);
    const containers = boxes.points.length ? `<h2>Clearing price per vCPU-second (container deals) · VWAP 24 h
      <span data-testid="vwap-vcpu-24h">${perUnit(boxes.vwap["24h"])}</span></h2>
      <div class="chart">${chart(boxes.points, "vCPU-s")}</div>` : "";
    return `<div class="cards">
      ${card("active-providers", "active providers", o.active_providers)}
      ${card("open-deals", "open deals", o.open_deals)}
      ${card("total-deals", "deals", o.deals)}
      ${card("volume", "volume (mUSD)", money(o.volume))}
      ${card("volume-24h", "volume 24 h (mUSD)", money(o.volume_24h))}
      ${card("vwap-1h", "VWAP 1 h (mUSD/CU)", perUnit(o.vwap_1h))}
      ${card("vwap-24h", "VWAP 24 h (mUSD/CU)", perUnit(o.vwap_24h))}
      ${card("total-stake", "total stake (mUSD)", money(o.total_stake))}
      ${card("slash-count", "slashes", o.slashes)}
    </div>
    <h2>Clearing price per CU (finalized deals)</h2><div class="chart">${chart(prices.points)}</div>${containers}
    <h2>Latest deals</h2>${dealsTable(deals)}`;
  },
  async providers() {
    const rows = await api("/api/providers");
    if (!rows.length) return `<div class="empty">no provider registered yet</div>`;
    return `<h2>Providers</h2><table data-testid="providers-table"><tr><th>address</th><th>endpoint</th>
      <th class="num">stake</th><th class="num">reputation</th><th class="num">completed</th><th class="num">missed</th>
      <th class="num" title="its own deals: audits passed / failed">audited ✓/✗</th>
      <th class="num" title="as an auditor: audits done / no-shows">auditing ✓/✗</th><th class="num">volume</th><th class="num">asks /CU</th><th class="num">last /CU</th>
      <th>GPUs</th><th>state</th></tr>` +
      rows.map(p => `<tr data-testid="provider-row" data-address="${esc(p.address)}">
        <td class="mono">${esc(p.address)}</td><td>${esc(p.endpoint)}</td>
        <td class="num" data-field="stake">${money(p.stake)}</td>
        <td class="num" data-field="score" title="on-chain counters: ${esc(p.chain_score_exact)}">${p.score.toFixed(3)}</td>
        <td class="num" data-field="completed">${p.completed}</td><td class="num" data-field="missed">${p.missed}</td>
        <td class="num">${p.audits_passed}/${p.audits_failed}</td>
        <td class="num" data-field="auditing">${p.audits_done}/${p.no_shows}</td><td class="num" data-field="volume">${money(p.volume)}</td>
        <td class="num" data-field="asks">${p.price_per_cu == null ? "-" : perUnit(p.price_per_cu)}</td>
        <td class="num">${perUnit(p.last_price_per_cu)}</td>
        <td data-field="gpus">${gpuText(p)}</td>
        <td>${p.jailed ? pill("jailed") : (p.registered ? pill("ok") : pill("unregistered"))}</td></tr>`).join("") + `</table>`;
  },
  async deals() {
    return `<h2>Deals</h2>` + dealsTable(await api("/api/deals?limit=200"));
  },
  async deal(id) {
    const d = await api("/api/deals/" + encodeURIComponent(id));
    const kv = [["deal id", `<span class="mono" data-testid="deal-id">${esc(d.deal_id)}</span>`],
      ["status", `<span data-testid="deal-status">${pill(d.status)}</span>`],
      ["provider", `<span class="mono" data-testid="deal-provider">${esc(d.provider)}</span>`],
      ["requester", `<span class="mono">${esc(d.requester)}</span>`],
      ["price (mUSD)", `<span data-testid="deal-price">${money(d.price)}</span>`],
      ["collateral (mUSD)", money(d.collateral)], ["audit fee (mUSD)", money(d.audit_fee)],
      ["audit probability", (d.audit_bps / 100).toFixed(2) + " %"],
      ["work", d.units == null ? "-" : `${d.units} ${esc(d.unit)} (fuel ${d.fuel}, from the ${esc(d.units_source)})`],
      ["price per unit (mUSD)", perUnit(d.per_unit)], ["jobs", d.jobs], ["lane / nonce", `${d.lane} / ${d.nonce}`],
      ["seal", `<span class="mono">${esc(d.seal || "-")}</span>`],
      ["audit", d.audit_outcome == null ? (d.audited ? "in progress" : (d.audited === false ? "not drawn for audit" : "-"))
                 : `<span data-testid="audit-outcome">${pill({3: "passed", 4: "failed", 5: "void"}[d.audit_outcome])}</span>`]];
    const steps = d.timeline.map(s => `<li data-testid="timeline-step"><b>${esc(s.step)}</b> · block ${s.block} · ${esc(when(s.at))}<br>
      <span class="dim">${esc(s.note)}</span><br>tx ${txLink(s.tx)}</li>`).join("");
    const audit = d.audit.length ? `<h2>Audit events</h2><table><tr><th>block</th><th>event</th><th>party</th><th class="num">amount</th><th>tx</th></tr>` +
      d.audit.map(a => `<tr><td>${a.block}</td><td>${esc(a.kind)}</td><td>${a.party ? addr(a.party) : "-"}</td>
        <td class="num">${a.amount == null ? "-" : money(a.amount)}</td><td><a class="mono" href="#/tx/${esc(a.tx_hash)}">${esc(short(a.tx_hash))}</a></td></tr>`).join("") + `</table>` : "";
    const slashes = d.slashes.length ? `<h2>Slashes</h2>` + slashTable(d.slashes) : "";
    return `<h2>Deal</h2><div class="kv">${kv.map(([k, v]) => `<div>${esc(k)}</div><div>${v}</div>`).join("")}</div>
      <h2>Lifecycle</h2><ul class="timeline" data-testid="timeline">${steps}</ul>${audit}${slashes}`;
  },
  async tx(hash) {
    const t = await api("/api/tx/" + encodeURIComponent(hash));
    return `<h2>Transaction</h2><div class="kv"><div>hash</div><div class="mono" data-testid="tx-hash">${esc(t.tx_hash)}</div>
      <div>block</div><div>${t.block}</div><div>time (chain)</div><div>${esc(when(t.at))}</div></div>
      <h2>Market events</h2><table data-testid="tx-events"><tr><th>#</th><th>event</th><th>arguments</th></tr>` +
      t.events.map(e => `<tr data-testid="tx-event"><td>${e.log_index}</td><td data-field="name">${esc(e.name)}</td>
        <td class="mono">${Object.entries(e.args).map(([k, v]) => `${esc(k)}=${e.args.deal_id === v && k === "deal_id" ? dealLink(v) : esc(v)}`).join("<br>")}</td></tr>`).join("") + `</table>`;
  },
  async slashes() {
    const rows = await api("/api/slashes");
    return `<h2>Slashing history</h2>` + (rows.length ? slashTable(rows) : `<div class="empty">nobody has been slashed</div>`);
  },
};

function gpuText(p) {
  if (p.gpus == null) return "-";
  if (!p.gpus.length) return "none";
  const by = {};
  p.gpus.forEach(g => { const k = `${g.model || "GPU"}${g.memory_mb ? " " + Math.round(g.memory_mb / 1024) + " GiB" : ""}`; by[k] = (by[k] || 0) + 1; });
  return Object.entries(by).map(([k, n]) => `${n} × ${esc(k)}`).join(", ") + (p.resources_verified ? " ✓" : "");
}

function slashTable(rows) {
  return `<table data-testid="slashes-table"><tr><th>block</th><th>when</th><th>kind</th><th>provider</th><th class="num">amount (mUSD)</th><th>deal</th><th>tx</th></tr>` +
    rows.map(s => `<tr data-testid="slash-row"><td>${s.block}</td><td>${esc(when(s.at))}</td><td>${pill(s.kind)}</td><td>${addr(s.provider)}</td>
      <td class="num" data-field="amount">${money(s.amount)}</td><td>${s.deal_id ? dealLink(s.deal_id) : "-"}</td>
      <td><a class="mono" href="#/tx/${esc(s.tx_hash)}">${esc(short(s.tx_hash))}</a></td></tr>`).join("") + `</table>`;
}

function route() {
  const h = location.hash.replace(/^#\/?/, "");
  const [page, arg] = h.split("/");
  if (page === "deals" && arg) return ["deal", arg, "deals"];
  if (page === "tx" && arg) return ["tx", arg, "deals"];
  if (pages[page]) return [page, null, page];
  return ["overview", null, "overview"];
}

async function render() {
  const [page, arg, nav] = route();
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.nav === nav));
  try {
    const html = await pages[page](arg);
    if (route()[0] === page) { view.innerHTML = html; view.dataset.page = page; }
    const s = await api("/api/status");
    statusEl.textContent = `chain ${s.chain_id} · block ${s.indexed_block}` + (s.head != null ? ` / head ${s.head}` : "") +
      (s.last_error ? ` · indexer: ${s.last_error}` : "") + ` · updated ${new Date().toLocaleTimeString()}`;
    statusEl.dataset.indexed = s.indexed_block;
  } catch (e) {
    statusEl.textContent = "error: " + e.message;
  }
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => { await render(); schedule(); }, REFRESH_MS);
}
window.addEventListener("hashchange", () => { render(); schedule(); });
render().then(schedule);
