// 智能朗读 page: submit an article, play it while it is synthesized, highlight the sentence.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const audio = $("audio");
  const form = $("submit-form");
  const source = $("source");
  const statusLine = $("status");
  const reader = $("reader");
  const body = $("article-body");
  const playButton = $("play");
  const seek = $("seek");
  const speed = $("speed");

  const MESSAGES = {
    url_not_allowed: "无法读取该地址：本服务只读取公网上的网页。请直接粘贴文章正文。",
    bad_url: "链接无效，请检查后重试。",
    rate_limited: "请求太频繁，请稍后再试。",
    unauthorized: "需要访问令牌，请在“访问令牌”中填写后重试。",
    too_long: "文章太长，无法朗读。",
    body_too_large: "内容太大，无法提交。",
    invalid_request: "请求有误。",
    invalid_json: "请求有误。",
    bad_settings: "声音或语速设置无效。",
    source_unreadable: "无法获取该网页。",
    no_article: "没有找到可朗读的文章。",
    synthesis_failed: "语音合成失败，请稍后再试。",
    origin_not_allowed: "此网站未获准使用朗读服务。",
    not_found: "找不到这篇朗读。",
  };

  const state = {
    id: null,
    reading: null,
    sentences: [],
    spans: [],
    current: -1,
    focused: -1,
    poll: null,
    source: "",
    lastSaved: 0,
    resumeAt: null,
    live: false,
    abort: null,
  };

  // -- helpers ------------------------------------------------------------------------------

  function clock(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
    const whole = Math.floor(seconds);
    const m = Math.floor(whole / 60);
    const s = String(whole % 60).padStart(2, "0");
    return `${m}:${s}`;
  }

  function say(text, isError = false, detail = "") {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
    if (detail) {
      const small = document.createElement("small");
      small.textContent = `（${detail}）`;
      statusLine.append(" ", small);
    }
  }

  function explain(error) {
    const code = error && error.code;
    return MESSAGES[code] || "出错了。";
  }

  function positionKey(id) {
    return `newsreader:position:${id}`;
  }

  function savePosition(force = false) {
    if (!state.id) return;
    const now = Date.now();
    if (!force && now - state.lastSaved < 1500) return;
    state.lastSaved = now;
    try {
      localStorage.setItem(positionKey(state.id), String(audio.currentTime));
    } catch (e) { /* storage may be off: nothing to remember then */ }
  }

  function savedPosition(id) {
    try {
      const value = parseFloat(localStorage.getItem(positionKey(id)) || "");
      return Number.isFinite(value) && value > 1 ? value : null;
    } catch (e) {
      return null;
    }
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    const token = $("token").value || sessionStorage.getItem("newsreader:token");
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  // -- submitting ---------------------------------------------------------------------------

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = source.value.trim();
    if (!value) {
      say("请先输入文章链接或正文。", true);
      source.focus();
      return;
    }
    const request = /^https?:\/\/\S+$/i.test(value) ? { url: value } : { text: value };
    request.voice = $("voice").value;
    $("submit").disabled = true;
    say("正在提交…");
    try {
      const response = await fetch("/api/readings", {
        method: "POST",
        headers: headers(),
        body: JSON.stringify(request),
      });
      const data = await response.json();
      if (!response.ok) {
        if (response.status === 401) {
          $("token-row").hidden = false;
          $("token").focus();
        }
        say(explain(data.error), true, data.error && data.error.message);
        return;
      }
      if ($("token").value) sessionStorage.setItem("newsreader:token", $("token").value);
      history.pushState({ id: data.id }, "", data.links.page);
      await open(data.id, true);
    } catch (e) {
      say("无法连接朗读服务，请检查网络后重试。", true);
    } finally {
      $("submit").disabled = false;
    }
  });

  source.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  // -- a reading ----------------------------------------------------------------------------

  async function fetchReading(id) {
    const response = await fetch(`/api/readings/${id}`);
    const data = await response.json();
    if (!response.ok) throw data.error || { code: "not_found" };
    return data;
  }

  async function open(id, autoplay) {
    stopPolling();
    state.id = id;
    state.current = -1;
    state.focused = -1;
    state.sentences = [];
    state.spans = [];
    body.textContent = "";
    let reading;
    try {
      reading = await fetchReading(id);
    } catch (error) {
      say(explain(error), true, error.message);
      return;
    }
    reader.hidden = false;
    update(reading);
    if (reading.status === "done") setSource(reading.links.audio);
    else setSource(reading.links.stream, true);
    const saved = savedPosition(id);
    if (saved !== null) {
      state.resumeAt = saved;
      say(`将从上次的位置 ${clock(saved)} 继续。`);
    }
    if (reading.status !== "done" && reading.status !== "failed") startPolling();
    if (autoplay) play();
  }

  // A live stream goes through Media Source Extensions: given the stream as <audio src>,
  // Chromium waits for about 32 KB (5 s of speech) before it starts; through MSE it plays the
  // first sentence as soon as it arrives, and can seek anywhere in what has arrived.
  const MSE = Boolean(window.MediaSource && MediaSource.isTypeSupported("audio/mpeg"));

  function setSource(url, live = false) {
    if (state.source === url) return;
    if (state.abort) state.abort.abort();
    state.abort = null;
    state.source = url;
    state.live = live && MSE;
    if (state.live) streamInto(url);
    else audio.src = url;
    audio.playbackRate = parseFloat(speed.value);
  }

  function streamInto(url) {
    const controller = new AbortController();
    state.abort = controller;
    const media = new MediaSource();
    audio.src = URL.createObjectURL(media);
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
        const response = await fetch(url, { signal: controller.signal });
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
        if (e.name !== "AbortError") say("音频加载中断，请刷新页面重试。", true);
      }
    }, { once: true });
  }

  function buffered(t) {
    for (let i = 0; i < audio.buffered.length; i++) {
      if (audio.buffered.start(i) <= t && t < audio.buffered.end(i)) return true;
    }
    return false;
  }

  // Every 0.5 s (0.15 s until the article's sentences are known) while the reading is made.
  function startPolling() {
    stopPolling();
    const id = state.id;
    const tick = async () => {
      try {
        const reading = await fetchReading(id);
        if (id !== state.id) return;
        update(reading);
        if (reading.status === "done" || reading.status === "failed") return;
      } catch (e) { /* a missed poll is retried on the next tick */ }
      if (id === state.id) state.poll = setTimeout(tick, state.sentences.length ? 500 : 150);
    };
    state.poll = setTimeout(tick, 150);
  }

  function stopPolling() {
    if (state.poll) clearTimeout(state.poll);
    state.poll = null;
  }

  function update(reading) {
    state.reading = reading;
    if (!reading.sentences.length) $("article-title").textContent = reading.title || "正在读取文章…";
    document.title = reading.title ? `${reading.title} · 智能朗读` : "智能朗读";
    if (reading.sentences.length !== state.sentences.length) render(reading.sentences);
    state.sentences = reading.sentences;
    state.sentences.forEach((s, i) => {
      state.spans[i].classList.toggle("pending", s.start === null);
    });
    const p = reading.progress;
    if (reading.status === "failed") {
      say(explain(reading.error), true, reading.error && reading.error.message);
    } else if (reading.status === "done") {
      $("progress").textContent = `已完成：共 ${clock(reading.duration)}`;
      for (const [id, href] of [["download", reading.links.audio], ["captions", reading.links.captions], ["permalink", reading.links.page]]) {
        $(id).href = href;
        $(id).hidden = false;
      }
    } else if (p.total) {
      $("progress").textContent = `正在合成：${p.done} / ${p.total} 段`;
    } else {
      $("progress").textContent = "正在读取文章…";
    }
    const length = reading.duration || reading.audio_ready || 0;
    seek.max = String(Math.floor(length));
    highlight();
  }

  function render(sentences) {
    body.textContent = "";
    state.spans = [];
    const title = $("article-title");
    title.textContent = "";
    let block = null;
    let container = null;
    sentences.forEach((s, i) => {
      const span = document.createElement("span");
      span.className = "s";
      span.textContent = s.text;
      span.dataset.index = String(i);
      span.tabIndex = -1;
      span.addEventListener("click", () => seekTo(i, true));
      state.spans.push(span);
      if (s.kind === "title") {
        title.append(span);
        return;
      }
      const key = `${s.kind}:${s.block}`;
      if (key !== block) {
        block = key;
        container = document.createElement(s.kind === "heading" ? "h3" : "p");
        body.append(container);
      }
      container.append(span);
    });
    if (!title.textContent) title.textContent = (state.reading && state.reading.title) || "";
    if (state.spans.length) state.spans[0].tabIndex = 0;
  }

  // -- playing ------------------------------------------------------------------------------

  async function play() {
    try {
      await audio.play();
    } catch (e) {
      say("请按“播放”开始朗读。");
    }
  }

  function toggle() {
    if (audio.paused) play();
    else audio.pause();
  }

  function seekable(t) {
    for (let i = 0; i < audio.seekable.length; i++) {
      if (audio.seekable.start(i) <= t && t <= audio.seekable.end(i)) return true;
    }
    return false;
  }

  function jump(t) {
    const reading = state.reading;
    if (state.live ? buffered(t) : seekable(t)) {
      audio.currentTime = t;
      return true;
    }
    if (reading && reading.status === "done" && state.source !== reading.links.audio) {
      // Not arrived through the stream yet, but the finished file can seek (Range requests).
      const wasPlaying = !audio.paused;
      setSource(reading.links.audio);
      audio.addEventListener("loadedmetadata", () => {
        audio.currentTime = t;
        if (wasPlaying) play();
      }, { once: true });
      return true;
    }
    return false;
  }

  function seekTo(i, andPlay) {
    const s = state.sentences[i];
    if (!s) return;
    if (s.start === null) {
      say("这句话还在合成中，请稍候。");
      return;
    }
    if (!jump(s.start + 0.001)) {
      say("正在合成，暂时无法跳到这里。");
      return;
    }
    setCurrent(i);
    if (andPlay) play();
  }

  function step(delta) {
    const from = state.current < 0 ? 0 : state.current;
    const target = Math.min(Math.max(from + delta, 0), state.sentences.length - 1);
    seekTo(target, false);
  }

  function currentIndex(t) {
    let found = -1;
    for (let i = 0; i < state.sentences.length; i++) {
      const s = state.sentences[i];
      if (s.start === null || s.start > t + 0.05) break;
      found = i;
    }
    return found;
  }

  function setCurrent(i) {
    if (i === state.current) return;
    const old = state.spans[state.current];
    if (old) {
      old.classList.remove("current");
      old.removeAttribute("aria-current");
    }
    state.current = i;
    const span = state.spans[i];
    if (!span) return;
    span.classList.add("current");
    span.setAttribute("aria-current", "true");
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    span.scrollIntoView({ block: "center", behavior: still ? "auto" : "smooth" });
  }

  function highlight() {
    setCurrent(currentIndex(audio.currentTime));
  }

  function showTime() {
    const reading = state.reading;
    const total = reading ? reading.duration || reading.audio_ready || 0 : 0;
    const text = `${clock(audio.currentTime)} / ${clock(total)}`;
    $("time").textContent = text;
    seek.value = String(Math.floor(audio.currentTime));
    seek.setAttribute("aria-valuetext", text);
  }

  audio.addEventListener("timeupdate", () => {
    highlight();
    showTime();
    if (!audio.paused) savePosition();
  });
  function showPlaying(on) {
    playButton.setAttribute("aria-label", on ? "暂停" : "播放");
    playButton.classList.toggle("playing", on);
    $("play-text").textContent = on ? "暂停" : "播放";
  }
  audio.addEventListener("play", () => showPlaying(true));
  audio.addEventListener("pause", () => {
    showPlaying(false);
    savePosition(true);
  });
  audio.addEventListener("canplay", () => {
    if (state.resumeAt !== null && jump(state.resumeAt)) state.resumeAt = null;
  });
  audio.addEventListener("ended", () => {
    try {
      localStorage.removeItem(positionKey(state.id));
    } catch (e) { /* nothing to forget */ }
  });
  audio.addEventListener("error", () => {
    if (state.reading && state.reading.status !== "failed") say("音频加载失败，请重试。", true);
  });

  playButton.addEventListener("click", toggle);
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  speed.addEventListener("change", () => {
    audio.playbackRate = parseFloat(speed.value);
    say(`语速 ${speed.value}×`);
  });
  seek.addEventListener("change", () => {
    if (!jump(parseFloat(seek.value))) say("正在合成，暂时无法跳到这里。");
  });

  function changeSpeed(direction) {
    const options = [...speed.options];
    const i = Math.min(Math.max(speed.selectedIndex + direction, 0), options.length - 1);
    speed.selectedIndex = i;
    speed.dispatchEvent(new Event("change"));
  }

  function moveFocus(delta) {
    if (!state.spans.length) return;
    const from = state.focused >= 0 ? state.focused : Math.max(state.current, 0);
    const target = Math.min(Math.max(from + delta, 0), state.spans.length - 1);
    state.spans.forEach((span, i) => { span.tabIndex = i === target ? 0 : -1; });
    state.focused = target;
    state.spans[target].focus();
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const tag = target && target.tagName;
    if (tag === "TEXTAREA" || tag === "INPUT" || tag === "SELECT") return;
    if (reader.hidden) return;
    const onSentence = target && target.classList && target.classList.contains("s");
    const onButton = tag === "BUTTON" || tag === "A" || tag === "SUMMARY";
    const key = event.key;
    let handled = true;
    if ((key === " " || key === "Enter") && onSentence) {
      seekTo(parseInt(target.dataset.index, 10), true);
    } else if ((key === " " && !onButton) || key === "k" || key === "K") {
      toggle();
    } else if (key === "ArrowLeft" || key === "j" || key === "J") {
      step(-1);
    } else if (key === "ArrowRight" || key === "l" || key === "L") {
      step(1);
    } else if (key === "-" || key === "_") {
      changeSpeed(-1);
    } else if (key === "+" || key === "=") {
      changeSpeed(1);
    } else if ((key === "ArrowDown" || key === "ArrowUp") && (onSentence || target === document.body)) {
      moveFocus(key === "ArrowDown" ? 1 : -1);
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });

  window.addEventListener("pagehide", () => savePosition(true));
  window.addEventListener("popstate", () => route(false));

  function route(autoplay) {
    const match = location.pathname.match(/^\/readings\/([0-9a-f]{24})$/);
    if (match) open(match[1], autoplay);
    else {
      stopPolling();
      audio.pause();
      reader.hidden = true;
    }
  }

  route(false);
})();
