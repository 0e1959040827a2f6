// 智能朗读 widget. On an article page:
//   <script src="https://SERVICE/widget.js" defer></script>
// Optional attributes: data-headline="CSS selector" (where the button goes; default: the page's
// h1), data-voice="zh-CN-XiaoxiaoNeural", data-token="…" (only if the service asks for one; it
// is visible to readers, so it is an access gate, not a secret).
// The button sends the page's URL; when the service cannot reach the page (an intranet, a
// paywall), it sends the page's HTML instead. It plays in a small panel that highlights the
// sentence being read. Everything lives in a shadow root, so the page's CSS cannot break it.
(() => {
  "use strict";

  const script = document.currentScript || document.querySelector('script[src$="/widget.js"]');
  if (!script || !script.src) return;
  const base = new URL(script.src, location.href).origin;
  const options = {
    headline: script.dataset.headline || "article h1, main h1, h1",
    voice: script.dataset.voice || null,
    token: script.dataset.token || null,
  };
  const FALLBACK_CODES = new Set(["url_not_allowed", "bad_url", "source_unreadable", "no_article"]);
  const MAX_HTML = 1800000;

  const STYLE = `
    :host { all: initial; display: block; margin: .5em 0 1em; font-family: "Noto Sans CJK SC",
      "PingFang SC", "Microsoft YaHei", sans-serif; color: #111; line-height: 1.6; }
    * { box-sizing: border-box; }
    button, select { font: inherit; }
    .icon { width: 1.3em; height: 1.3em; fill: currentColor; flex: none; }
    .open .wave { fill: none; stroke: currentColor; stroke-width: 2; stroke-linecap: round; }
    .controls button { display: inline-flex; align-items: center; justify-content: center; }
    :focus-visible { outline: 3px solid #c2410c; outline-offset: 2px; }
    .open { display: inline-flex; align-items: center; gap: .4em; min-height: 2.5em;
      padding: .3em 1em; border: 2px solid #0b4f9c; border-radius: 2em; background: #0b4f9c;
      color: #fff; font-size: 1rem; font-weight: 700; cursor: pointer; }
    .panel { margin-top: .6em; padding: .8em; max-width: 36em; border: 2px solid #0b4f9c;
      border-radius: .6em; background: #fdfcf8; }
    .panel[hidden] { display: none; }
    .controls { display: flex; flex-wrap: wrap; gap: .4em; align-items: center; }
    .controls button { min-width: 2.6em; min-height: 2.6em; border: 2px solid #0b4f9c;
      border-radius: .4em; background: #fff; color: #0b4f9c; font-weight: 700; cursor: pointer; }
    .controls .play { background: #0b4f9c; color: #fff; }
    .controls .close { margin-left: auto; }
    label { font-weight: 700; font-size: .95rem; }
    select { padding: .2em; border: 2px solid #c9c4b8; border-radius: .3em; background: #fff; }
    .status { min-height: 1.4em; margin: .2em 0 .5em; font-size: .95rem; font-weight: 700; }
    .text { max-height: 11em; overflow-y: auto; margin-top: .6em; padding: .2em .4em;
      font-size: 1.15rem; line-height: 1.9; border-top: 1px solid #c9c4b8; }
    .text p { margin: .3em 0; }
    .s { cursor: pointer; border-radius: .2em; }
    .s.pending { color: #666; }
    .s.current { background: #ffe066; color: #000; box-shadow: 0 0 0 .12em #ffe066; }
  `;

  const icon = (d) =>
    `<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="${d}"/></svg>`;
  const ICONS = {
    play: icon("M8 5v14l11-7z"),
    pause: icon("M6 5h4v14H6zM14 5h4v14h-4z"),
    prev: icon("M6 6h2v12H6zM9.5 12 18 18V6z"),
    next: icon("M16 6h2v12h-2zM6 18l8.5-6L6 6z"),
    close: icon("M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z"),
  };

  const MESSAGES = {
    rate_limited: "请求太频繁，请稍后再试。",
    unauthorized: "朗读服务需要访问令牌。",
    origin_not_allowed: "本网站未获准使用朗读服务。",
    no_article: "没有找到可朗读的文章。",
    synthesis_failed: "语音合成失败，请稍后再试。",
    too_long: "文章太长，无法朗读。",
    body_too_large: "文章太长，无法朗读。",
  };

  function init() {
    const headline = document.querySelector(options.headline);
    if (!headline || document.querySelector(".newsreader-widget")) return;
    const host = document.createElement("div");
    host.className = "newsreader-widget";
    headline.insertAdjacentElement("afterend", host);
    const root = host.attachShadow({ mode: "open" });
    root.innerHTML = `
      <style>${STYLE}</style>
      <button class="open" type="button" aria-expanded="false" aria-controls="panel">
        <svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
          <path d="M3 9v6h4l5 4V5L7 9z"/><path class="wave" d="M15.5 8.5a4.5 4.5 0 0 1 0 7M18 6a8 8 0 0 1 0 12"/>
        </svg>智能朗读</button>
      <section class="panel" id="panel" role="region" aria-label="智能朗读播放器" hidden>
        <p class="status" role="status" aria-live="polite"></p>
        <div class="controls" role="toolbar" aria-label="播放控制">
          <button class="prev" type="button" aria-label="上一句">${ICONS.prev}</button>
          <button class="play" type="button" aria-label="播放">${ICONS.play}</button>
          <button class="next" type="button" aria-label="下一句">${ICONS.next}</button>
          <label>语速 <select class="speed" aria-label="语速">
            <option value="0.75">0.75×</option><option value="1" selected>1×</option>
            <option value="1.25">1.25×</option><option value="1.5">1.5×</option>
            <option value="1.75">1.75×</option><option value="2">2×</option>
          </select></label>
          <button class="close" type="button" aria-label="关闭朗读">${ICONS.close}</button>
        </div>
        <div class="text" aria-label="朗读文本"></div>
        <audio preload="auto"></audio>
      </section>`;
    new Player(root, headline).wire();
  }

  class Player {
    constructor(root, headline) {
      this.root = root;
      this.headline = headline;
      this.q = (selector) => root.querySelector(selector);
      this.audio = this.q("audio");
      this.state = { reading: null, sentences: [], spans: [], current: -1, poll: null,
        started: false, triedHtml: false, live: false };
    }

    wire() {
      const q = this.q;
      q(".open").addEventListener("click", () => this.openPanel());
      q(".play").addEventListener("click", () => this.toggle());
      q(".prev").addEventListener("click", () => this.step(-1));
      q(".next").addEventListener("click", () => this.step(1));
      q(".close").addEventListener("click", () => this.closePanel());
      q(".speed").addEventListener("change", () => {
        this.audio.playbackRate = parseFloat(q(".speed").value);
      });
      q(".panel").addEventListener("keydown", (event) => this.key(event));
      this.audio.addEventListener("timeupdate", () => this.highlight());
      this.audio.addEventListener("play", () => this.playing(true));
      this.audio.addEventListener("pause", () => this.playing(false));
    }

    say(text) {
      this.q(".status").textContent = text;
    }

    openPanel() {
      const panel = this.q(".panel");
      panel.hidden = false;
      this.q(".open").setAttribute("aria-expanded", "true");
      this.q(".play").focus();
      if (!this.state.started) {
        this.state.started = true;
        this.start();
      } else {
        this.play();
      }
    }

    closePanel() {
      this.audio.pause();
      this.q(".panel").hidden = true;
      this.q(".open").setAttribute("aria-expanded", "false");
      this.q(".open").focus();
    }

    async post(request) {
      const headers = { "Content-Type": "application/json" };
      if (options.token) headers.Authorization = `Bearer ${options.token}`;
      if (options.voice) request.voice = options.voice;
      const response = await fetch(`${base}/api/readings`, {
        method: "POST", headers, body: JSON.stringify(request), credentials: "omit",
      });
      const data = await response.json();
      return { ok: response.ok, data };
    }

    pageHtml() {
      let html = document.documentElement.outerHTML;
      if (html.length > MAX_HTML) {
        const article = this.headline.closest("article") || this.headline.parentElement;
        html = `<html><body>${article.outerHTML}</body></html>`;
      }
      return html;
    }

    pageUrl() {
      const url = new URL(location.href);
      url.hash = "";
      return url.href;
    }

    async start() {
      this.say("正在准备朗读…");
      try {
        let result = await this.post({ url: this.pageUrl() });
        if (!result.ok && FALLBACK_CODES.has(result.data.error && result.data.error.code)) {
          result = await this.sendHtml();
        }
        if (!result.ok) {
          const error = result.data.error || {};
          this.say(MESSAGES[error.code] || "暂时无法朗读本文。");
          return;
        }
        await this.follow(result.data.id, true);
      } catch (e) {
        this.say("无法连接朗读服务。");
      }
    }

    async sendHtml() {
      this.state.triedHtml = true;
      // No title: extraction finds the headline in the page (and repairs it better than a copy).
      return this.post({ html: this.pageHtml(), source_url: this.pageUrl() });
    }

    async fetchReading(id) {
      const response = await fetch(`${base}/api/readings/${id}`, { credentials: "omit" });
      return response.json();
    }

    async follow(id, autoplay) {
      const reading = await this.fetchReading(id);
      this.update(reading);
      if (reading.status === "failed") return this.failed(reading);
      if (reading.status === "done") this.audio.src = base + reading.links.audio;
      else this.streamInto(base + reading.links.stream);
      this.audio.playbackRate = parseFloat(this.q(".speed").value);
      if (autoplay) this.play();
      if (reading.status !== "done") this.poll(id);
    }

    // Every 0.5 s (0.15 s until the sentences are known) while the reading is made.
    poll(id) {
      clearTimeout(this.state.poll);
      const tick = async () => {
        try {
          const next = await this.fetchReading(id);
          this.update(next);
          if (next.status === "failed") return this.failed(next);
          if (next.status === "done") return;
        } catch (e) { /* try again on the next tick */ }
        this.state.poll = setTimeout(tick, this.state.sentences.length ? 500 : 150);
      };
      this.state.poll = setTimeout(tick, 150);
    }

    // The live stream goes through Media Source Extensions where the browser has them: it then
    // plays the first sentence as soon as it arrives (as a plain <audio src>, Chromium waits for
    // about 32 KB, some 5 s of speech).
    streamInto(url) {
      if (!(window.MediaSource && MediaSource.isTypeSupported("audio/mpeg"))) {
        this.audio.src = url;
        return;
      }
      this.state.live = true;
      const media = new MediaSource();
      this.audio.src = URL.createObjectURL(media);
      media.addEventListener("sourceopen", async () => {
        const buffer = media.addSourceBuffer("audio/mpeg");
        buffer.mode = "sequence";
        const pending = [];
        let ended = false;
        const pump = () => {
          if (buffer.updating || media.readyState !== "open") return;
          if (pending.length) buffer.appendBuffer(pending.shift());
          else if (ended) media.endOfStream();
        };
        buffer.addEventListener("updateend", pump);
        try {
          const response = await fetch(url, { credentials: "omit" });
          if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
          const reader = response.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            pending.push(value);
            pump();
          }
          ended = true;
          pump();
        } catch (e) {
          this.say("音频加载中断。");
        }
      }, { once: true });
    }

    async failed(reading) {
      const code = reading.error && reading.error.code;
      if (!this.state.triedHtml && FALLBACK_CODES.has(code) && code !== "no_article") {
        const result = await this.sendHtml();
        if (result.ok) return this.follow(result.data.id, true);
      }
      this.say(MESSAGES[code] || "暂时无法朗读本文。");
    }

    update(reading) {
      this.state.reading = reading;
      if (reading.sentences.length !== this.state.sentences.length) this.render(reading.sentences);
      this.state.sentences = reading.sentences;
      reading.sentences.forEach((s, i) => {
        this.state.spans[i].classList.toggle("pending", s.start === null);
      });
      if (reading.status === "done") this.say("");
      else if (reading.progress.total) this.say(`正在合成 ${reading.progress.done}/${reading.progress.total}`);
      this.highlight();
    }

    render(sentences) {
      const box = this.q(".text");
      box.textContent = "";
      this.state.spans = [];
      let key = null;
      let paragraph = null;
      sentences.forEach((s, i) => {
        const k = `${s.kind}:${s.block}`;
        if (k !== key) {
          key = k;
          paragraph = document.createElement("p");
          box.append(paragraph);
        }
        const span = document.createElement("span");
        span.className = "s";
        span.textContent = s.text;
        span.addEventListener("click", () => this.seekTo(i));
        paragraph.append(span);
        this.state.spans.push(span);
      });
    }

    async play() {
      try {
        await this.audio.play();
      } catch (e) {
        this.say("请按播放键开始。");
      }
    }

    toggle() {
      if (this.audio.paused) this.play();
      else this.audio.pause();
    }

    playing(on) {
      const button = this.q(".play");
      button.innerHTML = on ? ICONS.pause : ICONS.play;
      button.setAttribute("aria-label", on ? "暂停" : "播放");
    }

    seekable(t) {
      const ranges = this.state.live ? this.audio.buffered : this.audio.seekable;
      for (let i = 0; i < ranges.length; i++) {
        if (ranges.start(i) <= t && t <= ranges.end(i)) return true;
      }
      return false;
    }

    seekTo(i) {
      const s = this.state.sentences[i];
      const reading = this.state.reading;
      if (!s || s.start === null) return;
      if (this.seekable(s.start)) {
        this.audio.currentTime = s.start + 0.001;
      } else if (reading && reading.status === "done") {
        this.state.live = false;
        this.audio.src = base + reading.links.audio;
        this.audio.addEventListener("loadedmetadata", () => {
          this.audio.currentTime = s.start + 0.001;
          this.play();
        }, { once: true });
      } else {
        this.say("正在合成，暂时无法跳到这里。");
        return;
      }
      this.setCurrent(i);
    }

    step(delta) {
      const from = Math.max(this.state.current, 0);
      this.seekTo(Math.min(Math.max(from + delta, 0), this.state.sentences.length - 1));
    }

    highlight() {
      const t = this.audio.currentTime;
      let found = -1;
      for (let i = 0; i < this.state.sentences.length; i++) {
        const s = this.state.sentences[i];
        if (s.start === null || s.start > t + 0.05) break;
        found = i;
      }
      this.setCurrent(found);
    }

    setCurrent(i) {
      if (i === this.state.current) return;
      const old = this.state.spans[this.state.current];
      if (old) {
        old.classList.remove("current");
        old.removeAttribute("aria-current");
      }
      this.state.current = i;
      const span = this.state.spans[i];
      if (!span) return;
      span.classList.add("current");
      span.setAttribute("aria-current", "true");
      // Scroll only the panel's text box, never the reader's page.
      const box = this.q(".text");
      box.scrollTop = span.offsetTop - box.offsetTop - box.clientHeight / 2 + span.offsetHeight / 2;
    }

    key(event) {
      const tag = event.target && event.target.tagName;
      if (tag === "SELECT") return;
      const key = event.key;
      let handled = true;
      if (key === "Escape") this.closePanel();
      else if (key === "k" || key === "K" || (key === " " && tag !== "BUTTON")) this.toggle();
      else if (key === "ArrowLeft" || key === "j" || key === "J") this.step(-1);
      else if (key === "ArrowRight" || key === "l" || key === "L") this.step(1);
      else handled = false;
      if (handled) event.preventDefault();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
