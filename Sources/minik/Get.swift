import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec
import Yams

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table = "", wide, json, yaml
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List nodes, pods, services, endpoints or clusters, as kubectl and kind print them.")

    @Argument(help: "nodes, pods, services (svc), endpoints (ep), proxy, clusters or kubeconfig.") var resource: String
    @Argument(help: "Only this one (services and endpoints).") var name: String?
    @Option(name: .shortAndLong, help: "Output format: wide, json or yaml.") var output: OutputFormat = .table
    @Option(name: .shortAndLong, help: "Namespace of the pods.") var namespace: String = "default"
    @Flag(name: [.customShort("A"), .long], help: "Pods of every namespace.") var allNamespaces = false
    @OptionGroup var cluster: ClusterOption

    func run() throws {
        switch resource {
        case "clusters", "cluster":
            // The state directory is root's (0700): for anyone else it looks empty.
            try requireRoot("minik get clusters", because: "the clusters' state under \(Naming.stateRoot) is readable by root only")
            let list = ClusterOption.clusters()
            if list.isEmpty { printErr("No clusters found.") }
            list.forEach { print($0) }
            return
        case "nodes", "node", "no": try printNodes(try state())
        case "pods", "pod", "po": try printPods(try state())
        case "services", "service", "svc": try printServices(try state())
        case "endpoints", "endpoint", "ep": try printEndpoints(try state())
        case "proxy": try printProxy(try state())
        case "kubeconfig":
            // As `kind get kubeconfig`: the cluster's own, for KUBECONFIG=... or a merge.
            try requireRoot("minik get kubeconfig", because: "the cluster's credentials are readable by root only")
            let c = try cluster.resolve()
            guard let text = try? String(contentsOfFile: Naming.kubeconfigFile(c), encoding: .utf8) else {
                throw CLIError("cluster \(c) has no kubeconfig (\(Naming.kubeconfigFile(c))); it was made by a minik without the API")
            }
            print(text, terminator: "")
        default:
            throw CLIError("unknown resource \"\(resource)\" (use nodes, pods, services, endpoints or clusters)")
        }
    }

    func state() throws -> ClusterState { try clusterState(try cluster.resolve()).0 }

    func printNodes(_ s: ClusterState) throws {
        switch output {
        case .json, .yaml:
            try emit(KList(items: s.nodes.map { KNode($0) }))
        case .table, .wide:
            var rows = [["NAME", "STATUS", "ROLES", "AGE"] + (output == .wide ? ["INTERNAL-IP", "POD-CIDR", "NETNS"] : [])]
            for n in s.nodes {
                var row = [n.name, "Ready", n.role == .controlPlane ? "control-plane" : "<none>", age(n.createdAt)]
                if output == .wide { row += [n.internalIP.description, n.podCIDR.description, n.netns] }
                rows.append(row)
            }
            printTable(rows)
        }
    }

    func printPods(_ s: ClusterState) throws {
        let pods = s.pods.filter { allNamespaces || $0.namespace == namespace }
        switch output {
        case .json, .yaml:
            try emit(KList(items: pods.map { p in KPod(p, hostIP: s.nodes.first { $0.name == p.node }?.internalIP, spec: s.spec.pods.first { $0.key == p.key }) }))
        case .table, .wide:
            if pods.isEmpty {
                printErr(allNamespaces ? "No resources found" : "No resources found in \(namespace) namespace.")
                return
            }
            var header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
            if allNamespaces { header.insert("NAMESPACE", at: 0) }
            if output == .wide { header += ["IP", "NODE", "NETNS"] }
            var rows = [header]
            for p in pods {
                var restarts = "\(p.restarts)"
                if let last = p.appContainers.compactMap({ $0.lastTermination?.finishedAt }).max() {
                    restarts += " (\(age(last)) ago)"
                }
                var row = [p.name, p.readyText, p.statusText, restarts, age(p.createdAt)]
                if allNamespaces { row.insert(p.namespace, at: 0) }
                if output == .wide { row += [p.ip?.description ?? "<none>", p.node, p.netns] }
                rows.append(row)
            }
            printTable(rows)
        }
    }

    func emit<T: Encodable>(_ value: T) throws {
        if output == .json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            e.dateEncodingStrategy = .iso8601
            print(String(decoding: try e.encode(value), as: UTF8.self))
        } else {
            // Through JSON so dates and optionals look as kubectl prints them.
            let e = JSONEncoder()
            e.dateEncodingStrategy = .iso8601
            let obj = try JSONSerialization.jsonObject(with: try e.encode(value))
            print(try Yams.dump(object: obj, sortKeys: true), terminator: "")
        }
    }
}

func age(_ since: Date) -> String {
    let s = Int(Date().timeIntervalSince(since))
    if s < 120 { return "\(max(s, 0))s" }
    if s < 3600 { return "\(s / 60)m" }
    if s < 86400 { return "\(s / 3600)h\((s % 3600) / 60)m" }
    return "\(s / 86400)d"
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = first.map(\.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    for r in rows {
        let cells = r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0) }
        print(cells.joined())
    }
}

// MARK: - Kubernetes-shaped objects for -o json / -o yaml

struct KList<T: Encodable>: Encodable {
    var apiVersion = "v1"
    var kind = "List"
    var items: [T]
    var metadata = ["resourceVersion": ""]
}

struct KMeta: Encodable {
    var name: String
    var namespace: String?
    var labels: [String: String]?
    var creationTimestamp: Date
    var ownerReferences: [KOwner]?
}

struct KOwner: Encodable {
    var apiVersion = "apps/v1"
    var kind: String
    var name: String
}

struct KNode: Encodable {
    var apiVersion = "v1"
    var kind = "Node"
    var metadata: KMeta
    var spec: Spec
    var status: Status

    struct Spec: Encodable {
        var podCIDR: String
        var podCIDRs: [String]
    }

    struct Status: Encodable {
        var addresses: [Address]
        var conditions: [Condition]
    }

    struct Address: Encodable {
        var type: String
        var address: String
    }

    struct Condition: Encodable {
        var type: String
        var status: String
    }

    init(_ n: NodeState) {
        metadata = KMeta(name: n.name, labels: n.labels, creationTimestamp: n.createdAt)
        spec = Spec(podCIDR: n.podCIDR.description, podCIDRs: [n.podCIDR.description])
        status = Status(addresses: [Address(type: "InternalIP", address: n.internalIP.description),
                                    Address(type: "Hostname", address: n.name)],
                        conditions: [Condition(type: "Ready", status: "True")])
    }
}

struct KPod: Encodable {
    var apiVersion = "v1"
    var kind = "Pod"
    var metadata: KMeta
    var spec: Spec
    var status: Status

    struct Spec: Encodable {
        var nodeName: String
        var containers: [Container]
        var restartPolicy: String?
    }

    struct Container: Encodable {
        var name: String
        var image: String
    }

    struct ContainerStatusK: Encodable {
        var name: String
        var image: String
        var ready: Bool
        var restartCount: Int
        var started: Bool
        var state: [String: [String: String]]
        var lastState: [String: [String: String]]
    }

    struct Status: Encodable {
        var phase: String
        var podIP: String?
        var podIPs: [[String: String]]?
        var hostIP: String?
        var startTime: Date
        var message: String?
        var initContainerStatuses: [ContainerStatusK]?
        var containerStatuses: [ContainerStatusK]
    }

    static func k8s(_ c: ContainerStatus) -> ContainerStatusK {
        let iso = ISO8601DateFormatter()
        func term(_ t: ContainerStatus.Termination) -> [String: [String: String]] {
            var d = ["exitCode": "\(t.exitCode)", "reason": t.reason, "finishedAt": iso.string(from: t.finishedAt)]
            if let m = t.message { d["message"] = m }
            if let s = t.startedAt { d["startedAt"] = iso.string(from: s) }
            return ["terminated": d]
        }
        var state: [String: [String: String]]
        switch c.state {
        case .running: state = ["running": ["startedAt": c.startedAt.map { iso.string(from: $0) } ?? ""]]
        case .waiting: state = ["waiting": ["reason": c.reason ?? "", "message": c.message ?? ""].filter { !$0.value.isEmpty }]
        case .terminated: state = c.termination.map(term) ?? ["terminated": [:]]
        }
        return ContainerStatusK(name: c.name, image: c.image, ready: c.isRunning && c.ready, restartCount: c.restartCount,
                                started: c.isRunning, state: state, lastState: c.lastTermination.map(term) ?? [:])
    }

    init(_ p: PodState, hostIP: IPv4Address?, spec podSpec: PodSpec?) {
        let owner = p.owner.flatMap { o -> [KOwner]? in
            let parts = o.split(separator: "/")
            return parts.count == 2 ? [KOwner(kind: String(parts[0]), name: String(parts[1]))] : nil
        }
        metadata = KMeta(name: p.name, namespace: p.namespace, labels: p.labels.isEmpty ? nil : p.labels,
                         creationTimestamp: p.createdAt, ownerReferences: owner)
        spec = Spec(nodeName: p.node, containers: (podSpec?.containers ?? []).map { Container(name: $0.name, image: $0.image) },
                    restartPolicy: podSpec?.restartPolicy)
        status = Status(phase: p.phase.rawValue, podIP: p.ip?.description, podIPs: p.ip.map { [["ip": $0.description]] },
                        hostIP: hostIP?.description, startTime: p.createdAt, message: p.message,
                        initContainerStatuses: p.initContainers.isEmpty ? nil : p.initContainers.map(KPod.k8s),
                        containerStatuses: p.appContainers.map(KPod.k8s))
    }
}
