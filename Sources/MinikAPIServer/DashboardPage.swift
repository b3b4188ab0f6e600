// The dashboard's page: one HTML document with its script, no outside resources.
//
// It draws /minik/graph.svg (Graphviz's drawing of `minik graph`), then follows the
// Kubernetes watch API (/api/v1/pods?watch=1, JSON lines over a streamed fetch) and
// recolours each pod as its status changes (green running and ready, yellow not ready
// or pending, red failed, grey gone), fetching the drawing again when pods come or go.
// Click a pod, then a pod or a service: the path between them is traced
// (/minik/trace) and shown hop by hop; the failing hop in red. A URL ending in
// #trace=FROM,TO[,PORT] traces at once (a link to a path).
enum DashboardPage {
    static func html(cluster: String) -> String {
        let name = cluster.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>minik \(name)</title>
        <style>
        body { font: 13px Helvetica, Arial, sans-serif; margin: 0; display: flex; height: 100vh; color: #222; }
        #graph { flex: 3; overflow: auto; border-right: 1px solid #ccc; padding: 8px; }
        #graph svg { width: 100%; height: auto; }
        #side { flex: 2; overflow: auto; padding: 8px 12px; min-width: 380px; }
        h1 { font-size: 16px; margin: 4px 0 8px; } h2 { font-size: 14px; margin: 14px 0 6px; }
        #status { font-size: 12px; color: #666; } .live { color: #080; }
        table { border-collapse: collapse; width: 100%; } td, th { border-bottom: 1px solid #eee; padding: 3px 4px; text-align: left; vertical-align: top; }
        tr.failed td { color: #b00; font-weight: bold; } .pod { cursor: pointer; } .picked polygon, .picked path { stroke: #06c; stroke-width: 3px; }
        #pods span { display: inline-block; margin: 2px; padding: 2px 6px; border-radius: 4px; cursor: pointer; border: 1px solid #aaa; }
        input { width: 90px; }
        </style></head>
        <body>
        <div id="graph">loading the drawing...</div>
        <div id="side">
        <h1>cluster \(name) <span id="status">connecting...</span></h1>
        <div>Click a pod, then a pod or a service, to trace the path. Port: <input id="port" placeholder="8080/TCP"></div>
        <h2>pods</h2><div id="pods"></div>
        <h2>trace</h2><div id="trace">nothing traced yet</div>
        </div>
        <script>
        const colours = { Running: "#c8f0c8", NotReady: "#fff2b3", Pending: "#fff2b3", ContainerCreating: "#fff2b3",
                          Failed: "#f8c0c0", Error: "#f8c0c0", CrashLoopBackOff: "#f8c0c0", Succeeded: "#dddddd", Gone: "#bbbbbb" };
        const pods = new Map();   // "ns/name" -> state
        let picked = null;
        const esc = s => String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
        const idOf = key => "v_pod_" + key.replace(/[^A-Za-z0-9]/g, "_");
        function stateOf(p) {
          if (p.metadata.deletionTimestamp) return "NotReady";
          const phase = p.status && p.status.phase || "Pending";
          if (phase !== "Running") return phase;
          for (const c of (p.status.containerStatuses || [])) {
            if (c.state && c.state.waiting) return c.state.waiting.reason || "NotReady";
          }
          const ready = (p.status.conditions || []).find(c => c.type === "Ready");
          return ready && ready.status === "True" ? "Running" : "NotReady";
        }
        function svgNode(key) {
          for (const g of document.querySelectorAll("#graph g.node")) {
            const t = g.querySelector("title");
            if (t && t.textContent === idOf(key)) return g;
          }
          return null;
        }
        function paint() {
          const list = [];
          for (const [key, st] of [...pods.entries()].sort()) {
            const g = svgNode(key);
            if (g) {
              g.classList.add("pod");
              g.querySelectorAll("polygon, path, ellipse").forEach(e => e.setAttribute("fill", colours[st] || "#ffffff"));
              g.onclick = () => pick(key);
            }
            list.push(`<span data-pod="${esc(key)}" style="background:${colours[st] || "#fff"}" title="${esc(st)}">${esc(key)}</span>`);
          }
          document.getElementById("pods").innerHTML = list.join("");
          document.querySelectorAll("#pods span").forEach(s => s.onclick = () => pick(s.dataset.pod));
          for (const g of document.querySelectorAll("#graph g.node")) {
            const t = g.querySelector("title");
            if (t && t.textContent.startsWith("v_svc_")) { g.style.cursor = "pointer"; g.onclick = () => pick("svc/" + g.querySelector("text").textContent.replace(/^svc /, "")); }
          }
        }
        async function drawing() {
          const r = await fetch("/minik/graph.svg");
          document.getElementById("graph").innerHTML = r.ok ? await r.text() : "<p>no drawing: " + esc(await r.text()) + "</p>";
          paint();
        }
        function pick(key) {
          document.querySelectorAll(".picked").forEach(e => e.classList.remove("picked"));
          if (!picked || picked.startsWith("svc/") || key === picked) {
            picked = key.startsWith("svc/") ? null : key;
            const g = picked && svgNode(picked); if (g) g.classList.add("picked");
            document.getElementById("trace").textContent = picked ? "from " + picked + ": now click where to" : "pick a pod first";
            return;
          }
          const from = picked; picked = null;
          trace(from, key, document.getElementById("port").value);
        }
        async function trace(from, to, port) {
          const out = document.getElementById("trace");
          out.textContent = "tracing " + from + " -> " + to + "...";
          const q = new URLSearchParams({ from: from.startsWith("svc/") ? from : "pod/" + from, to: to.startsWith("svc/") ? to : "pod/" + to });
          if (port) q.set("port", port);
          const r = await fetch("/minik/trace?" + q);
          const doc = await r.json();
          if (!r.ok) { out.innerHTML = "<p>" + esc(doc.error || r.status) + "</p>"; return; }
          const res = doc.result;
          let html = `<p><b>${esc(doc.source)}</b> &rarr; <b>${esc(doc.destination)}</b> ${esc(doc.packet)}</p><table id="hops"><tr><th>#</th><th>where</th><th>if</th><th>object</th><th>decision</th></tr>`;
          res.hops.forEach((h, i) => html += `<tr class="${h.failed ? "failed" : ""}"><td>${i + 1}</td><td>${esc(h.place)}</td><td>${esc(h.interface)}</td><td>${esc(h.object)}</td><td>${esc(h.detail)}</td></tr>`);
          html += "</table>";
          if (res.dnat) html += "<p>DNAT: " + esc(res.dnat) + "</p>";
          (res.reply || []).forEach(r => html += "<p>reply: " + esc(r) + "</p>");
          html += `<p id="verdict"><b>${res.delivered ? "delivered" : "does not arrive: " + esc(res.failure || "")}</b></p>`;
          out.innerHTML = html;
        }
        async function watch() {
          const status = document.getElementById("status");
          let rv = "";
          for (;;) {
            try {
              const list = await (await fetch("/api/v1/pods")).json();
              pods.clear();
              for (const p of list.items) pods.set(p.metadata.namespace + "/" + p.metadata.name, stateOf(p));
              rv = list.metadata.resourceVersion;
              paint();
              const r = await fetch(`/api/v1/pods?watch=1&resourceVersion=${rv}`);
              status.textContent = "live"; status.className = "live";
              const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
              for (;;) {
                const { value, done } = await reader.read();
                if (done) break;
                buf += dec.decode(value, { stream: true });
                let nl;
                while ((nl = buf.indexOf("\\n")) >= 0) {
                  const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
                  if (!line.trim()) continue;
                  const ev = JSON.parse(line), p = ev.object, key = p.metadata.namespace + "/" + p.metadata.name;
                  const known = pods.has(key);
                  if (ev.type === "DELETED") pods.set(key, "Gone"); else pods.set(key, stateOf(p));
                  paint();
                  if (!known || ev.type === "DELETED") { if (ev.type === "DELETED") pods.delete(key); drawing(); }
                }
              }
            } catch (e) { status.textContent = "reconnecting: " + e; status.className = ""; }
            await new Promise(r => setTimeout(r, 1000));
          }
        }
        drawing().then(() => {
          watch();
          const m = location.hash.match(/^#trace=([^,]+),([^,]+)(?:,(.+))?$/);
          if (m) trace(decodeURIComponent(m[1]), decodeURIComponent(m[2]), m[3] ? decodeURIComponent(m[3]) : "");
        });
        </script>
        </body></html>
        """
    }
}
