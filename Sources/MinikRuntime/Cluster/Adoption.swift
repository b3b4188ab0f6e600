// Adopting a running cluster whose supervisor died (kill -9, OOM, a crash): a new
// supervisor takes it over from the state file and the kernel, without restarting a
// healthy pod. What it finds:
//   - the underlay, nodes and external host by their pinned namespaces, their links by name;
//   - each pod's sandbox by its recorded pid and start time, each container's process in
//     its own cgroup (the recorded one, or the earliest process of the cgroup whose parent
//     is outside it: an exec's processes start later and have the CLI as parent);
//   - what died meanwhile: a sandbox is re-created, a container is restarted by its
//     restart policy; its exit code is read from the zombie when nobody reaped it, and is
//     otherwise unknown (137, ContainerStatusUnknown, as kubelet reports a lost container);
//   - containers waiting in back-off start now.
// Then it resumes the log copiers, probes, the proxy (a full resync of every node) and
// the DNS zone, publishes the host ports again and serves the control socket. The
// adopted processes are not our children (their parent died; init has them), so a
// monitor polls them instead of the reaper.
import Foundation
import MinikNetlink
import MinikSpec

extension ClusterRuntime {
    /// Takes over the cluster `old` describes. Throws when its network is gone (then it
    /// is beyond adoption: `down` removes what is left).
    public func adopt(_ old: ClusterState, progress: (String) -> Void) throws(RuntimeError) {
        let name = spec.name
        createdAt = old.createdAt
        controllerEvents = old.events ?? []
        _apiObjects = old.apiObjects ?? [:]
        for s in old.services { serviceCreated[s.key] = s.createdAt }
        let u = try NetNamespace.open(Naming.underlayNetns(name))
        underlay = u
        underlayBridge = try linkIndex(Naming.underlayBridge(name), in: u)
        for n in spec.nodes {
            let ns = try NetNamespace.open(Naming.nodeNetns(name, node: n.name))
            let node = NodeRuntime(spec: n, netns: ns, ipam: try ipamFor(n))
            node.createdAt = old.nodes.first { $0.name == n.name }?.createdAt ?? old.createdAt
            node.uplinkIndex = try linkIndex(Naming.nodeUplink, in: ns)
            if !spec.disableDefaultCNI { node.bridgeIndex = try linkIndex(Naming.bridge, in: ns) }
            nodes.append(node)
        }
        if let ext = try? NetNamespace.open(Naming.externalNetns(name)) {
            external = ext
            externalUplink = (try? linkIndex("eth0", in: ext)) ?? 0
        }
        sandboxCgroup = Cgroups.sandboxFD(cluster: name)
        progress("found the underlay, \(nodes.count) nodes and the external host")
        try publishPorts()

        // Pods: what still runs is kept; what died is handled as the reaper would have.
        var running = 0, gone: [(key: String, name: String?)] = []
        lock.lock()
        for var p in old.pods {
            guard p.phase == .running, Sandbox.isAlive(p.pid, startTime: p.startTime) else {
                if p.phase == .running { gone.append((p.key, nil)) }
                pods.append(p)
                continue
            }
            adopted[p.pid] = p.startTime
            pidIndex[p.pid] = (p.key, nil)
            for j in p.containers.indices {
                var c = p.containers[j]
                switch c.state {
                case .running:
                    if let (pid, start) = Self.findContainer(cluster: name, pod: p, container: c) {
                        c.pid = pid
                        c.startTime = start
                        adopted[pid] = start
                        pidIndex[pid] = (p.key, c.name)
                        running += 1
                    } else {
                        // It ended while nobody watched: the monitor's first turn reports it.
                        adopted[c.pid] = c.startTime
                        pidIndex[c.pid] = (p.key, c.name)
                    }
                case .waiting:
                    c.nextStart = nil // its back-off ran out while nobody watched
                case .terminated:
                    break
                }
                p.containers[j] = c
            }
            pods.append(p)
        }
        lock.unlock()
        for p in pods where p.phase == .running {
            for c in p.containers where c.isRunning && adopted[c.pid] != nil && Sandbox.isAlive(c.pid, startTime: c.startTime) {
                resumeContainer(p, c)
            }
        }
        progress("adopted \(pods.count - gone.count) pods with \(running) running containers; \(gone.count) sandboxes to re-create")
        // Pods the spec has and the state does not (the supervisor died while creating them).
        let missing = spec.pods.filter { s in !pods.contains { $0.key == s.key } }
        startAdoptionMonitor()
        for (key, _) in gone { sandboxDied(key) }
        if !missing.isEmpty { try addPods(missing) }
        for p in pods where p.phase == .running { startNext(p.key) }
        if spec.kubeProxyMode != "none" && !spec.disableDefaultCNI {
            proxy = try ServiceProxy(nodes: nodes, clusterCIDR: spec.podSubnet)
            let errors = syncServices()
            if let e = errors.first { throw .state("service proxy: \(e)") }
            progress("service proxy resynced in every node")
        }
        startProxyLoop()
        startStateSaver()
        try state().save()
    }

    func linkIndex(_ link: String, in ns: NetNamespace) throws(RuntimeError) -> Int32 {
        let sock = try ns.netlink
        guard let info = try nl("\(ns.name): \(link)", { () throws(NetlinkError) in try sock.linkGet(name: link) }) else {
            throw .state("\(ns.name) has no \(link): the cluster's network is broken; remove it with `minik down --name \(spec.name)`")
        }
        return info.index
    }

    /// Log copier and probes of a container that kept running.
    private func resumeContainer(_ p: PodState, _ c: ContainerStatus) {
        guard let podSpec = podSpec(p.key), let cs = (podSpec.initContainers + podSpec.containers).first(where: { $0.name == c.name }) else { return }
        let dir = "\(ContainerRunner.podDir(spec.name, podSpec))/\(c.name)"
        let logPath = ContainerRunner.logFile(spec.name, namespace: p.namespace, pod: p.name, container: c.name, attempt: c.restartCount)
        try? logs.resume("\(p.key)/\(c.name)", fifo: "\(dir)/log.fifo", logPath: logPath)
        startProbes(p.key, cs, pid: c.pid)
    }

    /// The main process of a container: the recorded one if it still runs, else the
    /// earliest process in the container's pids cgroup whose parent is outside it.
    static func findContainer(cluster: String, pod: PodState, container c: ContainerStatus) -> (Int32, UInt64)? {
        if Sandbox.isAlive(c.pid, startTime: c.startTime) { return (c.pid, c.startTime) }
        let dir = "\(Cgroups.dir("pids", cluster: cluster))/\(pod.namespace)_\(pod.name)_\(c.name)"
        guard let text = try? String(contentsOfFile: "\(dir)/cgroup.procs", encoding: .utf8) else { return nil }
        let members = Set(text.split(separator: "\n").compactMap { Int32($0) })
        let roots = members.filter { !members.contains(parent(of: $0)) && Sandbox.isRunning($0) }
        return roots.map { ($0, Sandbox.startTime($0)) }.filter { $0.1 != 0 }.min { $0.1 < $1.1 }
    }

    static func parent(of pid: Int32) -> Int32 {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) ?? 0 : 0
    }

    /// The wait status of a process that ended and that nobody reaped yet (a zombie's
    /// exit_code, field 52 of /proc/PID/stat); nil when it is gone without a trace.
    static func zombieStatus(_ pid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        // fields[0] is field 3 (state); exit_code is field 52, the last.
        guard fields.first == "Z", fields.count >= 50 else { return nil }
        return Int32(fields[49])
    }

    /// Watches the adopted processes; an exit goes where the reaper sends its children's.
    func startAdoptionMonitor() {
        let t = Thread { [self] in
            while true {
                lock.lock()
                let watched = adopted
                let stop = stopping
                lock.unlock()
                if stop || watched.isEmpty { return }
                for (pid, start) in watched where !Sandbox.isAlive(pid, startTime: start) {
                    lock.lock()
                    // Still ours: not killed on purpose (delete, a dead sandbox) meanwhile,
                    // and its pid not given to a new child of ours.
                    let ours = adopted.removeValue(forKey: pid) == start && pidIndex[pid] != nil
                    let status = ours ? Self.zombieStatus(pid) : nil
                    if ours && status == nil { unknownExits.insert(pid) }
                    lock.unlock()
                    if ours { reaped(pid: pid, status: status ?? SIGKILL) }
                }
                usleep(100_000)
            }
        }
        t.name = "adoption-monitor"
        t.start()
    }

    func markStateDirty() {
        lock.lock()
        stateDirty = true
        let hook = _onChange
        lock.unlock()
        hook?()
    }

    /// Pods whose owner was deleted with propagationPolicy Orphan: they keep running,
    /// now without an owner (their spec and their state both).
    public func disown(_ keys: Set<String>) {
        lock.lock()
        for i in _spec.pods.indices where keys.contains(_spec.pods[i].key) { _spec.pods[i].owner = nil }
        for i in pods.indices where keys.contains(pods[i].key) { pods[i].owner = nil }
        lock.unlock()
        markStateDirty()
    }

    /// Changes a pod's labels and annotations in place, as the API does: the pod keeps
    /// running; services pick it up or drop it at the next sync. false: no such pod.
    public func relabel(pod key: String, labels: [String: String], annotations: [String: String]) -> Bool {
        lock.lock()
        guard let i = _spec.pods.firstIndex(where: { $0.key == key }) else { lock.unlock(); return false }
        _spec.pods[i].labels = labels
        _spec.pods[i].annotations = annotations
        if let j = pods.firstIndex(where: { $0.key == key }) { pods[j].labels = labels }
        lock.unlock()
        proxyDirty()
        return true
    }

    /// Writes the state before returning (after a change of the spec or of the API's
    /// objects: what a client was told happened must be what an adopting supervisor
    /// reads, even if this one is killed a moment later). The snapshot is taken under the
    /// lock, encoded without it, and written under it unless a later snapshot was
    /// written meanwhile.
    func saveState() {
        lock.lock()
        // Before the saver runs (`up` still building), the state is written first by it.
        guard saverStarted else { stateDirty = true; lock.unlock(); return }
        stateDirty = false
        snapshotSeq += 1
        let seq = snapshotSeq
        let snapshot = state(verify: false)
        lock.unlock()
        guard let data = try? snapshot.encoded() else { return }
        lock.lock()
        defer { lock.unlock() }
        if stopping || seq <= writtenSeq { return }
        writtenSeq = seq
        try? ClusterState.write(data, cluster: snapshot.name)
    }

    /// Writes the state within a second of a change (saveState writes the changes clients
    /// are answered about at once), so that
    /// what commands show while no supervisor runs, and what a new one adopts, is at most
    /// that old.
    func startStateSaver() {
        lock.lock()
        saverStarted = true
        lock.unlock()
        let t = Thread { [self] in
            while true {
                _ = saveNow.wait(timeout: .now() + 1)
                // A burst of changes (a rollout, many writes) is one write.
                usleep(20_000)
                while saveNow.wait(timeout: .now()) == .success {}
                lock.lock()
                if stopping { lock.unlock(); return }
                guard stateDirty else { lock.unlock(); continue }
                stateDirty = false
                snapshotSeq += 1
                let seq = snapshotSeq
                let snapshot = state(verify: false)
                lock.unlock()
                // Encoded without the lock (it takes milliseconds for a big cluster);
                // written under it: `down` sets stopping under it before it removes the
                // directory, so no state file is written after that; nor over a later
                // snapshot that saveState wrote meanwhile.
                guard let data = try? snapshot.encoded() else { continue }
                lock.lock()
                defer { lock.unlock() }
                if stopping { return }
                if seq <= writtenSeq { continue }
                writtenSeq = seq
                try? ClusterState.write(data, cluster: snapshot.name)
            }
        }
        t.name = "state-saver"
        t.start()
    }
}
