// `minik trace`: a packet's path hop by hop, from the kernel's state and no traffic. In
// each namespace it crosses, the decision is the kernel's object as read now (libnl
// caches through KernelView, netfilter through iptables-save): the route the lookup
// picks, the neighbour entry of the next hop, the bridge's FDB, the veth's other end,
// the rules the packet matches with their comments and verdicts, the DNAT with the
// tuple before and after, the VXLAN neighbour and FDB entries and the encapsulation, the
// underlay port, and on to the destination. A change made by hand shows; where the path
// fails (no route, a DROP, a link down, an FDB entry missing, an MTU too small), the hop
// that fails says why. Pure: the views and rules of each namespace are given.
import MinikNetlink
import MinikSpec

public enum Trace {
    /// A namespace the path may cross, as the trace sees it.
    public struct Place: Sendable {
        public enum Kind: String, Sendable, Codable { case pod, node, underlay, external }
        public var kind: Kind
        public var name: String
        public var netns: String
        /// For pods: their node and host veth.
        public var node: String?
        public var hostVeth: String?
        public var ip: IPv4Address?

        public init(kind: Kind, name: String, netns: String, node: String? = nil, hostVeth: String? = nil, ip: IPv4Address? = nil) {
            self.kind = kind
            self.name = name
            self.netns = netns
            self.node = node
            self.hostVeth = hostVeth
            self.ip = ip
        }

        public var label: String { "\(kind.rawValue) \(name)" }
    }

    public struct Hop: Sendable, Equatable, Codable {
        public var place: String
        public var interface: String
        /// The kind of kernel object that decided: route, neighbour, fdb, veth, bridge,
        /// netfilter, vxlan, link, local.
        public var object: String
        public var detail: String
        public var failed: Bool = false
    }

    public struct Result: Sendable, Equatable, Codable {
        public var hops: [Hop] = []
        public var delivered = false
        public var failure: String?
        /// What happens to the reply (conntrack un-NAT), in order.
        public var reply: [String] = []
        public var dnat: String?
    }

    /// Everything the walk reads, by namespace name.
    public struct World {
        public var places: [Place]
        public var kernel: (String) -> KernelView?
        public var netfilter: (String) -> [String: Netfilter.Table]
        public var underlayBridge: String
        public var vxlanPort: Int

        public init(places: [Place], kernel: @escaping (String) -> KernelView?, netfilter: @escaping (String) -> [String: Netfilter.Table],
                    underlayBridge: String, vxlanPort: Int) {
            self.places = places
            self.kernel = kernel
            self.netfilter = netfilter
            self.underlayBridge = underlayBridge
            self.vxlanPort = vxlanPort
        }

        func place(netns: String) -> Place? { places.first { $0.netns == netns } }
    }

    static func mac(_ b: [UInt8]?) -> String { b.map { $0.map { hex2($0) }.joined(separator: ":") } ?? "none" }
    static func hex2(_ v: UInt8) -> String { let s = String(v, radix: 16); return s.count == 1 ? "0" + s : s }
    static func ip(_ v: UInt32) -> String { IPv4Address(v).description }

    static func nudText(_ s: UInt16) -> String {
        var parts: [String] = []
        for (bit, name) in [(0x80, "PERMANENT"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"), (0x10, "PROBE"),
                            (0x20, "FAILED"), (0x40, "NOARP"), (0x01, "INCOMPLETE")] where Int(s) & bit != 0 {
            parts.append(name)
        }
        return parts.isEmpty ? "NONE" : parts.joined(separator: ",")
    }

    /// The route the kernel's lookup picks for `dst`: the local table first, then main;
    /// the longest prefix wins.
    public static func lookup(_ view: KernelView, _ dst: IPv4Address) -> KernelView.Route? {
        for table: UInt32 in [255, 254] {
            let candidates = view.routes.filter { r in
                guard r.table == table else { return false }
                if table == 255 && r.type != 2 { return false }  // local table: local addresses only
                let mask: UInt32 = r.prefix == 0 ? 0 : UInt32.max << UInt32(32 - r.prefix)
                return dst.value & mask == r.destination & mask
            }
            if let best = candidates.max(by: { $0.prefix < $1.prefix }) { return best }
        }
        return nil
    }

    static func routeText(_ v: KernelView, _ r: KernelView.Route) -> String {
        var s = r.prefix == 0 ? "default" : "\(ip(r.destination))/\(r.prefix)"
        switch r.type {
        case 2: s = "local \(s)"
        case 6: s = "blackhole \(s)"
        case 7: s = "unreachable \(s)"
        case 8: s = "prohibit \(s)"
        default: break
        }
        if let g = r.gateway { s += " via \(ip(g))" }
        if let o = r.outputIndex { s += " dev \(v.link(o)?.name ?? "if\(o)")" }
        if r.onlink { s += " onlink" }
        s += r.table == 255 ? " (table local)" : " (table main)"
        return s
    }

    /// Follows a packet from `start` (a pod, node or the external host) to its
    /// destination, or to the hop where it fails.
    public static func run(_ world: World, from start: Place, packet initial: Netfilter.Packet) -> Result {
        var result = Result()
        var packet = initial
        var here = start
        var inInterface: String? = nil  // nil: locally generated
        var outer: (src: IPv4Address, dst: IPv4Address, vni: UInt32)? = nil
        var guardCount = 0

        func hop(_ object: String, _ iface: String, _ detail: String, failed: Bool = false) {
            result.hops.append(Hop(place: here.label, interface: iface, object: object, detail: detail, failed: failed))
            if failed && result.failure == nil { result.failure = "\(here.label) \(iface): \(detail)" }
        }
        func fail(_ object: String, _ iface: String, _ detail: String) -> Result {
            hop(object, iface, detail, failed: true)
            return result
        }
        /// Netfilter hook in this namespace; returns false when it drops the packet.
        func hook(_ table: String, _ chain: String, _ p: inout Netfilter.Packet, local: Set<IPv4Address>, label: String? = nil) -> Bool {
            let tables = world.netfilter(here.netns)
            guard tables[table]?.chains[chain] != nil else { return true }
            let r = Netfilter.walk(tables, table: table, chain: chain, packet: p, localAddresses: local)
            let shown = r.steps.filter { !$0.action.hasPrefix("count") }
            for s in shown {
                let comment = s.comment.map { " \"\($0)\"" } ?? ""
                hop("netfilter", p.inInterface ?? p.outInterface ?? "-", "\(table):\(s.chain):\(comment) \(s.action)\(s.note.map { " (\($0))" } ?? "")")
            }
            if case .drop(let why) = r.verdict {
                hop("netfilter", p.inInterface ?? p.outInterface ?? "-", "dropped by \(why)", failed: true)
                return false
            }
            if let d = r.dnat {
                result.dnat = "\(d.from) -> \(d.to) in \(here.label) (\(table) \(chain))"
                result.reply.append("the reply from \(d.to) is un-DNATed back to \(d.from) by conntrack in \(here.label)")
            }
            if let s = r.snat { result.reply.append("the reply is un-SNATed in \(here.label) (\(s))") }
            p = r.packet
            return true
        }

        while guardCount < 48 {
            guardCount += 1
            guard let view = world.kernel(here.netns) else {
                return fail("namespace", "-", "cannot read the network state of \(here.netns)")
            }
            let local = Set(view.addresses.map { IPv4Address($0.address) })
            // Outer (VXLAN) or inner packet: what this namespace routes now.
            var p = packet
            if let o = outer { p = Netfilter.Packet(source: o.src, destination: o.dst, proto: "udp", sourcePort: 0, destinationPort: world.vxlanPort) }
            p.inInterface = inInterface
            p.outInterface = nil

            if here.kind == .node || here.kind == .external {
                if inInterface != nil {
                    if !hook("mangle", "PREROUTING", &p, local: local) { return result }
                    if !hook("nat", "PREROUTING", &p, local: local) { return result }
                } else {
                    if !hook("nat", "OUTPUT", &p, local: local) { return result }
                }
            }
            if outer == nil { packet.destination = p.destination; packet.destinationPort = p.destinationPort }

            guard let route = lookup(view, p.destination) else {
                return fail("route", inInterface ?? "-", "no route to \(p.destination) in table main")
            }
            if route.type == 6 || route.type == 7 || route.type == 8 {
                return fail("route", inInterface ?? "-", "\(routeText(view, route)): the kernel refuses it")
            }
            if route.type == 2 {
                // Ours: delivered, or a VXLAN packet for flannel.1 to open.
                if outer != nil, let vtep = view.links.first(where: { $0.vxlan != nil && Int($0.vxlan!.port) == world.vxlanPort }) {
                    hop("vxlan", vtep.name, "udp/\(world.vxlanPort) to \(p.destination) is \(vtep.name)'s (VNI \(vtep.vxlan!.vni)): decapsulated, the inner packet \(packet.source) -> \(packet.destination) arrives on \(vtep.name)")
                    if !vtep.isUp { return fail("link", vtep.name, "\(vtep.name) is down") }
                    outer = nil
                    inInterface = vtep.name
                    continue
                }
                if outer != nil {
                    return fail("vxlan", "-", "udp/\(world.vxlanPort) arrives at \(p.destination) but no VXLAN device listens on it")
                }
                if inInterface != nil && (here.kind == .node || here.kind == .external) {
                    if !hook("filter", "INPUT", &p, local: local) { return result }
                }
                hop("local", inInterface ?? "-", "\(routeText(view, route)): delivered to \(p.destination):\(p.destinationPort)/\(p.proto.uppercased()) in \(here.label)")
                result.delivered = true
                return result
            }
            guard let oif = route.outputIndex, let out = view.link(oif) else {
                return fail("route", inInterface ?? "-", "\(routeText(view, route)) has no device")
            }
            hop("route", out.name, routeText(view, route) + (inInterface == nil ? "" : ", forwarded from \(inInterface!)"))
            if !out.isUp { return fail("link", out.name, "\(out.name) is down") }
            if !out.hasCarrier { return fail("link", out.name, "\(out.name) has no carrier (its other end is down)") }
            p.outInterface = out.name
            if here.kind == .node || here.kind == .external {
                if inInterface != nil {
                    if !hook("filter", "FORWARD", &p, local: local) { return result }
                } else {
                    if !hook("filter", "OUTPUT", &p, local: local) { return result }
                }
                if !hook("mangle", "POSTROUTING", &p, local: local) { return result }
                if !hook("nat", "POSTROUTING", &p, local: local) { return result }
            }
            let nexthop = route.gateway ?? p.destination.value
            let neighbour = view.neighbours.first { $0.index == out.index && $0.address == nexthop && $0.mac != nil && $0.state & 0x20 == 0 }

            switch out.kind {
            case "vxlan":
                guard let vx = out.vxlan else { return fail("vxlan", out.name, "no VXLAN settings") }
                guard let n = neighbour else {
                    return fail("neighbour", out.name, "no neighbour entry for \(ip(nexthop)) on \(out.name): flannel programs one per remote node; without it the kernel cannot build the inner frame")
                }
                hop("neighbour", out.name, "\(ip(nexthop)) lladdr \(mac(n.mac)) \(nudText(n.state))")
                guard let entry = view.fdb.first(where: { $0.index == out.index && $0.mac == n.mac! && $0.destination != nil }) else {
                    return fail("fdb", out.name, "no FDB entry for \(mac(n.mac)) on \(out.name): the kernel does not know which node has that VTEP (bridge fdb show dev \(out.name))")
                }
                hop("fdb", out.name, "\(mac(n.mac)) dst \(ip(entry.destination!)) self permanent")
                let src = vx.local.map { IPv4Address($0) } ?? local.first { a in view.addresses.contains { $0.address == a.value && view.link($0.index)?.name == "eth0" } } ?? IPv4Address(0)
                outer = (src, IPv4Address(entry.destination!), vx.vni)
                hop("vxlan", out.name, "encapsulated: outer \(src) -> \(ip(entry.destination!)) udp/\(vx.port) VNI \(vx.vni), inner \(packet.source) -> \(packet.destination)")
                inInterface = nil
                continue
            case "bridge":
                // To a pod on this node: the neighbour, then the bridge's FDB.
                var dstMAC = neighbour?.mac
                if let n = neighbour {
                    hop("neighbour", out.name, "\(ip(nexthop)) lladdr \(mac(n.mac)) \(nudText(n.state))")
                } else {
                    hop("neighbour", out.name, "\(ip(nexthop)) not in the neighbour table yet: the kernel ARPs for it on \(out.name)")
                }
                let target = world.places.first { $0.kind == .pod && $0.ip?.value == nexthop && $0.node == here.name }
                if dstMAC == nil, let t = target, let pv = world.kernel(t.netns), let e = pv.link(named: "eth0") { dstMAC = e.mac }
                let port: KernelView.Link?
                if let m = dstMAC, let e = view.fdb.first(where: { $0.mac == m && $0.master == out.index }) {
                    port = view.link(e.index)
                    hop("fdb", out.name, "\(mac(m)) on port \(port?.name ?? "?") (bridge fdb, \(e.state & 0x80 != 0 ? "permanent" : "learned"))")
                } else {
                    port = target.flatMap { t in view.links.first { $0.name == t.hostVeth } }
                    hop("fdb", out.name, "\(mac(dstMAC)) not learned: the bridge floods the frame to every port\(port.map { "; the pod behind \($0.name) answers" } ?? "")")
                }
                guard let port, let t = target ?? world.places.first(where: { $0.kind == .pod && $0.hostVeth == port.name && $0.node == here.name }) else {
                    return fail("bridge", out.name, "no pod on \(out.name) has \(ip(nexthop))")
                }
                if !port.isUp { return fail("link", port.name, "\(port.name) is down") }
                hop("veth", port.name, "veth pair: \(port.name) is eth0 of \(t.label)")
                here = t
                inInterface = "eth0"
                continue
            case "veth" where here.kind == .pod:
                // From a pod to its node: through the host end, onto cni0.
                if let n = neighbour { hop("neighbour", out.name, "\(ip(nexthop)) lladdr \(mac(n.mac)) \(nudText(n.state))") }
                else { hop("neighbour", out.name, "\(ip(nexthop)) not in the neighbour table yet: the pod ARPs for it") }
                guard let nodeName = here.node, let node = world.places.first(where: { $0.kind == .node && $0.name == nodeName }),
                      let nv = world.kernel(node.netns), let hostEnd = nv.link(named: here.hostVeth ?? "") else {
                    return fail("veth", out.name, "the pod's veth has no host end on its node")
                }
                hop("veth", out.name, "veth pair: eth0 of \(here.label) is \(hostEnd.name) on \(node.label)")
                here = node
                if !hostEnd.isUp { return fail("link", hostEnd.name, "\(hostEnd.name) is down") }
                if let master = hostEnd.master, let bridge = nv.link(master) {
                    let toBridge = neighbour?.mac == nil || neighbour?.mac == bridge.mac
                    if toBridge {
                        hop("bridge", bridge.name, "\(hostEnd.name) is a port of \(bridge.name); the frame is to \(bridge.name)'s own address \(mac(bridge.mac)): up to \(node.label)'s IP layer")
                        inInterface = bridge.name
                    } else {
                        inInterface = bridge.name
                    }
                } else {
                    inInterface = hostEnd.name
                }
                continue
            default:
                // The node's eth0 (or the external host's): out onto the underlay bridge.
                if let n = neighbour { hop("neighbour", out.name, "\(ip(nexthop)) lladdr \(mac(n.mac)) \(nudText(n.state))") }
                else { hop("neighbour", out.name, "\(ip(nexthop)) not in the neighbour table yet: the kernel ARPs for it on \(out.name)") }
                guard let underlay = world.places.first(where: { $0.kind == .underlay }), let uv = world.kernel(underlay.netns) else {
                    return fail("link", out.name, "no underlay to cross")
                }
                let mtu = outer != nil ? packet.proto == "icmp" ? 0 : 0 : 0
                _ = mtu
                // Which port leads to the next hop: the node (or external host) with that address.
                guard let next = world.places.first(where: { ($0.kind == .node || $0.kind == .external) && $0.ip?.value == nexthop }) else {
                    return fail("neighbour", out.name, "\(ip(nexthop)) is not a node's or the external host's address: nothing on the underlay answers")
                }
                guard let port = uv.links.first(where: { $0.name == next.hostVeth }) , let mine = uv.links.first(where: { $0.name == here.hostVeth }) else {
                    return fail("link", out.name, "no underlay port for \(next.label)")
                }
                let previous = here
                here = underlay
                if !mine.isUp { return fail("link", mine.name, "\(mine.name), the underlay port of \(previous.label), is down: its eth0 has no carrier") }
                hop("bridge", world.underlayBridge, "\(previous.label) eth0 -> \(mine.name) -> \(world.underlayBridge) -> \(port.name) -> \(next.label) eth0")
                if !port.isUp { return fail("link", port.name, "\(port.name), the underlay port of \(next.label), is down") }
                here = next
                inInterface = "eth0"
                continue
            }
        }
        return fail("loop", "-", "more than 48 steps: a routing loop?")
    }
}
