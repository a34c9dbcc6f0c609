// The demo storefront. Every piece of data comes from the JSON API under /api/v1/, the
// same calls a client site makes: shoppers, recommendations, behaviours, items, similar.
"use strict";

(function () {
  const I18N = {
    zh: {
      shopName: "拾光小铺",
      intentPlaceholder: "我最近在找一件外套，性价比高且质量好的",
      intentLabel: "想找什么",
      find: "找找看",
      shopper: "顾客",
      newShopper: "新顾客",
      newShopperTitle: "新顾客",
      newShopperName: "怎么称呼你？",
      cancel: "取消",
      create: "开始逛逛",
      cart: "购物车",
      all: "全部",
      home: "首页",
      hello: "你好，",
      guest: "新朋友",
      diversity: "多样性",
      recommended: "为你推荐",
      pickedFor: (q) => `为“${q}”挑选`,
      inCategory: (c) => `${c} · 为你推荐`,
      clear: "清除",
      intentChip: "想找",
      categoryChip: "分类",
      similar: "相似商品",
      view: "浏览",
      addToCart: "加入购物车",
      like: "喜欢",
      dislike: "不喜欢",
      recorded: {
        view: "已记录浏览",
        cart: "已加入购物车",
        like: "已标记喜欢",
        dislike: "以后少推荐这类",
      },
      updated: "推荐已更新",
      loading: "正在为你挑选…",
      empty: "暂时没有可推荐的商品。",
      error: "出错了：",
      noShoppers: "还没有顾客：点击“新顾客”开始。",
      items: (n) => `${n} 件商品`,
      footer: "推荐由 recsite 提供：文本编码、实时画像、多样化排序与可解释的理由。",
      apiDocs: "API 文档",
      admin: "管理后台",
      lang: "zh-Hans",
    },
    en: {
      shopName: "Shiguang Shop",
      intentPlaceholder: "I'm looking for a coat: good value and good quality",
      intentLabel: "What are you looking for?",
      find: "Find",
      shopper: "Shopper",
      newShopper: "New shopper",
      newShopperTitle: "New shopper",
      newShopperName: "What should we call you?",
      cancel: "Cancel",
      create: "Start shopping",
      cart: "Cart",
      all: "All",
      home: "Home",
      hello: "Hello, ",
      guest: "friend",
      diversity: "Diversity",
      recommended: "Recommended for you",
      pickedFor: (q) => `Picked for “${q}”`,
      inCategory: (c) => `${c} · Recommended for you`,
      clear: "Clear",
      intentChip: "Looking for",
      categoryChip: "Category",
      similar: "Similar items",
      view: "View",
      addToCart: "Add to cart",
      like: "Like",
      dislike: "Dislike",
      recorded: {
        view: "View recorded",
        cart: "Added to your cart",
        like: "Marked as liked",
        dislike: "We'll show fewer like this",
      },
      updated: "Recommendations updated",
      loading: "Picking items for you…",
      empty: "Nothing to recommend yet.",
      error: "Something went wrong: ",
      noShoppers: "No shoppers yet: press “New shopper” to begin.",
      items: (n) => `${n} items`,
      footer: "Recommendations by recsite: text encoders, real-time profiles, diverse ranking and honest reasons.",
      apiDocs: "API docs",
      admin: "Admin",
      lang: "en",
    },
  };

  const ICONS = {
    view: '<path d="M2 12s3.6-7 10-7 10 7 10 7-3.6 7-10 7S2 12 2 12Z"/><circle cx="12" cy="12" r="3"/>',
    cart: '<path d="M3 4h2l2.4 11.2a2 2 0 0 0 2 1.6h7.7a2 2 0 0 0 2-1.5L21 8H6.2"/><circle cx="10" cy="20.5" r="1.3"/><circle cx="17" cy="20.5" r="1.3"/>',
    like: '<path d="M12 20s-7.5-4.6-9.3-9.3C1.4 7.3 3.6 4 7 4c2 0 3.4 1.1 5 3 1.6-1.9 3-3 5-3 3.4 0 5.6 3.3 4.3 6.7C19.5 15.4 12 20 12 20Z"/>',
    dislike: '<circle cx="12" cy="12" r="9"/><path d="m5.6 5.6 12.8 12.8"/>',
  };

  const STORE = { lang: "recsite.storefront.lang", user: "recsite.storefront.user" };
  const body = document.body;
  const API = body.dataset.api;
  const SHOP_API = body.dataset.shopApi;
  const personas = JSON.parse(document.getElementById("persona-labels").textContent);

  const state = {
    lang: localStorage.getItem(STORE.lang) === "en" ? "en" : "zh",
    user: localStorage.getItem(STORE.user) || "",
    users: [],
    q: new URLSearchParams(location.search).get("q") || "",
    category: body.dataset.category || "",
    diversity: 0,
    cart: 0,
    request: 0,
  };

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const t = (key, ...args) => {
    const value = I18N[state.lang][key];
    return typeof value === "function" ? value(...args) : value;
  };

  // --- The API ------------------------------------------------------------------------

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function errorText(payload, status) {
    if (payload && typeof payload === "object") {
      if (payload.detail) return String(payload.detail);
      return Object.entries(payload)
        .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
        .join("; ");
    }
    return `HTTP ${status}`;
  }

  async function request(base, path, { method = "GET", params, json, token } = {}) {
    const url = new URL(base + path, location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
    }
    const headers = { Accept: "application/json" };
    const options = { method, headers, credentials: "same-origin" };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(json);
    }
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    if (token) headers.Authorization = `Shopper ${token}`;
    const response = await fetch(url, options);
    const payload = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error(errorText(payload, response.status));
      error.status = response.status;
      throw error;
    }
    return payload;
  }

  // The storefront's own backend: the shopper list, new shoppers, and shopper tokens.
  const shop = (path, options) => request(SHOP_API, path, options);

  // A browser never holds an API key: it calls the API with a short-lived token for the
  // current shopper, which the shop's backend issues (and which allows only that
  // shopper's lists and events).
  const tokens = new Map();

  async function shopperToken(user, fresh = false) {
    const cached = tokens.get(user);
    if (!fresh && cached && cached.expires > Date.now() + 30_000) return cached.token;
    const issued = await shop("/token", { method: "POST", json: { user } });
    tokens.set(user, { token: issued.token, expires: Date.now() + issued.expires_in * 1000 });
    return issued.token;
  }

  async function api(path, options = {}) {
    if (!state.user) return request(API, path, options);
    try {
      return await request(API, path, { ...options, token: await shopperToken(state.user) });
    } catch (error) {
      if (error.status !== 401) throw error;
      // Expired while the page was open: one more try with a new token.
      return request(API, path, { ...options, token: await shopperToken(state.user, true) });
    }
  }

  // `from`: the list the item was shown in ({id: its recommendation_id, position}), so the
  // shop's metrics can attribute the event to the list, its scenario and the position.
  function recordBehaviour(item, kind, from) {
    const event = { user: state.user, item, kind, context: { page: body.dataset.page, device: "web" } };
    if (from && from.id) Object.assign(event, { recommendation_id: from.id, position: from.position });
    return api("/behaviours", { method: "POST", json: event });
  }

  // The browser snippet (clients/js/recsite.js) fetches the shop's list and reports what
  // the shopper saw (impressions of the cards actually on screen) and opened (clicks),
  // with the same shopper tokens.
  const recsite = Recsite.client({
    baseUrl: API,
    token: (user, fresh) => shopperToken(user, fresh),
    headers: () => ({ "X-CSRFToken": csrfToken() }),
    context: { page: body.dataset.page },
  });
  const watching = new WeakMap(); // grid -> the snippet's observer of the list it shows

  // Impressions of the rendered cards, and clicks on their links, for the list they came from.
  function track(grid, list) {
    if (watching.has(grid)) watching.get(grid).disconnect();
    watching.delete(grid);
    if (!state.user || !list || !list.recommendation_id) return;
    const cards = Array.from(grid.querySelectorAll("[data-testid=rec-card]"));
    watching.set(grid, recsite.observe(list, cards, { user: state.user, root: grid, clicks: "a[href]" }));
  }

  // A list's items, each knowing the list it came from and its position in it.
  function listed(list) {
    return list.items.map((item, index) => ({
      ...item,
      list: { id: list.recommendation_id, position: index + 1 },
    }));
  }

  // Opening an item from a list is a click on it: the snippet reports it (see track).
  function itemLink(item) {
    return itemUrl(item.id);
  }

  // --- Presentation helpers -----------------------------------------------------------

  function el(tag, attributes = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "html") node.innerHTML = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children)) if (child) node.append(child);
    return node;
  }

  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.innerHTML = ICONS[name];
    return svg;
  }

  // An item's own texts in the shop's language (items/{id} carries translations; lists
  // already return the title in the language asked for).
  function translated(item, field) {
    const texts = (item.translations || {})[state.lang] || {};
    return texts[field] || "";
  }

  function titleOf(item) {
    return translated(item, "title") || item.title;
  }

  function descriptionOf(item) {
    return translated(item, "description") || item.description || "";
  }

  function categoryLabel(slug, attributes = {}) {
    const fromItem = state.lang === "en" ? attributes.category_en : attributes.category_zh;
    if (fromItem) return fromItem;
    const link = $(`.catnav a[data-category="${CSS.escape(slug || "")}"]`);
    return link ? link.dataset[state.lang === "en" ? "labelEn" : "labelZh"] : slug || "";
  }

  function price(value) {
    const number = Number(value);
    if (value === undefined || value === null || Number.isNaN(number)) return "";
    return new Intl.NumberFormat(state.lang === "en" ? "en-US" : "zh-CN", {
      style: "currency",
      currency: "CNY",
      currencyDisplay: "narrowSymbol",
      maximumFractionDigits: Number.isInteger(number) ? 0 : 2,
    }).format(number);
  }

  function itemUrl(id) {
    return body.dataset.itemUrl.replace("ITEM_ID", encodeURIComponent(id));
  }

  // Placeholder images: a colour family per category (the demo's, or one derived from the
  // name), shifted a little per item so a row of one category is not a single colour.
  const CATEGORY_HUES = {
    clothing: 350,
    electronics: 212,
    books: 32,
    food: 95,
    home: 20,
    beauty: 318,
    sports: 175,
    "baby-toys": 48,
  };

  function hue(text) {
    let h = 0;
    for (const ch of text || "") h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function paintThumb(node, slug, attributes = {}, id = "") {
    const base = slug in CATEGORY_HUES ? CATEGORY_HUES[slug] : hue(slug);
    node.style.setProperty("--h", (base + (hue(id) % 24) - 12 + 360) % 360);
    node.replaceChildren(
      el("span", { class: "thumb-glyph", text: (attributes.category_zh || slug || "?").slice(0, 1) }),
      el("span", { class: "thumb-brand", text: attributes.brand || "" }),
    );
  }

  let toastTimer = 0;
  function toast(message, isError = false) {
    const node = $("[data-testid=toast]");
    node.textContent = message;
    node.classList.toggle("error", isError);
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (node.hidden = true), isError ? 6000 : 2200);
  }

  function applyLanguage() {
    document.documentElement.lang = t("lang");
    $$("[data-i18n]").forEach((node) => (node.textContent = t(node.dataset.i18n)));
    $$("[data-i18n-placeholder]").forEach((node) => (node.placeholder = t(node.dataset.i18nPlaceholder)));
    $$("[data-i18n-aria-label]").forEach((node) => node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel)));
    $$("[data-i18n-title]").forEach((node) => (node.title = t(node.dataset.i18nTitle)));
    $$(".catnav a[data-category]").forEach((link) => {
      link.textContent = link.dataset[state.lang === "en" ? "labelEn" : "labelZh"];
    });
    $$("[data-testid=lang-switch] button").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.lang === state.lang));
    });
    const picker = $("[data-testid=user-picker]");
    picker.setAttribute("aria-label", t("shopper"));
    for (const option of picker.options) {
      const user = state.users.find((u) => u.id === option.value);
      if (user) option.textContent = userLabel(user);
    }
  }

  // --- Shoppers -----------------------------------------------------------------------

  function personaLabel(user) {
    const slug = (user.attributes || {}).persona;
    return slug && personas[slug] ? personas[slug][state.lang] : "";
  }

  function userLabel(user) {
    const name = (user.attributes || {}).name || user.id;
    const persona = personaLabel(user);
    return persona ? `${name} · ${persona}` : name;
  }

  function currentUser() {
    return state.users.find((user) => user.id === state.user);
  }

  function showShopper() {
    const user = currentUser();
    const name = $("[data-testid=shopper-name]");
    if (name) name.textContent = user ? (user.attributes || {}).name || user.id : t("guest");
    const persona = $("[data-testid=shopper-persona]");
    if (persona) persona.textContent = user ? [personaLabel(user), user.id].filter(Boolean).join(" · ") : "";
  }

  async function loadUsers() {
    const page = await shop("/shoppers");
    state.users = (page.results || page).slice().sort((a, b) => a.id.localeCompare(b.id));
    const picker = $("[data-testid=user-picker]");
    picker.replaceChildren(...state.users.map((user) => el("option", { value: user.id, text: userLabel(user) })));
    if (!currentUser()) state.user = state.users.length ? state.users[0].id : "";
    picker.value = state.user;
    localStorage.setItem(STORE.user, state.user);
  }

  async function loadCart() {
    state.cart = 0;
    if (state.user) {
      const page = await api("/behaviours", { params: { user: state.user, limit: 1000 } });
      state.cart = (page.results || []).filter((event) => event.kind === "cart").length;
    }
    $("[data-testid=cart-count]").textContent = String(state.cart);
  }

  async function createShopper(name) {
    const user = await shop("/shoppers/new", { method: "POST", json: { name, lang: state.lang } });
    state.users.push(user);
    const picker = $("[data-testid=user-picker]");
    picker.append(el("option", { value: user.id, text: userLabel(user) }));
    await selectUser(user.id);
  }

  async function selectUser(id) {
    state.user = id;
    localStorage.setItem(STORE.user, id);
    $("[data-testid=user-picker]").value = id;
    showShopper();
    loadCart().catch(() => {});
    await refreshPage();
  }

  // --- Cards --------------------------------------------------------------------------

  function card(item, onAction) {
    const attributes = item.attributes || {};
    const thumb = el("a", { class: "thumb", href: itemLink(item), tabindex: "-1", "aria-hidden": "true" });
    paintThumb(thumb, item.category, attributes, item.id);
    const actions = ["view", "cart", "like", "dislike"].map((kind) =>
      el(
        "button",
        {
          type: "button",
          class: `act act-${kind}`,
          "data-action": kind,
          "data-testid": `card-${kind}`,
          title: t(kind === "cart" ? "addToCart" : kind),
        },
        [icon(kind), el("span", { text: t(kind === "cart" ? "addToCart" : kind) })],
      ),
    );
    const node = el(
      "article",
      { class: "card", "data-testid": "rec-card", "data-item-id": item.id, "data-category": item.category },
      [
        thumb,
        el("div", { class: "card-body" }, [
          el("div", { class: "card-meta" }, [
            el("span", { class: "chip", text: categoryLabel(item.category, attributes) }),
            attributes.brand ? el("span", { class: "card-brand", text: attributes.brand }) : null,
          ]),
          el("h3", { class: "card-title" }, el("a", { href: itemLink(item), "data-testid": "card-title", text: titleOf(item) })),
          el("p", { class: "price", "data-testid": "card-price", text: price(attributes.price) }),
          item.reason
            ? el("p", { class: `reason reason-${item.reason.type}`, "data-testid": "card-reason", text: item.reason.text })
            : null,
          item.blurb ? el("p", { class: "blurb", "data-testid": "card-blurb", text: item.blurb }) : null,
          el("div", { class: "card-actions" }, actions),
        ]),
      ],
    );
    node.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) onAction(item, button.dataset.action, button);
    });
    return node;
  }

  function skeleton(count) {
    return Array.from({ length: count }, () =>
      el("div", { class: "card skeleton", "aria-hidden": "true" }, [
        el("div", { class: "thumb" }),
        el("div", { class: "card-body" }, [el("i"), el("i"), el("i")]),
      ]),
    );
  }

  // Renders a list (an API list response) into a grid; stale responses (an older request
  // finishing last) are dropped.
  async function fill(grid, load, onAction, emptyText) {
    const request = ++state.request;
    grid.dataset.state = "loading";
    if (!grid.children.length) grid.replaceChildren(...skeleton(8));
    try {
      const list = await load();
      if (request !== state.request) return;
      const items = listed(list);
      grid.replaceChildren(...(items.length ? items.map((item) => card(item, onAction)) : [el("p", { class: "empty", text: emptyText })]));
      grid.dataset.state = "ready";
      track(grid, list);
    } catch (error) {
      if (request !== state.request) return;
      grid.replaceChildren(el("p", { class: "empty error", text: t("error") + error.message }));
      grid.dataset.state = "error";
    }
    grid.dataset.version = String(Number(grid.dataset.version) + 1);
  }

  async function onCardAction(item, kind, button) {
    if (!state.user) return toast(t("noShoppers"), true);
    button.disabled = true;
    try {
      await recordBehaviour(item.id, kind, item.list);
      if (kind === "cart") $("[data-testid=cart-count]").textContent = String(++state.cart);
      toast(t("recorded")[kind]);
      await refreshPage();
    } catch (error) {
      toast(t("error") + error.message, true);
      button.disabled = false;
    }
  }

  // --- The shop page ------------------------------------------------------------------

  function showFilters() {
    const box = $("[data-testid=filters]");
    const chips = [];
    const chip = (label, value, clear) =>
      el("span", { class: "filter-chip" }, [
        el("span", { class: "filter-label", text: label }),
        el("strong", { text: value }),
        Object.assign(el("button", { type: "button", "aria-label": t("clear"), text: "×" }), { onclick: clear }),
      ]);
    if (state.q) {
      chips.push(
        chip(t("intentChip"), state.q, () => {
          state.q = "";
          $("[data-testid=intent-input]").value = "";
          syncUrl();
          refreshShop();
        }),
      );
    }
    if (state.category) {
      chips.push(chip(t("categoryChip"), categoryLabel(state.category), () => (location.href = body.dataset.shopUrl)));
    }
    box.replaceChildren(...chips);
    box.hidden = !chips.length;
  }

  function syncUrl() {
    const url = new URL(location.href);
    if (state.q) url.searchParams.set("q", state.q);
    else url.searchParams.delete("q");
    history.replaceState(null, "", url);
  }

  async function refreshShop() {
    const grid = $("[data-testid=recommendations]");
    const title = $("[data-testid=row-title]");
    title.textContent = state.q
      ? t("pickedFor", state.q)
      : state.category
        ? t("inCategory", categoryLabel(state.category))
        : t("recommended");
    showFilters();
    if (!state.user) {
      grid.replaceChildren(el("p", { class: "empty", text: t("noShoppers") }));
      grid.dataset.state = "ready";
      return;
    }
    await fill(
      grid,
      () =>
        recsite.fetchList({
          user: state.user,
          k: 12,
          lang: state.lang,
          diversity: state.diversity.toFixed(1),
          q: state.q,
          category: state.category,
          device: "web",
          page: "storefront",
        }),
      onCardAction,
      t("empty"),
    );
    $("[data-testid=row-note]").textContent = t("items", grid.querySelectorAll(".card").length);
  }

  // --- The item page ------------------------------------------------------------------

  let currentItem = null;

  function showItem() {
    if (!currentItem) return;
    const detail = $("[data-testid=item-detail]");
    const attributes = currentItem.attributes || {};
    const field = (name) => $(`[data-field=${name}]`, detail);
    field("title").textContent = titleOf(currentItem);
    field("brand").textContent = attributes.brand || "";
    field("price").textContent = price(attributes.price);
    field("description").textContent = descriptionOf(currentItem);
    field("tags").replaceChildren(...(currentItem.tags || []).map((tag) => el("li", { text: tag })));
    paintThumb($(".product-visual", detail), currentItem.category, attributes, currentItem.id);
    $("[data-testid=item-category-link]").textContent = categoryLabel(currentItem.category, attributes);
    document.title = `${titleOf(currentItem)} · ${t("shopName")}`;
    detail.dataset.state = "ready";
  }

  async function loadItem() {
    currentItem = await api(`/items/${encodeURIComponent(body.dataset.item)}`);
    showItem();
  }

  async function refreshSimilar() {
    await fill(
      $("[data-testid=similar-items]"),
      () => api(`/items/${encodeURIComponent(body.dataset.item)}/similar`, { params: { k: 8, lang: state.lang } }),
      async (item, kind, button) => {
        if (!state.user) return toast(t("noShoppers"), true);
        button.disabled = true;
        try {
          await recordBehaviour(item.id, kind, item.list);
          if (kind === "cart") $("[data-testid=cart-count]").textContent = String(++state.cart);
          toast(t("recorded")[kind]);
        } catch (error) {
          toast(t("error") + error.message, true);
        }
        button.disabled = false;
      },
      t("empty"),
    );
  }

  // --- Wiring -------------------------------------------------------------------------

  function refreshPage() {
    if (body.dataset.page === "shop") return refreshShop();
    if (body.dataset.page === "item") return refreshSimilar();
    return Promise.resolve();
  }

  function wire() {
    $("[data-testid=user-picker]").addEventListener("change", (event) => selectUser(event.target.value));

    $("[data-testid=lang-switch]").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-lang]");
      if (!button || button.dataset.lang === state.lang) return;
      state.lang = button.dataset.lang;
      localStorage.setItem(STORE.lang, state.lang);
      applyLanguage();
      showShopper();
      showItem();
      refreshPage();
    });

    $("[data-testid=intent-form]").addEventListener("submit", (event) => {
      event.preventDefault();
      const q = $("[data-testid=intent-input]").value.trim();
      if (body.dataset.page !== "shop") {
        location.href = body.dataset.shopUrl + (q ? `?q=${encodeURIComponent(q)}` : "");
        return;
      }
      state.q = q;
      syncUrl();
      refreshShop();
    });

    const slider = $("[data-testid=diversity-slider]");
    if (slider) {
      const output = $("[data-testid=diversity-value]");
      slider.addEventListener("input", () => (output.textContent = Number(slider.value).toFixed(1)));
      slider.addEventListener("change", () => {
        state.diversity = Number(slider.value);
        output.textContent = state.diversity.toFixed(1);
        refreshShop();
      });
    }

    const dialog = $("[data-testid=new-user-dialog]");
    $("[data-testid=new-user]").addEventListener("click", () => {
      $("[data-testid=new-user-name]").value = "";
      dialog.showModal();
    });
    $("button[value=cancel]", dialog).addEventListener("click", () => dialog.close());
    $("[data-testid=new-user-form]").addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = $("[data-testid=new-user-name]").value.trim();
      if (!name) return;
      dialog.close();
      try {
        await createShopper(name);
        toast(t("hello") + name);
      } catch (error) {
        toast(t("error") + error.message, true);
      }
    });

    const actions = $("[data-testid=item-actions]");
    if (actions) {
      actions.addEventListener("click", async (event) => {
        const button = event.target.closest("button[data-action]");
        if (!button) return;
        if (!state.user) return toast(t("noShoppers"), true);
        try {
          await recordBehaviour(body.dataset.item, button.dataset.action);
          if (button.dataset.action === "cart") $("[data-testid=cart-count]").textContent = String(++state.cart);
          toast(t("recorded")[button.dataset.action]);
        } catch (error) {
          toast(t("error") + error.message, true);
        }
      });
    }
  }

  async function start() {
    $("[data-testid=intent-input]").value = state.q;
    applyLanguage();
    wire();
    try {
      await loadUsers();
    } catch (error) {
      toast(t("error") + error.message, true);
    }
    applyLanguage();
    showShopper();
    loadCart().catch(() => {});
    if (body.dataset.page === "item") {
      try {
        await loadItem();
      } catch (error) {
        toast(t("error") + error.message, true);
      }
      // Opening an item page is a view, as on any shop.
      // (Arriving from a list was a click on it, which the list's page reported.)
      if (state.user) recordBehaviour(body.dataset.item, "view").catch(() => {});
    }
    await refreshPage();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
