// Reading a namespace's network state as the kernel has it, through libnl-route-3's
// caches: links (with their kind, bridge master, veth peer and VXLAN settings),
// addresses, routes of every table, neighbours and bridge/VXLAN FDB entries. One dump of
// each, turned into plain values that know nothing of libnl (and nothing of clusters):
// what `minik graph` draws and `trace` follows, so a change made by hand shows.
//
// libnl opens its own socket in the caller's namespace; here the socket is opened inside
// the target namespace first (on a throwaway thread, CMinik) and handed to libnl with
// nl_socket_set_fd, already bound, so no thread of ours ever changes namespace.
import CMinik
import CNLRoute
#if canImport(Glibc)
import Glibc
#endif

public struct KernelView: Sendable {
    public struct Link: Sendable, Equatable {
        public var index: Int32
        public var name: String
        /// "veth", "bridge", "vxlan", "tun", "dummy"...; nil for a device without a kind (lo).
        public var kind: String?
        public var master: Int32?
        /// IFLA_LINK: a veth's peer index (in the peer's namespace when linkNetnsID is set).
        public var peerIndex: Int32?
        public var linkNetnsID: Int32?
        public var mac: [UInt8]?
        public var mtu: Int
        public var isUp: Bool
        public var hasCarrier: Bool
        public var vxlan: VXLAN?
        /// For a bridge port: whether the bridge may send a frame back out of it (hairpin).
        public var hairpin: Bool? = nil

        public init(index: Int32, name: String, kind: String?, master: Int32? = nil, peerIndex: Int32? = nil, linkNetnsID: Int32? = nil,
                    mac: [UInt8]? = nil, mtu: Int = 1500, isUp: Bool = true, hasCarrier: Bool = true, vxlan: VXLAN? = nil) {
            self.index = index
            self.name = name
            self.kind = kind
            self.master = master
            self.peerIndex = peerIndex
            self.linkNetnsID = linkNetnsID
            self.mac = mac
            self.mtu = mtu
            self.isUp = isUp
            self.hasCarrier = hasCarrier
            self.vxlan = vxlan
        }
    }

    public struct VXLAN: Sendable, Equatable {
        public var vni: UInt32
        public var port: UInt16
        public var local: UInt32?

        public init(vni: UInt32, port: UInt16, local: UInt32? = nil) {
            self.vni = vni
            self.port = port
            self.local = local
        }
    }

    public struct Address: Sendable, Equatable {
        public var index: Int32
        /// IPv4, host byte order.
        public var address: UInt32
        public var prefix: Int

        public init(index: Int32, address: UInt32, prefix: Int) {
            self.index = index
            self.address = address
            self.prefix = prefix
        }
    }

    public struct Route: Sendable, Equatable {
        public var table: UInt32
        /// RTN_* (1 unicast, 2 local, 3 broadcast, 6 blackhole, 7 unreachable, 8 prohibit).
        public var type: UInt8
        public var destination: UInt32
        public var prefix: Int
        public var gateway: UInt32?
        public var outputIndex: Int32?
        public var onlink: Bool
        public var preferredSource: UInt32?
        public var scope: UInt8

        public init(table: UInt32, type: UInt8, destination: UInt32, prefix: Int, gateway: UInt32?, outputIndex: Int32?,
                    onlink: Bool, preferredSource: UInt32?, scope: UInt8) {
            self.table = table
            self.type = type
            self.destination = destination
            self.prefix = prefix
            self.gateway = gateway
            self.outputIndex = outputIndex
            self.onlink = onlink
            self.preferredSource = preferredSource
            self.scope = scope
        }
    }

    public struct Neighbour: Sendable, Equatable {
        public var index: Int32
        public var address: UInt32
        public var mac: [UInt8]?
        /// NUD_* bits (0x80 permanent, 0x02 reachable, 0x04 stale, 0x20 failed...).
        public var state: UInt16
    }

    /// A bridge or VXLAN forwarding entry (`bridge fdb`): a MAC behind a port, or for a
    /// VXLAN device behind a remote underlay address.
    public struct FDBEntry: Sendable, Equatable {
        public var index: Int32
        public var mac: [UInt8]
        public var destination: UInt32?
        public var master: Int32?
        public var state: UInt16
        public var flags: UInt8

        public init(index: Int32, mac: [UInt8], destination: UInt32?, master: Int32? = nil, state: UInt16 = 0x80, flags: UInt8 = 2) {
            self.index = index
            self.mac = mac
            self.destination = destination
            self.master = master
            self.state = state
            self.flags = flags
        }
    }

    public var links: [Link] = []
    public var addresses: [Address] = []
    public var routes: [Route] = []
    public var neighbours: [Neighbour] = []
    public var fdb: [FDBEntry] = []

    public init() {}

    public func link(_ index: Int32) -> Link? { links.first { $0.index == index } }
    public func link(named name: String) -> Link? { links.first { $0.name == name } }

    /// Dumps the namespace `namespaceFD` refers to.
    public static func read(namespaceFD: Int32) throws(NetlinkError) -> KernelView {
        let fd = minik_socket_in_netns(namespaceFD, AF_NETLINK, Int32(SOCK_RAW.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { throw NetlinkError("netlink socket in namespace", errno: -fd) }
        var local = sockaddr_nl()
        local.nl_family = sa_family_t(AF_NETLINK)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard bound == 0, let sk = nl_socket_alloc() else {
            let e = errno
            close(fd)
            throw NetlinkError("netlink bind", errno: e)
        }
        defer { nl_socket_free(sk) }  // closes fd too
        if nl_socket_set_fd(sk, NETLINK_ROUTE, fd) < 0 {
            close(fd)
            throw NetlinkError("libnl socket", errno: EINVAL)
        }
        var view = KernelView()
        try view.readLinks(sk)
        try view.readAddresses(sk)
        try view.readRoutes(sk)
        try view.readNeighbours(sk)
        return view
    }

    private static func cache(_ what: String, _ alloc: (UnsafeMutablePointer<OpaquePointer?>) -> Int32) throws(NetlinkError) -> OpaquePointer {
        var cache: OpaquePointer?
        let rc = alloc(&cache)
        guard rc >= 0, let cache else { throw NetlinkError(what, errno: EIO) }
        return cache
    }

    private static func each(_ cache: OpaquePointer, _ body: (OpaquePointer) -> Void) {
        var obj = nl_cache_get_first(cache)
        while let o = obj {
            body(o)
            obj = nl_cache_get_next(o)
        }
    }

    /// An IPv4 nl_addr as a host-order value (nil for another family or none).
    private static func ipv4(_ a: OpaquePointer?) -> UInt32? {
        guard let a, nl_addr_get_family(a) == AF_INET, nl_addr_get_len(a) == 4, let p = nl_addr_get_binary_addr(a) else { return nil }
        let b = p.assumingMemoryBound(to: UInt8.self)
        return UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
    }

    private static func mac(_ a: OpaquePointer?) -> [UInt8]? {
        guard let a, nl_addr_get_len(a) == 6, let p = nl_addr_get_binary_addr(a) else { return nil }
        return Array(UnsafeRawBufferPointer(start: p, count: 6))
    }

    private mutating func readLinks(_ sk: OpaquePointer) throws(NetlinkError) {
        let c = try Self.cache("ip link show") { rtnl_link_alloc_cache(sk, AF_UNSPEC, $0) }
        defer { nl_cache_free(c) }
        Self.each(c) { o in
            let l = o
            var netnsid: Int32 = 0
            let peer = rtnl_link_get_link(l)
            var vx: VXLAN?
            if rtnl_link_is_vxlan(l) != 0 {
                var vni: UInt32 = 0, port: UInt32 = 0
                var localAddr: OpaquePointer?
                _ = rtnl_link_vxlan_get_id(l, &vni)
                _ = rtnl_link_vxlan_get_port(l, &port)
                var local: UInt32?
                if rtnl_link_vxlan_get_local(l, &localAddr) == 0 {
                    local = Self.ipv4(localAddr)
                    nl_addr_put(localAddr)
                }
                vx = VXLAN(vni: vni, port: UInt16(truncatingIfNeeded: port), local: local)
            }
            let flags = rtnl_link_get_flags(l)
            links.append(Link(
                index: Int32(rtnl_link_get_ifindex(l)),
                name: String(cString: rtnl_link_get_name(l)),
                kind: rtnl_link_get_type(l).map { String(cString: $0) },
                master: rtnl_link_get_master(l) > 0 ? Int32(rtnl_link_get_master(l)) : nil,
                peerIndex: peer > 0 ? Int32(peer) : nil,
                linkNetnsID: rtnl_link_get_link_netnsid(l, &netnsid) == 0 ? netnsid : nil,
                mac: Self.mac(rtnl_link_get_addr(l)),
                mtu: Int(rtnl_link_get_mtu(l)),
                isUp: flags & UInt32(IFF_UP) != 0,
                hasCarrier: flags & 0x10000 /* IFF_LOWER_UP */ != 0,
                vxlan: vx))
        }
        links.sort { $0.index < $1.index }
        // Bridge ports' own settings come in the AF_BRIDGE dump (`bridge -d link`), asked
        // for only where there are ports (not in a pod's namespace).
        guard links.contains(where: { $0.master != nil }) else { return }
        let b = try Self.cache("bridge link show") { rtnl_link_alloc_cache(sk, AF_BRIDGE, $0) }
        defer { nl_cache_free(b) }
        Self.each(b) { l in
            let index = Int32(rtnl_link_get_ifindex(l))
            guard let i = links.firstIndex(where: { $0.index == index }), links[i].master != nil else { return }
            links[i].hairpin = rtnl_link_bridge_get_flags(l) & Int32(RTNL_BRIDGE_HAIRPIN_MODE.rawValue) != 0
        }
    }

    private mutating func readAddresses(_ sk: OpaquePointer) throws(NetlinkError) {
        let c = try Self.cache("ip addr show") { rtnl_addr_alloc_cache(sk, $0) }
        defer { nl_cache_free(c) }
        Self.each(c) { a in
            guard rtnl_addr_get_family(a) == AF_INET, let ip = Self.ipv4(rtnl_addr_get_local(a)) else { return }
            addresses.append(Address(index: Int32(rtnl_addr_get_ifindex(a)), address: ip, prefix: Int(rtnl_addr_get_prefixlen(a))))
        }
    }

    private mutating func readRoutes(_ sk: OpaquePointer) throws(NetlinkError) {
        let c = try Self.cache("ip route show table all") { rtnl_route_alloc_cache(sk, AF_INET, 0, $0) }
        defer { nl_cache_free(c) }
        Self.each(c) { r in
            let dst = rtnl_route_get_dst(r)
            var route = Route(table: rtnl_route_get_table(r), type: rtnl_route_get_type(r),
                              destination: Self.ipv4(dst) ?? 0, prefix: dst.map { Int(nl_addr_get_prefixlen($0)) } ?? 0,
                              gateway: nil, outputIndex: nil, onlink: false,
                              preferredSource: Self.ipv4(rtnl_route_get_pref_src(r)), scope: rtnl_route_get_scope(r))
            if rtnl_route_get_nnexthops(r) > 0, let nh = rtnl_route_nexthop_n(r, 0) {
                route.gateway = Self.ipv4(rtnl_route_nh_get_gateway(nh))
                let oif = rtnl_route_nh_get_ifindex(nh)
                route.outputIndex = oif > 0 ? Int32(oif) : nil
                route.onlink = rtnl_route_nh_get_flags(nh) & UInt32(RTNH_F_ONLINK) != 0
            }
            routes.append(route)
        }
    }

    private mutating func readNeighbours(_ sk: OpaquePointer) throws(NetlinkError) {
        let c = try Self.cache("ip neigh show") { rtnl_neigh_alloc_cache(sk, $0) }
        defer { nl_cache_free(c) }
        Self.each(c) { collectNeighbour($0) }
        // The AF_UNSPEC dump leaves the bridge family out: the FDB is a dump of its own
        // (`bridge fdb show`), asked of a cache whose family argument is AF_BRIDGE.
        let f = try Self.cache("bridge fdb show") { p in
            var cache: OpaquePointer?
            let rc = nl_cache_alloc_name("route/neigh", &cache)
            guard rc >= 0, let cache else { return rc }
            nl_cache_set_arg1(cache, AF_BRIDGE)
            let refill = nl_cache_refill(sk, cache)
            if refill < 0 { nl_cache_free(cache); return refill }
            p.pointee = cache
            return 0
        }
        defer { nl_cache_free(f) }
        Self.each(f) { collectNeighbour($0) }
    }

    private mutating func collectNeighbour(_ n: OpaquePointer) {
        let index = Int32(rtnl_neigh_get_ifindex(n))
            let state = UInt16(truncatingIfNeeded: rtnl_neigh_get_state(n))
            if rtnl_neigh_get_family(n) == AF_BRIDGE {
                guard let mac = Self.mac(rtnl_neigh_get_lladdr(n)) else { return }
                let master = rtnl_neigh_get_master(n)
                fdb.append(FDBEntry(index: index, mac: mac, destination: Self.ipv4(rtnl_neigh_get_dst(n)),
                                    master: master > 0 ? Int32(master) : nil, state: state,
                                    flags: UInt8(truncatingIfNeeded: rtnl_neigh_get_flags(n))))
            } else if rtnl_neigh_get_family(n) == AF_INET, let ip = Self.ipv4(rtnl_neigh_get_dst(n)) {
                neighbours.append(Neighbour(index: index, address: ip, mac: Self.mac(rtnl_neigh_get_lladdr(n)), state: state))
            }
    }
}
