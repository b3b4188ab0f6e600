// The cluster's Kubernetes API, inside the supervisor: the object store kept in step with
// the runtime (a sync after every change the runtime reports, batched over 10 ms, and
// a slow sweep as a safety net), and the backend that turns API writes into runtime
// changes through the same spec rules as `minik up` and `minik apply`.
//
// In this step the runtime's spec stays the source of truth and the store is its view;
// writes are per object (create, replace, patch, delete, scale), so an unchanged
// object is `unchanged` and two clients do not overwrite each other's objects.
import Foundation
import MinikAPI
import MinikAPIServer
import MinikRuntime
import MinikSpec

public final class ClusterAPI: APIBackend, @unchecked Sendable {
    let runtime: ClusterRuntime
    public private(set) var store = ObjectStore()
    let host = HostInfo.read()
    /// One change of the cluster at a time (shared with the control socket's updates).
    let updates: NSLock
    let syncLock = NSLock()
    /// Pods whose graceful deletion is over, to leave the spec at the next pass.
    let stoppedLock = NSLock()
    var stopped: Set<String> = []
    /// The objects' JSON by what each was made from, reused while that is unchanged.
    let projections = ProjectionCache()
    let wake = NSCondition()
    var pending = false
    public private(set) var server: APIServer?
    /// The dashboard's listener (127.0.0.1), once started.
    var dashboard: DashboardServer?
    public private(set) var url = ""

    public init(runtime: ClusterRuntime, updates: NSLock) {
        self.runtime = runtime
        self.updates = updates
    }

    var files: PKIFiles { PKIFiles(dir: Naming.pkiDir(runtime.spec.name)) }
    /// Service account tokens: token -> namespace.
    let tokensLock = NSLock()
    var tokens: [String: String] = [:]

    /// Before the pods start: the cluster's certificates and every namespace's service
    /// account files, so that the first pods get their token too.
    public func prepare() throws(APIServerError) {
        let spec = runtime.spec
        let controlPlane = spec.nodes.first { $0.role == .controlPlane }
        var ips: [[UInt8]] = [[127, 0, 0, 1]]
        if let a = IPv4Address(spec.apiServerAddress), a.description != "127.0.0.1" { ips.append(a.octets) }
        if let cp = controlPlane { ips.append(cp.internalIP.octets) }
        ips.append(spec.serviceSubnet.address(1).octets)
        do {
            try PKI.ensure(files, serverIPs: ips, serverNames: [
                "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                "kubernetes.default.svc.\(spec.dns.clusterDomain)", "\(spec.name)-control-plane",
            ])
        } catch {
            throw APIServerError(description: error.description)
        }
        for ns in spec.namespaces { ensureServiceAccount(ns) }
    }

    /// The namespace's default service account: a token (32 random bytes from the
    /// system's generator), the CA, the namespace's name, in a root-only directory that
    /// its pods get read-only at /var/run/secrets/kubernetes.io/serviceaccount.
    public func ensureServiceAccount(_ namespace: String) {
        let cluster = runtime.spec.name
        let dir = ContainerRunner.serviceAccountDir(cluster, namespace: namespace)
        let fm = FileManager.default
        var token = (try? String(contentsOfFile: "\(dir)/token", encoding: .utf8)) ?? ""
        if token.isEmpty {
            var rng = SystemRandomNumberGenerator()
            let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            token = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let ca = (try? String(contentsOfFile: files.caCert, encoding: .utf8)) ?? ""
            fm.createFile(atPath: "\(dir)/ca.crt", contents: Data(ca.utf8), attributes: [.posixPermissions: 0o644])
            fm.createFile(atPath: "\(dir)/namespace", contents: Data(namespace.utf8), attributes: [.posixPermissions: 0o644])
            // The token last: its presence says the directory is complete.
            fm.createFile(atPath: "\(dir)/token.tmp", contents: Data(token.utf8), attributes: [.posixPermissions: 0o644])
            rename("\(dir)/token.tmp", "\(dir)/token")
        }
        tokensLock.lock()
        let known = tokens[token] != nil
        tokens[token] = namespace
        tokensLock.unlock()
        if !known { server?.addToken(token, user: "system:serviceaccount:\(namespace):default") }
        ensureRootCA(namespace)
    }

    /// Makes (or reuses) the cluster's certificates, listens (on loopback, and inside the
    /// control-plane node on its underlay address, port 6443, for the pods), writes the
    /// kubeconfig. `port`: the port of an adopted cluster's API, kept so kubeconfigs stay valid.
    public func start(port reuse: Int? = nil, revision: Int64? = nil) throws(APIServerError) {
        let spec = runtime.spec
        // A jump past what the old store may have handed out unsaved (it saved within a
        // second of its changes): resourceVersions only grow.
        if let revision { store = ObjectStore(after: revision + 100_000) }
        let files = self.files
        try prepare()
        let port = spec.apiServerPort != 0 ? spec.apiServerPort : (reuse ?? 0)
        refresh()
        let handler = APIHandler(store: store, backend: self, serverAddress: "\(spec.apiServerAddress):\(port)")
        let server = try APIServer(handler: handler, pki: files)
        let bound = try server.listen(host: spec.apiServerAddress, port: port)
        self.server = server
        tokensLock.lock()
        for (token, ns) in tokens { server.addToken(token, user: "system:serviceaccount:\(ns):default") }
        tokensLock.unlock()
        if let cp = spec.nodes.first(where: { $0.role == .controlPlane }), let node = runtime.nodes.first(where: { $0.spec.name == cp.name }) {
            try server.listen(fd: try listener(in: node.netns, cp.internalIP, APIService.port))
        }
        url = "https://\(spec.apiServerAddress):\(bound)"
        runtime.apiServer = url
        runtime.onChange = { [weak self] in self?.changed() }
        startLoop()
        resumePurges()
        do {
            let text = Kubeconfig.render(cluster: spec.name, server: url,
                                         caPEM: try String(contentsOfFile: files.caCert, encoding: .utf8),
                                         certPEM: try String(contentsOfFile: files.adminCert, encoding: .utf8),
                                         keyPEM: try String(contentsOfFile: files.adminKey, encoding: .utf8))
            let path = Naming.kubeconfigFile(spec.name)
            guard FileManager.default.createFile(atPath: path + ".tmp", contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]),
                  rename(path + ".tmp", path) == 0 else { throw APIServerError(description: "cannot write \(path)") }
        } catch let e as APIServerError {
            throw e
        } catch {
            throw APIServerError(description: "cannot write the cluster's kubeconfig: \(error)")
        }
        try? runtime.state().save()
    }

    /// A TCP socket bound inside a node's namespace, for the API's in-cluster address.
    func listener(in netns: NetNamespace, _ ip: IPv4Address, _ port: Int) throws(APIServerError) -> Int32 {
        let fd: Int32
        do { fd = try netns.socket(domain: AF_INET, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), protocol: 0) } catch {
            throw APIServerError(description: "\(error)")
        }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = ip.socketAddress(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw APIServerError(description: "cannot listen on \(ip):\(port) in \(netns.name): \(String(cString: strerror(e)))")
        }
        return fd
    }

    func changed() {
        wake.lock()
        pending = true
        wake.signal()
        wake.unlock()
    }

    func startLoop() {
        let t = Thread { [self] in
            var last = Date.distantPast
            while true {
                wake.lock()
                if !pending { _ = wake.wait(until: Date().addingTimeInterval(2)) }
                pending = false
                wake.unlock()
                // Batch what happens together (a pod's containers starting, a scale), and
                // sync at most every 50 ms (kube-proxy's BoundedFrequencyRunner idea): a
                // burst of changes must not keep the runtime's lock and a core busy.
                let wait = max(0.01, 0.05 - Date().timeIntervalSince(last))
                usleep(UInt32(wait * 1_000_000))
                last = Date()
                controllers()
                refresh()
            }
        }
        t.name = "minik-api-sync"
        t.start()
    }

    // MARK: APIBackend

    public func refresh() { sync(ObjectsView.resources) }

    public func refresh(after resource: String) { sync(ObjectsView.affected(by: resource)) }

    func sync(_ resources: [String]) {
        syncLock.lock()
        defer { syncLock.unlock() }
        let view = ObjectsView(state: runtime.state(verify: false), host: host, cache: projections)
        for r in resources { store.sync(resource: r, view.objects(r)) }
        runtime.apiRevision = store.currentRevision
    }

    public func logFile(namespace: String, pod: String, container: String?, previous: Bool) throws(APIError) -> LogPlan {
        let state = runtime.state()
        guard let p = state.pod(pod, namespace: namespace) else { throw APIError.notFound("pods", pod) }
        let c = try self.container(container, in: p)
        if previous && c.restartCount == 0 {
            throw APIError.badRequest("previous terminated container \"\(c.name)\" in pod \"\(pod)\" not found")
        }
        let path = ContainerRunner.logPath(state.name, pod: p, container: c, previous: previous)
        let run = c.restartCount
        let start = c.startTime
        let key = p.key, name = c.name
        let finished: @Sendable () -> Bool = { [runtime] in
            guard !previous, let now = runtime.state().pods.first(where: { $0.key == key }),
                  let cur = now.containers.first(where: { $0.name == name }) else { return true }
            return cur.restartCount != run || cur.startTime != start || cur.state != .running
        }
        return LogPlan(path: path, namespace: namespace, pod: pod, container: c.name, finished: finished)
    }

    /// A spec problem as a 422 Invalid naming each field.
    func invalid(_ error: SpecError, kind: String, name: String) -> APIError {
        let causes = error.problems.map { p in (field: p.location?.field ?? "", message: p.message) }
        let text = causes.map { $0.field.isEmpty ? $0.message : "\($0.field): \($0.message)" }.joined(separator: ", ")
        return APIError(422, "Invalid", kind.isEmpty ? text : "\(kind) \"\(name)\" is invalid: \(text)",
                        details: ["name": .string(name), "kind": .string(kind),
                                  "causes": .array(causes.map { ["reason": "FieldValueInvalid", "message": .string($0.message), "field": .string($0.field)] })])
    }

    /// Applies a change of the spec, then a pass of the controllers over it; a spec
    /// problem is a 422 Invalid naming each field.
    func change(kind: String = "", name: String = "", locked: Bool = false, _ body: (ClusterSpec) throws(SpecError) -> ClusterSpec) throws(APIError) {
        if !locked { updates.lock() }
        defer { if !locked { updates.unlock() } }
        var desired: ClusterSpec
        let current = runtime.spec
        do { desired = try body(current) } catch { throw invalid(error, kind: kind, name: name) }
        // The images of what this change adds or changes (the rest was checked before).
        var delta = desired
        let pods = Dictionary(current.pods.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let templates = Dictionary(current.deployments.map { ($0.key, $0.template) }, uniquingKeysWith: { a, _ in a })
        delta.pods.removeAll { pods[$0.key] == $0 }
        delta.deployments.removeAll { templates[$0.key] == $0.template }
        let problems = ImageStore.located().problems(in: delta)
        if !problems.isEmpty { throw APIError(422, "Invalid", SpecError(problems).description) }
        let pass = rollOut(desired)
        desired = pass.spec
        let report = runtime.reconcile(desired)
        if let e = report.first(where: { $0.hasPrefix("error:") }) { throw APIError(500, "InternalError", e) }
        finish(pass)
    }

    /// The deployment and replica set controllers' pass over `spec`, with what the
    /// runtime observes of the pods (Rollout.swift).
    func rollOut(_ spec: ClusterSpec) -> RolloutPass {
        let (ready, terminating) = runtime.podObservation()
        let seen = RolloutObservation(ready: ready, terminating: terminating)
        var rng = SystemRandomNumberGenerator()
        return spec.rolledOut(seen, random: &rng)
    }

    /// A pass's events recorded and its deletions started (graceful, as kubectl delete).
    func finish(_ pass: RolloutPass) {
        runtime.record(pass.events)
        for key in pass.delete {
            let spec = runtime.spec
            if let p = spec.pods.first(where: { $0.key == key }) { terminate(p, grace: p.terminationGracePeriodSeconds) }
        }
    }

    /// The controllers between writes: a pass whenever pods changed (a pod turned ready,
    /// went away), so a rollout goes on by itself.
    func controllers() {
        updates.lock()
        defer { updates.unlock() }
        var spec = runtime.spec
        // Pods whose graceful deletion is over leave the spec, all in one change.
        stoppedLock.lock()
        let gone = stopped
        stopped = []
        stoppedLock.unlock()
        if !gone.isEmpty { spec.pods.removeAll { gone.contains($0.key) } }
        guard !spec.deployments.isEmpty || !gone.isEmpty else { return }
        let pass = rollOut(spec)
        if pass.changed || !gone.isEmpty { _ = runtime.reconcile(pass.spec) }
        finish(pass)
    }

    /// Deletes a pod gracefully: Terminating at once (it leaves its endpoints), SIGTERM,
    /// SIGKILL after `grace` seconds, then gone from the spec; a Deployment's
    /// ReplicaSet makes a new pod meanwhile (the pass counts no terminating pod).
    /// Returns once the pod shows Terminating.
    func terminate(_ p: PodSpec, grace: Int) {
        let started = DispatchSemaphore(value: 0)
        Thread.detachNewThread { [self] in
            let found = runtime.terminate(p.key, grace: grace) { started.signal() }
            if !found { started.signal() }
            // Gone from the spec at the controllers' next pass, with every other pod
            // stopped meanwhile (a rollout stops hundreds: one change, not one each).
            stoppedLock.lock()
            stopped.insert(p.key)
            stoppedLock.unlock()
            changed()
        }
        started.wait()
    }

    public func delete(_ key: ObjectKey, gracePeriodSeconds: Int?, orphan: Bool) throws(APIError) {
        let spec = runtime.spec
        switch key.resource {
        case "pods":
            guard let p = spec.pods.first(where: { $0.key == "\(key.namespace)/\(key.name)" }) else { throw APIError.notFound("pods", key.name) }
            let grace = gracePeriodSeconds ?? p.terminationGracePeriodSeconds
            if runtime.state().pod(key.name, namespace: key.namespace)?.deletionTimestamp != nil { return }
            terminate(p, grace: grace)
            // A Deployment's pod is replaced by its ReplicaSet now, not once it is gone.
            if p.owner != nil { changed() }
        case "deployments":
            // The garbage collector's part: the Deployment goes now (its ReplicaSets with
            // it); its pods are deleted gracefully, as any pod, or with Orphan stay, without
            // an owner.
            guard let d = spec.deployments.first(where: { $0.name == key.name && $0.namespace == key.namespace }) else {
                throw APIError.notFound("deployments", key.name, group: "apps")
            }
            // Its pods as the change sees them (a pass may have made one meanwhile).
            var pods: [PodSpec] = []
            try change { s throws(SpecError) in
                var out = s
                out.deployments.removeAll { $0.key == d.key }
                pods = s.pods.filter { $0.owner == d.owner && $0.namespace == d.namespace }
                return out
            }
            if orphan {
                runtime.disown(Set(pods.map(\.key)))
            } else {
                for p in pods { terminate(p, grace: gracePeriodSeconds ?? p.terminationGracePeriodSeconds) }
            }
        case "configmaps":
            updates.lock()
            defer { updates.unlock() }
            try deleteConfigMap(key.namespace, key.name)
        case "services":
            if "\(key.namespace)/\(key.name)" == APIService.key {
                throw APIError(405, "MethodNotAllowed", "service \(APIService.key) is the API's own: minik keeps it")
            }
            try change { s throws(SpecError) in try s.removing(service: key.name, namespace: key.namespace) }
        case "networkpolicies":
            try change { s throws(SpecError) in try s.removing(networkPolicy: key.name, namespace: key.namespace) }
        case "namespaces":
            if ["default", "kube-system", "kube-public", "kube-node-lease"].contains(key.name) {
                throw APIError(403, "Forbidden", "namespaces \"\(key.name)\" is forbidden: this namespace may not be deleted")
            }
            // As the namespace controller: Terminating now, its content deleted after, then
            // the namespace itself; meanwhile its objects can still be deleted one by one
            // (`kubectl delete -f` of a file that starts with its Namespace) and nothing new
            // can be made in it.
            guard spec.namespaces.contains(key.name) else { throw APIError.notFound("namespaces", key.name) }
            var alreadyDeleting = false
            runtime.updateAPIObjects { objects in
                var meta = objects["namespaces//\(key.name)"].flatMap { try? JSON.parse($0) } ?? [:]
                alreadyDeleting = meta["deletionTimestamp"] != nil
                if !alreadyDeleting { meta["deletionTimestamp"] = .string(rfc3339(Date())) }
                objects["namespaces//\(key.name)"] = meta.text
            }
            if !alreadyDeleting { Thread.detachNewThread { [self] in purge(namespace: key.name) } }
        default:
            throw APIError.methodNotAllowed("the server does not allow this method on the requested resource")
        }
    }

    /// A deleted namespace's content, after a moment: its Deployments, Services and
    /// ConfigMaps, its pods gracefully; once the pods are gone, the namespace.
    /// Runs again until nothing is left, so a write that raced the deletion is purged too.
    func purge(namespace ns: String) {
        usleep(1_000_000)
        var stopping = Set<String>()
        while true {
            updates.lock()
            try? change(locked: true) { s throws(SpecError) in
                var out = s
                out.deployments.removeAll { $0.namespace == ns }
                out.services.removeAll { $0.namespace == ns }
                out.networkPolicies.removeAll { $0.namespace == ns }
                return out
            }
            let pods = runtime.spec.pods.filter { $0.namespace == ns }
            updates.unlock()
            dropConfigMaps(in: ns)
            if pods.isEmpty { break }
            for p in pods where stopping.insert(p.key).inserted { terminate(p, grace: p.terminationGracePeriodSeconds) }
            usleep(100_000)
        }
        updates.lock()
        try? change(locked: true) { s throws(SpecError) in
            var out = s
            out.namespaces.removeAll { $0 == ns }
            out.namespaceLabels[ns] = nil
            return out
        }
        updates.unlock()
        dropConfigMaps(in: ns)
        runtime.updateAPIObjects { $0["namespaces//\(ns)"] = nil }
        changed()
    }

    /// Namespaces whose deletion a supervisor before this one started: finished now.
    func resumePurges() {
        for (key, text) in runtime.apiObjects where key.hasPrefix("namespaces//") {
            guard (try? JSON.parse(text))?["deletionTimestamp"] != nil else { continue }
            let ns = String(key.dropFirst("namespaces//".count))
            Thread.detachNewThread { [self] in purge(namespace: ns) }
        }
    }

    /// Whether a namespace is being deleted (nothing new may be made in it).
    func isTerminating(namespace ns: String) -> Bool {
        runtime.apiObjects["namespaces//\(ns)"].flatMap { try? JSON.parse($0) }?["deletionTimestamp"] != nil
    }

    /// Keeps what the Namespace object says besides its name (labels, annotations; kubectl
    /// apply's last-applied-configuration among them).
    func recordNamespace(_ object: JSON) {
        guard let name = object["metadata"]?["name"]?.string else { return }
        runtime.updateAPIObjects { objects in
            var meta = objects["namespaces//\(name)"].flatMap { try? JSON.parse($0) } ?? ["created": .string(rfc3339(Date()))]
            var labels = object["metadata"]?["labels"] ?? [:]
            labels["kubernetes.io/metadata.name"] = nil
            meta["labels"] = labels
            meta["annotations"] = object["metadata"]?["annotations"] ?? [:]
            objects["namespaces//\(name)"] = meta.text
        }
    }

    public func scale(namespace: String, name: String, replicas: Int) throws(APIError) {
        guard runtime.spec.deployments.contains(where: { $0.namespace == namespace && $0.name == name }) else {
            throw APIError.notFound("deployments", name, group: "apps")
        }
        try change { s throws(SpecError) in try s.scaled(deployment: name, namespace: namespace, replicas: replicas) }
    }

    public func write(_ object: JSON, resource: APIResource, create: Bool, strict: Bool) throws(APIError) -> [String] {
        if resource.resource == "configmaps" {
            let ns = object["metadata"]?["namespace"]?.string ?? "default"
            if create && isTerminating(namespace: ns) {
                throw APIError(403, "Forbidden", "configmaps \"\(object["metadata"]?["name"]?.string ?? "")\" is forbidden: unable to create new content in namespace \(ns) because it is being terminated")
            }
            updates.lock()
            defer { updates.unlock() }
            return try writeConfigMap(object, create: create, strict: strict)
        }
        guard ["pods", "deployments", "services", "namespaces", "networkpolicies"].contains(resource.resource) else {
            throw APIError.methodNotAllowed("minik does not run \(resource.resource) yet")
        }
        let name = object["metadata"]?["name"]?.string ?? ""
        let ns = object["metadata"]?["namespace"]?.string ?? "default"
        let base = runtime.spec
        var object = object
        if resource.resource == "services", !create, let old = base.services.first(where: { $0.key == "\(ns)/\(name)" }) {
            object = Self.dropTypeDependentFields(object, old: old)
        }
        let input = WriteForm.input(object, resource: resource.resource)
        let file = "\(resource.kind.lowercased())/\(name)"
        if resource.resource == "pods", !create, let cur = base.pods.first(where: { $0.key == "\(ns)/\(name)" }) {
            // The apiserver's rules for a running pod, on the pod as minik reads it: labels
            // and annotations change in place (the pod keeps running); of its spec only the
            // containers' images may change.
            let probe: ClusterSpec
            do { probe = try SpecLoader.apply(input.text, file: file, to: base, strict: strict) } catch { throw invalid(error, kind: resource.kind, name: name) }
            guard var b = probe.pods.first(where: { $0.key == cur.key }) else { throw APIError.notFound("pods", name) }
            let a = cur
            b.source = a.source
            // Where each container was written is not part of it.
            for i in b.containers.indices where i < a.containers.count { b.containers[i].source = a.containers[i].source }
            for i in b.initContainers.indices where i < a.initContainers.count { b.initContainers[i].source = a.initContainers[i].source }
            b.owner = a.owner
            if a.requestedNodeName == nil && b.requestedNodeName == a.nodeName { b.requestedNodeName = nil; b.nodeName = a.nodeName }
            var labels = b.labels
            let annotations = b.annotations.filter { $0.key != "minik.dev/netns" }
            b.labels = a.labels
            b.annotations = a.annotations
            if a == b {
                for (k, v) in labels {
                    if let why = Names.qualifiedNameProblem(k) {
                        throw APIError(422, "Invalid", "Pod \"\(name)\" is invalid: metadata.labels: Invalid value: \"\(k)\": \(why)")
                    }
                    if !Names.isLabelValue(Substring(v)) {
                        throw APIError(422, "Invalid", "Pod \"\(name)\" is invalid: metadata.labels: Invalid value: \"\(v)\": a label value must be empty or at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit")
                    }
                }
                updates.lock()
                _ = runtime.relabel(pod: cur.key, labels: labels, annotations: annotations)
                updates.unlock()
                return []
            }
            var x = a, y = b
            for i in x.containers.indices { x.containers[i].image = "" }
            for i in y.containers.indices { y.containers[i].image = "" }
            for i in x.initContainers.indices { x.initContainers[i].image = "" }
            for i in y.initContainers.indices { y.initContainers[i].image = "" }
            if x.containers.count != y.containers.count || x != y {
                // Which fields differ, as the apiserver shows a diff of the spec.
                let changed = zip(Mirror(reflecting: x).children, Mirror(reflecting: y).children)
                    .filter { "\($0.0.value)" != "\($0.1.value)" }.compactMap(\.0.label)
                throw APIError(422, "Invalid", "Pod \"\(name)\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative) (changed: \(changed.joined(separator: ", ")))",
                               details: ["name": .string(name), "group": "", "kind": "Pod",
                                         "causes": [["reason": "FieldValueForbidden", "message": "Forbidden: pod updates may not change fields other than `spec.containers[*].image`", "field": "spec"]]])
            }
            if cur.owner != nil {
                throw APIError(422, "Invalid", "Pod \"\(name)\" is invalid: spec.containers[*].image: Forbidden: the image of a Deployment's pod changes through its Deployment in minik")
            }
        }
        var warnings: [String] = []
        if create && resource.resource != "namespaces" && isTerminating(namespace: ns) {
            throw APIError(403, "Forbidden", "\(resource.resource) \"\(name)\" is forbidden: unable to create new content in namespace \(ns) because it is being terminated")
        }
        if resource.resource == "namespaces" && isTerminating(namespace: name) {
            throw APIError(409, "Conflict", "namespace \(name) is being terminated: wait until it is gone")
        }
        ensureServiceAccount(ns)
        if resource.resource == "namespaces" { ensureServiceAccount(name) }
        try change(kind: resource.kind, name: name) { (s: ClusterSpec) throws(SpecError) -> ClusterSpec in
            var out = try SpecLoader.apply(input.text, file: file, to: s, strict: strict)
            // A pod read back names the node it runs on; that is not a request to pin it.
            let before = Dictionary(s.pods.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            for i in out.pods.indices where out.pods[i].requestedNodeName != nil {
                guard let old = before[out.pods[i].key], old.requestedNodeName == nil,
                      out.pods[i].requestedNodeName == old.nodeName else { continue }
                out.pods[i].requestedNodeName = nil
                out.pods[i].nodeName = old.nodeName
            }
            warnings = out.warnings.map { w in
                // "file:1:234: spec.x: ignored: ..." -> "spec.x: ignored: ..." (the position is in the request).
                let text = w.hasPrefix(file + ":") ? String(w.split(separator: ":", maxSplits: 3).last ?? Substring(w)).trimmingCharacters(in: .whitespaces) : w
                // An unknown field is said as the apiserver says it: unknown field "spec.x".
                if let r = text.range(of: ": unknown field \"") { return String(text[text.index(after: r.lowerBound)...]).trimmingCharacters(in: .whitespaces) }
                return text
            }
            out.warnings = []
            return out
        }
        if resource.resource == "namespaces" { recordNamespace(object) }
        return warnings
    }
}

extension ClusterAPI {
    /// The apiserver's dropTypeDependentFields: a Service changed to a type without node
    /// ports loses the node ports and the externalTrafficPolicy it had, unless the same
    /// request changed them (then they are checked, and refused, as written).
    static func dropTypeDependentFields(_ object: JSON, old: ServiceSpec) -> JSON {
        guard var spec = object["spec"] else { return object }
        let type = spec["type"]?.string ?? "ClusterIP"
        let externalIPs = spec["externalIPs"]?.array ?? []
        guard type != "NodePort" && type != "LoadBalancer" else { return object }
        var o = object
        if old.hasNodePorts, let ports = spec["ports"]?.array {
            spec["ports"] = .array(ports.enumerated().map { i, p in
                var p = p
                let before = old.ports.first { $0.name == (p["name"]?.string ?? "") } ?? (i < old.ports.count ? old.ports[i] : nil)
                if let n = p["nodePort"]?.int, let was = before?.nodePort, Int(n) == was { p["nodePort"] = nil }
                return p
            })
        }
        if externalIPs.isEmpty, let policy = spec["externalTrafficPolicy"]?.string,
           policy == (old.externalTrafficPolicy ?? (old.isExternallyAccessible ? .cluster : nil))?.rawValue {
            spec["externalTrafficPolicy"] = nil
        }
        o["spec"] = spec
        return o
    }
}
