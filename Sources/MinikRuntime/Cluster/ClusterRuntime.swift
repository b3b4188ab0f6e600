// Bringing a cluster up, as an ordered list of actions (kind's create flow):
//   underlay -> nodes (namespace, eth0, cni0, overlay) -> pods (IPAM, pause sandbox,
//   veth, address, route) -> reachability check -> state file.
// When any action fails, everything made so far is removed (Teardown) and the error is
// returned; nothing is left half-built. The runtime is synchronous: no Swift concurrency
// thread ever changes namespace (CMinik does that on throwaway threads).
import Foundation
import MinikNetlink
import MinikSpec

public final class NodeRuntime: @unchecked Sendable {
    public let spec: NodeSpec
    public let netns: NetNamespace
    public var uplinkIndex: Int32 = 0
    public var bridgeIndex: Int32 = 0
    public let ipam: HostLocalIPAM
    public internal(set) var createdAt = Date()

    init(spec: NodeSpec, netns: NetNamespace, ipam: HostLocalIPAM) {
        self.spec = spec
        self.netns = netns
        self.ipam = ipam
    }
}

public final class ClusterRuntime: @unchecked Sendable {
    /// What the cluster should run; `apply`, `delete` and `scale` change it (reconcile).
    public var spec: ClusterSpec {
        lock.lock(); defer { lock.unlock() }
        return _spec
    }
    var _spec: ClusterSpec
    public let specFile: String
    public internal(set) var nodes: [NodeRuntime] = []
    public internal(set) var pods: [PodState] = []
    var underlay: NetNamespace?
    var underlayBridge: Int32 = 0
    /// The service proxy of every node (nil with kubeProxyMode none or no CNI).
    var proxy: ServiceProxy?
    let proxyWake = NSCondition()
    var proxyPending = false
    var serviceCreated: [String: Date] = [:]
    /// The zone last written for cluster DNS (serial 0), and its serial.
    var dnsZoneBody: String?
    var dnsSerial: UInt32 = 0
    /// The last write of the zone failed: the services loop tries again.
    var dnsStale = false
    var dnsSkipped = 0
    var external: NetNamespace?
    var externalUplink: Int32 = 0
    var forwarders: [PortForwarder] = []
    /// Copies every container's output into its rotated log files.
    public let logs = ContainerLogs()
    /// cgroup.procs of the cluster's sandbox cgroup: a pause process joins it before its
    /// first instruction, so `down` finds it even before its namespace is pinned.
    var sandboxCgroup: Int32 = -1
    let pause: String
    public internal(set) var createdAt = Date()
    /// Recursive: lifecycle code reads `spec` (which locks) while holding it.
    let lock = NSRecursiveLock()
    let images: ImageStore
    /// Which pod (and container; nil for the pause process) a pid belongs to.
    var pidIndex: [Int32: (pod: String, container: String?)] = [:]
    /// Exits reaped before the spawner recorded the pid.
    var earlyExits: [Int32: Int32] = [:]
    /// The stdin of running containers that have one, per "ns/pod/container".
    var consoles: [String: ContainerConsole] = [:]
    /// Current back-off per "ns/pod/container".
    var backoff: [String: Double] = [:]
    /// OOM kills seen per "ns/pod/container" (the cgroup's counter outlives restarts).
    var oomSeen: [String: Int] = [:]
    var stopping = false
    var _specName: String { _spec.name }
    /// Processes of an adopted cluster that are not our children (their supervisor died):
    /// pid -> start time, watched by the adoption monitor instead of the reaper.
    var adopted: [Int32: UInt64] = [:]
    /// The state changed since it was last written (the saver writes it within a second).
    var stateDirty = false
    /// Wakes the state saver at once.
    let saveNow = DispatchSemaphore(value: 0)
    /// Snapshots of the state taken and the last one written (a slower writer never
    /// overwrites a newer snapshot).
    var snapshotSeq = 0
    var writtenSeq = 0
    var saverStarted = false
    /// Called after every change of the cluster's state (the API server's store syncs).
    public var onChange: (@Sendable () -> Void)? {
        get { lock.lock(); defer { lock.unlock() }; return _onChange }
        set { lock.lock(); _onChange = newValue; lock.unlock() }
    }
    var _onChange: (@Sendable () -> Void)?
    /// Where the cluster's API server listens, once it does.
    public var apiServer: String? {
        get { lock.lock(); defer { lock.unlock() }; return _apiServer }
        set { lock.lock(); _apiServer = newValue; lock.unlock() }
    }
    var _apiServer: String?
    /// The API store's revision, saved with the state.
    public var apiRevision: Int64 {
        get { lock.lock(); defer { lock.unlock() }; return _apiRevision }
        set { lock.lock(); _apiRevision = newValue; lock.unlock() }
    }
    var _apiRevision: Int64 = 0
    /// Objects only the API has (ConfigMaps): "resource/namespace/name" -> their JSON,
    /// kept and saved with the state, adopted with it.
    public var apiObjects: [String: String] {
        lock.lock(); defer { lock.unlock() }; return _apiObjects
    }
    var _apiObjects: [String: String] = [:]

    /// Changes the API's own objects in one step (under the runtime's lock), saved
    /// before it returns.
    public func updateAPIObjects(_ body: (inout [String: String]) -> Void) {
        lock.lock()
        body(&_apiObjects)
        lock.unlock()
        saveState()
    }

    /// The controllers' events, repeats counted, the last `maxEvents` kept.
    var controllerEvents: [ControllerEvent] = []
    static let maxEvents = 1000

    /// Records the controllers' events (a repeat of a recent one counts up).
    public func record(_ events: [ControllerEvent]) {
        guard !events.isEmpty else { return }
        lock.lock()
        var touched = false
        for e in events {
            if let i = controllerEvents.lastIndex(where: { $0.sameAs(e) }), controllerEvents.count - i < 50 {
                // A repeat within 10 s (a pod that fits no node, tried at every pass) is
                // the same event, not another count: the correlator's rate limit, reduced.
                if e.time.timeIntervalSince(controllerEvents[i].last ?? controllerEvents[i].time) < 10 { continue }
                controllerEvents[i].count += 1
                controllerEvents[i].last = e.time
            } else {
                controllerEvents.append(e)
            }
            touched = true
        }
        if controllerEvents.count > ClusterRuntime.maxEvents { controllerEvents.removeFirst(controllerEvents.count - ClusterRuntime.maxEvents) }
        if touched { stateDirty = true }
        lock.unlock()
    }

    /// Adopted processes that ended without a status anyone could read.
    var unknownExits: Set<Int32> = []

    /// Fault injection for the tests of rollback: MINIK_FAULT=after-pods:N makes `up`
    /// fail once N pods are running, as a real failure halfway would.
    private let faultAfterPods: Int?

    public init(spec: ClusterSpec, specFile: String) throws(RuntimeError) {
        self._spec = spec.withAPIService()
        self.specFile = specFile
        self.images = ImageStore.located()
        self.pause = try Sandbox.pauseBinary(images: images)
        let fault = ProcessInfo.processInfo.environment["MINIK_FAULT"] ?? ""
        faultAfterPods = fault.hasPrefix("after-pods:") ? Int(fault.dropFirst("after-pods:".count)) : nil
    }

    /// What stops `up` from starting at all, before anything is made: another cluster of
    /// this name still has namespaces or processes (its state directory may be gone, its
    /// supervisor dead: it is still running). A refusal changes nothing.
    public static func preflight(cluster name: String) -> String? {
        let leftovers = NetNamespace.list(prefix: Naming.netnsPrefix(name))
        if !leftovers.isEmpty {
            return "namespaces of a cluster named \"\(name)\" exist already (\(leftovers.prefix(3).joined(separator: ", "))\(leftovers.count > 3 ? ", ..." : "")); remove it with `minik down --name \(name)` or choose another name"
        }
        let procs = Cgroups.processes(cluster: name)
        if !procs.isEmpty {
            return "processes of a cluster named \"\(name)\" are still running (pids \(procs.prefix(5).map(String.init).joined(separator: ", "))); remove it with `minik down --name \(name)`"
        }
        return nil
    }

    /// Set from a signal handler's thread: `up` stops at the next step and rolls back.
    private let interruption = NSLock()
    private var _interrupted = false
    public func interrupt() {
        interruption.lock()
        _interrupted = true
        interruption.unlock()
    }
    var interrupted: Bool {
        interruption.lock()
        defer { interruption.unlock() }
        return _interrupted
    }
    private func checkInterrupted() throws(RuntimeError) {
        if interrupted { throw .state("interrupted") }
    }

    /// Builds the whole cluster. `progress` gets one line per stage.
    public func up(progress: (String) -> Void) throws(RuntimeError) {
        record(Rollout.creationEvents(spec, now: createdAt))
        do {
            try build(progress: progress)
        } catch {
            progress("failed: \(error); removing what was created")
            stopping = true
            stopServices()
            Teardown.destroy(cluster: spec.name, knownPIDs: pods.map { ($0.pid, $0.startTime) })
            throw error
        }
    }

    private func build(progress: (String) -> Void) throws(RuntimeError) {
        let started = Date()
        var stage = Date()
        func took() -> String {
            let ms = Int(Date().timeIntervalSince(stage) * 1000)
            stage = Date()
            return "(\(ms) ms)"
        }
        try NetNamespace.prepareDirectory()
        sandboxCgroup = Cgroups.sandboxFD(cluster: spec.name)
        let (u, bridge) = try Underlay.create(cluster: spec.name, subnet: spec.network.underlaySubnet, mtu: spec.network.underlayMTU)
        underlay = u
        underlayBridge = bridge
        progress("underlay \(Naming.underlayBridge(spec.name)) \(spec.network.underlaySubnet) in \(u.name) \(took())")

        try checkInterrupted()
        for n in spec.nodes { try addNode(n); try checkInterrupted() }
        progress("nodes ready: \(nodes.map(\.spec.name).joined(separator: ", ")) (\(spec.disableDefaultCNI ? "no CNI" : "cni0 + \(spec.network.backend.rawValue)")) \(took())")
        try addExternalHost()
        try publishPorts()
        let published = spec.nodes.flatMap { n in n.extraPortMappings.map { "127.0.0.1:\($0.hostPort)->\(n.name):\($0.containerPort)/\($0.proto)" } }
        progress("external host \(Naming.externalHostIP(spec.network.underlaySubnet)) on the underlay\(published.isEmpty ? "" : "; published \(published.joined(separator: ", "))") \(took())")

        if spec.disableDefaultCNI {
            for p in spec.pods { pods.append(pendingPod(p, message: "disableDefaultCNI: no pod network")) }
            progress("disableDefaultCNI is set: \(pods.count) pods stay Pending")
        } else {
            if spec.dns.enabled {
                // The zone exists before the DNS pods start; it gains endpoints as pods run.
                if let e = publishDNS() { throw .state(e) }
                progress("cluster DNS: kube-system/kube-dns at \(SpecLoader.dnsServiceIP(spec.serviceSubnet)), zone \(spec.dns.clusterDomain) \(took())")
            }
            try addPods(spec.pods)
            progress("pods running: \(pods.count) \(took())")
            try checkInterrupted()
            try checkReachability()
            if !pods.isEmpty { progress("every pod answers ping, on its node and across nodes \(took())") }
            if spec.kubeProxyMode != "none" {
                proxy = try ServiceProxy(nodes: nodes, clusterCIDR: spec.podSubnet)
                let errors = syncServices()
                if let e = errors.first { throw .state("service proxy: \(e)") }
                let st = proxy?.statuses.first
                progress("service proxy: \(spec.services.count) services, \(st?.rules ?? 0) rules in every node \(took())")
            }
            startProxyLoop() // its first turn publishes the zone with the pods' endpoints
        }
        startStateSaver()
        try checkInterrupted()
        try state().save()
        let ms = Int(Date().timeIntervalSince(started) * 1000)
        progress("cluster \"\(spec.name)\" is up: \(nodes.count) nodes, \(pods.count) pods in \(ms) ms")
    }

    private func addNode(_ n: NodeSpec) throws(RuntimeError) {
        guard let underlay else { preconditionFailure("underlay before nodes") }
        let ns = try NetNamespace.create(Naming.nodeNetns(spec.name, node: n.name))
        let ipam = try ipamFor(n)
        let node = NodeRuntime(spec: n, netns: ns, ipam: ipam)
        nodes.append(node)
        try ns.sysctl("net/ipv4/ip_forward", "1")
        // Bridged pod-to-pod traffic on one node goes through iptables too, so a reply
        // from a service's endpoint is un-NATed (kube-proxy needs br_netfilter). A spec
        // may turn it off to show what breaks (examples/bugs/bridge-netfilter-off.yaml).
        try ns.sysctl("net/bridge/bridge-nf-call-iptables", spec.network.callsIptablesOnBridges ? "1" : "0")
        node.uplinkIndex = try Underlay.attach(node: ns, spec: n, cluster: spec.name, subnet: spec.network.underlaySubnet,
                                               mtu: spec.network.mtu, pathMTU: spec.network.pathMTU, underlay: underlay, bridgeIndex: underlayBridge)
        if spec.disableDefaultCNI { return }
        node.bridgeIndex = try BridgeCNI.ensureBridge(node: ns, podCIDR: n.podCIDR, mtu: spec.network.podMTU)
        try OverlayPlan.make(for: n, in: spec).apply(node: ns, uplinkIndex: node.uplinkIndex,
                                                       underlayIP: n.internalIP, mtu: spec.network.mtu)
    }

    func ipamFor(_ n: NodeSpec) throws(RuntimeError) -> HostLocalIPAM {
        do { return try HostLocalIPAM(directory: Naming.ipamDir(spec.name, node: n.name), range: n.podCIDR) } catch {
            throw .state(error.description)
        }
    }

    func pendingPod(_ p: PodSpec, message: String) -> PodState {
        PodState(namespace: p.namespace, name: p.name, node: p.nodeName, ip: nil,
                 netns: Naming.podNetns(spec.name, namespace: p.namespace, pod: p.name), pid: 0, startTime: 0,
                 hostVeth: "", createdAt: Date(), phase: .pending, message: message, labels: p.labels,
                 owner: p.owner,
                 containers: p.initContainers.map { c in Self.waiting(c, isInit: true, reason: "PodInitializing") }
                     + p.containers.map { c in Self.waiting(c, isInit: false, reason: "ContainerCreating") })
    }

    /// Sandboxes and networks for many pods. Addresses are allocated first, in file order,
    /// so a pod gets the same IP on every run; then the pods are built on as many threads
    /// as there are cores (namespace creation and netlink work overlap in the kernel).
    public func addPods(_ specs: [PodSpec]) throws(RuntimeError) {
        var plan: [(PodSpec, IPv4Address)] = []
        for p in specs { plan.append((p, try allocate(p))) }
        let planned = plan
        for node in nodes { node.ipam.flush() }
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4, planned.count))
        let failures = Collected<RuntimeError>()
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var i = w
            while i < planned.count, failures.isEmpty {
                do {
                    try self.checkInterrupted()
                    try self.addPod(planned[i].0, address: planned[i].1)
                    if let limit = self.faultAfterPods, self.countPods() >= limit {
                        throw RuntimeError.state("injected fault after \(self.faultAfterPods!) pods (MINIK_FAULT)")
                    }
                } catch {
                    failures.append(error as! RuntimeError)
                }
                i += workers
            }
        }
        if let e = failures.items.first { throw e }
        // Keep the state in file order whatever order the threads finished in.
        let order = Dictionary(spec.pods.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { a, _ in a })
        lock.lock()
        pods.sort { (order[$0.key] ?? 0) < (order[$1.key] ?? 0) }
        lock.unlock()
    }

    private func countPods() -> Int {
        lock.lock(); defer { lock.unlock() }
        return pods.filter { $0.phase == .running }.count
    }

    private func node(of p: PodSpec) throws(RuntimeError) -> NodeRuntime {
        guard let node = nodes.first(where: { $0.spec.name == p.nodeName }) else {
            throw .spec("pod \(p.key) is placed on unknown node \(p.nodeName)")
        }
        return node
    }

    private func allocate(_ p: PodSpec) throws(RuntimeError) -> IPv4Address {
        let ipam = try node(of: p).ipam
        do { return try ipam.allocate(owner: p.key) } catch {
            throw .state("pod \(p.key): \(error)")
        }
    }

    /// Sandbox and network for one pod: address from the node's IPAM, pause process in
    /// new namespaces, its netns pinned under /run/netns, veth into cni0. Thread-safe.
    /// `previous`: the pod's state before its sandbox died; its age, events and restart
    /// counts go on (each container that ran counts one restart, as kubelet counts it).
    public func addPod(_ p: PodSpec, address: IPv4Address? = nil, previous: PodState? = nil) throws(RuntimeError) {
        let node = try node(of: p)
        let ip: IPv4Address
        if let address { ip = address } else { ip = try allocate(p) }
        var state = pendingPod(p, message: "")
        state.message = nil
        state.ip = ip
        if let previous {
            state.createdAt = previous.createdAt
            state.events = previous.events
            for i in state.containers.indices {
                guard let old = previous.containers.first(where: { $0.name == state.containers[i].name }) else { continue }
                let ran = old.startedAt != nil || old.restartCount > 0
                state.containers[i].restartCount = old.restartCount + (ran ? 1 : 0)
                state.containers[i].lastTermination = old.termination ?? old.lastTermination
            }
        }
        let pid = try Sandbox.start(pause: pause, hostname: p.hostname ?? p.name, sharedPID: p.shareProcessNamespace,
                                    cgroup: sandboxCgroup)
        state.pid = pid
        state.startTime = Sandbox.startTime(pid)
        lock.lock()
        var veth = Naming.hostVeth(namespace: p.namespace, pod: p.name)
        var salt = 0
        while pods.contains(where: { $0.node == p.nodeName && $0.hostVeth == veth }) {
            salt += 1
            veth = Naming.hostVeth(namespace: p.namespace, pod: p.name, salt: salt)
        }
        state.hostVeth = veth
        pods.append(state)
        lock.unlock()
        do throws(RuntimeError) {
            let podNS = try NetNamespace.pin(pid: pid, as: state.netns)
            defer { podNS.closeNetlink() }
            try BridgeCNI.setupVeth(node: node.netns, bridgeIndex: node.bridgeIndex, pod: podNS, hostVeth: veth,
                                    address: ip, podCIDR: node.spec.podCIDR, mtu: spec.network.podMTU, hairpin: spec.network.hairpin,
                                    randomMAC: spec.network.randomPodMACs)
            // A re-created sandbox tells its peers its MAC (examples/bugs/stale-arp.yaml
            // shows what happens without).
            if previous != nil && !spec.network.randomPodMACs { BridgeCNI.announce(pod: Naming.netnsPath(state.netns), address: ip) }
            do { try Sandbox.applySysctls(p.sysctls, pid: pid) } catch { throw RuntimeError.state("pod \(p.key): \(error)") }
            try ContainerRunner.preparePod(cluster: spec, pod: p, ip: ip)
        } catch {
            // This pod only: its entry, sandbox, pin and veth go (the IP stays the pod's).
            lock.lock()
            pods.removeAll { $0.key == p.key && $0.pid == pid }
            lock.unlock()
            kill(pid, SIGKILL)
            try? NetNamespace.remove(state.netns)
            try? node.netns.netlink.linkDel(name: veth)
            throw error
        }
        lock.lock()
        if let i = pods.lastIndex(where: { $0.key == p.key }) {
            pods[i].phase = .running
            if previous == nil {
                pods[i].events.append(PodEvent(time: Date(), type: "Normal", reason: "Scheduled", message: "Successfully assigned \(p.key) to \(p.nodeName)"))
            }
            pods[i].events.append(PodEvent(time: Date(), type: "Normal", reason: "SandboxReady", message: "pause pid \(pid), IP \(ip), netns \(state.netns)"))
        }
        pidIndex[pid] = (p.key, nil)
        adopted.removeValue(forKey: pid) // a pid of an adopted process that is gone, reused
        lock.unlock()
        startNext(p.key)
        proxyDirty()
    }

    /// Every node pings its own pods through cni0; the first node also pings one pod on
    /// every other node, across the overlay.
    private func checkReachability() throws(RuntimeError) {
        var failures: [String] = []
        for node in nodes {
            var targets = pods.filter { $0.node == node.spec.name }.compactMap(\.ip)
            if node === nodes.first {
                for other in nodes.dropFirst() {
                    if let ip = pods.first(where: { $0.node == other.spec.name })?.ip { targets.append(ip) }
                }
            }
            let missing = try Reachability.unreachable(from: node.netns, targets: targets)
            failures += missing.map { "\($0) from \(node.spec.name)" }
        }
        if !failures.isEmpty {
            throw .state("pods did not answer ping: \(failures.prefix(5).joined(separator: ", "))\(failures.count > 5 ? " and \(failures.count - 5) more" : "")")
        }
    }

    /// The state as recorded in the state file. `verify`: a running pod whose sandbox
    /// process is gone shows Failed (two /proc reads a pod; the API's syncs, which run
    /// after every change, skip it and rely on the reaper and the adoption monitor).
    /// The stdin (and terminal) of a running container started with stdin or tty.
    public func console(pod key: String, container: String) -> ContainerConsole? {
        lock.lock()
        defer { lock.unlock() }
        return consoles["\(key)/\(container)"]
    }

    public func state(verify: Bool = true) -> ClusterState {
        lock.lock(); defer { lock.unlock() }
        return ClusterState(
            name: _spec.name, spec: _spec, specFile: specFile, supervisorPID: getpid(),
            supervisorStartTime: Sandbox.startTime(getpid()), createdAt: createdAt,
            nodes: nodes.map {
                NodeState(name: $0.spec.name, role: $0.spec.role, index: $0.spec.index, netns: $0.netns.name,
                          internalIP: $0.spec.internalIP, podCIDR: $0.spec.podCIDR, labels: $0.spec.labels,
                          createdAt: $0.createdAt)
            },
            pods: pods.map { p in
                var p = p
                if verify && p.phase == .running && !Sandbox.isAlive(p.pid, startTime: p.startTime) {
                    p.phase = .failed
                    p.message = "the pod's sandbox (pause, pid \(p.pid)) is gone"
                }
                return p
            },
            services: serviceStates(),
            proxy: proxy?.statuses ?? [],
            savedAt: Date(),
            apiServer: _apiServer,
            apiRevision: _apiRevision,
            events: controllerEvents,
            apiObjects: _apiObjects)
    }

    /// Makes the running pods match `desired` (same cluster, new pods/deployments):
    /// pods that are gone or changed are deleted, new and changed ones are created.
    /// Returns what changed, one line per pod ("pod/web created"...).
    public func reconcile(_ desired: ClusterSpec) -> [String] {
        let current = spec
        var report: [String] = []
        var toDelete: [String] = []
        var toAdd: [PodSpec] = []
        // By key: a cluster of thousands of pods compares in linear time.
        let wanted = Dictionary(desired.pods.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let had = Set(current.pods.map(\.key))
        for p in current.pods {
            if let d = wanted[p.key] {
                var a = p
                a.source = d.source
                // Ephemeral containers are added in place (addEphemeralContainers), never
                // by recreating the pod.
                a.ephemeralContainers = d.ephemeralContainers
                if a != d { toDelete.append(p.key); toAdd.append(d); report.append("pod/\(p.name) configured") }
            } else {
                toDelete.append(p.key)
                report.append("pod/\(p.name) deleted")
            }
        }
        for d in desired.pods where !had.contains(d.key) {
            toAdd.append(d)
            report.append("pod/\(d.name) created")
        }
        report += reconcileServices(desired, current: current)
        deletePods(toDelete)
        lock.lock()
        // A pod that stays keeps the ephemeral containers it has (a desired spec made
        // before one was added does not list it).
        let ephemeral = Dictionary(_spec.pods.filter { !$0.ephemeralContainers.isEmpty }.map { ($0.key, $0.ephemeralContainers) },
                                   uniquingKeysWith: { a, _ in a })
        let recreated = Set(toAdd.map(\.key))
        _spec.pods = desired.pods.map { d in
            var d = d
            if !recreated.contains(d.key), let e = ephemeral[d.key], e.count > d.ephemeralContainers.count { d.ephemeralContainers = e }
            return d
        }
        _spec.deployments = desired.deployments
        _spec.namespaces = desired.namespaces
        _spec.services = desired.services
        _spec.networkPolicies = desired.networkPolicies
        _spec.namespaceLabels = desired.namespaceLabels
        lock.unlock()
        proxyDirty()
        do { try addPods(toAdd) } catch { report.append("error: \(error)") }
        saveState()
        return report
    }

    /// Starts a graceful deletion: the pod shows Terminating and leaves its services'
    /// endpoints; its containers get SIGTERM now and SIGKILL when the grace period ends
    /// (kubelet's order: the containers first, the sandbox last). Returns when they are
    /// gone; the caller then removes the pod (deletePods). false: no such pod.
    public func terminate(_ key: String, grace: Int, marked: () -> Void = {}) -> Bool {
        lock.lock()
        guard let i = pods.firstIndex(where: { $0.key == key }) else { lock.unlock(); return false }
        if pods[i].deletionTimestamp == nil {
            pods[i].deletionTimestamp = Date()
            pods[i].deletionGracePeriodSeconds = grace
            pods[i].events.append(PodEvent(time: Date(), type: "Normal", reason: "Killing", message: "Stopping the pod's containers (grace period \(grace)s)"))
        }
        // No restart from now on: the back-off loop skips a terminating pod.
        let procs = pods[i].containers.filter { $0.pid > 0 }.map { ($0.pid, $0.startTime) }
        lock.unlock()
        proxyDirty()
        marked()
        for (pid, start) in procs where Sandbox.isAlive(pid, startTime: start) { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(Double(grace))
        while Date() < deadline && procs.contains(where: { Sandbox.isAlive($0.0, startTime: $0.1) }) { usleep(20_000) }
        for (pid, start) in procs where Sandbox.isAlive(pid, startTime: start) { kill(pid, SIGKILL) }
        return true
    }

    /// What the deployment controllers observe: the pods that are ready and those being
    /// deleted (cheaper than state(): no process checks, no services).
    public func podObservation() -> (ready: Set<String>, terminating: Set<String>) {
        lock.lock(); defer { lock.unlock() }
        var ready = Set<String>(), terminating = Set<String>()
        for p in pods {
            if p.deletionTimestamp != nil { terminating.insert(p.key) } else if p.isReady { ready.insert(p.key) }
        }
        return (ready, terminating)
    }

    /// Whether a pod is being deleted (its containers are not restarted).
    func isTerminating(_ key: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return pods.first { $0.key == key }?.deletionTimestamp != nil
    }

    /// Deletes pods: their containers and sandboxes (SIGTERM, then SIGKILL after a 1 s
    /// grace period, all pods at once), namespaces and veths, IPs back to the pool, files
    /// and logs.
    public func deletePods(_ keys: [String]) {
        lock.lock()
        var gone: [PodState] = []
        for key in keys {
            guard let i = pods.firstIndex(where: { $0.key == key }) else { continue }
            let pod = pods.remove(at: i)
            for c in pod.containers where c.pid > 0 { pidIndex.removeValue(forKey: c.pid); adopted.removeValue(forKey: c.pid) }
            pidIndex.removeValue(forKey: pod.pid)
            adopted.removeValue(forKey: pod.pid)
            for c in pod.containers { backoff.removeValue(forKey: "\(key)/\(c.name)") }
            gone.append(pod)
        }
        lock.unlock()
        let procs = gone.flatMap { pod in pod.containers.filter { $0.pid > 0 }.map { ($0.pid, $0.startTime) } + [(pod.pid, pod.startTime)] }
        for (pid, start) in procs where Sandbox.isAlive(pid, startTime: start) { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(1)
        while Date() < deadline && procs.contains(where: { Sandbox.isAlive($0.0, startTime: $0.1) }) { usleep(10_000) }
        for (pid, start) in procs where Sandbox.isAlive(pid, startTime: start) { kill(pid, SIGKILL) }
        if !gone.isEmpty { proxyDirty() }
        for pod in gone {
            release(pod)
            Cgroups.remove(cluster: _spec.name, pod: pod)
        }
    }

    private func release(_ pod: PodState) {
        let key = pod.key
        logs.detach(pod: key)
        lock.lock()
        for k in consoles.keys where k.hasPrefix(key + "/") { consoles.removeValue(forKey: k)?.close() }
        lock.unlock()
        // Unpinning the namespace (its processes are gone) frees it, and the kernel then
        // removes the veth pair in a batch with others; deleting each host end ourselves
        // costs 16-33 ms a pod, which a rollout of hundreds of pods waited on. Only when
        // the namespace cannot be removed is the host end deleted here.
        let unpinned = (try? NetNamespace.remove(pod.netns)) != nil
        if let node = nodes.first(where: { $0.spec.name == pod.node }) {
            if !unpinned && !pod.hostVeth.isEmpty { try? node.netns.netlink.linkDel(name: pod.hostVeth) }
            node.ipam.release(owner: key)
        }
        let fm = FileManager.default
        try? fm.removeItem(atPath: "\(Naming.clusterDir(_spec.name))/pods/\(pod.namespace)_\(pod.name)")
        try? fm.removeItem(atPath: "\(Naming.clusterDir(_spec.name))/logs/\(pod.namespace)_\(pod.name)")
    }

    /// Removes the whole cluster: processes, namespaces, state directory.
    public func down() {
        lock.lock()
        stopping = true
        stopServices()
        let known = pods.map { ($0.pid, $0.startTime) } + pods.flatMap { $0.containers.map { ($0.pid, $0.startTime) } }
        lock.unlock()
        nodes = []
        underlay = nil
        Teardown.destroy(cluster: spec.name, knownPIDs: known)
    }
}
