// Services on the command line: `get svc`, `get endpoints`, `describe svc` (kubectl's
// columns and wording), and `external exec` (a command on the underlay's external host).
import ArgumentParser
import Foundation
import MinikRuntime
import MinikSpec
import Yams

extension Get {
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

    func emit<T: Encodable>(_ value: T) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        let data = try e.encode(value)
        if output == .json {
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(try Yams.dump(object: try JSONSerialization.jsonObject(with: data), sortKeys: true), terminator: "")
        }
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
    if s.isExternallyAccessible { line("External Traffic Policy", s.externalTrafficPolicy?.rawValue ?? "Cluster") }
    line("Internal Traffic Policy", s.internalTrafficPolicy?.rawValue ?? "Cluster")
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
