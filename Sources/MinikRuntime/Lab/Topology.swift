// The cluster drawn: nodes and the underlay, each node's eth0, cni0, flannel.1 and the
// pods' veths, the pods themselves, the tunnels between VTEPs, host-gw routes, and the
// services with their endpoints. Built from the cluster's state (pods, services, nodes)
// and the kernel (links, FDB, routes) by Topology.read; rendered here as Graphviz DOT,
// Mermaid (for Markdown) or JSON. The rendering is pure.
import Foundation
import MinikNetlink
import MinikSpec

public struct Topology: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case underlay, external, node, uplink, bridge, vtep, veth, pod, service
    }

    public struct Vertex: Sendable, Equatable, Codable {
        public var id: String
        public var kind: Kind
        public var label: String
        /// The box it is drawn in: a node's name, "underlay", "services"; nil for none.
        public var group: String?
        /// For pods: Running, Pending, NotReady...; for links: up, down, no-carrier.
        public var state: String
    }

    public enum Style: String, Sendable, Codable {
        /// A cable or a veth: both ends are one link.
        case wire
        /// A VXLAN tunnel from the FDB of one VTEP to another.
        case tunnel
        /// A host-gw route to another node's pod subnet.
        case route
        /// A service to one of its endpoints.
        case endpoint
    }

    public struct Edge: Sendable, Equatable, Codable {
        public var from: String
        public var to: String
        public var style: Style
        public var label: String
        /// A link that is down, an endpoint that is not ready, a tunnel one way only.
        public var broken: Bool
        /// A tunnel both VTEPs have an FDB entry for.
        public var bothWays: Bool = false
    }

    public struct Group: Sendable, Equatable, Codable {
        public var id: String
        public var label: String
    }

    public var cluster: String
    public var groups: [Group] = []
    public var vertices: [Vertex] = []
    public var edges: [Edge] = []

    public init(cluster: String) { self.cluster = cluster }

    /// An id every renderer accepts: letters, digits and underscores.
    public static func id(_ parts: String...) -> String {
        "v_" + parts.joined(separator: "_").map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    }

    // MARK: - DOT

    public func dot() -> String {
        var out = ["digraph \"minik \(Self.dotEscape(cluster))\" {",
                   "  graph [rankdir=LR, compound=true, fontname=\"Helvetica\", label=\"cluster \(Self.dotEscape(cluster))\", labelloc=t];",
                   "  node [fontname=\"Helvetica\", fontsize=10, style=filled, fillcolor=white];",
                   "  edge [fontname=\"Helvetica\", fontsize=9];"]
        for g in groups {
            out.append("  subgraph \"cluster_\(g.id)\" {")
            out.append("    label=\"\(Self.dotEscape(g.label))\"; style=rounded; color=gray50;")
            for v in vertices where v.group == g.id { out.append("    " + dotVertex(v)) }
            out.append("  }")
        }
        for v in vertices where v.group == nil || !groups.contains(where: { $0.id == v.group }) { out.append("  " + dotVertex(v)) }
        for e in edges {
            var attrs = ["label=\"\(Self.dotEscape(e.label))\""]
            switch e.style {
            case .wire: attrs.append("dir=none")
            case .tunnel: attrs += ["style=dashed", "color=blue"] + (e.bothWays ? ["dir=both"] : [])
            case .route: attrs += ["style=dotted", "color=darkgreen"]
            case .endpoint: attrs += ["style=dashed", "color=gray40"]
            }
            if e.broken { attrs += ["color=red", "fontcolor=red", "penwidth=2"] }
            out.append("  \(e.from) -> \(e.to) [\(attrs.joined(separator: ", "))];")
        }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    private func dotVertex(_ v: Vertex) -> String {
        let shape: String
        switch v.kind {
        case .pod: shape = "box, style=\"rounded,filled\""
        case .service: shape = "hexagon"
        case .bridge, .underlay: shape = "box"
        case .node, .external: shape = "box3d"
        default: shape = "ellipse"
        }
        return "\(v.id) [label=\"\(Self.dotEscape(v.label))\", shape=\(shape), fillcolor=\"\(Self.colour(v))\"];"
    }

    static func dotEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Pods by state (green running and ready, yellow not ready or pending, red failed),
    /// links down in red.
    public static func colour(_ v: Vertex) -> String {
        switch v.state {
        case "Running": return "#c8f0c8"
        case "NotReady", "Pending", "ContainerCreating": return "#fff2b3"
        case "Failed", "CrashLoopBackOff", "Error", "down", "no-carrier": return "#f8c0c0"
        case "Succeeded": return "#dddddd"
        default:
            switch v.kind {
            case .service: return "#d8e4ff"
            case .vtep: return "#dde8ff"
            case .bridge, .underlay: return "#eeeeee"
            default: return "white"
            }
        }
    }

    // MARK: - Mermaid

    public func mermaid() -> String {
        var out = ["flowchart LR"]
        func vertex(_ v: Vertex) -> String {
            let label = Self.mermaidEscape(v.label)
            switch v.kind {
            case .pod: return "\(v.id)(\"\(label)\")"
            case .service: return "\(v.id){{\"\(label)\"}}"
            case .vtep, .veth, .uplink: return "\(v.id)([\"\(label)\"])"
            default: return "\(v.id)[\"\(label)\"]"
            }
        }
        for g in groups {
            out.append("  subgraph \(g.id) [\"\(Self.mermaidEscape(g.label))\"]")
            for v in vertices where v.group == g.id { out.append("    " + vertex(v)) }
            out.append("  end")
        }
        for v in vertices where v.group == nil || !groups.contains(where: { $0.id == v.group }) { out.append("  " + vertex(v)) }
        for e in edges {
            let label = e.label.isEmpty ? "" : "|\"\(Self.mermaidEscape(e.label))\"|"
            let arrow: String
            switch e.style {
            case .wire: arrow = "---"
            case .tunnel: arrow = e.bothWays ? "<-.->" : "-.->"
            case .endpoint: arrow = "-.->"
            case .route: arrow = "==>"
            }
            out.append("  \(e.from) \(arrow)\(label) \(e.to)")
        }
        var classes: [String: [String]] = [:]
        for v in vertices {
            let c = Self.colour(v)
            if c != "white" { classes["c" + c.dropFirst(), default: []].append(v.id) }
        }
        for (name, ids) in classes.sorted(by: { $0.key < $1.key }) {
            out.append("  classDef \(name) fill:#\(name.dropFirst())")
            out.append("  class \(ids.joined(separator: ",")) \(name)")
        }
        for (i, e) in edges.enumerated() where e.broken { out.append("  linkStyle \(i) stroke:red,stroke-width:2px") }
        return out.joined(separator: "\n") + "\n"
    }

    static func mermaidEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "\"", with: "#quot;").replacingOccurrences(of: "\n", with: "<br/>")
    }

    public func json() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try enc.encode(JSONForm(cluster: cluster, groups: groups, vertices: vertices, edges: edges)), as: UTF8.self)
    }

    struct JSONForm: Codable {
        var cluster: String
        var groups: [Group]
        var vertices: [Vertex]
        var edges: [Edge]
    }
}

extension Topology {
    /// A node of the cluster as the topology needs it, with its kernel view.
    public struct NodeInput: Sendable {
        public var name: String
        /// Its index in the cluster (its underlay port is "<cluster>-<index>").
        public var index: Int
        public var internalIP: IPv4Address
        public var podCIDR: IPv4CIDR
        public var kernel: KernelView

        public init(name: String, index: Int, internalIP: IPv4Address, podCIDR: IPv4CIDR, kernel: KernelView) {
            self.name = name
            self.index = index
            self.internalIP = internalIP
            self.podCIDR = podCIDR
            self.kernel = kernel
        }
    }

    public struct PodInput: Sendable {
        public var key: String
        public var node: String
        public var ip: IPv4Address?
        public var hostVeth: String
        public var state: String

        public init(key: String, node: String, ip: IPv4Address?, hostVeth: String, state: String) {
            self.key = key
            self.node = node
            self.ip = ip
            self.hostVeth = hostVeth
            self.state = state
        }
    }

    /// Builds the topology. Links are what the kernel has: a veth no pod owns is drawn
    /// as such; a pod whose veth is gone has no wire; a tunnel exists where the FDB says.
    public static func build(cluster: String, underlay: KernelView, underlaySubnet: IPv4CIDR, nodes: [NodeInput],
                             pods: [PodInput], services: [ServiceState]) -> Topology {
        var t = Topology(cluster: cluster)
        t.groups.append(Group(id: "underlay", label: "underlay \(underlaySubnet) (netns \(Naming.underlayNetns(cluster)))"))
        let bridgeName = Naming.underlayBridge(cluster)
        let bridge = id("underlay", bridgeName)
        t.vertices.append(Vertex(id: bridge, kind: .underlay, label: "\(bridgeName)\n\(underlaySubnet.address(1))", group: "underlay",
                                 state: underlay.link(named: bridgeName)?.isUp == false ? "down" : "up"))
        let byIP = Dictionary(nodes.map { ($0.internalIP.value, $0.name) }, uniquingKeysWith: { a, _ in a })
        var tunnels: [(from: String, to: String, vni: UInt32, port: UInt16)] = []
        func linkState(_ l: KernelView.Link) -> String { !l.isUp ? "down" : (l.hasCarrier ? "up" : "no-carrier") }

        for n in nodes {
            let g = id("node", n.name)
            t.groups.append(Group(id: g, label: "node \(n.name)  \(n.internalIP)  podCIDR \(n.podCIDR)"))
            let k = n.kernel
            if let eth0 = k.link(named: Naming.nodeUplink) {
                let v = id(n.name, eth0.name)
                t.vertices.append(Vertex(id: v, kind: .uplink, label: "eth0\n\(n.internalIP)", group: g, state: linkState(eth0)))
                let port = underlay.link(named: Naming.underlayPort(cluster, nodeIndex: n.index))
                t.edges.append(Edge(from: v, to: bridge, style: .wire, label: port?.name ?? "",
                                    broken: port.map { !$0.isUp } ?? true || !eth0.hasCarrier))
            }
            if let cni = k.link(named: Naming.bridge) {
                let gw = k.addresses.first { $0.index == cni.index }.map { " \(IPv4Address($0.address))/\($0.prefix)" } ?? ""
                t.vertices.append(Vertex(id: id(n.name, cni.name), kind: .bridge, label: "cni0\(gw)", group: g, state: linkState(cni)))
            }
            if let vtep = k.links.first(where: { $0.vxlan != nil }) {
                let vx = vtep.vxlan!
                t.vertices.append(Vertex(id: id(n.name, vtep.name), kind: .vtep,
                                         label: "\(vtep.name)\nVNI \(vx.vni) udp/\(vx.port)", group: g, state: linkState(vtep)))
                // A tunnel per FDB entry with a remote underlay address that is a node.
                for e in k.fdb where e.index == vtep.index {
                    guard let dst = e.destination, let peer = byIP[dst], peer != n.name,
                          !tunnels.contains(where: { $0.from == n.name && $0.to == peer }) else { continue }
                    tunnels.append((n.name, peer, vx.vni, vx.port))
                }
            }
            // host-gw: routes to another node's pod subnet through its underlay address.
            for r in k.routes where r.table == 254 && r.prefix > 0 {
                guard let gw = r.gateway, let peer = byIP[gw], peer != n.name,
                      r.outputIndex == k.link(named: Naming.nodeUplink)?.index else { continue }
                t.edges.append(Edge(from: id(n.name, Naming.nodeUplink), to: id(peer, Naming.nodeUplink), style: .route,
                                    label: "host-gw \(IPv4Address(r.destination))/\(r.prefix) via \(IPv4Address(gw))", broken: false))
            }
            // Veths on cni0, each to its pod.
            let cniIndex = k.link(named: Naming.bridge)?.index
            for l in k.links where l.kind == "veth" && l.master != nil && l.master == cniIndex {
                let v = id(n.name, l.name)
                t.vertices.append(Vertex(id: v, kind: .veth, label: l.name, group: g, state: linkState(l)))
                t.edges.append(Edge(from: v, to: id(n.name, Naming.bridge), style: .wire, label: "", broken: !l.isUp))
                if let p = pods.first(where: { $0.node == n.name && $0.hostVeth == l.name }) {
                    t.edges.append(Edge(from: id("pod", p.key), to: v, style: .wire, label: "eth0", broken: !l.hasCarrier))
                }
            }
        }
        // One edge per pair of VTEPs: both ways, or one way (the other's FDB entry missing).
        for tun in tunnels {
            let back = tunnels.contains { $0.from == tun.to && $0.to == tun.from }
            if back && tun.from > tun.to { continue }
            guard let a = nodes.first(where: { $0.name == tun.from }), let b = nodes.first(where: { $0.name == tun.to }),
                  let va = a.kernel.links.first(where: { $0.vxlan != nil }), let vb = b.kernel.links.first(where: { $0.vxlan != nil }) else { continue }
            let label = back ? "VXLAN VNI \(tun.vni) udp/\(tun.port) \(a.internalIP) <-> \(b.internalIP)"
                : "VXLAN VNI \(tun.vni) udp/\(tun.port) \(a.internalIP) -> \(b.internalIP) only: no FDB entry back"
            t.edges.append(Edge(from: id(a.name, va.name), to: id(b.name, vb.name), style: .tunnel, label: label, broken: !back, bothWays: back))
        }
        for p in pods {
            let g = nodes.contains { $0.name == p.node } ? id("node", p.node) : nil
            t.vertices.append(Vertex(id: id("pod", p.key), kind: .pod, label: "\(p.key)\n\(p.ip?.description ?? "no IP")", group: g, state: p.state))
        }
        // The external host, on the underlay.
        if let ext = underlay.link(named: Naming.externalPort(cluster)) {
            let v = id("external")
            t.vertices.append(Vertex(id: v, kind: .external, label: "external host\n\(Naming.externalHostIP(underlaySubnet))", group: nil, state: linkState(ext)))
            t.edges.append(Edge(from: v, to: bridge, style: .wire, label: ext.name, broken: !ext.isUp))
        }
        if !services.isEmpty { t.groups.append(Group(id: "services", label: "services")) }
        for s in services.sorted(by: { $0.key < $1.key }) {
            let v = id("svc", s.key)
            let ports = s.spec.ports.map { p in "\(p.port)\(p.nodePort.map { ":\($0)" } ?? "")/\(p.proto)" }.joined(separator: ",")
            let address = s.spec.headless ? "None" : (s.spec.clusterIP?.description ?? "")
            t.vertices.append(Vertex(id: v, kind: .service, label: "svc \(s.key)\n\(s.spec.type.rawValue) \(address) \(ports)", group: "services", state: ""))
            var seen = Set<String>()
            for e in s.endpoints where seen.insert("\(e.pod)\u{0}\(e.port ?? 0)").inserted {
                let podKey = e.pod.contains("/") ? e.pod : "\(s.spec.namespace)/\(e.pod)"
                guard pods.contains(where: { $0.key == podKey }) else { continue }
                t.edges.append(Edge(from: v, to: id("pod", podKey), style: .endpoint, label: e.port.map { ":\($0)" } ?? "",
                                    broken: !s.isPublished(e)))
            }
        }
        return t
    }
}
