// The cluster as Kubernetes API objects: namespaces, nodes, pods, services, endpoints,
// endpoint slices, deployments, replica sets and events, made from what the runtime
// records (ClusterState). Every field that Go does not omit when empty is present and
// typed, as strict clients (the Python client's models) require.
//
// uids are derived from the object's identity (cluster, resource, namespace, name and
// creation time), so they stay the same when a new supervisor adopts the cluster.
import Foundation
import MinikRuntime
import MinikSpec

/// The host facts a Node reports (nodeInfo, capacity): read once by the server.
public struct HostInfo: Sendable {
    public var kernelVersion: String
    public var osImage: String
    public var bootID: String
    public var machineID: String
    public var cpus: Int
    public var memoryKi: Int64
    public var architecture: String

    public init(kernelVersion: String, osImage: String, bootID: String, machineID: String, cpus: Int, memoryKi: Int64, architecture: String = "amd64") {
        self.kernelVersion = kernelVersion
        self.osImage = osImage
        self.bootID = bootID
        self.machineID = machineID
        self.cpus = cpus
        self.memoryKi = memoryKi
        self.architecture = architecture
    }

    /// This machine's.
    public static func read() -> HostInfo {
        func file(_ p: String) -> String {
            (try? String(contentsOfFile: p, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        }
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        var os = "Linux"
        for line in file("/etc/os-release").split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            os = String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        var mem: Int64 = 0
        for line in file("/proc/meminfo").split(separator: "\n") where line.hasPrefix("MemTotal:") {
            mem = Int64(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return HostInfo(kernelVersion: release, osImage: os, bootID: file("/proc/sys/kernel/random/boot_id"),
                        machineID: file("/etc/machine-id"), cpus: ProcessInfo.processInfo.activeProcessorCount, memoryKi: mem,
                        architecture: machine == "aarch64" ? "arm64" : machine == "x86_64" ? "amd64" : machine)
    }
}

public enum APIVersionInfo {
    /// The Kubernetes API version served (kubectl 1.32 is what minik is tested with).
    public static let major = "1"
    public static let minor = "32"
    public static let gitVersion = "v1.32.0-minik"
    public static let minik = "0.11.0"
    public static let runtime = "minik://\(minik)"
}

/// RFC 3339 in seconds, as metav1.Time marshals ("2026-11-29T10:14:18Z").
public func rfc3339(_ date: Date) -> String {
    // Years 0001 to 9999, as Go's metav1.Time can marshal them.
    let clamped = min(max(date.timeIntervalSince1970, -62_135_596_800), 253_402_300_799)
    var secs = time_t(clamped.rounded(.down))
    var t = tm()
    gmtime_r(&secs, &t)
    func p(_ v: Int32, _ n: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, n - s.count)) + s
    }
    return "\(p(t.tm_year + 1900, 4))-\(p(t.tm_mon + 1, 2))-\(p(t.tm_mday, 2))T\(p(t.tm_hour, 2)):\(p(t.tm_min, 2)):\(p(t.tm_sec, 2))Z"
}

/// Parses RFC 3339 ("...Z" with an optional fraction).
public func parseRFC3339(_ s: String) -> Date? { ClusterState.parseISO(s) }

/// Projections made before, by what they were made from: an object whose inputs did not
/// change is the same JSON value (the same storage, so the store compares it at once).
/// Shared by the views of one cluster's syncs.
public final class ProjectionCache: @unchecked Sendable {
    struct PodInputs: Equatable {
        var state: PodState
        var spec: PodSpec?
        var owners: [JSON]
        var hostIP: String?
    }
    struct EventInputs: Equatable {
        var events: [PodEvent]
        var node: String
        var createdAt: Date
    }
    struct ServiceInputs: Equatable {
        var state: ServiceState
        var podsCreated: [Date?]
    }
    let lock = NSLock()
    var pods: [String: (PodInputs, JSON)] = [:]
    var events: [String: (EventInputs, [JSON])] = [:]
    /// "services|ns/name", "endpoints|...", "endpointslices|..."
    var services: [String: (ServiceInputs, [JSON])] = [:]
    /// The API's own objects (ConfigMaps), parsed from their text once.
    var parsed: [String: (String, JSON?)] = [:]

    public init() {}

    /// The value made from `inputs` last time, or a new one.
    func memo<I: Equatable, V>(_ table: ReferenceWritableKeyPath<ProjectionCache, [String: (I, V)]>, _ key: String, _ inputs: I,
                               make: () -> V) -> V {
        lock.lock()
        if let (was, value) = self[keyPath: table][key], was == inputs { lock.unlock(); return value }
        lock.unlock()
        let value = make()
        lock.lock()
        self[keyPath: table][key] = (inputs, value)
        lock.unlock()
        return value
    }

    func service(_ key: String, _ inputs: ServiceInputs, make: () -> [JSON]) -> [JSON] {
        lock.lock()
        if services.count > 60_000 { services = [:] } // services gone: start afresh now and then
        lock.unlock()
        return memo(\.services, key, inputs, make: make)
    }

    func pod(_ key: String, _ inputs: PodInputs, make: () -> JSON) -> JSON { memo(\.pods, key, inputs, make: make) }

    func parsed(_ key: String, _ text: String) -> JSON? { memo(\.parsed, key, text) { try? JSON.parse(text) } }

    func events(_ key: String, _ inputs: EventInputs, make: () -> [JSON]) -> [JSON] { memo(\.events, key, inputs, make: make) }

    /// Forgets the API objects that are gone.
    func keepParsed(_ keys: Set<String>) {
        lock.lock()
        if parsed.count > keys.count { parsed = parsed.filter { keys.contains($0.key) } }
        lock.unlock()
    }

    /// Forgets the pods that are gone.
    func keep(_ keys: Set<String>) {
        lock.lock()
        if pods.count > keys.count { pods = pods.filter { keys.contains($0.key) } }
        if events.count > keys.count { events = events.filter { keys.contains($0.key) } }
        lock.unlock()
    }
}

public struct ObjectsView {
    public let state: ClusterState
    public let host: HostInfo
    let cache: ProjectionCache?
    /// Each pod's creation (an endpoint's targetRef uid is made from it).
    let podCreated: [String: Date]

    public init(state: ClusterState, host: HostInfo, cache: ProjectionCache? = nil) {
        self.state = state
        self.host = host
        self.cache = cache
        podCreated = Dictionary(state.pods.map { ($0.key, $0.createdAt) }, uniquingKeysWith: { a, _ in a })
    }

    /// A service's objects of `resource`, reused while the service and its endpoints' pods
    /// are the same.
    func memo(_ resource: String, _ st: ServiceState, make: () -> [JSON]) -> [JSON] {
        guard let cache else { return make() }
        let inputs = ProjectionCache.ServiceInputs(state: st, podsCreated: st.endpoints.map { podCreated[$0.pod] })
        return cache.service("\(resource)|\(st.spec.key)", inputs, make: make)
    }

    public static let resources = ["namespaces", "nodes", "pods", "services", "endpoints", "endpointslices", "deployments", "replicasets", "events", "configmaps",
                                   "networkpolicies"]

    /// Every object of every resource, keyed.
    public func all() -> [String: [ObjectKey: JSON]] {
        var out: [String: [ObjectKey: JSON]] = [:]
        for r in ObjectsView.resources { out[r] = objects(r) }
        return out
    }

    /// What a change of one resource can change too (an object's own, its endpoints,
    /// its owner's status).
    public static func affected(by resource: String) -> [String] {
        switch resource {
        case "services": return ["services", "endpoints", "endpointslices"]
        case "pods": return ["pods", "endpoints", "endpointslices", "deployments", "replicasets", "events", "namespaces"]
        case "deployments": return ["deployments", "replicasets", "pods", "endpoints", "endpointslices", "events", "namespaces"]
        case "namespaces": return resources
        default: return [resource]
        }
    }

    /// The objects of one resource, keyed.
    public func objects(_ resource: String) -> [ObjectKey: JSON] {
        var out: [ObjectKey: JSON] = [:]
        func put(_ o: JSON) {
            let ns = o["metadata"]?["namespace"]?.string ?? ""
            out[ObjectKey(resource, ns, o["metadata"]?["name"]?.string ?? "")] = o
        }
        func withEndpoints(_ s: ServiceState) -> Bool {
            (s.spec.selector != nil || !s.spec.fixedEndpoints.isEmpty) && s.spec.type != .externalName
        }
        switch resource {
        case "namespaces": for n in state.spec.namespaces { put(namespace(n)) }
        case "nodes": for n in state.nodes { put(node(n)) }
        case "pods":
            let specs = Dictionary(state.spec.pods.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            for p in state.pods { put(pod(p, spec: specs[p.key])) }
            cache?.keep(Set(state.pods.map(\.key)))
        case "services": for s in state.services { memo(resource, s) { [service(s)] }.forEach(put) }
        case "endpoints": for s in state.services where withEndpoints(s) { memo(resource, s) { [endpoints(s)] }.forEach(put) }
        case "endpointslices": for s in state.services where withEndpoints(s) { memo(resource, s) { endpointSlices(s) }.forEach(put) }
        case "deployments": for d in state.spec.deployments { put(deployment(d)) }
        case "networkpolicies": for p in state.spec.networkPolicies { put(networkPolicy(p)) }
        case "replicasets": for d in state.spec.deployments { for rs in d.replicaSets { put(replicaSet(d, rs)) } }
        case "events": events().forEach(put)
        case "configmaps":
            for (key, text) in state.apiObjects ?? [:] where key.hasPrefix("configmaps/") {
                if let o = cache.map({ $0.parsed(key, text) }) ?? (try? JSON.parse(text)) { put(o) }
            }
            cache?.keepParsed(Set((state.apiObjects ?? [:]).keys))
        default: break
        }
        return out
    }

    // MARK: identity

    public func uid(_ resource: String, _ namespace: String, _ name: String, _ created: Date) -> String {
        // FNV-1a, 128 bits from two 64-bit lanes: an identifier, not a secret.
        var a: UInt64 = 0xcbf29ce484222325, b: UInt64 = 0x84222325cbf29ce4
        // As the state file keeps it, so that a uid survives a new supervisor.
        let micros = ClusterState.microseconds(created)
        for byte in "\(state.name)/\(resource)/\(namespace)/\(name)/\(micros)".utf8 {
            a = (a ^ UInt64(byte)) &* 0x100000001b3
            b = (b ^ UInt64(byte)) &* 0x100000001b3 &+ 0x9e3779b97f4a7c15
        }
        func hex(_ v: UInt64, _ n: Int) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let h = hex(a, 16) + hex(b, 16)
        let c = Array(h)
        return "\(String(c[0..<8]))-\(String(c[8..<12]))-8\(String(c[13..<16]))-\(String(c[16..<20]))-\(String(c[20..<32]))"
    }

    func meta(_ resource: String, namespace: String?, name: String, created: Date, labels: [String: String] = [:],
              annotations: [String: String] = [:], owners: [JSON] = []) -> JSON {
        var m: JSON = ["name": .string(name), "uid": .string(uid(resource, namespace ?? "", name, created)),
                       "creationTimestamp": .string(rfc3339(created))]
        if let namespace { m["namespace"] = .string(namespace) }
        if !labels.isEmpty { m["labels"] = .strings(labels) }
        if !annotations.isEmpty { m["annotations"] = .strings(annotations) }
        if !owners.isEmpty { m["ownerReferences"] = .array(owners) }
        return m
    }

    func owner(_ apiVersion: String, _ kind: String, _ name: String, uid: String) -> JSON {
        ["apiVersion": .string(apiVersion), "kind": .string(kind), "name": .string(name), "uid": .string(uid),
         "controller": true, "blockOwnerDeletion": true]
    }

    // MARK: namespaces and nodes

    func namespace(_ n: String) -> JSON {
        // What the API keeps of it besides its name: labels, annotations, when it was
        // made, whether it is being deleted.
        let extra = (state.apiObjects?["namespaces//\(n)"]).flatMap { try? JSON.parse($0) } ?? [:]
        var labels: [String: String] = [:]
        for (k, v) in extra["labels"]?.object ?? [:] { if let v = v.string { labels[k] = v } }
        // The spec's labels are what network policies see (a Namespace document's own,
        // or as the API last wrote them).
        if let own = state.spec.namespaceLabels[n] { labels = own }
        labels["kubernetes.io/metadata.name"] = n
        var annotations: [String: String] = [:]
        for (k, v) in extra["annotations"]?.object ?? [:] { if let v = v.string { annotations[k] = v } }
        let created = extra["created"]?.string.flatMap(parseRFC3339) ?? state.createdAt
        var metadata = meta("namespaces", namespace: nil, name: n, created: created, labels: labels, annotations: annotations)
        var phase = "Active"
        if let deleting = extra["deletionTimestamp"]?.string {
            metadata["deletionTimestamp"] = .string(deleting)
            phase = "Terminating"
        }
        return ["apiVersion": "v1", "kind": "Namespace", "metadata": metadata,
                "spec": ["finalizers": ["kubernetes"]], "status": ["phase": .string(phase)]]
    }

    func node(_ n: NodeState) -> JSON {
        var labels = n.labels
        labels["kubernetes.io/hostname"] = n.name
        labels["kubernetes.io/os"] = "linux"
        labels["kubernetes.io/arch"] = .init(host.architecture)
        labels["beta.kubernetes.io/os"] = "linux"
        labels["beta.kubernetes.io/arch"] = .init(host.architecture)
        let tainted = n.role == .controlPlane && state.nodes.contains { $0.role == .worker }
        var spec: JSON = ["podCIDR": .string(n.podCIDR.description), "podCIDRs": [.string(n.podCIDR.description)],
                          "providerID": .string("minik://\(state.name)/\(n.name)")]
        if tainted { spec["taints"] = [["key": .string(PodSpec.controlPlaneTaint), "effect": "NoSchedule"]] }
        let since = rfc3339(n.createdAt)
        let now = rfc3339(state.savedAt ?? Date())
        func condition(_ type: String, _ status: String, _ reason: String, _ message: String) -> JSON {
            ["type": .string(type), "status": .string(status), "lastHeartbeatTime": .string(now), "lastTransitionTime": .string(since),
             "reason": .string(reason), "message": .string(message)]
        }
        let capacity: JSON = ["cpu": .string(String(host.cpus)), "memory": .string("\(host.memoryKi)Ki"),
                              "pods": .string(String(SpecLoader.podsPerNode)), "ephemeral-storage": "1Gi"]
        return ["apiVersion": "v1", "kind": "Node",
                "metadata": meta("nodes", namespace: nil, name: n.name, created: n.createdAt, labels: labels,
                                 annotations: ["minik.dev/netns": n.netns]),
                "spec": spec,
                "status": [
                    "addresses": [["type": "InternalIP", "address": .string(n.internalIP.description)], ["type": "Hostname", "address": .string(n.name)]],
                    "capacity": capacity, "allocatable": capacity,
                    "conditions": [
                        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                    ],
                    "daemonEndpoints": ["kubeletEndpoint": ["Port": 10250]],
                    "nodeInfo": [
                        "machineID": .string(host.machineID), "systemUUID": .string(uid("nodes", "", n.name, n.createdAt)),
                        "bootID": .string(host.bootID), "kernelVersion": .string(host.kernelVersion), "osImage": .string(host.osImage),
                        "containerRuntimeVersion": .string(APIVersionInfo.runtime), "kubeletVersion": .string(APIVersionInfo.gitVersion),
                        "kubeProxyVersion": .string(APIVersionInfo.gitVersion), "operatingSystem": "linux", "architecture": .string(host.architecture),
                    ],
                    "images": [],
                ]]
    }

    // MARK: pods

    func containerSpec(_ c: ContainerSpec) -> JSON {
        var o: JSON = ["name": .string(c.name), "image": .string(c.image), "imagePullPolicy": "IfNotPresent",
                       "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"]
        if !c.command.isEmpty { o["command"] = .array(c.command.map { .string($0) }) }
        if !c.args.isEmpty { o["args"] = .array(c.args.map { .string($0) }) }
        if !c.env.isEmpty { o["env"] = .array(c.env.map { ["name": .string($0.name), "value": .string($0.value)] }) }
        if let w = c.workingDir { o["workingDir"] = .string(w) }
        if c.stdin { o["stdin"] = true }
        if c.stdinOnce { o["stdinOnce"] = true }
        if c.tty { o["tty"] = true }
        if let t = c.targetContainerName { o["targetContainerName"] = .string(t) }
        if !c.ports.isEmpty {
            o["ports"] = .array(c.ports.map { p in
                var j: JSON = ["containerPort": .int(Int64(p.containerPort)), "protocol": .string(p.proto)]
                if let n = p.name { j["name"] = .string(n) }
                return j
            })
        }
        var limits: [String: JSON] = [:]
        if let m = c.memoryLimit { limits["memory"] = .string(quantityText(m)) }
        if let e = c.ephemeralStorageLimit { limits["ephemeral-storage"] = .string(quantityText(e)) }
        o["resources"] = limits.isEmpty ? [:] : ["limits": .object(limits), "requests": .object(limits)]
        var sc: [String: JSON] = [:]
        if c.privileged { sc["privileged"] = true }
        if !c.capabilitiesAdd.isEmpty || !c.capabilitiesDrop.isEmpty {
            var caps: [String: JSON] = [:]
            if !c.capabilitiesAdd.isEmpty { caps["add"] = .array(c.capabilitiesAdd.map { .string($0) }) }
            if !c.capabilitiesDrop.isEmpty { caps["drop"] = .array(c.capabilitiesDrop.map { .string($0) }) }
            sc["capabilities"] = .object(caps)
        }
        if !sc.isEmpty { o["securityContext"] = .object(sc) }
        if let p = c.readinessProbe { o["readinessProbe"] = probe(p) }
        if let p = c.livenessProbe { o["livenessProbe"] = probe(p) }
        return o
    }

    func probe(_ p: Probe) -> JSON {
        func port(_ r: PortRef) -> JSON {
            switch r {
            case .number(let n): return .int(Int64(n))
            case .name(let s): return .string(s)
            }
        }
        var o: JSON = ["initialDelaySeconds": .int(Int64(p.initialDelaySeconds)), "periodSeconds": .int(Int64(p.periodSeconds)),
                       "timeoutSeconds": .int(Int64(p.timeoutSeconds)), "successThreshold": .int(Int64(p.successThreshold)),
                       "failureThreshold": .int(Int64(p.failureThreshold))]
        switch p.action {
        case .exec(let argv): o["exec"] = ["command": .array(argv.map { .string($0) })]
        case .httpGet(let path, let r): o["httpGet"] = ["path": .string(path), "port": port(r), "scheme": "HTTP"]
        case .tcpSocket(let r): o["tcpSocket"] = ["port": port(r)]
        }
        return o
    }

    /// spec of a pod (or of a Deployment's template).
    func podSpec(_ s: PodSpec, nodeName: String?) -> JSON {
        var o: JSON = ["containers": .array(s.containers.map(containerSpec)), "restartPolicy": .string(s.restartPolicy),
                       "dnsPolicy": .string(s.dnsPolicy.rawValue), "schedulerName": "default-scheduler",
                       "terminationGracePeriodSeconds": .int(Int64(s.terminationGracePeriodSeconds)), "securityContext": [:],
                       "serviceAccountName": "default", "serviceAccount": "default", "enableServiceLinks": true,
                       "priority": 0, "preemptionPolicy": "PreemptLowerPriority"]
        if !s.initContainers.isEmpty { o["initContainers"] = .array(s.initContainers.map(containerSpec)) }
        if !s.ephemeralContainers.isEmpty {
            // EphemeralContainer has no resources or ports.
            o["ephemeralContainers"] = .array(s.ephemeralContainers.map { c in
                var j = containerSpec(c)
                j["resources"] = nil
                return j
            })
        }
        if let nodeName, !nodeName.isEmpty { o["nodeName"] = .string(nodeName) }
        if !s.nodeSelector.isEmpty { o["nodeSelector"] = .strings(s.nodeSelector) }
        if let h = s.hostname { o["hostname"] = .string(h) }
        if let d = s.subdomain { o["subdomain"] = .string(d) }
        if s.shareProcessNamespace { o["shareProcessNamespace"] = true }
        if !s.sysctls.isEmpty { o["securityContext"] = ["sysctls": .array(s.sysctls.map { ["name": .string($0.name), "value": .string($0.value)] })] }
        if let c = s.dnsConfig {
            var d: JSON = [:]
            if !c.nameservers.isEmpty { d["nameservers"] = .array(c.nameservers.map { .string($0.description) }) }
            if !c.searches.isEmpty { d["searches"] = .array(c.searches.map { .string($0) }) }
            if !c.options.isEmpty {
                d["options"] = .array(c.options.map { o in
                    var j: JSON = ["name": .string(o.name)]
                    if let v = o.value { j["value"] = .string(v) }
                    return j
                })
            }
            o["dnsConfig"] = d
        }
        var tolerations: [JSON] = s.tolerations.map { t in
            var j: JSON = ["operator": .string(t.operator)]
            if let k = t.key { j["key"] = .string(k) }
            if let v = t.value { j["value"] = .string(v) }
            if let e = t.effect { j["effect"] = .string(e) }
            return j
        }
        // As the DefaultTolerationSeconds admission plugin adds them.
        tolerations.append(["key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300])
        tolerations.append(["key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300])
        o["tolerations"] = .array(tolerations)
        return o
    }

    func containerStatus(_ pod: PodState, _ c: ContainerStatus) -> JSON {
        func terminated(_ t: ContainerStatus.Termination) -> JSON {
            var j: JSON = ["exitCode": .int(Int64(t.exitCode)), "reason": .string(t.reason), "finishedAt": .string(rfc3339(t.finishedAt)),
                           "containerID": .string(containerID(pod, c))]
            j["startedAt"] = t.startedAt.map { .string(rfc3339($0)) } ?? .null
            if let m = t.message { j["message"] = .string(m) }
            if let s = t.signal { j["signal"] = .int(Int64(s)) }
            return j
        }
        var state: JSON
        switch c.state {
        case .running: state = ["running": ["startedAt": .string(rfc3339(c.startedAt ?? pod.createdAt))]]
        case .waiting:
            var w: JSON = [:]
            if let r = c.reason { w["reason"] = .string(r) }
            if let m = c.message { w["message"] = .string(m) }
            state = ["waiting": w]
        case .terminated: state = ["terminated": c.termination.map(terminated) ?? ["exitCode": 0, "startedAt": nil, "finishedAt": nil]]
        }
        var o: JSON = ["name": .string(c.name), "image": .string(c.image), "imageID": .string("minik://images/\(c.image)"),
                       "ready": .bool(c.isRunning && c.ready), "restartCount": .int(Int64(c.restartCount)),
                       "started": .bool(c.isRunning), "state": state,
                       "lastState": c.lastTermination.map { ["terminated": terminated($0)] } ?? [:]]
        if c.pid > 0 || c.state != .waiting { o["containerID"] = .string(containerID(pod, c)) }
        return o
    }

    func containerID(_ pod: PodState, _ c: ContainerStatus) -> String {
        "minik://\(pod.namespace)_\(pod.name)_\(c.name)_\(c.restartCount)"
    }

    func ownerName(_ owner: String?) -> (kind: String, name: String)? {
        guard let o = owner else { return nil }
        let parts = o.split(separator: "/", maxSplits: 1)
        return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
    }

    func pod(_ p: PodState, spec: PodSpec?) -> JSON {
        var owners: [JSON] = []
        if let (kind, name) = ownerName(p.owner), kind == "Deployment",
           let d = state.spec.deployments.first(where: { $0.name == name && $0.namespace == p.namespace }),
           let rs = d.replicaSets.first(where: { $0.hash == (p.labels["pod-template-hash"] ?? "") }) {
            owners.append(owner("apps/v1", "ReplicaSet", rs.name(of: d.name), uid: uid("replicasets", d.namespace, rs.name(of: d.name), created(d, rs))))
        }
        let hostIP = state.nodes.first { $0.name == p.node }?.internalIP.description
        guard let cache else { return pod(p, spec: spec, owners: owners, hostIP: hostIP) }
        return cache.pod(p.key, .init(state: p, spec: spec, owners: owners, hostIP: hostIP)) {
            pod(p, spec: spec, owners: owners, hostIP: hostIP)
        }
    }

    func pod(_ p: PodState, spec: PodSpec?, owners: [JSON], hostIP: String?) -> JSON {
        let labels = p.labels
        let created = rfc3339(p.createdAt)
        let inits = p.initContainers
        let initialized = inits.allSatisfy { $0.state == .terminated && $0.termination?.exitCode == 0 }
        let containersReady = !p.appContainers.isEmpty && p.appContainers.allSatisfy { $0.isRunning && $0.ready }
        let readySince = p.appContainers.compactMap(\.startedAt).max().map(rfc3339) ?? created
        func condition(_ type: String, _ ok: Bool, _ since: String, reason: String? = nil) -> JSON {
            var c: JSON = ["type": .string(type), "status": .string(ok ? "True" : "False"), "lastProbeTime": nil, "lastTransitionTime": .string(since)]
            if !ok, let reason {
                c["reason"] = .string(reason)
                c["message"] = .string(p.notReadyReason)
            }
            return c
        }
        var status: JSON = [
            "phase": .string(p.phase.rawValue),
            "conditions": [
                condition("PodReadyToStartContainers", p.phase != .pending, created),
                condition("Initialized", initialized, created, reason: "ContainersNotInitialized"),
                condition("Ready", p.isReady, readySince, reason: "ContainersNotReady"),
                condition("ContainersReady", containersReady, readySince, reason: "ContainersNotReady"),
                condition("PodScheduled", true, created),
            ],
            "startTime": .string(created),
            "qosClass": .string((spec?.containers ?? []).contains { $0.memoryLimit != nil } ? "Burstable" : "BestEffort"),
            "containerStatuses": .array(p.appContainers.map { containerStatus(p, $0) }),
        ]
        if !inits.isEmpty { status["initContainerStatuses"] = .array(inits.map { containerStatus(p, $0) }) }
        let ephemeral = p.containers.filter(\.ephemeral)
        if !ephemeral.isEmpty { status["ephemeralContainerStatuses"] = .array(ephemeral.map { containerStatus(p, $0) }) }
        if let hostIP {
            status["hostIP"] = .string(hostIP)
            status["hostIPs"] = [["ip": .string(hostIP)]]
        }
        if let ip = p.ip {
            status["podIP"] = .string(ip.description)
            status["podIPs"] = [["ip": .string(ip.description)]]
        }
        if let m = p.message { status["message"] = .string(m) }
        var metadata = meta("pods", namespace: p.namespace, name: p.name, created: p.createdAt, labels: labels,
                            annotations: (spec?.annotations ?? [:]).merging(["minik.dev/netns": p.netns]) { a, _ in a }, owners: owners)
        if let d = p.deletionTimestamp {
            let grace = p.deletionGracePeriodSeconds ?? 0
            // As the apiserver sets it: the time by which the pod will be gone.
            metadata["deletionTimestamp"] = .string(rfc3339(d.addingTimeInterval(Double(grace))))
            metadata["deletionGracePeriodSeconds"] = .int(Int64(grace))
        }
        var o: JSON = ["apiVersion": "v1", "kind": "Pod", "metadata": metadata, "status": status]
        o["spec"] = spec.map { podSpec($0, nodeName: p.node) } ?? ["containers": .array(p.appContainers.map { ["name": .string($0.name), "image": .string($0.image)] }), "nodeName": .string(p.node)]
        return o
    }

    // MARK: services, endpoints, slices

    func service(_ st: ServiceState) -> JSON {
        let s = st.spec
        var spec: JSON = ["type": .string(s.type.rawValue), "sessionAffinity": .string(s.clientIPAffinity ? "ClientIP" : "None")]
        if s.type != .externalName {
            spec["ipFamilies"] = ["IPv4"]
            spec["ipFamilyPolicy"] = "SingleStack"
            spec["internalTrafficPolicy"] = .string(s.internalTrafficPolicy?.rawValue ?? "Cluster")
            let ip = s.headless ? "None" : s.clusterIP?.description
            if let ip {
                spec["clusterIP"] = .string(ip)
                spec["clusterIPs"] = [.string(ip)]
            }
        }
        if let p = s.externalTrafficPolicy ?? (s.hasNodePorts ? .cluster : nil) { spec["externalTrafficPolicy"] = .string(p.rawValue) }
        if let sel = s.selector { spec["selector"] = .strings(sel) }
        if s.clientIPAffinity { spec["sessionAffinityConfig"] = ["clientIP": ["timeoutSeconds": .int(Int64(s.affinityTimeoutSeconds))]] }
        if s.publishNotReadyAddresses { spec["publishNotReadyAddresses"] = true }
        if !s.externalIPs.isEmpty { spec["externalIPs"] = .array(s.externalIPs.map { .string($0.description) }) }
        if let n = s.externalName { spec["externalName"] = .string(n) }
        if !s.ports.isEmpty {
            spec["ports"] = .array(s.ports.map { p in
                var j: JSON = ["protocol": .string(p.proto), "port": .int(Int64(p.port))]
                switch p.targetPort {
                case .number(let n): j["targetPort"] = .int(Int64(n))
                case .name(let n): j["targetPort"] = .string(n)
                }
                if !p.name.isEmpty { j["name"] = .string(p.name) }
                if let np = p.nodePort { j["nodePort"] = .int(Int64(np)) }
                return j
            })
        }
        return ["apiVersion": "v1", "kind": "Service",
                "metadata": meta("services", namespace: s.namespace, name: s.name, created: st.createdAt, labels: s.labels, annotations: s.annotations),
                "spec": spec, "status": ["loadBalancer": [:]]]
    }

    // MARK: network policies

    func selector(_ s: LabelSelectorSpec) -> JSON {
        var o: JSON = [:]
        if !s.matchLabels.isEmpty { o["matchLabels"] = .strings(s.matchLabels) }
        if !s.matchExpressions.isEmpty {
            o["matchExpressions"] = .array(s.matchExpressions.map { e in
                var j: JSON = ["key": .string(e.key), "operator": .string(e.op.rawValue)]
                if !e.values.isEmpty { j["values"] = .array(e.values.map { .string($0) }) }
                return j
            })
        }
        return o
    }

    func networkPolicy(_ p: NetworkPolicySpec) -> JSON {
        func rules(_ list: [NetworkPolicySpec.Rule], _ peersKey: String) -> JSON {
            .array(list.map { r in
                var j: JSON = [:]
                if !r.peers.isEmpty {
                    j[peersKey] = .array(r.peers.map { peer in
                        var o: JSON = [:]
                        if let s = peer.podSelector { o["podSelector"] = selector(s) }
                        if let s = peer.namespaceSelector { o["namespaceSelector"] = selector(s) }
                        if let b = peer.ipBlock {
                            var block: JSON = ["cidr": .string(b.cidr.description)]
                            if !b.except.isEmpty { block["except"] = .array(b.except.map { .string($0.description) }) }
                            o["ipBlock"] = block
                        }
                        return o
                    })
                }
                if !r.ports.isEmpty {
                    j["ports"] = .array(r.ports.map { port in
                        var o: JSON = ["protocol": .string(port.proto)]
                        switch port.port {
                        case .number(let n)?: o["port"] = .int(Int64(n))
                        case .name(let n)?: o["port"] = .string(n)
                        case nil: break
                        }
                        if let e = port.endPort { o["endPort"] = .int(Int64(e)) }
                        return o
                    })
                }
                return j
            })
        }
        var spec: JSON = ["podSelector": selector(p.podSelector), "policyTypes": .array(p.policyTypes.map { .string($0.rawValue) })]
        if !p.ingress.isEmpty { spec["ingress"] = rules(p.ingress, "from") }
        if !p.egress.isEmpty { spec["egress"] = rules(p.egress, "to") }
        return ["apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": meta("networkpolicies", namespace: p.namespace, name: p.name, created: p.created ?? state.createdAt,
                                 labels: p.labels, annotations: p.annotations),
                "spec": spec]
    }

    func target(_ e: Endpoint) -> JSON? {
        guard !e.pod.isEmpty else { return nil }
        let parts = e.pod.split(separator: "/", maxSplits: 1).map(String.init)
        var t: JSON = ["kind": "Pod", "namespace": .string(parts.first ?? ""), "name": .string(parts.last ?? "")]
        if let created = podCreated[e.pod] { t["uid"] = .string(uid("pods", parts.first ?? "", parts.last ?? "", created)) }
        return t
    }

    func endpoints(_ st: ServiceState) -> JSON {
        var groups: [String: (addresses: [JSON], notReady: [JSON], ports: [JSON])] = [:]
        var order: [String] = []
        // One subset per port set, as the endpoints controller packs them.
        var portsOf: [String: [Endpoint]] = [:]
        for e in st.endpoints where e.port != nil || st.spec.ports.isEmpty { portsOf[e.pod, default: []].append(e) }
        for pod in portsOf.keys.sorted() {
            let eps = portsOf[pod]!
            let ports: [JSON] = eps.filter { $0.port != nil }.sorted { $0.portName < $1.portName }.map { e in
                var j: JSON = ["port": .int(Int64(e.port!)), "protocol": .string(e.proto)]
                if !e.portName.isEmpty { j["name"] = .string(e.portName) }
                return j
            }
            let key = ports.map(\.text).joined(separator: ",")
            if groups[key] == nil { groups[key] = ([], [], ports); order.append(key) }
            let e = eps[0]
            var a: JSON = ["ip": .string(e.ip.description)]
            if let t = target(e) { a["targetRef"] = t; a["nodeName"] = .string(e.node) }
            if st.isPublished(e) { groups[key]!.addresses.append(a) } else { groups[key]!.notReady.append(a) }
        }
        var o: JSON = ["apiVersion": "v1", "kind": "Endpoints",
                       "metadata": meta("endpoints", namespace: st.spec.namespace, name: st.spec.name, created: st.createdAt, labels: st.spec.labels)]
        if !order.isEmpty {
            o["subsets"] = .array(order.map { k in
                var s: JSON = [:]
                let g = groups[k]!
                if !g.addresses.isEmpty { s["addresses"] = .array(g.addresses) }
                if !g.notReady.isEmpty { s["notReadyAddresses"] = .array(g.notReady) }
                if !g.ports.isEmpty { s["ports"] = .array(g.ports) }
                return s
            })
        }
        return o
    }

    func endpointSlices(_ st: ServiceState) -> [JSON] {
        let s = st.spec
        let svcUID = uid("services", s.namespace, s.name, st.createdAt)
        var byPorts: [String: (ports: [JSON], endpoints: [JSON])] = [:]
        var portsOf: [String: [Endpoint]] = [:]
        for e in st.endpoints { portsOf[e.pod, default: []].append(e) }
        for pod in portsOf.keys.sorted() {
            let eps = portsOf[pod]!
            let ports: [JSON] = eps.filter { $0.port != nil }.sorted { $0.portName < $1.portName }.map { e in
                ["name": .string(e.portName), "port": .int(Int64(e.port!)), "protocol": .string(e.proto)]
            }
            let key = ports.map(\.text).joined(separator: ",")
            let e = eps[0]
            let ready = eps.allSatisfy(\.ready)
            var ep: JSON = ["addresses": [.string(e.ip.description)],
                            "conditions": ["ready": .bool(ready || s.publishNotReadyAddresses), "serving": .bool(ready), "terminating": false]]
            if let t = target(e) { ep["targetRef"] = t; ep["nodeName"] = .string(e.node) }
            byPorts[key, default: (ports, [])].endpoints.append(ep)
        }
        if byPorts.isEmpty { byPorts[""] = ([], []) }
        var labels = s.labels
        labels["kubernetes.io/service-name"] = s.name
        labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
        return byPorts.keys.sorted().map { key in
            let name = "\(s.name)-\(String(uid("endpointslices", s.namespace, s.name + key, st.createdAt).filter(\.isLetter).prefix(5)))"
            return ["apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                    "metadata": meta("endpointslices", namespace: s.namespace, name: name, created: st.createdAt, labels: labels,
                                     owners: [owner("v1", "Service", s.name, uid: svcUID)]),
                    "endpoints": .array(byPorts[key]!.endpoints), "ports": .array(byPorts[key]!.ports)]
        }
    }

    // MARK: deployments and replica sets

    /// The Deployment's pods that count for a ReplicaSet (not terminating), and the
    /// ready ones among them.
    func podsOf(_ d: DeploymentSpec, _ rs: ReplicaSetRecord) -> (active: Int, ready: Int) {
        let mine = state.pods.filter {
            $0.owner == d.owner && $0.namespace == d.namespace && ($0.labels["pod-template-hash"] ?? "") == rs.hash && $0.deletionTimestamp == nil
        }
        return (mine.count, mine.count(where: \.isReady))
    }

    func template(_ t: PodSpec, hash: String?) -> JSON {
        var labels = t.labels
        labels["pod-template-hash"] = hash
        var m: JSON = ["labels": .strings(labels), "creationTimestamp": nil]
        if !t.annotations.isEmpty { m["annotations"] = .strings(t.annotations) }
        return ["metadata": m, "spec": podSpec(t, nodeName: t.requestedNodeName)]
    }

    func created(_ d: DeploymentSpec) -> Date { d.created ?? state.createdAt }

    /// A ReplicaSet's creation; one adopted from an older minik's pods has none of its own.
    func created(_ d: DeploymentSpec, _ rs: ReplicaSetRecord) -> Date { rs.created == .distantPast ? created(d) : rs.created }

    func deployment(_ d: DeploymentSpec) -> JSON {
        let newRS = d.newReplicaSet
        let counts = d.replicaSets.map { podsOf(d, $0) }
        let active = counts.reduce(0) { $0 + $1.active }, ready = counts.reduce(0) { $0 + $1.ready }
        let updated = newRS.flatMap { n in d.replicaSets.firstIndex(of: n).map { counts[$0].active } } ?? 0
        let wanted = d.replicaSets.reduce(0) { $0 + $1.replicas }
        let maxUnavailable = d.replicas == 0 || d.strategy.recreate ? 0 : min(Rollout.fenceposts(d.strategy, replicas: d.replicas).unavailable, d.replicas)
        let available = ready >= d.replicas - maxUnavailable
        let complete = updated == d.replicas && active == d.replicas && ready == d.replicas
        let since = rfc3339(created(d))
        let progressed = rfc3339(newRS?.created ?? created(d))
        let rsName = newRS.map { $0.name(of: d.name) } ?? d.name
        var annotations = d.annotations
        annotations["deployment.kubernetes.io/revision"] = String(newRS?.revision ?? 0)
        let strategy: JSON = d.strategy.recreate ? ["type": "Recreate"]
            : ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": d.strategy.maxSurge.json, "maxUnavailable": d.strategy.maxUnavailable.json]]
        return ["apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": meta("deployments", namespace: d.namespace, name: d.name, created: created(d), labels: d.labels, annotations: annotations),
                "spec": ["replicas": .int(Int64(d.replicas)), "selector": ["matchLabels": .strings(d.selector)],
                         "template": template(d.template, hash: nil), "strategy": strategy,
                         "revisionHistoryLimit": .int(Int64(d.revisionHistoryLimit)), "progressDeadlineSeconds": 600],
                "status": ["observedGeneration": 1, "replicas": .int(Int64(active)), "updatedReplicas": .int(Int64(updated)),
                           "readyReplicas": .int(Int64(ready)), "availableReplicas": .int(Int64(ready)),
                           "unavailableReplicas": .int(Int64(max(0, wanted - ready))),
                           "conditions": [
                               ["type": "Available", "status": .string(available ? "True" : "False"),
                                "reason": .string(available ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable"),
                                "message": .string(available ? "Deployment has minimum availability." : "Deployment does not have minimum availability."),
                                "lastUpdateTime": .string(since), "lastTransitionTime": .string(since)],
                               ["type": "Progressing", "status": "True",
                                "reason": .string(complete ? "NewReplicaSetAvailable" : "ReplicaSetUpdated"),
                                "message": .string(complete ? "ReplicaSet \"\(rsName)\" has successfully progressed." : "ReplicaSet \"\(rsName)\" is progressing."),
                                "lastUpdateTime": .string(progressed), "lastTransitionTime": .string(progressed)],
                           ]]]
    }

    func replicaSet(_ d: DeploymentSpec, _ rs: ReplicaSetRecord) -> JSON {
        let (active, ready) = podsOf(d, rs)
        let name = rs.name(of: d.name)
        let isNew = d.newReplicaSet?.hash == rs.hash
        let t = isNew ? d.template : rs.template
        var labels = t.labels
        labels["pod-template-hash"] = rs.hash
        var selector = d.selector
        selector["pod-template-hash"] = rs.hash
        let surge = d.strategy.recreate ? 0 : Rollout.fenceposts(d.strategy, replicas: d.replicas).surge
        var annotations = ["deployment.kubernetes.io/desired-replicas": String(d.replicas),
                           "deployment.kubernetes.io/max-replicas": String(d.replicas + surge),
                           "deployment.kubernetes.io/revision": String(rs.revision)]
        annotations["kubernetes.io/change-cause"] = rs.changeCause
        return ["apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": meta("replicasets", namespace: d.namespace, name: name, created: created(d, rs),
                                 labels: labels, annotations: annotations,
                                 owners: [owner("apps/v1", "Deployment", d.name, uid: uid("deployments", d.namespace, d.name, created(d)))]),
                "spec": ["replicas": .int(Int64(rs.replicas)), "selector": ["matchLabels": .strings(selector)], "template": template(t, hash: rs.hash)],
                "status": ["observedGeneration": 1, "replicas": .int(Int64(active)), "fullyLabeledReplicas": .int(Int64(active)),
                           "readyReplicas": .int(Int64(ready)), "availableReplicas": .int(Int64(ready))]]
    }

    // MARK: events

    /// The pods' events; consecutive repeats of one (reason, message) are one Event with a
    /// count, as the kubelet's event correlator aggregates them.
    func events() -> [JSON] {
        var out: [JSON] = []
        // The controllers' (deployment, replica set).
        for e in state.events ?? [] {
            guard let d = state.spec.deployments.first(where: { d in
                d.namespace == e.namespace && (e.kind == "Deployment" ? d.name == e.name : d.replicaSets.contains { $0.name(of: d.name) == e.name })
            }) else { continue }
            let objectUID = e.kind == "Deployment" ? uid("deployments", d.namespace, d.name, created(d))
                : uid("replicasets", d.namespace, e.name, d.replicaSets.first { $0.name(of: d.name) == e.name }.map { created(d, $0) } ?? created(d))
            let micros = Int64((e.time.timeIntervalSince1970 * 1_000_000).rounded())
            out.append(["apiVersion": "v1", "kind": "Event",
                        "metadata": meta("events", namespace: e.namespace, name: "\(e.name).\(String(UInt64(micros), radix: 16))", created: e.time),
                        "involvedObject": ["kind": .string(e.kind), "namespace": .string(e.namespace), "name": .string(e.name),
                                           "uid": .string(objectUID), "apiVersion": "apps/v1"],
                        "reason": .string(e.reason), "message": .string(e.message), "type": .string(e.type),
                        "source": ["component": .string(e.component)],
                        "firstTimestamp": .string(rfc3339(e.time)), "lastTimestamp": .string(rfc3339(e.last ?? e.time)),
                        "count": .int(Int64(e.count)), "eventTime": nil, "reportingComponent": .string(e.component), "reportingInstance": ""])
        }
        for p in state.pods {
            guard let cache else { out += events(of: p); continue }
            out += cache.events(p.key, .init(events: p.events, node: p.node, createdAt: p.createdAt)) { events(of: p) }
        }
        return out
    }

    /// One pod's events.
    func events(of p: PodState) -> [JSON] {
        var out: [JSON] = []
        do {
            let podUID = uid("pods", p.namespace, p.name, p.createdAt)
            var merged: [(first: PodEvent, last: Date, count: Int)] = []
            for e in p.events {
                if let i = merged.firstIndex(where: { $0.first.reason == e.reason && $0.first.message == e.message && $0.first.type == e.type }) {
                    merged[i].last = e.time
                    merged[i].count += 1
                } else {
                    merged.append((e, e.time, 1))
                }
            }
            for m in merged {
                let micros = Int64((m.first.time.timeIntervalSince1970 * 1_000_000).rounded())
                let name = "\(p.name).\(String(UInt64(micros), radix: 16))"
                out.append(["apiVersion": "v1", "kind": "Event",
                             "metadata": meta("events", namespace: p.namespace, name: name, created: m.first.time),
                             "involvedObject": ["kind": "Pod", "namespace": .string(p.namespace), "name": .string(p.name), "uid": .string(podUID), "apiVersion": "v1"],
                             "reason": .string(m.first.reason), "message": .string(m.first.message), "type": .string(m.first.type),
                             "source": ["component": "kubelet", "host": .string(p.node)],
                             "firstTimestamp": .string(rfc3339(m.first.time)), "lastTimestamp": .string(rfc3339(m.last)),
                             "count": .int(Int64(m.count)), "eventTime": nil, "reportingComponent": "kubelet", "reportingInstance": .string(p.node)])
            }
        }
        return out
    }
}

extension JSON {
    init(_ s: String) { self = .string(s) }
}

extension IntOrPercent {
    /// As the API writes an IntOrString: a number, or the percent as a string.
    var json: JSON {
        switch self {
        case .count(let n): return .int(Int64(n))
        case .percent: return .string(description)
        }
    }
}

/// Bytes as a Kubernetes quantity in binary units where exact ("64Mi"), else plain.
public func quantityText(_ bytes: Int64) -> String {
    for (suffix, unit) in [("Ti", Int64(1) << 40), ("Gi", Int64(1) << 30), ("Mi", Int64(1) << 20), ("Ki", Int64(1) << 10)] where bytes >= unit && bytes % unit == 0 {
        return "\(bytes / unit)\(suffix)"
    }
    return String(bytes)
}
