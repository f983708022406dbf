// The qa page: ask, show the best answer in its sentence, open citations in context.
// Document text is only ever put into the page as text (textContent, text nodes), never parsed as HTML.
// Offsets from the server count Unicode code points (Python str indices); JavaScript strings count UTF-16
// units, so every slice goes through Array.from (code points).
"use strict";

(function () {
  const HISTORY_KEY = "qa.history";
  const TOKEN_KEY = "qa.token";
  const HISTORY_MAX = 30;

  const $ = (id) => document.getElementById(id);
  const form = $("ask-form");
  const box = $("question");
  const button = $("ask-button");
  const statusLine = $("status");
  const result = $("result");
  const best = $("best");
  const runnersBox = $("runners-up-box");
  const runners = $("runners-up");
  const passagesBox = $("passages-box");
  const passagesSummary = $("passages-summary");
  const passages = $("passages");
  const passage = $("passage");
  const passageTitle = $("passage-title");
  const passageText = $("passage-text");
  const historyList = $("history");
  const tokenRow = $("token-row");
  const tokenBox = $("token");

  let history = loadHistory();
  let historyPos = -1; // -1: the box holds a new question
  let draft = "";
  let asking = false;

  // ---- small helpers ---------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // text with [start, end) (code points) inside a <mark>
  function highlighted(text, start, end) {
    const chars = Array.from(text);
    const frag = document.createDocumentFragment();
    frag.append(document.createTextNode(chars.slice(0, start).join("")));
    frag.append(el("mark", "", chars.slice(start, end).join("")));
    frag.append(document.createTextNode(chars.slice(end).join("")));
    return frag;
  }

  // An answer scoring below this is marked unsure (Settings.unsure_below).
  const UNSURE_BELOW = 0.5;

  function score(x) {
    return x.toFixed(2);
  }

  function citation(docId, start, end) {
    const b = el("button", "citation", docId + " [" + start + ":" + end + "]");
    b.type = "button";
    b.title = "Show this passage in its document";
    b.addEventListener("click", () => openPassage(docId, start, end));
    return b;
  }

  function say(message, kind) {
    statusLine.textContent = message;
    statusLine.className = "status" + (kind ? " " + kind : "");
  }

  // ---- talking to the server -------------------------------------------------------------------

  function headers(json) {
    const h = {};
    if (json) h["Content-Type"] = "application/json";
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) h["Authorization"] = "Bearer " + token;
    return h;
  }

  async function call(path, body) {
    const opts = body === undefined
      ? { headers: headers(false) }
      : { method: "POST", headers: headers(true), body: JSON.stringify(body) };
    let response;
    try {
      response = await fetch(path, opts);
    } catch (e) {
      throw new Error("the server cannot be reached (is `qa serve` still running?)");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (response.status === 401) {
      tokenRow.hidden = false;
      throw new Error("this server wants a token: type it in the token box, then ask again");
    }
    if (!response.ok) {
      const message = data && typeof data.error === "string" ? data.error : "error " + response.status;
      throw new Error(message);
    }
    return data;
  }

  // ---- asking ----------------------------------------------------------------------------------

  async function ask(question) {
    question = question.trim();
    if (!question || asking) return;
    if (tokenBox.value) sessionStorage.setItem(TOKEN_KEY, tokenBox.value);
    const body = { question: question };
    const retriever = $("retriever").value;
    if (retriever) body.retriever = retriever;
    const k = parseInt($("top-k").value, 10);
    if (k >= 1) body.top_k = k;
    asking = true;
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    say("Looking for the answer…");
    try {
      const data = await call("ask", body);
      remember(question);
      show(data);
      say("");
    } catch (e) {
      say(e.message, "error");
    } finally {
      asking = false;
      button.disabled = false;
      form.removeAttribute("aria-busy");
      box.focus();
      box.select();
    }
  }

  function show(data) {
    clear(best);
    clear(runners);
    clear(passages);
    closePassage(false);
    result.hidden = false;
    const question = el("p", "asked", data.question);
    best.append(question);
    if (data.abstained || data.answers.length === 0) {
      best.append(el("p", "abstain", "No answer in these documents"));
      const guess = (data.candidates || [])[0];
      if (guess) {
        const meta = el("p", "meta");
        meta.append(el("span", "hint", "Best guess, too unlikely to give: "));
        meta.append(el("span", "runner-text", guess.text));
        meta.append(citation(guess.doc_id, guess.start, guess.end));
        meta.append(el("span", "score", "score " + score(guess.score)));
        best.append(meta);
      }
      best.append(el("p", "hint", "The passages below came closest; none held an answer the reader trusts."));
    } else {
      const a = data.answers[0];
      best.append(el("p", "answer", a.text));
      const ctx = el("blockquote", "context");
      ctx.append(highlighted(a.context, a.start - a.context_start, a.end - a.context_start));
      best.append(ctx);
      const meta = el("p", "meta");
      meta.append(citation(a.doc_id, a.start, a.end));
      meta.append(el("span", "score", "score " + score(a.score)));
      if (a.score < UNSURE_BELOW) {
        meta.append(el("span", "unsure", "unsure: check the cited passage"));
      }
      best.append(meta);
    }
    const others = data.answers.slice(1);
    runnersBox.hidden = others.length === 0;
    for (const a of others) {
      const li = el("li");
      li.append(el("span", "runner-text", a.text));
      li.append(citation(a.doc_id, a.start, a.end));
      li.append(el("span", "score", "score " + score(a.score)));
      runners.append(li);
    }
    passagesSummary.textContent = "Retrieved passages (" + data.passages.length + ")";
    passagesBox.open = data.abstained;
    for (const p of data.passages) {
      const li = el("li");
      const head = el("p", "meta");
      head.append(citation(p.doc_id, p.start, p.end));
      head.append(el("span", "score", "retrieval " + score(p.score)));
      li.append(head);
      li.append(el("p", "passage-snippet", p.text));
      passages.append(li);
    }
  }

  // ---- a citation in its context ---------------------------------------------------------------

  async function openPassage(docId, start, end) {
    const path = "documents/" + encodeURIComponent(docId) + "?start=" + start + "&end=" + end;
    try {
      const ex = await call(path);
      passageTitle.textContent = ex.doc_id + " [" + start + ":" + end + "]" + (ex.title ? ": " + ex.title : "");
      clear(passageText);
      const s = ex.span.start - ex.window.start;
      const e = ex.span.end - ex.window.start;
      if (ex.window.start > 0) passageText.append(el("span", "elided", "… "));
      passageText.append(highlighted(ex.text, s, e));
      if (ex.window.end < ex.chars) passageText.append(el("span", "elided", " …"));
      passage.hidden = false;
      passage.scrollIntoView({ block: "nearest" });
      const mark = passageText.querySelector("mark");
      if (mark) mark.scrollIntoView({ block: "center" });
    } catch (err) {
      say(err.message, "error");
    }
  }

  function closePassage(refocus) {
    passage.hidden = true;
    clear(passageText);
    if (refocus) box.focus();
  }

  // ---- history ---------------------------------------------------------------------------------

  function loadHistory() {
    try {
      const saved = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
      return Array.isArray(saved) ? saved.filter((q) => typeof q === "string") : [];
    } catch (e) {
      return [];
    }
  }

  function remember(question) {
    history = [question].concat(history.filter((q) => q !== question)).slice(0, HISTORY_MAX);
    historyPos = -1;
    try {
      localStorage.setItem(HISTORY_KEY, JSON.stringify(history));
    } catch (e) {
      // private mode or full storage: the history lasts for this page only
    }
    drawHistory();
  }

  function drawHistory() {
    clear(historyList);
    for (const q of history) {
      const b = el("button", "link", q);
      b.type = "button";
      b.addEventListener("click", () => {
        box.value = q;
        ask(q);
      });
      const li = el("li");
      li.append(b);
      historyList.append(li);
    }
    $("history-clear").hidden = history.length === 0;
  }

  // ---- wiring ----------------------------------------------------------------------------------

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask(box.value);
  });

  box.addEventListener("keydown", (event) => {
    if (event.key === "ArrowUp" && history.length) {
      event.preventDefault();
      if (historyPos === -1) draft = box.value;
      historyPos = Math.min(historyPos + 1, history.length - 1);
      box.value = history[historyPos];
    } else if (event.key === "ArrowDown" && historyPos >= 0) {
      event.preventDefault();
      historyPos -= 1;
      box.value = historyPos === -1 ? draft : history[historyPos];
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !passage.hidden) {
      closePassage(true);
    } else if (event.key === "/" && document.activeElement !== box &&
               !(document.activeElement instanceof HTMLInputElement)) {
      event.preventDefault();
      box.focus();
    }
  });

  $("passage-close").addEventListener("click", () => closePassage(true));
  $("history-clear").addEventListener("click", () => {
    history = [];
    try {
      localStorage.removeItem(HISTORY_KEY);
    } catch (e) {
      // nothing was stored
    }
    drawHistory();
    box.focus();
  });

  if (sessionStorage.getItem(TOKEN_KEY)) tokenBox.value = sessionStorage.getItem(TOKEN_KEY);
  drawHistory();
  box.focus();
})();
