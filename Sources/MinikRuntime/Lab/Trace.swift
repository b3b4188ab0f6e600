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
    public struct Place: Sendable, Codable {
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

    /// A netfilter rule the packet matched (a jump, a verdict, a change), in one place.
    public struct RuleHit: Sendable, Equatable, Hashable, Codable {
        public var place: String
        public var table: String
        public var chain: String
        /// As iptables-save prints it: "-A CHAIN ...".
        public var rule: String

        public init(place: String, table: String, chain: String, rule: String) {
            self.place = place
            self.table = table
            self.chain = chain
            self.rule = rule
        }
    }

    public struct Result: Sendable, Equatable, Codable {
        public var hops: [Hop] = []
        /// Every rule the model says the packet matches, for comparing with the kernel's trace.
        public var rules: [RuleHit] = []
        /// What `--live` saw, when it ran.
        public var live: Live?
        public var delivered = false
        public var failure: String?
        /// What happens to the reply (conntrack un-NAT), in order.
        public var reply: [String] = []
        public var dnat: String?
        /// Delivered, but the reply cannot come back (and why).
        public var replyFailure: String?
    }

    /// Everything the walk reads, by namespace name.
    public struct World {
        public var places: [Place]
        public var kernel: (String) -> KernelView?
        public var netfilter: (String) -> [String: Netfilter.Table]
        public var underlayBridge: String
        public var vxlanPort: Int
        /// Chains a live trace saw the kernel jump to (its random endpoint picks).
        public var chosen: Set<String> = []
        /// A namespace's sysctl ("net/bridge/bridge-nf-call-iptables"), nil when unknown.
        public var sysctl: (String, String) -> String? = { _, _ in nil }

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

    /// Follows a packet of `size` bytes (its IP length) from `start` (a pod, node or
    /// the external host) to its destination, or to the hop where it fails.
    public static func run(_ world: World, from start: Place, packet initial: Netfilter.Packet, size: Int = 84) -> Result {
        var result = Result()
        var packet = initial
        var here = start
        var inInterface: String? = nil  // nil: locally generated
        var outer: (src: IPv4Address, dst: IPv4Address, vni: UInt32)? = nil
        var steps = 0
        /// The bridge port the frame came in on, while it is in that node.
        var enteredPort: String?
        /// Where a DNAT happened (for the reply's way back).
        var dnatPlace: Place?

        func hop(_ object: String, _ iface: String, _ detail: String, failed: Bool = false) {
            result.hops.append(Hop(place: here.label, interface: iface, object: object, detail: detail, failed: failed))
            if failed && result.failure == nil { result.failure = "\(here.label) \(iface): \(detail)" }
        }
        func fail(_ object: String, _ iface: String, _ detail: String) -> Result {
            hop(object, iface, detail, failed: true)
            return result
        }
        /// The hooks passed where no rule acted, said once per group of hooks.
        var passed: [String] = []
        func flushPassed(_ iface: String) {
            guard !passed.isEmpty else { return }
            hop("netfilter", iface, "\(passed.joined(separator: ", ")): no rule acts on it")
            passed = []
        }
        /// A netfilter hook of this namespace; false when it drops the packet. Each rule
        /// that acts is a hop, with the chains that led to it.
        func hook(_ table: String, _ chain: String, _ p: inout Netfilter.Packet, local: Set<IPv4Address>) -> Bool {
            let tables = world.netfilter(here.netns)
            guard tables[table]?.chains[chain] != nil else { return true }
            var r = Netfilter.walk(tables, table: table, chain: chain, packet: p, localAddresses: local, chosen: world.chosen)
            // The kernel traces the packet, not the VXLAN packet around it (the mark does not
            // survive encapsulation): only the packet's own rules are compared.
            if outer == nil {
                for step in r.steps { result.rules.append(RuleHit(place: here.label, table: table, chain: step.chain, rule: step.rule)) }
            }
            let outbound = ["FORWARD", "OUTPUT", "POSTROUTING"].contains(chain)
            let iface = (outbound ? p.outInterface : p.inInterface) ?? "-"
            // MASQUERADE takes the outgoing interface's address.
            var masqueradedTo: IPv4Address?
            if let sn = r.snat, sn.hasPrefix("masqueraded"), let view = world.kernel(here.netns), let o = p.outInterface,
               let link = view.link(named: o), let a = view.addresses.first(where: { $0.index == link.index }) {
                masqueradedTo = IPv4Address(a.address)
                for i in r.steps.indices where r.steps[i].action == sn {
                    r.steps[i].action = "masqueraded: the source \(p.source) becomes \(masqueradedTo!), \(o)'s address"
                }
            }
            let acting = r.steps.filter(\.isDecisive)
            for n in r.notUnderstood { hop("netfilter", iface, "\(table) \(n)") }
            if acting.isEmpty { passed.append("\(table) \(chain)") } else { flushPassed(iface) }
            for s in acting {
                let path = (s.via + (s.via.last?.hasPrefix(s.chain) == true ? [] : [s.chain])).joined(separator: " > ")
                let comment = s.comment.map { " \"\($0)\"" } ?? ""
                hop("netfilter", iface, "\(table) \(path):\(comment) \(s.action)\(s.note.map { " (\($0))" } ?? "")")
            }
            if case .drop(let why) = r.verdict {
                passed.removeLast(acting.isEmpty ? 1 : 0)
                flushPassed(iface)
                hop("netfilter", iface, "dropped by \(why)", failed: true)
                return false
            }
            if let d = r.dnat {
                dnatPlace = here
                result.dnat = "\(d.from) -> \(d.to) in \(here.label) (\(table) \(chain))"
                result.reply.append("the reply from \(d.to) is un-DNATed back to \(d.from) by conntrack in \(here.label)")
            }
            if var s = r.snat {
                if let a = masqueradedTo, let o = p.outInterface {
                    s = "masqueraded: the source becomes \(a), \(o)'s address"
                    r.packet.source = a
                }
                result.reply.append("the reply is un-SNATed in \(here.label) (\(s))")
            }
            p = r.packet
            return true
        }
        /// From a bridge to the pod behind the port that has `dstMAC` (or the pod with
        /// `nexthop` on this node when the bridge has not learned it yet).
        func bridgeToPod(_ view: KernelView, _ bridge: KernelView.Link, dstMAC: [UInt8]?, nexthop: UInt32) -> Place? {
            let byIP = world.places.first { $0.kind == .pod && $0.ip?.value == nexthop && $0.node == here.name }
            // A neighbour entry older than the pod's sandbox: the frames go to a MAC nobody has.
            if let t = byIP, let m = dstMAC, let actual = world.kernel(t.netns)?.link(named: "eth0")?.mac, actual != m {
                hop("neighbour", bridge.name, "stale: \(ip(nexthop)) is cached as \(mac(m)), but eth0 of \(t.label) is \(mac(actual)) now (its sandbox was re-created): the frame goes to a MAC nobody has until the entry is probed again", failed: true)
                return nil
            }
            var port: KernelView.Link?
            if let m = dstMAC, let e = view.fdb.first(where: { $0.mac == m && $0.master == bridge.index }) {
                port = view.link(e.index)
                hop("fdb", bridge.name, "\(mac(m)) on port \(port?.name ?? "?") (bridge fdb show br \(bridge.name): \(e.state & 0x80 != 0 ? "permanent" : "learned"))")
            } else {
                port = byIP.flatMap { t in view.links.first { $0.name == t.hostVeth } }
                hop("fdb", bridge.name, "\(mac(dstMAC)) not learned on \(bridge.name): the bridge floods the frame to every port\(port.map { "; the pod behind \($0.name) takes it" } ?? "")")
            }
            guard let port, let t = world.places.first(where: { $0.kind == .pod && $0.hostVeth == port.name && $0.node == here.name }) else {
                hop("bridge", bridge.name, "no pod on \(bridge.name) has \(ip(nexthop))\(dstMAC.map { " or \(mac($0))" } ?? "")", failed: true)
                return nil
            }
            if port.name == enteredPort && port.hairpin == false {
                hop("bridge", port.name, "the frame would leave \(bridge.name) by \(port.name), the port it came in on, and hairpin mode is off there: \(bridge.name) drops it (bridge -d link show dev \(port.name))", failed: true)
                return nil
            }
            if !port.isUp {
                hop("link", port.name, "\(port.name), the port of \(t.label), is down", failed: true)
                return nil
            }
            hop("veth", port.name, "veth pair: \(port.name) on \(here.label) is eth0 of \(t.label)")
            return t
        }
        func neighbourHop(_ view: KernelView, _ out: KernelView.Link, _ nexthop: UInt32, who: String) -> KernelView.Neighbour? {
            let n = view.neighbours.first { $0.index == out.index && $0.address == nexthop && $0.mac != nil && $0.state & 0x20 == 0 }
            if let n { hop("neighbour", out.name, "\(ip(nexthop)) lladdr \(mac(n.mac)) \(nudText(n.state))") }
            else { hop("neighbour", out.name, "\(ip(nexthop)) is not in the neighbour table yet: \(who) ARPs for it on \(out.name)") }
            return n
        }

        while steps < 48 {
            steps += 1
            guard let view = world.kernel(here.netns) else {
                return fail("namespace", "-", "cannot read the network state of \(here.netns)")
            }
            let local = Set(view.addresses.map { IPv4Address($0.address) })
            // What this namespace routes: the outer VXLAN packet, or the packet itself.
            var p = packet
            if let o = outer { p = Netfilter.Packet(source: o.src, destination: o.dst, proto: "udp", sourcePort: 0, destinationPort: world.vxlanPort) }
            p.inInterface = inInterface
            let length = size + (outer == nil ? 0 : 50)
            let firewalled = here.kind == .node || here.kind == .external
            if firewalled {
                if inInterface != nil {
                    if !hook("mangle", "PREROUTING", &p, local: local) { return result }
                    if !hook("nat", "PREROUTING", &p, local: local) { return result }
                } else if !hook("nat", "OUTPUT", &p, local: local) {
                    return result
                }
                flushPassed(inInterface ?? "-")
            }
            if outer == nil { packet = Netfilter.Packet(source: p.source, destination: p.destination, proto: p.proto,
                                                        sourcePort: p.sourcePort, destinationPort: p.destinationPort) }

            guard let route = lookup(view, p.destination) else {
                return fail("route", inInterface ?? "-", "no route to \(p.destination) (ip route get \(p.destination): Network is unreachable)")
            }
            if [6, 7, 8].contains(route.type) {
                return fail("route", inInterface ?? "-", "\(routeText(view, route)): the kernel refuses to send it")
            }
            if route.type == 2 {
                if outer != nil {
                    // A VXLAN packet for this node: flannel.1 opens it.
                    guard let vtep = view.links.first(where: { $0.vxlan != nil && Int($0.vxlan!.port) == world.vxlanPort }) else {
                        return fail("vxlan", inInterface ?? "-", "udp/\(world.vxlanPort) arrives at \(p.destination) but no VXLAN device listens on it")
                    }
                    if firewalled && !hook("filter", "INPUT", &p, local: local) { return result }
                    flushPassed(inInterface ?? "-")
                    hop("vxlan", vtep.name, "udp/\(world.vxlanPort) to \(p.destination) is \(vtep.name)'s (VNI \(vtep.vxlan!.vni)): decapsulated, \(packet.source) -> \(packet.destination) arrives on \(vtep.name)")
                    if !vtep.isUp { return fail("link", vtep.name, "\(vtep.name) is down: the packet is dropped") }
                    outer = nil
                    inInterface = vtep.name
                    continue
                }
                if firewalled && inInterface != nil && !hook("filter", "INPUT", &p, local: local) { return result }
                flushPassed(inInterface ?? "-")
                hop("local", inInterface ?? "lo", "\(routeText(view, route)): delivered to \(p.destination):\(p.destinationPort)/\(p.proto.uppercased()) in \(here.label), from \(p.proto.lowercased() == "icmp" ? p.source.description : "\(p.source):\(p.sourcePort)")")
                result.delivered = true
                // A reply from a pod to a pod on the same bridge is bridged: only with
                // bridge-nf-call-iptables does conntrack see it and undo the DNAT.
                if let n = dnatPlace, n.kind == .node, start.kind == .pod, start.node == n.name, here.kind == .pod, here.node == n.name,
                   start.name != here.name, world.sysctl(n.netns, "net/bridge/bridge-nf-call-iptables") == "0" {
                    result.replyFailure = "the reply from \(here.label) to \(start.label) crosses cni0 on \(n.label) at layer 2, and net.bridge.bridge-nf-call-iptables is 0 there: conntrack never sees it, so it is not un-DNATed; \(start.label) gets an answer from \(p.destination):\(p.destinationPort), which it never asked, and resets the connection"
                    result.reply = result.reply.filter { !$0.contains("is un-DNATed back") } + [result.replyFailure!]
                }
                return result
            }
            guard let oif = route.outputIndex, let out = view.link(oif) else {
                return fail("route", inInterface ?? "-", "\(routeText(view, route)) names no device")
            }
            hop("route", out.name, "ip route get \(p.destination): \(routeText(view, route))" + (inInterface.map { ", forwarded from \($0)" } ?? ""))
            if !out.isUp { return fail("link", out.name, "\(out.name) is down") }
            if !out.hasCarrier { return fail("link", out.name, "\(out.name) has no carrier: its other end, or its cable, is down") }
            if length > out.mtu {
                return fail("link", out.name, "the packet is \(length) bytes\(outer == nil ? "" : " with VXLAN's 50") and \(out.name)'s MTU is \(out.mtu): too big (with DF set the sender gets ICMP fragmentation needed; without, it is fragmented)")
            }
            p.outInterface = out.name
            if firewalled {
                if !hook("filter", inInterface != nil ? "FORWARD" : "OUTPUT", &p, local: local) { return result }
                if !hook("mangle", "POSTROUTING", &p, local: local) { return result }
                if !hook("nat", "POSTROUTING", &p, local: local) { return result }
                flushPassed(out.name)
                // A source NAT changes the packet from here on.
                if outer == nil { packet.source = p.source }
            }
            let nexthop = route.gateway ?? p.destination.value

            switch out.kind {
            case "vxlan":
                guard let vx = out.vxlan else { return fail("vxlan", out.name, "no VXLAN settings") }
                guard let n = view.neighbours.first(where: { $0.index == out.index && $0.address == nexthop && $0.mac != nil }) else {
                    return fail("neighbour", out.name, "no neighbour entry for \(ip(nexthop)) on \(out.name): flannel programs one per remote node, and a VXLAN device cannot ARP for it")
                }
                hop("neighbour", out.name, "\(ip(nexthop)) lladdr \(mac(n.mac)) \(nudText(n.state))")
                guard let entry = view.fdb.first(where: { $0.index == out.index && $0.mac == n.mac! && $0.destination != nil }) else {
                    return fail("fdb", out.name, "no FDB entry for \(mac(n.mac)) on \(out.name): the kernel does not know which node has that VTEP, and drops the frame (bridge fdb show dev \(out.name))")
                }
                hop("fdb", out.name, "\(mac(n.mac)) dst \(ip(entry.destination!)) self permanent")
                let eth0 = view.link(named: "eth0")
                let src = vx.local.map { IPv4Address($0) }
                    ?? view.addresses.first { $0.index == eth0?.index }.map { IPv4Address($0.address) } ?? IPv4Address(0)
                outer = (src, IPv4Address(entry.destination!), vx.vni)
                hop("vxlan", out.name, "encapsulated in UDP: outer \(src) -> \(ip(entry.destination!)) port \(vx.port), VNI \(vx.vni); inner \(packet.source) -> \(packet.destination)")
                inInterface = nil
            case "bridge":
                let n = neighbourHop(view, out, nexthop, who: "the node")
                let target = world.places.first { $0.kind == .pod && $0.ip?.value == nexthop && $0.node == here.name }
                var dstMAC = n?.mac
                if dstMAC == nil, let t = target, let e = world.kernel(t.netns)?.link(named: "eth0") { dstMAC = e.mac }
                guard let pod = bridgeToPod(view, out, dstMAC: dstMAC, nexthop: nexthop) else { return result }
                here = pod
                inInterface = "eth0"
            case "veth" where here.kind == .pod:
                let n = neighbourHop(view, out, nexthop, who: "the pod")
                guard let nodeName = here.node, let node = world.places.first(where: { $0.kind == .node && $0.name == nodeName }),
                      let nv = world.kernel(node.netns), let hostEnd = nv.link(named: here.hostVeth ?? "") else {
                    return fail("veth", out.name, "the pod's veth has no host end on its node")
                }
                hop("veth", out.name, "veth pair: eth0 of \(here.label) is \(hostEnd.name) on \(node.label)")
                here = node
                enteredPort = hostEnd.name
                if !hostEnd.isUp { return fail("link", hostEnd.name, "\(hostEnd.name) is down") }
                guard let master = hostEnd.master, let bridge = nv.link(master) else {
                    inInterface = hostEnd.name
                    continue
                }
                let gatewayMAC = n?.mac ?? (route.gateway != nil ? bridge.mac : nil)
                if gatewayMAC == bridge.mac {
                    hop("bridge", bridge.name, "\(hostEnd.name) is a port of \(bridge.name); the frame is to \(bridge.name)'s own address \(mac(bridge.mac)): up to \(node.label)'s IP layer")
                    inInterface = bridge.name
                    continue
                }
                // Same subnet: the pod sends straight to the other pod's MAC; the bridge
                // forwards the frame and the node's IP layer never sees it.
                hop("bridge", bridge.name, "\(hostEnd.name) is a port of \(bridge.name); the frame is to \(mac(gatewayMAC)), not the bridge: forwarded at layer 2 (the node's iptables see it only with net.bridge.bridge-nf-call-iptables=1)")
                // With bridge netfilter the bridged packet passes the node's FORWARD chain
                // (kube-proxy's KUBE-FORWARD, the network policies).
                if world.sysctl(node.netns, "net/bridge/bridge-nf-call-iptables") != "0" {
                    var bridged = p
                    bridged.inInterface = bridge.name
                    bridged.outInterface = bridge.name
                    if !hook("filter", "FORWARD", &bridged, local: Set(nv.addresses.map { IPv4Address($0.address) })) { return result }
                    flushPassed(bridge.name)
                }
                var dstMAC = gatewayMAC
                if dstMAC == nil, let t = world.places.first(where: { $0.kind == .pod && $0.ip?.value == nexthop }),
                   let e = world.kernel(t.netns)?.link(named: "eth0") { dstMAC = e.mac }
                guard let pod = bridgeToPod(nv, bridge, dstMAC: dstMAC, nexthop: nexthop) else { return result }
                here = pod
                inInterface = "eth0"
            default:
                // A node's (or the external host's) eth0: onto the underlay bridge.
                _ = neighbourHop(view, out, nexthop, who: here.kind == .external ? "the host" : "the node")
                guard let underlay = world.places.first(where: { $0.kind == .underlay }), let uv = world.kernel(underlay.netns) else {
                    return fail("link", out.name, "no underlay to cross")
                }
                guard let next = world.places.first(where: { ($0.kind == .node || $0.kind == .external) && $0.ip?.value == nexthop }) else {
                    return fail("neighbour", out.name, "\(ip(nexthop)) is no node's and not the external host's address: nothing on the underlay answers its ARP")
                }
                guard let mine = uv.link(named: here.hostVeth ?? ""), let port = uv.link(named: next.hostVeth ?? "") else {
                    return fail("link", out.name, "no underlay port for \(here.label) or \(next.label)")
                }
                let previous = here
                here = underlay
                if !mine.isUp { return fail("link", mine.name, "\(mine.name), \(previous.label)'s port on \(world.underlayBridge), is down") }
                if !port.isUp { return fail("link", port.name, "\(port.name), \(next.label)'s port on \(world.underlayBridge), is down") }
                // The underlay may be narrower than eth0 thinks: the frame is dropped there,
                // silently (a bridge sends no ICMP error).
                if let narrow = [mine, port].min(by: { $0.mtu < $1.mtu }), length > narrow.mtu {
                    return fail("link", narrow.name, "the packet is \(length) bytes\(outer == nil ? "" : " with VXLAN's 50") and the underlay's MTU is \(narrow.mtu) (\(narrow.name)), below eth0's \(out.mtu): dropped on the way, silently (an MTU black hole)")
                }
                hop("bridge", world.underlayBridge, "\(previous.label) eth0 -> \(mine.name) -> \(world.underlayBridge) -> \(port.name) -> \(next.label) eth0")
                here = next
                enteredPort = nil
                inInterface = "eth0"
            }
        }
        return fail("loop", "-", "more than 48 steps: a routing loop?")
    }
}
