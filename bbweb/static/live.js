/* Live pages: the builder, build and waterfall pages follow the live status stream
 * (/json/events) and refresh the parts of themselves that events change, instead of
 * reloading the whole page on a timer.
 *
 * A page that wants this has <main data-live-events="URL" data-live-after="POSITION">
 * and marks its changing parts with data-live-region="NAME". When an event arrives the
 * page is fetched again and each region is replaced by the same region of the fresh
 * page (the server escaped it; nothing from an event is ever parsed as markup). A build
 * page also shows the lines its running steps write, as text (textContent only).
 * Without JavaScript the pages are what they always were.
 */
(function () {
  "use strict";
  var main = document.querySelector("main[data-live-events]");
  if (!main || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var baseUrl = main.getAttribute("data-live-events");
  var position = main.getAttribute("data-live-after") || "";
  // events are gathered this long before the page fetches itself again
  var delay = parseInt(main.getAttribute("data-live-delay"), 10) || 300;
  var source = null;
  var refreshing = false;
  var again = false;
  var timer = null;
  var stopped = false;
  var LOG_KEEP_CHARS = 200000;  // per log shown live; older text is dropped from the top
  var LOGS_SHOWN = 3;  // the newest logs shown live on a build page
  var ANSI = /\x1b\[[0-?]*[ -\/]*[@-~]/g;

  function streamUrl() {
    if (!position) {
      return baseUrl;
    }
    return baseUrl + (baseUrl.indexOf("?") < 0 ? "?" : "&") + "after=" +
      encodeURIComponent(position);
  }

  function focusedIn(el) {
    var active = document.activeElement;
    return active && active !== document.body && el.contains(active);
  }

  function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    fetch(window.location.href, {cache: "no-store", credentials: "same-origin",
                                 headers: {"Accept": "text/html"}})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var regions = document.querySelectorAll("[data-live-region]");
        Array.prototype.forEach.call(regions, function (old) {
          var name = old.getAttribute("data-live-region");
          var found = Array.prototype.filter.call(
            fresh.querySelectorAll("[data-live-region]"),
            function (el) { return el.getAttribute("data-live-region") === name; });
          if (found.length && !focusedIn(old)) {
            old.replaceWith(document.importNode(found[0], true));
          }
        });
        var freshMain = fresh.querySelector("main");
        if (freshMain && !freshMain.hasAttribute("data-live-events")) {
          stop();  // the page has nothing more to follow (a build that finished)
        }
        document.documentElement.setAttribute("data-live-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        refreshing = false;
        if (again) {
          again = false;
          schedule(delay);
        }
      });
  }

  function schedule(wait) {
    if (timer === null) {
      timer = setTimeout(function () { timer = null; refresh(); }, wait);
    }
  }

  function logBlock(data) {
    var holder = document.getElementById("live-logs");
    if (!holder) {
      holder = document.createElement("div");
      holder.id = "live-logs";
      var steps = document.querySelector("[data-live-region='build-steps']");
      var anchor = steps ? steps.parentNode : main;
      var heading = document.createElement("h2");
      heading.textContent = "Live Logs:";
      holder.appendChild(heading);
      anchor.appendChild(holder);
    }
    var id = "live-log-" + String(data.logid);
    var block = document.getElementById(id);
    if (!block) {
      block = document.createElement("div");
      block.id = id;
      block.className = "live-log";
      var title = document.createElement("h3");
      title.textContent = data.step + " \u203a " + data.log;
      var pre = document.createElement("pre");
      pre.className = "log";
      block.appendChild(title);
      block.appendChild(pre);
      holder.appendChild(block);
      var blocks = holder.querySelectorAll(".live-log");
      for (var i = 0; i < blocks.length - LOGS_SHOWN; i++) {
        blocks[i].remove();
      }
    }
    return block;
  }

  function appendChunk(data) {
    var block = logBlock(data);
    var pre = block.querySelector("pre");
    var span = document.createElement("span");
    span.className = data.stream === "header" ? "header-chunk" : String(data.stream);
    span.textContent = String(data.text).replace(ANSI, "");
    pre.appendChild(span);
    var size = pre.textContent.length;
    while (size > LOG_KEEP_CHARS && pre.firstChild && pre.firstChild !== span) {
      size -= pre.firstChild.textContent.length;
      pre.removeChild(pre.firstChild);
    }
    if (block.className.indexOf("running") < 0) {
      block.className = "live-log running";
    }
  }

  function onEvent(e) {
    if (e.lastEventId) {
      position = e.lastEventId;
    }
    var kind = e.type;
    if (kind === "log.chunk" || kind === "log.started" || kind === "log.finished") {
      var data = JSON.parse(e.data);
      if (kind === "log.chunk") {
        appendChunk(data);
      } else if (kind === "log.started") {
        logBlock(data);
      } else {
        var block = document.getElementById("live-log-" + String(data.logid));
        if (block) { block.className = "live-log done"; }
      }
      return;
    }
    if (kind === "end") {
      close();
      refresh();
      return;
    }
    schedule(delay);
  }

  var KINDS = ["builder.created", "builder.updated", "builder.removed", "build.started",
               "build.finished", "build.stop_requested", "buildrequest.new",
               "buildrequest.cancelled", "buildrequest.retry", "buildset.new",
               "buildset.complete", "step.started", "step.finished", "change.new",
               "slave.connected", "slave.disconnected", "slave.paused", "slave.unpaused",
               "log.started", "log.chunk", "log.finished", "end"];

  function close() {
    if (source) {
      source.close();
      source = null;
    }
  }

  function stop() {
    stopped = true;
    close();
  }

  function connect() {
    if (stopped) { return; }
    source = new EventSource(streamUrl());
    KINDS.forEach(function (kind) { source.addEventListener(kind, onEvent); });
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) {
        // refused (every stream slot taken, or nothing more to follow): look again at
        // the page, and come back later with the position reached
        close();
        refresh();
        setTimeout(connect, 10000 + Math.floor(Math.random() * 10000));
      }
    };
  }

  connect();
})();
