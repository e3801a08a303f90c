// The merchandiser page: sign in with a key, search, customer and product views, rules, models.
// Plain DOM code; cytoscape draws explanation paths, chart.js the demand forecast.
import cytoscape from "cytoscape";
import {
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Filler, Legend, Tooltip);

const KEY = "kgrec.key";
const $ = (sel) => document.querySelector(sel);
const view = $("#view");
let chart = null;

// -- helpers -----------------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const fmt = (v, digits = 3) => (v === null || v === undefined ? "—" : typeof v === "number" ? Number(v.toFixed(digits)) : v);
const enc = encodeURIComponent;

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  const headers = { Authorization: `Bearer ${key}`, ...(options.headers || {}) };
  if (options.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { ...options, headers });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (resp.status === 401) {
    signOut("The key was refused (unknown or revoked): sign in again.");
  }
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

function showError(target, err) {
  target.replaceChildren(h("p", { class: "error", role: "alert", text: err.message || String(err) }));
}

// -- sign-in -----------------------------------------------------------------------------------
function signOut(message = "") {
  sessionStorage.removeItem(KEY);
  $("#nav").hidden = true;
  view.replaceChildren();
  $("#signin").hidden = false;
  $("#signin-error").textContent = message;
}

$("#signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("#key-input").value.trim();
  if (!key) {
    $("#signin-error").textContent = "Paste a key first.";
    return;
  }
  sessionStorage.setItem(KEY, key);
  try {
    await api("/v1/rules"); // needs a merchandiser (or admin) key
  } catch (err) {
    const why = err.status === 403 ? "This key's role may not use the merchandiser page (ask for a merchandiser key)." : err.message;
    signOut(why);
    return;
  }
  $("#key-input").value = "";
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  route();
});

$("#signout-btn").addEventListener("click", () => signOut());

$("#search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("#search-input").value.trim();
  if (q) location.hash = `#/search/${enc(q)}`;
});

// -- routing -----------------------------------------------------------------------------------
function route() {
  if (!sessionStorage.getItem(KEY)) {
    signOut();
    return;
  }
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  const [, page, arg] = location.hash.split("/");
  const id = arg ? decodeURIComponent(arg) : "";
  if (page === "customer" && id) return customerPage(id);
  if (page === "product" && id) return productPage(id);
  if (page === "search" && id) return searchPage(id);
  if (page === "rules") return rulesPage();
  if (page === "models") return modelsPage();
  view.replaceChildren(h("h1", { text: "Search a customer or a product" }), h("p", { class: "muted", text: "Customer ids (C…), product ids (P…) or words of a product name." }));
}
window.addEventListener("hashchange", route);

// -- search ------------------------------------------------------------------------------------
async function searchPage(q) {
  view.replaceChildren(h("h1", { text: `Search: ${q}` }));
  const out = h("div", { id: "search-results" });
  view.append(out);
  try {
    const res = await api(`/v1/search?q=${enc(q)}&limit=20`);
    const list = (title, hits, kind) =>
      h("div", { class: "panel" }, h("h2", { text: `${title} (${hits.length})` }),
        hits.length ? h("ul", {}, hits.map((hit) => h("li", {}, h("a", { href: `#/${kind}/${enc(hit.id)}`, class: `hit-${kind}`, text: hit.id }), " ", h("span", { class: "muted", text: hit.detail })))) : h("p", { class: "muted", text: "None." }));
    out.replaceChildren(list("Customers", res.customers, "customer"), list("Products", res.products, "product"));
  } catch (err) {
    showError(out, err);
  }
}

// -- customer ----------------------------------------------------------------------------------
let customerState = { id: null, surface: "home", items: [] };

async function customerPage(customerId, surface = "home") {
  customerState = { id: customerId, surface, items: [] };
  const tabs = h("div", { class: "tabs" }, ["home", "email"].map((s) =>
    h("button", { type: "button", class: s === surface ? "on" : "", id: `surface-${s}`, onclick: () => customerPage(customerId, s), text: s })));
  const whyForm = h("form", { class: "inline", id: "whynot-form" },
    h("label", { for: "whynot-input", text: "Why not this product?" }),
    h("input", { id: "whynot-input", placeholder: "product id", size: 14 }),
    h("button", { type: "submit", id: "whynot-btn", text: "Ask" }));
  whyForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = $("#whynot-input").value.trim();
    if (p) whyNot(customerId, p);
  });
  view.replaceChildren(
    h("h1", {}, "Customer ", h("span", { id: "customer-id", text: customerId })),
    tabs,
    h("div", { class: "columns" },
      h("div", {},
        h("div", { class: "panel" }, h("h2", {}, "Recommendations (", h("span", { id: "surface-name", text: surface }), ")"), h("div", { id: "recs" }, h("p", { class: "muted", text: "Loading…" }))),
      ),
      h("div", {},
        h("div", { class: "panel" }, h("h2", { text: "Explanation" }), h("p", { id: "explain-title", class: "muted", text: "Choose “Explain” on an item." }), h("div", { id: "graph" }), h("ol", { id: "paths" })),
        h("div", { class: "panel" }, whyForm, h("div", { id: "whynot" })),
      ),
    ),
  );
  await loadRecommendations();
}

async function loadRecommendations() {
  const { id, surface } = customerState;
  const box = $("#recs");
  try {
    const res = await api(`/v1/customers/${enc(id)}/recommendations?surface=${surface}&k=10&paths=3`);
    customerState.items = res.items;
    const head = h("p", { class: "muted" }, `Model ${res.model_version || "none"}`, res.fallback ? " · fallback (no personal items)" : "", res.degraded ? " · degraded (no paths: Neo4j unreachable)" : "");
    const rows = res.items.map((item) =>
      h("tr", { class: "rec", "data-product": item.product_id },
        h("td", { class: "rank", text: item.rank }),
        h("td", {}, h("a", { href: `#/product/${enc(item.product_id)}`, class: "rec-product", text: item.product_id }), h("div", { class: "muted", text: item.name || "" })),
        h("td", { text: fmt(item.score) }),
        h("td", {}, h("span", { class: "tag strategy", text: item.strategy })),
        h("td", {}, item.adjustments.length ? item.adjustments.map((a) => h("div", { class: `adj ${a.delta < 0 ? "neg" : "pos"}`, text: `${a.kind} ${a.delta >= 0 ? "+" : ""}${fmt(a.delta)}: ${a.reason}` })) : h("span", { class: "muted", text: "none" })),
        h("td", {},
          h("button", { type: "button", class: "explain-btn", disabled: item.paths.length ? null : true, onclick: () => explain(item), text: item.paths.length ? `Explain (${item.paths.length})` : "No paths" }),
          " ",
          h("button", { type: "button", class: "exclude-btn", title: `Exclude ${item.product_id} on ${surface}`, onclick: () => quickRule("exclude", item.product_id), text: "Exclude" }),
        ),
      ));
    box.replaceChildren(head, h("table", { id: "recs-table" },
      h("thead", {}, h("tr", {}, ["#", "Product", "Score", "Strategy", "Adjustments", ""].map((t) => h("th", { text: t })))),
      h("tbody", {}, rows)));
  } catch (err) {
    showError(box, err);
  }
}

async function quickRule(action, productId) {
  try {
    await api("/v1/rules", { method: "POST", body: JSON.stringify({ action, target_kind: "product", target_id: productId, surface: customerState.surface, note: "from the merchandiser page" }) });
    await loadRecommendations();
  } catch (err) {
    showError($("#recs"), err);
  }
}

function drawGraph(paths) {
  const elements = [];
  const seen = new Set();
  paths.forEach((path, p) => {
    const keys = path.nodes.map((n) => `${n.label}:${n.id}`);
    path.nodes.forEach((n, i) => {
      if (!seen.has(keys[i])) {
        seen.add(keys[i]);
        elements.push({ data: { id: keys[i], nodeId: n.id, label: n.label, name: `${n.label}\n${n.name || n.id}` } });
      }
    });
    path.relationships.forEach((r, i) => {
      elements.push({ data: { id: `p${p}r${i}`, source: keys[r.start], target: keys[r.end], type: r.type } });
    });
  });
  if (window.kgrecGraph) window.kgrecGraph.destroy();
  const colours = { Customer: "#2f6fd6", Product: "#d67a2f", Category: "#3a9a55", Brand: "#8a4fc2", Segment: "#b0377a" };
  window.kgrecGraph = cytoscape({
    container: $("#graph"),
    elements,
    layout: { name: "breadthfirst", directed: false, spacingFactor: 1.1 },
    style: [
      { selector: "node", style: { label: "data(name)", "text-wrap": "wrap", "font-size": 9, "text-valign": "bottom", width: 22, height: 22, "background-color": (n) => colours[n.data("label")] || "#777" } },
      { selector: "edge", style: { label: "data(type)", "font-size": 7, width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": "#9aa5b4", "target-arrow-color": "#9aa5b4" } },
      { selector: ":selected", style: { "border-width": 3, "border-color": "#111" } },
    ],
  });
}

function explain(item) {
  $("#explain-title").textContent = `Why ${item.product_id} (${item.name || ""}) — strategy ${item.strategy}, score ${fmt(item.score)}`;
  drawGraph(item.paths);
  $("#paths").replaceChildren(...item.paths.map((p) => h("li", {}, h("span", { class: "tag", text: p.kind }), ` ${p.sentence || ""} `, h("span", { class: "muted", text: `(${fmt(p.score)})` }))));
}

async function whyNot(customerId, productId) {
  const box = $("#whynot");
  box.replaceChildren(h("p", { class: "muted", text: "Asking…" }));
  try {
    const w = await api(`/v1/customers/${enc(customerId)}/why-not/${enc(productId)}?surface=${customerState.surface}&k=10`);
    let verdict;
    if (w.shown) verdict = `Shown at rank ${w.rank}.`;
    else if (w.removed_by.length) verdict = `Not shown: ${w.removed_by.join("; ")}.`;
    else verdict = `Not shown: ranked ${w.rank ?? "—"}, score ${fmt(w.score)} vs ${fmt(w.last_shown_score)} for the last item shown (gap ${fmt(w.gap)}).`;
    box.replaceChildren(
      h("p", { id: "whynot-answer", text: verdict }),
      h("p", { class: "muted", text: `Stock: ${w.stock ?? "—"} · strategy: ${w.strategy ?? "—"}` }),
      w.paths.length ? h("ul", {}, w.paths.map((p) => h("li", { text: p.sentence || p.kind }))) : h("p", { class: "muted", text: "No path links them." }),
    );
  } catch (err) {
    showError(box, err);
  }
}

// -- product -----------------------------------------------------------------------------------
async function productPage(productId) {
  view.replaceChildren(h("h1", {}, "Product ", h("span", { id: "product-id", text: productId })), h("div", { id: "product" }, h("p", { class: "muted", text: "Loading…" })));
  const box = $("#product");
  try {
    const [p, similar, together] = await Promise.all([
      api(`/v1/products/${enc(productId)}`),
      api(`/v1/products/${enc(productId)}/similar?k=8&paths=0`),
      api(`/v1/products/${enc(productId)}/bought-together?k=8&paths=0`),
    ]);
    const stock = p.stock.length
      ? h("table", { id: "stock-table" }, h("thead", {}, h("tr", {}, ["Location", "On hand", "Lead time (days)", "Days of cover", "Stockout probability"].map((t) => h("th", { text: t })))),
        h("tbody", {}, p.stock.map((s) => h("tr", {}, h("td", { text: s.location_id }), h("td", { text: fmt(s.on_hand) }), h("td", { text: fmt(s.lead_time_days) }), h("td", { text: fmt(s.days_of_cover, 1) }), h("td", { text: s.stockout_probability === null ? "—" : `${Math.round(s.stockout_probability * 100)}%` })))))
      : h("p", { class: "muted", text: "No stock records." });
    const promos = p.promotions.length
      ? h("ul", { id: "promotions" }, p.promotions.map((pr) => h("li", { text: `${pr.name || pr.promotion_id}: ${fmt(pr.discount_pct, 1)}% off (${pr.target_type} ${pr.target_id}) until ${pr.ends_at ? pr.ends_at.slice(0, 10) : "—"}` })))
      : h("p", { class: "muted", text: "No promotion running." });
    const items = (res) => h("ol", {}, res.items.map((i) => h("li", {}, h("a", { href: `#/product/${enc(i.product_id)}`, text: i.product_id }), ` ${i.name || ""} `, h("span", { class: "tag", text: i.strategy }))));
    const select = h("select", { id: "forecast-location" }, p.forecasts.map((f, i) => h("option", { value: i, text: f.location_id })));
    box.replaceChildren(
      h("div", { class: "panel" }, h("p", {}, `${p.name || ""} · price ${fmt(p.price, 2)} · brand ${p.brand || "—"} · `, p.categories.join(", "), p.active ? "" : " · inactive")),
      h("div", { class: "columns" },
        h("div", {},
          h("div", { class: "panel" }, h("h2", { text: "Stock per location" }), stock),
          h("div", { class: "panel" }, h("h2", {}, "Demand forecast ", p.forecasts.length > 1 ? select : ""), p.forecasts.length ? h("div", { id: "forecast-box" }, h("canvas", { id: "forecast" })) : h("p", { class: "muted", id: "no-forecast", text: "No current forecast (`kgrec forecast run`)." })),
        ),
        h("div", {},
          h("div", { class: "panel" }, h("h2", { text: "Active promotions" }), promos),
          h("div", { class: "panel", id: "similar" }, h("h2", { text: "Similar" }), items(similar)),
          h("div", { class: "panel", id: "together" }, h("h2", { text: "Bought together" }), items(together)),
        ),
      ),
    );
    if (p.forecasts.length) {
      drawForecast(p.forecasts[0]);
      select.addEventListener("change", () => drawForecast(p.forecasts[Number(select.value)]));
    }
  } catch (err) {
    showError(box, err);
  }
}

function drawForecast(f) {
  const step = f.granularity === "week" ? 7 : 1;
  const first = f.first_day ? new Date(f.first_day) : null;
  const labels = f.mean.map((_, i) => (first ? new Date(first.getTime() + i * step * 86400000).toISOString().slice(0, 10) : `${i + 1}`));
  if (chart) chart.destroy();
  chart = new Chart($("#forecast"), {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: `upper (${fmt(f.level, 0)}%)`, data: f.upper, borderColor: "rgba(47,111,214,.3)", backgroundColor: "rgba(47,111,214,.15)", fill: "+1", pointRadius: 0 },
        { label: `lower (${fmt(f.level, 0)}%)`, data: f.lower, borderColor: "rgba(47,111,214,.3)", pointRadius: 0, fill: false },
        { label: `mean per ${f.granularity || "step"} (${f.model || ""})`, data: f.mean, borderColor: "#2f6fd6", pointRadius: 2, fill: false },
      ],
    },
    options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true, title: { display: true, text: "units" } } } },
  });
  window.kgrecChart = chart;
}

// -- rules -------------------------------------------------------------------------------------
async function rulesPage() {
  const field = (label, el) => h("label", {}, `${label} `, el);
  const form = h("form", { class: "inline panel", id: "rule-form" },
    field("Action", h("select", { name: "action" }, ["pin", "boost", "bury", "exclude"].map((a) => h("option", { text: a })))),
    field("Target", h("select", { name: "target_kind" }, ["product", "category", "brand"].map((a) => h("option", { text: a })))),
    field("Id", h("input", { name: "target_id", required: true, size: 12 })),
    field("Surface", h("select", { name: "surface" }, ["", "home", "email", "product", "cart"].map((a) => h("option", { value: a, text: a || "any" })))),
    field("Segment", h("input", { name: "segment", size: 10, placeholder: "any" })),
    field("Weight", h("input", { name: "weight", type: "number", step: "0.05", min: "0", max: "1", placeholder: "0.3", size: 5 })),
    field("Position", h("input", { name: "position", type: "number", min: "1", placeholder: "pin", size: 4 })),
    field("Note", h("input", { name: "note", size: 16 })),
    h("button", { type: "submit", id: "rule-add", text: "Add rule" }));
  const msg = h("div", { id: "rule-message" });
  const list = h("div", { id: "rules" });
  view.replaceChildren(h("h1", { text: "Merchandising rules" }), h("p", { class: "muted", text: "Rules apply to serving from the next request; each change is audited with your key." }), form, msg, list);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    const body = { action: data.action, target_kind: data.target_kind, target_id: data.target_id.trim() };
    if (data.surface) body.surface = data.surface;
    if (data.segment.trim()) body.segment = data.segment.trim();
    if (data.weight) body.weight = Number(data.weight);
    if (data.position) body.position = Number(data.position);
    if (data.note.trim()) body.note = data.note.trim();
    try {
      const rule = await api("/v1/rules", { method: "POST", body: JSON.stringify(body) });
      msg.replaceChildren(h("p", { text: `Added ${rule.rule_id}.` }));
      form.reset();
      await loadRules(list);
    } catch (err) {
      const fields = err.body && err.body.fields ? err.body.fields.map((f) => `${(f.loc || f.location || []).toString()}: ${f.msg || f.reason || ""}`).join("; ") : "";
      msg.replaceChildren(h("p", { class: "error", role: "alert", text: `${err.message}${fields ? ` (${fields})` : ""}` }));
    }
  });
  await loadRules(list);
}

async function loadRules(list) {
  try {
    const rules = await api("/v1/rules");
    list.replaceChildren(rules.length
      ? h("table", { id: "rules-table" }, h("thead", {}, h("tr", {}, ["Rule", "Action", "Target", "Surface", "Segment", "Weight", "Position", "Note", ""].map((t) => h("th", { text: t })))),
        h("tbody", {}, rules.map((r) => h("tr", { "data-rule": r.rule_id },
          h("td", { text: r.rule_id }), h("td", { text: r.action }), h("td", { text: `${r.target_kind} ${r.target_id}` }), h("td", { text: r.surface || "any" }), h("td", { text: r.segment || "any" }),
          h("td", { text: r.action === "boost" || r.action === "bury" ? fmt(r.weight) : "—" }), h("td", { text: r.action === "pin" ? fmt(r.position) : "—" }), h("td", { text: r.note || "" }),
          h("td", {}, h("button", { type: "button", class: "rule-delete", onclick: async () => { await api(`/v1/rules/${enc(r.rule_id)}`, { method: "DELETE" }); await loadRules(list); }, text: "Delete" }))))))
      : h("p", { class: "muted", text: "No rules." }));
  } catch (err) {
    showError(list, err);
  }
}

// -- models ------------------------------------------------------------------------------------
async function modelsPage() {
  view.replaceChildren(h("h1", { text: "Model versions" }), h("div", { id: "models" }, h("p", { class: "muted", text: "Loading…" })));
  const box = $("#models");
  try {
    const res = await api("/v1/models");
    const names = [...new Set(res.versions.flatMap((v) => Object.keys(v.metrics.test || v.metrics.validation || {})))].filter((n) => n !== "ndcg@10").sort();
    box.replaceChildren(
      h("p", {}, `Active: ${res.active || "none"} · serving: ${res.serving || "none"}`),
      h("table", { id: "models-table" },
        h("thead", {}, h("tr", {}, ["Version", "Model", "Created", "Status", "Validation NDCG@10", "Test NDCG@10", ...names.map((n) => `test ${n}`)].map((t) => h("th", { text: t })))),
        h("tbody", {}, res.versions.map((v) => h("tr", { "data-version": v.version_id },
          h("td", { text: v.version_id }), h("td", { text: v.model }), h("td", { text: v.created_at.slice(0, 19).replace("T", " ") }),
          h("td", {}, v.active ? h("span", { class: "tag active", text: "active" }) : h("span", { class: "muted", text: "inactive" })),
          h("td", { text: fmt(v.val_ndcg10) }), h("td", { text: fmt(v.test_ndcg10) }),
          names.map((n) => h("td", { text: fmt((v.metrics.test || {})[n]) })))))),
    );
  } catch (err) {
    showError(box, err);
  }
}

route();
