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
    public let store = ObjectStore()
    let host = HostInfo.read()
    /// One change of the cluster at a time (shared with the control socket's updates).
    let updates: NSLock
    let syncLock = NSLock()
    let wake = NSCondition()
    var pending = false
    public private(set) var server: APIServer?
    public private(set) var url = ""

    public init(runtime: ClusterRuntime, updates: NSLock) {
        self.runtime = runtime
        self.updates = updates
    }

    /// Makes (or reuses) the cluster's certificates, listens, writes the kubeconfig.
    /// `port`: the port of an adopted cluster's API, kept so kubeconfigs stay valid.
    public func start(port reuse: Int? = nil) throws(APIServerError) {
        let spec = runtime.spec
        let files = PKIFiles(dir: Naming.pkiDir(spec.name))
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
        let port = spec.apiServerPort != 0 ? spec.apiServerPort : (reuse ?? 0)
        refresh()
        let handler = APIHandler(store: store, backend: self, serverAddress: "\(spec.apiServerAddress):\(port)")
        let server = try APIServer(handler: handler, pki: files)
        let bound = try server.listen(host: spec.apiServerAddress, port: port)
        self.server = server
        url = "https://\(spec.apiServerAddress):\(bound)"
        runtime.apiServer = url
        runtime.onChange = { [weak self] in self?.changed() }
        startLoop()
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

    func changed() {
        wake.lock()
        pending = true
        wake.signal()
        wake.unlock()
    }

    func startLoop() {
        let t = Thread { [self] in
            while true {
                wake.lock()
                if !pending { _ = wake.wait(until: Date().addingTimeInterval(2)) }
                pending = false
                wake.unlock()
                // Batch what happens together (a pod's containers starting, a scale).
                usleep(10_000)
                refresh()
            }
        }
        t.name = "minik-api-sync"
        t.start()
    }

    // MARK: APIBackend

    public func refresh() {
        syncLock.lock()
        defer { syncLock.unlock() }
        let view = ObjectsView(state: runtime.state(), host: host)
        for (resource, objects) in view.all() { store.sync(resource: resource, objects) }
    }

    public func logFile(namespace: String, pod: String, container: String?, previous: Bool) throws(APIError) -> LogPlan {
        let state = runtime.state()
        guard let p = state.pod(pod, namespace: namespace) else { throw APIError.notFound("pods", pod) }
        let cs = p.containers
        let c: ContainerStatus
        if let container {
            guard let found = cs.first(where: { $0.name == container }) else {
                throw APIError.badRequest("container \(container) is not valid for pod \(pod)")
            }
            c = found
        } else {
            let app = p.appContainers
            guard app.count == 1 || !app.isEmpty else { throw APIError.badRequest("pod \(pod) has no containers") }
            if app.count > 1 {
                throw APIError.badRequest("a container name must be specified for pod \(pod), choose one of: [\(app.map(\.name).joined(separator: " "))]")
            }
            c = app[0]
        }
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

    /// Applies a change of the spec; a spec problem is a 422 Invalid naming each field.
    func change(kind: String = "", name: String = "", _ body: (ClusterSpec) throws(SpecError) -> ClusterSpec) throws(APIError) {
        updates.lock()
        defer { updates.unlock() }
        let desired: ClusterSpec
        do { desired = try body(runtime.spec) } catch {
            let causes = error.problems.map { p in (field: p.location?.field ?? "", message: p.message) }
            let text = causes.map { $0.field.isEmpty ? $0.message : "\($0.field): \($0.message)" }.joined(separator: ", ")
            throw APIError(422, "Invalid", kind.isEmpty ? text : "\(kind) \"\(name)\" is invalid: \(text)",
                           details: ["name": .string(name), "kind": .string(kind),
                                     "causes": .array(causes.map { ["reason": "FieldValueInvalid", "message": .string($0.message), "field": .string($0.field)] })])
        }
        let problems = ImageStore.located().problems(in: desired)
        if !problems.isEmpty { throw APIError(422, "Invalid", SpecError(problems).description) }
        let report = runtime.reconcile(desired)
        if let e = report.first(where: { $0.hasPrefix("error:") }) { throw APIError(500, "InternalError", e) }
    }

    public func delete(_ key: ObjectKey) throws(APIError) {
        let spec = runtime.spec
        switch key.resource {
        case "pods":
            guard let p = spec.pods.first(where: { $0.key == "\(key.namespace)/\(key.name)" }) else { throw APIError.notFound("pods", key.name) }
            if p.owner != nil {
                // Its Deployment makes it again, as a ReplicaSet would.
                updates.lock()
                defer { updates.unlock() }
                runtime.deletePods([p.key])
                do { try runtime.addPods([p]) } catch { throw APIError(500, "InternalError", "\(error)") }
                return
            }
            try change { s throws(SpecError) in try s.removing(pod: key.name, namespace: key.namespace) }
        case "deployments":
            try change { s throws(SpecError) in try s.removing(deployment: key.name, namespace: key.namespace) }
        case "services":
            try change { s throws(SpecError) in try s.removing(service: key.name, namespace: key.namespace) }
        case "namespaces":
            if ["default", "kube-system", "kube-public", "kube-node-lease"].contains(key.name) {
                throw APIError(403, "Forbidden", "namespaces \"\(key.name)\" is forbidden: this namespace may not be deleted")
            }
            try change { s throws(SpecError) in
                var out = s
                out.pods.removeAll { $0.namespace == key.name }
                out.deployments.removeAll { $0.namespace == key.name }
                out.services.removeAll { $0.namespace == key.name }
                out.namespaces.removeAll { $0 == key.name }
                return out
            }
        default:
            throw APIError.methodNotAllowed("the server does not allow this method on the requested resource")
        }
    }

    public func scale(namespace: String, name: String, replicas: Int) throws(APIError) {
        guard runtime.spec.deployments.contains(where: { $0.namespace == namespace && $0.name == name }) else {
            throw APIError.notFound("deployments", name, group: "apps")
        }
        try change { s throws(SpecError) in try s.scaled(deployment: name, namespace: namespace, replicas: replicas) }
    }

    public func write(_ object: JSON, resource: APIResource, create: Bool, strict: Bool) throws(APIError) -> [String] {
        guard ["pods", "deployments", "services", "namespaces"].contains(resource.resource) else {
            throw APIError.methodNotAllowed("minik does not run \(resource.resource) yet")
        }
        let name = object["metadata"]?["name"]?.string ?? ""
        let ns = object["metadata"]?["namespace"]?.string ?? "default"
        let input = WriteForm.input(object, resource: resource.resource)
        let base = runtime.spec
        // A pod whose spec is unchanged (a label, an annotation): changed in place.
        if resource.resource == "pods", !create, let cur = base.pods.first(where: { $0.key == "\(ns)/\(name)" }),
           let current = store.get(ObjectKey("pods", ns, name)),
           WriteForm.input(current, resource: "pods")["spec"] == input["spec"] {
            var labels = input["metadata"]?["labels"]?.stringMap ?? [:]
            if cur.owner != nil { labels["pod-template-hash"] = nil }
            let annotations = (input["metadata"]?["annotations"]?.stringMap ?? [:]).filter { $0.key != "minik.dev/netns" }
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
        if resource.resource == "pods", !create, base.pods.first(where: { $0.key == "\(ns)/\(name)" })?.owner != nil {
            throw APIError(422, "Invalid", "Pod \"\(name)\" is invalid: pods of a Deployment change through their Deployment in minik (labels and annotations may change)")
        }
        var warnings: [String] = []
        let file = "\(resource.kind.lowercased())/\(name)"
        try change(kind: resource.kind, name: name) { (s: ClusterSpec) throws(SpecError) -> ClusterSpec in
            var out = try SpecLoader.apply(input.text, file: file, to: s)
            // A pod read back names the node it runs on; that is not a request to pin it.
            for i in out.pods.indices {
                guard let old = s.pods.first(where: { $0.key == out.pods[i].key }), old.requestedNodeName == nil,
                      out.pods[i].requestedNodeName == old.nodeName else { continue }
                out.pods[i].requestedNodeName = nil
                out.pods[i].nodeName = old.nodeName
            }
            warnings = out.warnings.map { w in
                // "file:1:234: spec.x: ignored: ..." -> "spec.x: ignored: ..." (the position is in the request).
                w.hasPrefix(file + ":") ? String(w.split(separator: ":", maxSplits: 3).last ?? Substring(w)).trimmingCharacters(in: .whitespaces) : w
            }
            out.warnings = []
            return out
        }
        return warnings
    }
}
