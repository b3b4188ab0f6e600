// Services on the command line: `get svc`, `get endpoints`, `describe svc` (kubectl's
// columns and wording), and `external exec` (a command on the underlay's external host).
import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec

extension Get {
    func services(_ s: ClusterState) -> [ServiceState] {
        s.services.filter { (allNamespaces || $0.spec.namespace == namespace) && (name == nil || $0.spec.name == name) }
    }

    func printServices(_ s: ClusterState) throws {
        let list = services(s)
        if let name, list.isEmpty { throw CLIError("service \"\(name)\" not found in namespace \(namespace)") }
        switch output {
        case .json, .yaml:
            try emit(KList(items: list.map(KService.init)))
        case .table, .wide:
            if list.isEmpty { return noResources() }
            var header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
            if allNamespaces { header.insert("NAMESPACE", at: 0) }
            if output == .wide { header.append("SELECTOR") }
            var rows = [header]
            for st in list {
                let sv = st.spec
                var row = [sv.name, sv.type.rawValue, Self.clusterIP(sv), Self.externalIP(sv), Self.ports(sv), age(st.createdAt)]
                if allNamespaces { row.insert(sv.namespace, at: 0) }
                if output == .wide { row.append(Self.selector(sv)) }
                rows.append(row)
            }
            printTable(rows)
        }
    }

    func printEndpoints(_ s: ClusterState) throws {
        let list = services(s).filter { $0.spec.type != .externalName }
        if let name, list.isEmpty { throw CLIError("endpoints \"\(name)\" not found in namespace \(namespace)") }
        switch output {
        case .json, .yaml:
            try emit(KList(items: list.map(KEndpoints.init)))
        case .table, .wide:
            if list.isEmpty { return noResources() }
            var rows = [(allNamespaces ? ["NAMESPACE"] : []) + ["NAME", "ENDPOINTS", "AGE"]]
            for st in list {
                let ready = Self.readyAddresses(st)
                // kubectl shows three and counts the rest.
                var text = ready.isEmpty ? "<none>" : ready.prefix(3).joined(separator: ",")
                if ready.count > 3 && output != .wide { text += " + \(ready.count - 3) more..." }
                if output == .wide { text = ready.isEmpty ? "<none>" : ready.joined(separator: ",") }
                rows.append((allNamespaces ? [st.spec.namespace] : []) + [st.spec.name, text, age(st.createdAt)])
            }
            printTable(rows)
        }
    }

    /// The service proxy of every node: how many syncs, how long the last one took.
    func printProxy(_ s: ClusterState) throws {
        switch output {
        case .json, .yaml:
            try emit(s.proxy)
        case .table, .wide:
            if s.proxy.isEmpty { return printErr("No service proxy (kubeProxyMode none, or the cluster has no pod network).") }
            var rows = [["NODE", "SYNCS", "LAST-SYNC", "RENDER", "RESTORE", "CHANGED-CHAINS", "RULES", "CHAINS", "REPAIRS", "ERROR"]]
            for p in s.proxy {
                rows.append([p.node, "\(p.syncs)", p.lastSync.map { "\(age($0)) ago" } ?? "<never>", "\(p.lastRenderMillis)ms",
                             "\(p.lastSyncMillis)ms", "\(p.lastChangedChains)", "\(p.rules)", "\(p.chains)", "\(p.repairs)", p.lastError ?? "<none>"])
            }
            printTable(rows)
        }
    }

    func noResources() {
        printErr(allNamespaces ? "No resources found" : "No resources found in \(namespace) namespace.")
    }

    static func readyAddresses(_ st: ServiceState) -> [String] {
        var seen = Set<String>()
        return st.endpoints.filter(st.isPublished).map(\.address).filter { seen.insert($0).inserted }
    }

    static func clusterIP(_ s: ServiceSpec) -> String {
        if s.headless { return "None" }
        return s.clusterIP?.description ?? "<none>"
    }

    static func externalIP(_ s: ServiceSpec) -> String {
        if let n = s.externalName { return n }
        if !s.externalIPs.isEmpty { return s.externalIPs.map(\.description).joined(separator: ",") }
        return s.type == .loadBalancer ? "<pending>" : "<none>"
    }

    static func ports(_ s: ServiceSpec) -> String {
        if s.ports.isEmpty { return "<none>" }
        return s.ports.map { p in p.nodePort.map { "\(p.port):\($0)/\(p.proto)" } ?? "\(p.port)/\(p.proto)" }.joined(separator: ",")
    }

    static func selector(_ s: ServiceSpec) -> String {
        guard let sel = s.selector, !sel.isEmpty else { return "<none>" }
        return sel.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}

/// `minik describe svc NAME`, kubectl's layout, plus the endpoints that are not ready
/// and why (kubectl would make you look at the EndpointSlice for that).
func describeService(_ st: ServiceState, proxy: [ProxyNodeStatus]) -> String {
    let s = st.spec
    var out = ""
    func line(_ k: String, _ v: String) {
        out += (k + ":").padding(toLength: max(26, k.count + 2), withPad: " ", startingAt: 0) + v + "\n"
    }
    func labels(_ m: [String: String]) -> String {
        m.isEmpty ? "<none>" : m.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
    line("Name", s.name)
    line("Namespace", s.namespace)
    line("Labels", labels(s.labels))
    line("Annotations", "<none>")
    line("Selector", Get.selector(s))
    line("Type", s.type.rawValue)
    if s.type == .externalName {
        line("External Name", s.externalName ?? "")
    } else {
        line("IP Family Policy", "SingleStack")
        line("IP Families", "IPv4")
        line("IP", Get.clusterIP(s))
        line("IPs", Get.clusterIP(s))
    }
    if !s.externalIPs.isEmpty { line("External IPs", s.externalIPs.map(\.description).joined(separator: ",")) }
    for p in s.ports {
        let name = p.name.isEmpty ? "<unset>" : p.name
        line("Port", "\(name)  \(p.port)/\(p.proto)")
        line("TargetPort", "\(p.targetPort)/\(p.proto)")
        if let np = p.nodePort { line("NodePort", "\(name)  \(np)/\(p.proto)") }
        let eps = st.endpoints.filter { $0.portName == p.name && $0.proto == p.proto }
        let ready = eps.filter(st.isPublished).map(\.address)
        line("Endpoints", ready.isEmpty ? "<none>" : ready.joined(separator: ","))
        for e in eps where !e.ready {
            line("  Not ready", "\(e.address) (\(e.pod) on \(e.node)): \(e.reason ?? "not ready")\(s.publishNotReadyAddresses ? " (published anyway: publishNotReadyAddresses)" : "")")
        }
    }
    if s.ports.isEmpty && s.type != .externalName {
        let ready = Get.readyAddresses(st)
        line("Endpoints", ready.isEmpty ? "<none>" : ready.joined(separator: ","))
    }
    line("Session Affinity", s.clientIPAffinity ? "ClientIP" : "None")
    if s.clientIPAffinity { line("Session Affinity Timeout", "\(s.affinityTimeoutSeconds)s") }
    if s.hasNodePorts || !s.externalIPs.isEmpty { line("External Traffic Policy", "Cluster") }
    line("Internal Traffic Policy", "Cluster")
    if s.isProxied {
        let chains = EndpointsController.proxyPorts([st]).map(\.serviceChain)
        line("Proxy chains", chains.joined(separator: ", ") + " (minik node exec NODE -- iptables-save -t nat)")
    } else if s.headless {
        line("Proxy chains", "<none> (headless: no virtual IP, DNS returns the pods' addresses)")
    }
    if let bad = proxy.first(where: { $0.lastError != nil }) { line("Proxy error", "\(bad.node): \(bad.lastError!)") }
    line("Events", "<none>")
    return out
}

struct KService: Encodable {
    var apiVersion = "v1"
    var kind = "Service"
    var metadata: KMeta
    var spec: Spec

    struct Port: Encodable {
        var name: String?
        var `protocol`: String
        var port: Int
        var targetPort: String
        var nodePort: Int?
    }

    struct Spec: Encodable {
        var type: String
        var selector: [String: String]?
        var clusterIP: String?
        var clusterIPs: [String]?
        var ports: [Port]?
        var sessionAffinity: String
        var externalIPs: [String]?
        var externalName: String?
        var publishNotReadyAddresses: Bool?
    }

    init(_ st: ServiceState) {
        let s = st.spec
        metadata = KMeta(name: s.name, namespace: s.namespace, labels: s.labels.isEmpty ? nil : s.labels, creationTimestamp: st.createdAt)
        let ip = s.headless ? "None" : s.clusterIP?.description
        spec = Spec(type: s.type.rawValue, selector: s.selector, clusterIP: ip, clusterIPs: ip.map { [$0] },
                    ports: s.ports.isEmpty ? nil : s.ports.map { Port(name: $0.name.isEmpty ? nil : $0.name, protocol: $0.proto, port: $0.port, targetPort: $0.targetPort.description, nodePort: $0.nodePort) },
                    sessionAffinity: s.clientIPAffinity ? "ClientIP" : "None",
                    externalIPs: s.externalIPs.isEmpty ? nil : s.externalIPs.map(\.description), externalName: s.externalName,
                    publishNotReadyAddresses: s.publishNotReadyAddresses ? true : nil)
    }
}

struct KEndpoints: Encodable {
    var apiVersion = "v1"
    var kind = "Endpoints"
    var metadata: KMeta
    var subsets: [Subset]?

    struct Address: Encodable {
        var ip: String
        var nodeName: String
        var targetRef: [String: String]
    }

    struct Port: Encodable {
        var name: String?
        var port: Int
        var `protocol`: String
    }

    struct Subset: Encodable {
        var addresses: [Address]?
        var notReadyAddresses: [Address]?
        var ports: [Port]?
    }

    init(_ st: ServiceState) {
        metadata = KMeta(name: st.spec.name, namespace: st.spec.namespace, labels: nil, creationTimestamp: st.createdAt)
        // One subset per (port name, protocol, port number), as the endpoints controller groups them.
        var groups: [String: Subset] = [:]
        var order: [String] = []
        for e in st.endpoints {
            let key = "\(e.portName)/\(e.proto)/\(e.port ?? 0)"
            if groups[key] == nil {
                order.append(key)
                groups[key] = Subset(addresses: nil, notReadyAddresses: nil,
                                     ports: e.port.map { [Port(name: e.portName.isEmpty ? nil : e.portName, port: $0, protocol: e.proto)] })
            }
            let parts = e.pod.split(separator: "/")
            let a = Address(ip: e.ip.description, nodeName: e.node,
                            targetRef: ["kind": "Pod", "namespace": String(parts.first ?? ""), "name": String(parts.last ?? "")])
            if st.isPublished(e) { groups[key]!.addresses = (groups[key]!.addresses ?? []) + [a] }
            else { groups[key]!.notReadyAddresses = (groups[key]!.notReadyAddresses ?? []) + [a] }
        }
        subsets = order.isEmpty ? nil : order.map { groups[$0]! }
    }
}

struct ExternalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "external", abstract: "Work with the external host: a machine on the underlay that is not a node.", subcommands: [ExternalExec.self])
}

struct ExternalExec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command on the external host (its network namespace), to reach NodePorts and externalIPs from outside the cluster.")

    @OptionGroup var cluster: ClusterOption
    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

    func run() throws {
        try requireRoot("minik external exec")
        guard !command.isEmpty else { throw CLIError("no command: minik external exec -- COMMAND [ARGS...]") }
        let name = try cluster.resolve()
        let ns = Naming.externalNetns(name)
        guard FileManager.default.fileExists(atPath: Naming.netnsPath(ns)) else {
            throw CLIError("cluster \(name) has no external host (\(ns)); was it made by an older minik?")
        }
        throw ExitCode(try runIn(netns: Naming.netnsPath(ns), command: command))
    }
}
