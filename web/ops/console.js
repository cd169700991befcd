// The operator console at /ops: live drops (purchases per second, remaining), products and
// stock, drops, coupon campaigns, orders by status with ship, the outbox and dead letters with
// retry, the entity inspector, and the cluster (nodes, shards, drain). A client of the public
// API like the storefront: admin routes need an admin account, cluster routes an operator.
// Routes: #/ #/products #/drops #/drop/ID #/campaigns #/orders?status= #/outbox #/inspect
// #/cluster #/login #/logout.

import {
  $, addWords, api, busy, claims, enc, esc, every, fields as values, keep, live, money, paintSignedIn, paintWords,
  known, problem as words, logIn, logOut, resume, router, say, session, langButton, t, tell, when,
} from "/common/core.js";

addWords({
  en: {
    skip: "Skip to content", login: "Log in", logout: "Log out", loading: "Loading…", email: "Email", password: "Password",
    operator_token: "Or an operator token", token_note: "Kept in this tab's memory only.", need_login: "Log in with an admin or operator account.",
    dashboard: "Dashboard", products: "Products", drops: "Drops", campaigns: "Campaigns", orders: "Orders", outbox: "Outbox",
    inspector: "Inspector", cluster: "Cluster", live_drops: "Live and upcoming drops", none: "None.",
    remaining: "Remaining", quantity: "Quantity", sold: "Sold", reserved: "Reserved", per_second: "Purchases/s",
    status: "Status", starts: "Starts", price: "Price", limit: "Per person", sku: "SKU", product: "Product",
    new_drop: "New drop", create_drop: "Create drop", starts_at: "Starts at", ends_at: "Ends at (optional)", created: "Created.",
    watch: "Watch", stock: "Stock", available: "Available", set_stock: "Set available", adjust: "Adjust by", save: "Save",
    new_product: "New product", name: "Name", category: "Category", description: "Description",
    skus_help: "SKUs, one per line: sku_id, options (color=black; size=M), price, stock", create_product: "Create product",
    more: "More", all: "All", show: "Show", ship: "Ship", shipped: "Shipped: {n}", order: "Order", total: "Total", created_at: "Created",
    owing: "Orders owing", pending: "Steps pending", due: "Steps due", dead: "Dead letters", oldest: "Oldest pending",
    promised: "Orders promised", retry: "Retry", action: "Step", attempts: "Attempts", last_error: "Last error",
    kind: "Kind", id: "Id", inspect: "Inspect", actors: "Actors", active: "Active", passivated: "Passivated",
    ends: "Ends", restarts: "Restarts", mailbox: "Mailbox p99", nodes: "Nodes", shards: "Shards", node: "Node", entities: "Entities",
    drain: "Drain", draining: "Draining {n}…", epoch: "Epoch", not_clustered: "This node runs alone (started without --cluster).",
    new_campaign: "New coupon campaign", code: "Code", value: "Value (percent, or minor units)", min_order: "Minimum order",
    max_discount: "Maximum discount", scope: "Applies to", scope_order: "The whole order", scope_category: "A category",
    scope_product: "A product", scope_target: "Category or product id", total_quantity: "Coupons in total",
    create_campaign: "Create campaign", percent: "Percent", fixed: "Fixed amount",
    error: "Something went wrong.", not_found: "Not found.", forbidden: "Not allowed for this account.", offline: "No connection.",
    invalid_credentials: "Wrong email or password.", order_not_shippable: "This order can't be shipped.",
    shipping_address_required: "The buyer's profile has no name, phone and address to ship to; their order page asks them to add these.",
    drop_exists: "That drop exists.", product_exists: "That product exists.", sku_taken: "That SKU id is taken.",
    campaign_exists: "That campaign exists.", code_taken: "That code is taken.", invalid_field: "Check the fields.",
    stock_out_of_range: "Stock out of range.", invalid_token: "That token is not valid.",
    not_staff: "This account is not an admin or operator account.",
    shopper_session: "This browser is logged in to the shop as a shopper. Log in here with an admin or operator account (it ends the shop's session in this browser), or paste an operator token (it does not).",
    ds_scheduled: "Scheduled", ds_live: "Live", ds_sold_out: "Sold out", ds_ended: "Ended",
    ns_up: "Up", ns_draining: "Draining", ns_down: "Down",
  },
  ko: {
    skip: "본문으로 건너뛰기", login: "로그인", logout: "로그아웃", loading: "불러오는 중…", email: "이메일", password: "비밀번호",
    operator_token: "또는 운영자 토큰", token_note: "이 탭의 메모리에만 보관됩니다.", need_login: "관리자 또는 운영자 계정으로 로그인하세요.",
    dashboard: "대시보드", products: "상품", drops: "드롭", campaigns: "쿠폰 캠페인", orders: "주문", outbox: "아웃박스",
    inspector: "엔티티 조회", cluster: "클러스터", live_drops: "진행 중·예정 드롭", none: "없음.",
    remaining: "남은 수량", quantity: "수량", sold: "판매", reserved: "예약", per_second: "초당 구매",
    status: "상태", starts: "시작", price: "가격", limit: "1인 한도", sku: "SKU", product: "상품",
    new_drop: "새 드롭", create_drop: "드롭 만들기", starts_at: "시작 시각", ends_at: "종료 시각 (선택)", created: "만들었습니다.",
    watch: "보기", stock: "재고", available: "가용", set_stock: "가용 재고 설정", adjust: "증감", save: "저장",
    new_product: "새 상품", name: "이름", category: "카테고리", description: "설명",
    skus_help: "SKU, 한 줄에 하나: sku_id, 옵션 (color=black; size=M), 가격, 재고", create_product: "상품 만들기",
    more: "더 보기", all: "전체", show: "보기", ship: "출고", shipped: "출고됨: {n}", order: "주문", total: "금액", created_at: "주문 시각",
    owing: "처리 대기 주문", pending: "대기 단계", due: "기한 도래 단계", dead: "데드 레터", oldest: "가장 오래된 대기",
    promised: "약속된 주문", retry: "재시도", action: "단계", attempts: "시도", last_error: "마지막 오류",
    kind: "종류", id: "ID", inspect: "조회", actors: "액터", active: "활성", passivated: "비활성",
    ends: "종료", restarts: "재시작", mailbox: "메일박스 p99", nodes: "노드", shards: "샤드", node: "노드", entities: "엔티티",
    drain: "드레인", draining: "{n} 드레인 중…", epoch: "에포크", not_clustered: "단일 노드로 실행 중입니다 (--cluster 없이 시작).",
    new_campaign: "새 쿠폰 캠페인", code: "코드", value: "값 (퍼센트 또는 최소 단위 금액)", min_order: "최소 주문 금액",
    max_discount: "최대 할인", scope: "적용 대상", scope_order: "주문 전체", scope_category: "카테고리",
    scope_product: "상품", scope_target: "카테고리 또는 상품 ID", total_quantity: "총 발행 수",
    create_campaign: "캠페인 만들기", percent: "퍼센트", fixed: "정액",
    error: "문제가 생겼습니다.", not_found: "찾을 수 없습니다.", forbidden: "이 계정으로는 할 수 없습니다.", offline: "연결이 끊겼습니다.",
    invalid_credentials: "이메일 또는 비밀번호가 올바르지 않습니다.", order_not_shippable: "출고할 수 없는 주문입니다.",
    shipping_address_required: "구매자 프로필에 배송할 이름, 전화번호, 주소가 없습니다. 구매자의 주문 화면에서 입력을 안내합니다.",
    drop_exists: "이미 있는 드롭입니다.", product_exists: "이미 있는 상품입니다.", sku_taken: "이미 쓰는 SKU ID입니다.",
    campaign_exists: "이미 있는 캠페인입니다.", code_taken: "이미 쓰는 코드입니다.", invalid_field: "입력값을 확인하세요.",
    stock_out_of_range: "재고 범위를 벗어났습니다.", invalid_token: "유효하지 않은 토큰입니다.",
    not_staff: "관리자 또는 운영자 계정이 아닙니다.",
    shopper_session: "이 브라우저는 쇼핑몰에 고객 계정으로 로그인되어 있습니다. 관리자 또는 운영자 계정으로 로그인하거나(이 브라우저의 쇼핑몰 로그인은 끝납니다), 운영자 토큰을 붙여 넣으세요(쇼핑몰 로그인은 유지됩니다).",
    ds_scheduled: "예정", ds_live: "진행 중", ds_sold_out: "품절", ds_ended: "종료",
    ns_up: "정상", ns_draining: "드레인 중", ns_down: "중단",
  },
});

/** An API error for an operator: its words and the server's own detail (which field, which
 * limit). */
const problem = (e) => {
  const said = words(e);
  // The server's own (English) detail where the words cannot say it: which field, which
  // limit, or a code this page has no words for.
  const needed = !(e.code && known(e.code)) || e.code === "invalid_field";
  return needed && e.detail && !said.includes(e.detail) ? `${said} ${e.detail}` : said;
};

/** A status in words (`prefix` names its kind: `st_` an order's, `ds_` a drop's, `ns_` a node's);
 * one this page has no words for, as the server said it. */
const said = (prefix, status) => (known(prefix + status) ? t(prefix + status) : status);
const STATUSES = ["awaiting_payment", "paid", "preparing", "shipped", "delivered", "cancelled", "payment_failed",
  "expired", "return_requested", "returned", "refunded"];
const table = (heads, rows) => `<div class="scroll"><table><thead><tr>${heads.map((h) => `<th scope="col">${t(h)}</th>`).join("")}</tr></thead>
  <tbody>${rows.join("") || `<tr><td colspan="${heads.length}" class="muted">${t("none")}</td></tr>`}</tbody></table></div>`;
/** Whether this session may use the operator routes (a pasted operator token's roles are not
 * readable: it may). */
const operator = () => !session.roles.length || session.roles.includes("operator");
/** Whether this session may use the console at all: a shop session in the same browser (a
 * shopper's, through the shared refresh cookie) may not, and is asked to log in here. */
const staff = () => operator() || session.roles.includes("admin");
const iso = (local) => (local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, "Z") : undefined);
const localNow = (plusMs) => new Date(Date.now() + plusMs - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 19);
const int = (s) => (s === "" || s === undefined ? undefined : Number(s));
const action = (fn) => async (e) => {
  e.preventDefault();
  await busy(e.submitter ?? e.target, () => fn(e).catch((err) => say(problem(err))));
};

/** Units taken per second over the last five seconds, from a drop's pushed remaining counts:
 * the count five seconds ago (the last one known by then) less the count now, over the time
 * watched within those five seconds (at least one). One decimal below ten. */
function rate() {
  const samples = [];
  return {
    add(remaining) { samples.push([Date.now(), remaining]); },
    perSecond() {
      const now = Date.now(), from = now - 5000;
      while (samples.length > 1 && samples[1][0] <= from) samples.shift();
      if (!samples.length) return 0;
      const [t0, r0] = samples[0];
      const r1 = samples[samples.length - 1][1];
      const per = Math.max(0, r0 - r1) / (Math.max(1000, now - Math.max(t0, from)) / 1000);
      return per < 10 ? Math.round(per * 10) / 10 : Math.round(per);
    },
  };
}

// ---- Pages ---------------------------------------------------------------------------------

async function dashboard(main, current) {
  const [liveDrops, scheduled, box, actors] = await Promise.all([
    // At most 60 drops: a socket holds 64 topics.
    api("/drops?status=live&limit=30"), api("/drops?status=scheduled&limit=30"), api("/admin/outbox"),
    operator() ? api("/admin/actors") : null,
  ]);
  if (!current()) return;
  const drops = [...liveDrops.items, ...scheduled.items];
  const rates = new Map(drops.map((d) => [d.drop_id, rate()]));
  main.innerHTML = `<h1>${t("dashboard")}</h1>
    <div class="stats"><div class="stat">${t("owing")}<b>${box.orders_owing}</b></div><div class="stat">${t("due")}<b>${box.steps_due}</b></div>
      <div class="stat"><a href="#/outbox">${t("dead")}</a><b>${box.dead_letters}</b></div></div>
    <h2>${t("live_drops")}</h2>
    ${table(["drops", "status", "remaining", "per_second", "starts"], drops.map((d) => `<tr data-drop="${esc(d.drop_id)}">
      <td><a href="#/drop/${enc(d.drop_id)}">${esc(d.drop_id)}</a><br><span class="muted">${esc(d.sku_id)}</span></td>
      <td data-status>${esc(said("ds_", d.status))}</td><td class="num" data-remaining aria-live="polite">${d.remaining} / ${d.quantity}</td>
      <td class="num" data-rate>0</td><td>${when(d.starts_at)}</td></tr>`))}
    ${actors ? `<h2>${t("actors")}</h2>${table(["kind", "active", "passivated", "restarts", "mailbox"], actors.kinds.map((k) =>
      `<tr><td>${esc(k.kind)}</td><td>${k.active}</td><td>${k.passivated}</td><td>${k.restarts}</td><td>${k.mailbox_depth_p99}</td></tr>`))}` : ""}`;
  for (const d of drops) {
    rates.get(d.drop_id).add(d.remaining);
    live.on(`drop:${d.drop_id}`, (m) => {
      rates.get(d.drop_id).add(m.remaining);
      const row = main.querySelector(`[data-drop="${CSS.escape(d.drop_id)}"]`);
      row.querySelector("[data-remaining]").textContent = `${m.remaining} / ${d.quantity}`;
      row.querySelector("[data-status]").textContent = said("ds_", m.status);
    });
  }
  every(() => {
    for (const d of drops) {
      const el = main.querySelector(`[data-drop="${CSS.escape(d.drop_id)}"] [data-rate]`);
      if (el) el.textContent = String(rates.get(d.drop_id).perSecond());
    }
  });
}

async function drops(main, current) {
  const all = await api("/drops?limit=100");
  if (!current()) return;
  main.innerHTML = `<h1>${t("drops")}</h1>
    <h2>${t("new_drop")}</h2><form class="grid2" id="drop-form">
      <label>${t("sku")} <input name="sku_id" required maxlength="64"></label>
      <label>${t("quantity")} <input name="quantity" type="number" min="1" required></label>
      <label>${t("price")} <input name="price" type="number" min="0" required></label>
      <label>${t("limit")} <input name="per_user_limit" type="number" min="1" value="1" required></label>
      <label>${t("starts_at")} <input name="starts_at" type="datetime-local" step="1" value="${localNow(0)}" required></label>
      <label>${t("ends_at")} <input name="ends_at" type="datetime-local" step="1"></label>
      <button class="primary" type="submit">${t("create_drop")}</button></form>
    ${table(["drops", "status", "remaining", "price", "starts"], all.items.map((d) => `<tr>
      <td><a href="#/drop/${enc(d.drop_id)}">${esc(d.drop_id)}</a><br><span class="muted">${esc(d.sku_id)}</span></td>
      <td>${esc(said("ds_", d.status))}</td><td class="num">${d.remaining} / ${d.quantity}</td><td>${money(d.price, d.currency)}</td><td>${when(d.starts_at)}</td></tr>`))}`;
  $("#drop-form", main).addEventListener("submit", action(async (e) => {
    const f = values(e.target);
    const body = { sku_id: f.sku_id, quantity: int(f.quantity), price: int(f.price), per_user_limit: int(f.per_user_limit),
      starts_at: iso(f.starts_at), ...(f.ends_at && { ends_at: iso(f.ends_at) }) };
    const d = await api("/admin/drops", { method: "POST", body });
    say(t("created"));
    location.hash = `#/drop/${enc(d.drop_id)}`;
  }));
}

async function watchDrop(main, id, current) {
  let d = null, missed = false;
  const r = rate();
  const apply = (m) => { Object.assign(d, { remaining: m.remaining, status: m.status }); r.add(m.remaining); show(); };
  // Subscribed before the read: after a count pushed meanwhile (or a reconnect), read again.
  const fresh = async () => { const again = await api(`/drops/${enc(id)}`).catch(() => null); if (again && current()) apply(again); };
  live.on(`drop:${id}`, (m) => { if (d) apply(m); else missed = true; });
  live.onResume(fresh);
  d = await api(`/drops/${enc(id)}`);
  if (!current()) return;
  r.add(d.remaining);
  main.innerHTML = `<h1>${t("drops")}: ${esc(d.drop_id)}</h1><p class="muted">${esc(d.sku_id)} · ${money(d.price, d.currency)} · ${when(d.starts_at)}</p>
    <div class="stats"><div class="stat">${t("remaining")}<b id="remaining" aria-live="polite"></b></div>
      <div class="stat">${t("per_second")}<b id="rate"></b></div><div class="stat">${t("status")}<b id="drop-status"></b></div>
      <div class="stat">${t("quantity")}<b>${d.quantity}</b></div></div>
    <div class="bar" aria-hidden="true"><span id="taken"></span></div>`;
  if (missed) fresh();
  function show() {
    if (!current()) return;
    const text = String(d.remaining);
    if ($("#remaining", main).textContent !== text) $("#remaining", main).textContent = text;
    $("#drop-status", main).textContent = said("ds_", d.status);
    $("#rate", main).textContent = String(r.perSecond());
    $("#taken", main).style.width = `${(100 * (d.quantity - d.remaining)) / Math.max(1, d.quantity)}%`;
  }
  every(show);
}

async function products(main, { cursor }, current) {
  const page = await api(`/products?${new URLSearchParams({ limit: "20", ...(cursor && { cursor }) })}`);
  const details = await Promise.all(page.items.map((p) => api(`/products/${enc(p.product_id)}`)));
  if (!current()) return;
  main.innerHTML = `<h1>${t("products")}</h1>
    ${table(["product", "sku", "price", "available", "stock"], details.flatMap((p) => p.skus.map((s, i) => `<tr>
      <td>${i === 0 ? `${esc(p.name)}<br><span class="muted">${esc(p.product_id)} · ${esc(p.category)}</span>` : ""}</td>
      <td>${esc(s.sku_id)}<br><span class="muted">${esc(Object.entries(s.options).map(([k, v]) => `${k}=${v}`).join("; "))}</span></td>
      <td>${money(s.price, p.currency)}</td><td class="num" data-available="${esc(s.sku_id)}">${s.available}</td>
      <td><form class="row stock-form" data-sku="${esc(s.sku_id)}"><label>${t("adjust")} <input name="delta" type="number" required size="6"></label>
        <button type="submit">${t("save")}</button></form></td></tr>`)))}
    ${page.next_cursor ? `<p class="pager"><a class="button" href="#/products?cursor=${enc(page.next_cursor)}">${t("more")}</a></p>` : ""}
    <h2>${t("new_product")}</h2><form class="grid2" id="product-form">
      <label>${t("name")} <input name="name" required maxlength="100"></label>
      <label>${t("category")} <input name="category" required maxlength="50"></label>
      <label class="wide">${t("description")} <input name="description" maxlength="2000"></label>
      <label class="wide">${t("skus_help")} <textarea name="skus" rows="3" required placeholder="tee-red-M, color=red; size=M, 12900, 50"></textarea></label>
      <button class="primary" type="submit">${t("create_product")}</button></form>`;
  main.addEventListener("submit", action(async (e) => {
    if (e.target.matches(".stock-form")) {
      const sku = e.target.dataset.sku;
      const s = await api(`/admin/skus/${enc(sku)}/stock`, { method: "PUT", body: { delta: int(values(e.target).delta) } });
      main.querySelector(`[data-available="${CSS.escape(sku)}"]`).textContent = String(s.available);
      e.target.reset();
    } else if (e.target.id === "product-form") {
      const f = values(e.target);
      const skus = f.skus.split("\n").filter((l) => l.trim()).map((line) => {
        const [sku_id, options, price, stock] = line.split(",").map((x) => x.trim());
        const opts = Object.fromEntries((options || "").split(";").filter((o) => o.includes("=")).map((o) => o.split("=").map((x) => x.trim())));
        return { sku_id, options: opts, price: int(price), stock: int(stock) };
      });
      const p = await api("/admin/products", { method: "POST", body: { name: f.name, category: f.category, description: f.description, skus } });
      say(`${t("created")} ${p.product_id}`);
      location.hash = `#/products?r=${Date.now()}`;
    }
  }));
}

async function campaigns(main, current) {
  const list = await api("/admin/coupon-campaigns");
  if (!current()) return;
  main.innerHTML = `<h1>${t("campaigns")}</h1>
    ${table(["name", "code", "value", "remaining", "limit", "starts", "ends"], list.items.map((c) => `<tr>
      <td>${esc(c.name)}</td><td><code>${esc(c.code)}</code></td>
      <td>${c.kind === "percent" ? `${c.value}%` : money(c.value)}</td>
      <td class="num">${c.remaining ?? "∞"}${c.total_quantity ? ` / ${c.total_quantity}` : ""}</td><td>${c.per_user_limit}</td>
      <td>${c.starts_at ? when(c.starts_at) : "—"}</td><td>${c.ends_at ? when(c.ends_at) : "—"}</td></tr>`))}
    <h2>${t("new_campaign")}</h2><form class="grid2" id="campaign-form">
    <label>${t("name")} <input name="name" required maxlength="100"></label>
    <label>${t("code")} <input name="code" required maxlength="40"></label>
    <label>${t("kind")} <select name="kind"><option value="percent">${t("percent")}</option><option value="fixed">${t("fixed")}</option></select></label>
    <label>${t("value")} <input name="value" type="number" min="1" required></label>
    <label>${t("min_order")} <input name="min_order" type="number" min="0"></label>
    <label>${t("max_discount")} <input name="max_discount" type="number" min="0"></label>
    <label>${t("scope")} <select name="scope"><option value="order">${t("scope_order")}</option><option value="category">${t("scope_category")}</option><option value="product">${t("scope_product")}</option></select></label>
    <label>${t("scope_target")} <input name="target" maxlength="64"></label>
    <label>${t("total_quantity")} <input name="total_quantity" type="number" min="1"></label>
    <label>${t("limit")} <input name="per_user_limit" type="number" min="1" value="1" required></label>
    <label>${t("starts_at")} <input name="starts_at" type="datetime-local"></label>
    <label>${t("ends_at")} <input name="ends_at" type="datetime-local"></label>
    <button class="primary" type="submit">${t("create_campaign")}</button></form>`;
  $("#campaign-form", main).addEventListener("submit", action(async (e) => {
    const f = values(e.target);
    const scope = f.scope === "order" ? { type: "order" } : f.scope === "category" ? { type: "category", category: f.target } : { type: "product", product_id: f.target };
    const body = { name: f.name, code: f.code, kind: f.kind, value: int(f.value), scope, per_user_limit: int(f.per_user_limit) };
    for (const k of ["min_order", "max_discount", "total_quantity"]) if (f[k]) body[k] = int(f[k]);
    for (const k of ["starts_at", "ends_at"]) if (f[k]) body[k] = iso(f[k]);
    const c = await api("/admin/coupon-campaigns", { method: "POST", body });
    say(`${t("created")} ${c.code}`);
    location.hash = `#/campaigns?r=${Date.now()}`;
  }));
}

async function orders(main, { status = "", cursor }, current) {
  const page = await api(`/admin/orders?${new URLSearchParams({ limit: "50", ...(status && { status }), ...(cursor && { cursor }) })}`);
  if (!current()) return;
  main.innerHTML = `<h1>${t("orders")}</h1>
    <form class="row" id="status-form"><label>${t("status")} <select name="status"><option value="">${t("all")}</option>
      ${STATUSES.map((s) => `<option value="${s}" ${s === status ? "selected" : ""}>${esc(t(`st_${s}`))}</option>`).join("")}</select></label>
      <button type="submit">${t("show")}</button></form>
    ${table(["order", "status", "total", "created_at", "ship"], page.items.map((o) => `<tr>
      <td>${esc(o.title)}<br><span class="muted">${esc(o.order_id)}</span></td><td data-order-status="${esc(o.order_id)}">${esc(said("st_", o.status))}</td>
      <td>${money(o.total, o.currency)}</td><td>${when(o.created_at)}</td>
      <td>${o.status === "paid" ? `<button type="button" data-ship="${esc(o.order_id)}">${t("ship")}</button>` : ""}</td></tr>`))}
    ${page.next_cursor ? `<p class="pager"><a class="button" href="#/orders?${new URLSearchParams({ status, cursor: page.next_cursor })}">${t("more")}</a></p>` : ""}`;
  $("#status-form", main).addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/orders?${new URLSearchParams({ status: e.target.elements.status.value })}`;
  });
  main.addEventListener("click", async (e) => {
    const id = e.target.dataset.ship;
    if (!id) return;
    await busy(e.target, async () => {
      try {
        const r = await api(`/admin/orders/${enc(id)}/ship`, { method: "POST" });
        main.querySelector(`[data-order-status="${CSS.escape(id)}"]`).textContent = said("st_", r.status);
        e.target.replaceWith(t("shipped", { n: r.shipment.tracking_number }));
        // Several presses at once: each refusal names its order and stays beside the others.
      } catch (err) { say(`${id}: ${problem(err)}`, { notice: true }); }
    });
  });
}

async function outbox(main, current) {
  const [box, dead] = await Promise.all([api("/admin/outbox"), api("/admin/dead-letters")]);
  if (!current()) return;
  main.innerHTML = `<h1>${t("outbox")}</h1>
    <div class="stats">${[["owing", box.orders_owing], ["pending", box.steps_pending], ["due", box.steps_due], ["dead", box.dead_letters],
      ["promised", box.orders_promised]].map(([k, v]) => `<div class="stat">${t(k)}<b>${v}</b></div>`).join("")}</div>
    ${box.oldest_pending_at ? `<p>${t("oldest")}: ${when(box.oldest_pending_at)} · <a href="#/inspect?kind=order&id=${enc(box.oldest_pending_order_id)}">${esc(box.oldest_pending_order_id)}</a></p>` : ""}
    <h2>${t("dead")}</h2>
    ${table(["order", "action", "attempts", "last_error", "retry"], dead.items.map((d) => `<tr><td><a href="#/inspect?kind=order&id=${enc(d.order_id)}">${esc(d.order_id)}</a></td>
      <td>${esc(d.action)}</td><td>${d.attempts}</td><td>${esc(d.last_error ?? "")}</td>
      <td><button type="button" data-retry="${enc(d.order_id)}/${d.effect_id}">${t("retry")}</button></td></tr>`))}`;
  main.addEventListener("click", async (e) => {
    const path = e.target.dataset.retry;
    if (!path) return;
    await busy(e.target, () => api(`/admin/dead-letters/${path}/retry`, { method: "POST" })
      .then(() => { location.hash = `#/outbox?r=${Date.now()}`; }, (err) => say(problem(err))));
  });
}

async function inspect(main, { kind = "order", id = "" }, current) {
  main.innerHTML = `<h1>${t("inspector")}</h1><form class="row" id="inspect-form">
    <label>${t("kind")} <select name="kind">${["order", "sku"].map((k) => `<option ${k === kind ? "selected" : ""}>${k}</option>`).join("")}</select></label>
    <label class="grow">${t("id")} <input name="id" value="${esc(id)}" required maxlength="64"></label>
    <button class="primary" type="submit">${t("inspect")}</button></form><pre id="entity" hidden></pre>`;
  $("#inspect-form", main).addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/inspect?${new URLSearchParams(values(e.target))}`;
  });
  if (!id) return;
  const entity = await api(`/admin/entities/${enc(kind)}/${enc(id)}`).catch((err) => ({ error: problem(err) }));
  if (!current()) return;
  $("#entity", main).hidden = false;
  $("#entity", main).textContent = entity.error ?? JSON.stringify(entity, null, 2);
}

async function cluster(main, current) {
  // A node running alone says so in `node`; its cluster routes would only answer 404.
  const { node } = await api("/admin/actors");
  if (!current()) return;
  if (node === null) {
    main.innerHTML = `<h1>${t("cluster")}</h1><p>${t("not_clustered")}</p>`;
    return;
  }
  const [c, shards] = await Promise.all([api("/admin/cluster"), api("/admin/cluster/shards")]);
  if (!current()) return;
  main.innerHTML = `<h1>${t("cluster")}</h1><p class="muted">${esc(c.node)} · ${c.shards} ${t("shards")}</p>
    <h2>${t("nodes")}</h2>${table(["node", "status", "shards", "entities", "drain"], c.nodes.map((n) => `<tr><td>${esc(n.name)}<br><span class="muted">${esc(n.http)}</span></td>
      <td>${esc(said("ns_", n.status))}</td><td>${n.shards}</td><td>${n.entities}</td>
      <td>${n.status === "up" ? `<button type="button" data-drain="${esc(n.name)}">${t("drain")}</button>` : ""}</td></tr>`))}
    <h2>${t("shards")}</h2>${table(["shards", "node", "epoch"], shards.items.map((s) => `<tr><td>${s.shard}</td><td>${esc(s.node ?? "—")}</td><td>${s.epoch ?? "—"}</td></tr>`))}`;
  main.addEventListener("click", async (e) => {
    const name = e.target.dataset.drain;
    if (!name) return;
    await busy(e.target, () => api(`/admin/cluster/nodes/${enc(name)}/drain`, { method: "POST" })
      .then(() => { say(t("draining", { n: name })); location.hash = `#/cluster?r=${Date.now()}`; }, (err) => say(problem(err))));
  });
}

function login(main) {
  const shopper = session.token && !staff();
  main.innerHTML = `<h1>${t("login")}</h1><p class="muted">${t(shopper ? "shopper_session" : "need_login")}</p>
    <form class="stack" id="login-form">
      <label>${t("email")} <input name="email" type="email" autocomplete="username"></label>
      <label>${t("password")} <input name="password" type="password" autocomplete="current-password"></label>
      <label>${t("operator_token")} <input name="token" type="password" autocomplete="off" aria-describedby="token-note"></label>
      <small id="token-note" class="muted">${t("token_note")}</small>
      <button class="primary" type="submit">${t("login")}</button><p id="login-form-error" class="error" role="alert"></p></form>`;
  $("#login-form", main).addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = values(e.target);
    await busy(e.submitter ?? e.target.querySelector("button[type=submit]"), async () => {
      try {
        if (f.token) {
          // Checked before it is kept (a wrong token would leave an empty console). A pasted
          // token has no refresh cookie and is not shared with the shop's tabs.
          const r = await fetch("/api/v1/admin/outbox", { headers: { authorization: `Bearer ${f.token}` } });
          if (!r.ok) throw Object.assign(new Error("token"), { status: r.status, code: r.status === 401 ? "invalid_token" : "forbidden" });
          keep(f.token, { cookie: false, share: false });
        } else {
          // A shopper's account opens nothing here: say so instead of an empty console (its
          // session, which the log-in made the browser's, is ended there and then).
          await logIn(f.email, f.password, (token) => {
            const roles = [claims(token).roles ?? []].flat();
            return roles.includes("admin") || roles.includes("operator") ? null
              : Object.assign(new Error("roles"), { status: 403, code: "not_staff" });
          });
        }
        paintAuth();
        location.hash = "#/";
      } catch (err) { tell(main, "#login-form-error", problem(err)); }
    });
  });
}

// ---- Shell ---------------------------------------------------------------------------------

function paintAuth() {
  paintSignedIn();
  for (const el of document.querySelectorAll("[data-operator]")) el.hidden = !operator();
}

function paintShell() {
  paintWords();
  paintAuth();
}

// (a pasted token ends in this tab alone: the shop's session is not its)
session.onLost = () => { keep(null, session.pasted ? { cookie: false, share: false } : {}); paintAuth(); location.hash = "#/login"; };

const route = router($("#main"), async (root, page, arg, params, current) => {
  const section = page === "drop" ? "drops" : page || "";
  for (const a of document.querySelectorAll(".sections a")) {
    if (a.getAttribute("href") === `#/${section}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (page === "logout") {
    // Replaced, so Back never lands here again.
    await logOut();
    paintAuth();
    location.replace("#/login");
    return;
  }
  if (!session.token || !staff() || page === "login") return login(root);
  switch (page) {
    case "products": return products(root, params, current);
    case "drops": return drops(root, current);
    case "drop": return watchDrop(root, arg, current);
    case "campaigns": return campaigns(root, current);
    case "orders": return orders(root, params, current);
    case "outbox": return outbox(root, current);
    case "inspect": return operator() ? inspect(root, params, current) : dashboard(root, current);
    case "cluster": return operator() ? cluster(root, current) : dashboard(root, current);
    default: return dashboard(root, current);
  }
}, { title: "Emporium console" });

langButton(paintShell, route);
paintShell();
session.onChange = () => { paintAuth(); route({ focus: false }); };
await resume();
paintAuth();
live.open();
route();
