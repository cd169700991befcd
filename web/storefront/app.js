// The storefront: a client of the public API (/api/v1) and its WebSocket, nothing more.
// Hash routes: #/ home, #/search?q=, #/category/NAME, #/product/ID, #/drop/ID, #/login.
// The access token lives in memory only; the refresh token is the httpOnly cookie.

const TEXT = {
  en: {
    skip: "Skip to content", search: "Search", search_hint: "Search products", login: "Log in", logout: "Log out",
    loading: "Loading…", drops: "Drops", live: "Live now", upcoming: "Upcoming",
    ended: "Ended", sold_out_tag: "Sold out", categories: "Categories", products: "Products",
    results: "Results for “{q}”", none: "Nothing found.", more: "More",
    from: "from {p}", in_stock: "In stock", out_of_stock: "Out of stock",
    starts_in: "Starts in {t}", ends_in: "Ends in {t}", remaining: "{n} of {q} left",
    per_person: "Up to {n} per person", buy_now: "Buy now", add_to_cart: "Add to cart",
    added: "Added to your cart.", bought: "It's yours: order {id}. Pay within the time shown in your orders.",
    available: "{n} available", choose: "Choose {axis}", email: "Email", password: "Password",
    need_login: "Log in first.", welcome: "Welcome back.", retrying: "Busy — trying again…",
    error: "Something went wrong. Please try again.", not_found: "Not found.",
    sold_out: "Sold out.", purchase_limit_reached: "You've reached the limit for this drop.",
    drop_not_live: "This drop isn't open.", insufficient_stock: "Not enough stock.",
    overloaded: "Very busy right now.", invalid_credentials: "Wrong email or password.",
    email_not_verified: "Verify your email first.", too_many_attempts: "Too many tries; wait a moment.",
    rate_limited: "Too many tries; wait a moment.", offline: "No connection. Check your network.",
  },
  ko: {
    skip: "본문으로 건너뛰기", search: "검색", search_hint: "상품 검색", login: "로그인", logout: "로그아웃",
    loading: "불러오는 중…", drops: "드롭", live: "진행 중", upcoming: "오픈 예정",
    ended: "종료", sold_out_tag: "품절", categories: "카테고리", products: "상품",
    results: "“{q}” 검색 결과", none: "결과가 없습니다.", more: "더 보기",
    from: "{p}부터", in_stock: "구매 가능", out_of_stock: "품절",
    starts_in: "{t} 후 오픈", ends_in: "{t} 후 종료", remaining: "{q}개 중 {n}개 남음",
    per_person: "1인 최대 {n}개", buy_now: "바로 구매", add_to_cart: "장바구니 담기",
    added: "장바구니에 담았습니다.", bought: "주문 {id} 완료! 주문 내역에 표시된 시간 안에 결제해 주세요.",
    available: "{n}개 남음", choose: "{axis} 선택", email: "이메일", password: "비밀번호",
    need_login: "먼저 로그인해 주세요.", welcome: "다시 오신 것을 환영합니다.", retrying: "접속이 많아 다시 시도하는 중…",
    error: "문제가 생겼습니다. 다시 시도해 주세요.", not_found: "찾을 수 없습니다.",
    sold_out: "품절되었습니다.", purchase_limit_reached: "이 드롭의 구매 한도에 도달했습니다.",
    drop_not_live: "지금은 구매할 수 없는 드롭입니다.", insufficient_stock: "재고가 부족합니다.",
    overloaded: "지금 접속이 많습니다.", invalid_credentials: "이메일 또는 비밀번호가 올바르지 않습니다.",
    email_not_verified: "이메일 인증을 먼저 완료해 주세요.", too_many_attempts: "시도가 너무 많습니다. 잠시 후 다시 시도해 주세요.",
    rate_limited: "시도가 너무 많습니다. 잠시 후 다시 시도해 주세요.", offline: "연결이 끊겼습니다. 네트워크를 확인해 주세요.",
  },
};

let lang = localStorage.getItem("lang");
if (!(lang in TEXT)) lang = (navigator.language || "en").toLowerCase().startsWith("ko") ? "ko" : "en";
const t = (key, vars = {}) =>
  (TEXT[lang][key] ?? TEXT.en[key] ?? key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
// Amounts are integer minor units of the store currency (API.md): ₩12,900 is 12900, $1.50 is 150.
const money = (amount, currency = "KRW") => {
  const format = new Intl.NumberFormat(lang === "ko" ? "ko-KR" : "en-US", { style: "currency", currency });
  return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
};
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// ---- The API ------------------------------------------------------------------------------

let token = null;

// One refresh at a time in this tab (the refresh token rotates: the same cookie sent twice
// would revoke the whole session).
let refreshing = null;
function refresh() {
  refreshing ??= (async () => {
    try {
      const r = await fetch("/api/v1/auth/refresh", { method: "POST", credentials: "same-origin" });
      token = r.ok ? (await r.json()).access_token : null;
    } catch { token = null; }
    return token !== null;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

async function api(path, { method = "GET", body, headers = {}, again = true } = {}) {
  const h = { ...headers };
  if (body !== undefined) h["content-type"] = "application/json";
  if (token) h.authorization = `Bearer ${token}`;
  const r = await fetch(`/api/v1${path}`, {
    method, headers: h, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401 && token && again) {
    if (await refresh()) return api(path, { method, body, headers, again: false });
    paintAuth();
    say(t("need_login"));
  }
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    const e = new Error(data?.detail || r.statusText);
    Object.assign(e, { status: r.status, code: data?.code, retryAfter: Number(r.headers.get("retry-after")) || 1 });
    throw e;
  }
  return data;
}

const say = (text) => { $("#toast").textContent = text; clearTimeout(say.timer); say.timer = setTimeout(() => { $("#toast").textContent = ""; }, 4000); };
const problem = (e) => (e.code && TEXT.en[e.code] ? t(e.code) : e.status === 404 ? t("not_found") : t("error"));

// ---- Live topics: one socket per tab, re-subscribed on reconnect --------------------------

const live = {
  ws: null, handlers: new Map(), backoff: 500, opened: false,
  on(topic, fn) { this.handlers.set(topic, fn); this.send({ type: "subscribe", topic }); },
  reset() { for (const topic of this.handlers.keys()) this.send({ type: "unsubscribe", topic }); this.handlers.clear(); },
  send(m) { if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m)); },
  open() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      // After a reconnect, what was pushed meanwhile is lost: read the page again.
      if (this.opened) route({ focus: false });
      this.opened = true;
      if (token) this.send({ type: "auth", access_token: token });
      for (const topic of this.handlers.keys()) this.send({ type: "subscribe", topic });
    };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      const topic = m.type === "stock" ? `drop:${m.drop_id}`
        : m.type === "availability" ? `product:${m.product_id}` : null;
      if (topic) this.handlers.get(topic)?.(m);
    };
    ws.onclose = () => { setTimeout(() => this.open(), this.backoff); this.backoff = Math.min(this.backoff * 2, 15000); };
  },
};

// ---- Pages --------------------------------------------------------------------------------

let ticker = null;
const every = (fn) => { clearInterval(ticker); fn(); ticker = setInterval(fn, 1000); };
const span = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  const [d, h, m, sec] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
  return (d ? `${d}d ` : "") + [h, m, sec].map((n) => String(n).padStart(2, "0")).join(":");
};

function productCard(p) {
  return `<a class="card" href="#/product/${encodeURIComponent(p.product_id)}">
    <span class="thumb" aria-hidden="true">${esc(p.name.trim()[0])}</span>
    <span class="name">${esc(p.name)}</span>
    <span>${esc(t("from", { p: money(p.price_from, p.currency) }))}</span>
    <span class="${p.in_stock ? "ok" : "muted"}">${t(p.in_stock ? "in_stock" : "out_of_stock")}</span></a>`;
}

function dropStatus(d, now) {
  if (d.status === "sold_out") return `<span class="tag muted">${t("sold_out_tag")}</span>`;
  if (d.status === "ended") return `<span class="tag muted">${t("ended")}</span>`;
  const start = Date.parse(d.starts_at);
  return now < start
    ? `<span class="tag soon">${t("upcoming")}</span> · <span class="num">${t("starts_in", { t: span(start - now) })}</span>`
    : `<span class="tag live">${t("live")}</span>`;
}

async function home(main, current) {
  const [live_, scheduled, categories, products] = await Promise.all([
    api("/drops?status=live&limit=10"), api("/drops?status=scheduled&limit=10"),
    api("/categories"), api("/products?limit=20"),
  ]);
  if (!current()) return;
  const drops = [...live_.items, ...scheduled.items];
  main.innerHTML = `
    ${drops.length ? `<h1>${t("drops")}</h1><div class="grid">${drops.map((d) => `
      <a class="drop" href="#/drop/${encodeURIComponent(d.drop_id)}" data-drop="${esc(d.drop_id)}">
        <div class="name" data-name></div><div class="status"></div>
        <div class="price">${money(d.price, d.currency)}</div>
        <div class="num" aria-live="polite" data-remaining>${t("remaining", { n: d.remaining, q: d.quantity })}</div>
      </a>`).join("")}</div>` : ""}
    <h2>${t("categories")}</h2>
    <ul class="chips">${categories.items.map((c) => `<li><a href="#/category/${encodeURIComponent(c.category)}">${esc(c.category)} <span class="muted">${c.product_count}</span></a></li>`).join("")}</ul>
    <h2>${t("products")}</h2><div class="grid">${products.items.map(productCard).join("")}</div>`;
  for (const d of drops.filter((x) => x.product_id)) {
    api(`/products/${encodeURIComponent(d.product_id)}`).then((p) => {
      if (current()) main.querySelector(`[data-drop="${CSS.escape(d.drop_id)}"] [data-name]`).textContent = p.name;
    }).catch(() => {});
  }
  every(() => {
    const now = Date.now();
    for (const d of drops) {
      const el = main.querySelector(`[data-drop="${CSS.escape(d.drop_id)}"] .status`);
      if (el) el.innerHTML = dropStatus(d, now);
    }
  });
  for (const d of drops) {
    live.on(`drop:${d.drop_id}`, (m) => {
      Object.assign(d, { remaining: m.remaining, status: m.status });
      const el = main.querySelector(`[data-drop="${CSS.escape(d.drop_id)}"] [data-remaining]`);
      const left = t("remaining", { n: m.remaining, q: d.quantity });
      if (el && el.textContent !== left) el.textContent = left;
    });
  }
}

async function listing(main, { q, category, cursor }, current) {
  const params = new URLSearchParams({ limit: "20" });
  if (q) params.set("q", q);
  if (category) params.set("category", category);
  if (cursor) params.set("cursor", cursor);
  const page = await api(`/products?${params}`);
  if (!current()) return;
  const title = q ? t("results", { q }) : category;
  const next = new URLSearchParams({ ...(q && { q }), ...(category && { category }), cursor: page.next_cursor ?? "" });
  main.innerHTML = `<h1>${esc(title)}</h1>
    ${page.items.length ? `<div class="grid">${page.items.map(productCard).join("")}</div>` : `<p class="muted">${t("none")}</p>`}
    ${page.next_cursor ? `<p class="pager"><a class="button" href="#/search?${next}">${t("more")}</a></p>` : ""}`;
}

async function product(main, id, current) {
  const p = await api(`/products/${encodeURIComponent(id)}`);
  if (!current()) return;
  const axes = [...new Set(p.skus.flatMap((s) => Object.keys(s.options)))];
  const choice = Object.fromEntries(axes.map((a) => [a, p.skus[0].options[a]]));
  const chosen = () => p.skus.find((s) => axes.every((a) => s.options[a] === choice[a]));
  main.innerHTML = `<div class="row"><span class="thumb big" aria-hidden="true">${esc(p.name.trim()[0])}</span>
    <div><h1>${esc(p.name)}</h1><p class="muted">${esc(p.description)}</p></div></div>
    <form class="options" id="buy">${axes.map((a) => `<fieldset><legend>${esc(t("choose", { axis: a }))}</legend>
      ${[...new Set(p.skus.map((s) => s.options[a]))].map((v) => `<label><input type="radio" name="${esc(a)}" value="${esc(v)}" ${choice[a] === v ? "checked" : ""}><span>${esc(v)}</span></label>`).join("")}</fieldset>`).join("")}
      <p class="price" id="price"></p><p id="stock" aria-live="polite"></p>
      <button class="primary" type="submit">${t("add_to_cart")}</button></form>`;
  const show = () => {
    const s = chosen();
    $("#price").textContent = s ? money(s.price, p.currency) : "";
    $("#stock").textContent = s ? (s.available > 0 ? t("available", { n: s.available }) : t("out_of_stock")) : "";
    main.querySelector("button[type=submit]").disabled = !s || s.available === 0;
  };
  show();
  $("#buy").addEventListener("change", (e) => { choice[e.target.name] = e.target.value; show(); });
  $("#buy").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!token) { say(t("need_login")); location.hash = "#/login"; return; }
    const s = chosen();
    const button = e.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const cart = await api("/cart");
      const held = cart.items.find((l) => l.sku_id === s.sku_id)?.quantity ?? 0;
      await api(`/cart/items/${encodeURIComponent(s.sku_id)}`, { method: "PUT", body: { quantity: held + 1 } });
      say(t("added"));
    } catch (err) { say(problem(err)); } finally { show(); }
  });
  live.on(`product:${p.product_id}`, (m) => {
    const s = p.skus.find((x) => x.sku_id === m.sku_id);
    if (s) { s.available = m.available; show(); }
  });
}

async function drop(main, id, current) {
  // Subscribe first: nothing pushed between the read and the subscription is lost.
  let d = null;
  live.on(`drop:${id}`, (m) => { if (d) { Object.assign(d, { remaining: m.remaining, status: m.status }); show(); } });
  d = await api(`/drops/${encodeURIComponent(id)}`);
  if (!current()) return;
  main.innerHTML = `<h1 id="drop-title">${t("drops")}</h1>
    <p id="drop-status"></p><p class="price">${money(d.price, d.currency)}</p>
    <p class="num" aria-live="polite" id="remaining"></p><p class="muted">${t("per_person", { n: d.per_user_limit })}</p>
    <p class="row"><button class="primary" id="buy-now" type="button">${t("buy_now")}</button><span id="outcome" role="status" aria-live="polite"></span></p>`;
  if (d.product_id) api(`/products/${encodeURIComponent(d.product_id)}`).then((p) => { if (current()) $("#drop-title").textContent = p.name; }).catch(() => {});
  let pending = false;
  function show() {
    if (!current()) return;
    const now = Date.now();
    $("#drop-status").innerHTML = dropStatus(d, now);
    const left = t("remaining", { n: d.remaining, q: d.quantity });
    if ($("#remaining").textContent !== left) $("#remaining").textContent = left;
    const open = d.status === "live" || (d.status === "scheduled" && now >= Date.parse(d.starts_at));
    $("#buy-now").disabled = pending || !open || d.remaining === 0;
    $("#buy-now").setAttribute("aria-busy", String(pending));
  }
  every(show);
  $("#buy-now").addEventListener("click", async () => {
    if (!token) { say(t("need_login")); location.hash = "#/login"; return; }
    pending = true;
    show();
    const outcome = (text) => { if (current()) $("#outcome").textContent = text; };
    // One key per press, and the same key on every retry of that press (busy answers and lost
    // connections alike): a press never buys twice.
    const key = crypto.randomUUID();
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const order = await api(`/drops/${encodeURIComponent(d.drop_id)}/purchase`, { method: "POST", body: { quantity: 1 }, headers: { "idempotency-key": key } });
          outcome(t("bought", { id: order.order_id }));
          return;
        } catch (err) {
          const again = err.status === 429 || err.status === 503 || err.status === undefined;
          if (again && attempt < 6) {
            outcome(t(err.status === undefined ? "offline" : "retrying"));
            const backoff = 500 * 2 ** attempt * (0.5 + Math.random());
            await new Promise((r) => setTimeout(r, Math.max((err.retryAfter ?? 1) * 1000, backoff)));
            continue;
          }
          if (err.code === "sold_out") Object.assign(d, { remaining: 0, status: "sold_out" });
          outcome(problem(err));
          return;
        }
      }
    } finally {
      pending = false;
      show();
    }
  });
}

function login(main) {
  main.innerHTML = `<h1>${t("login")}</h1><form class="stack" id="login-form">
    <label>${t("email")} <input name="email" type="email" autocomplete="username" required></label>
    <label>${t("password")} <input name="password" type="password" autocomplete="current-password" required></label>
    <button class="primary" type="submit">${t("login")}</button><p id="login-error" class="error" role="alert"></p></form>`;
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      token = (await api("/auth/login", { method: "POST", body: { email: f.get("email"), password: f.get("password") } })).access_token;
      live.send({ type: "auth", access_token: token });
      say(t("welcome"));
      paintAuth();
      location.hash = "#/";
    } catch (err) { $("#login-error").textContent = problem(err); }
  });
}

// ---- Shell --------------------------------------------------------------------------------

function paintAuth() {
  const a = $("#auth");
  a.textContent = t(token ? "logout" : "login");
  a.setAttribute("href", token ? "#/logout" : "#/login");
}

function paintShell() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("#q").setAttribute("placeholder", t("search_hint"));
  $("#lang").textContent = lang === "ko" ? "English" : "한국어";
  $("#lang").lang = lang === "ko" ? "en" : "ko";
  paintAuth();
}

// Each route change starts a generation; a page still loading for an older one stops at its
// next step instead of painting over the new page.
let generation = 0;

async function route({ focus = true } = {}) {
  // In-page anchors (the skip link's `#main`) are not routes.
  if (location.hash && !location.hash.startsWith("#/")) return;
  const mine = ++generation;
  const current = () => mine === generation;
  const main = $("#main");
  live.reset();
  clearInterval(ticker);
  try {
    const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
    const params = Object.fromEntries(new URLSearchParams(query));
    const [, page, arg] = (path || "/").split("/").map(decodeURIComponent);
    if (page === "search") await listing(main, params, current);
    else if (page === "category") await listing(main, { category: arg, cursor: params.cursor }, current);
    else if (page === "product") await product(main, arg, current);
    else if (page === "drop") await drop(main, arg, current);
    else if (page === "login") login(main);
    else if (page === "logout") {
      await api("/auth/logout", { method: "POST" }).catch(() => {});
      token = null; paintAuth(); location.hash = "#/";
    } else await home(main, current);
  } catch (err) {
    if (current()) main.innerHTML = `<p class="error">${esc(problem(err))}</p>`;
  }
  if (current() && focus) {
    document.title = `${main.querySelector("h1")?.textContent || t("products")} · Emporium`;
    main.focus({ preventScroll: true });
  }
}

function searchBox() {
  const input = $("#q"), list = $("#suggest");
  let timer = null, active = -1, asked = 0;
  const close = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) { close(); return; }
    timer = setTimeout(async () => {
      const mine = ++asked;
      const { suggestions } = await api(`/search/suggest?${new URLSearchParams({ q, limit: "8" })}`).catch(() => ({ suggestions: [] }));
      if (mine !== asked) return; // a newer question is on its way
      active = -1;
      input.removeAttribute("aria-activedescendant");
      list.innerHTML = suggestions.map((s, i) => `<li role="option" id="sg-${i}">${esc(s)}</li>`).join("");
      list.hidden = !suggestions.length;
      input.setAttribute("aria-expanded", String(!list.hidden));
    }, 150);
  });
  input.addEventListener("keydown", (e) => {
    const items = [...list.children];
    if (list.hidden || !items.length || !["ArrowDown", "ArrowUp", "Escape"].includes(e.key)) return;
    e.preventDefault();
    if (e.key === "Escape") { close(); return; }
    active = (active + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
    items.forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
    input.value = items[active].textContent;
    input.setAttribute("aria-activedescendant", items[active].id);
  });
  list.addEventListener("mousedown", (e) => { if (e.target.matches("li")) { input.value = e.target.textContent; $("#search").requestSubmit(); } });
  input.addEventListener("blur", () => setTimeout(close, 100));
  $("#search").addEventListener("submit", (e) => {
    e.preventDefault(); close();
    location.hash = `#/search?${new URLSearchParams({ q: input.value.trim() })}`;
  });
}

$("#lang").addEventListener("click", () => {
  lang = lang === "ko" ? "en" : "ko";
  localStorage.setItem("lang", lang);
  paintShell();
  route();
});
window.addEventListener("hashchange", () => route());
paintShell();
searchBox();
await refresh();
paintAuth();
live.open();
route();
