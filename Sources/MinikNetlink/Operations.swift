// Netlink operations named after iproute2. Each doc comment gives the `ip`/`bridge`
// equivalent and what happens when the object already exists. Add fails with EEXIST,
// replace overwrites, and nothing here reads back or retries: `ensure` logic lives in the
// callers that know what the object should look like.
import CMinik
#if canImport(Glibc)
import Glibc
#endif

/// A MAC address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 6, "a MAC address has 6 bytes")
        self.bytes = bytes
    }

    public var description: String { bytes.map { String(format: "%02x", $0) }.joined(separator: ":") }
}

/// A link to create, as `ip link add` describes it.
public struct LinkSpec: Sendable {
    public enum Kind: Sendable {
        case bridge
        case dummy
        /// A veth pair; the peer may be created directly in another namespace.
        case veth(peer: VethPeer)
        case vxlan(VXLANSettings)
    }

    public var name: String
    public var kind: Kind
    public var mtu: Int?
    public var address: MACAddress?
    /// Enslave to this bridge at creation (`master`).
    public var masterIndex: Int32?
    public var up: Bool

    public init(name: String, kind: Kind, mtu: Int? = nil, address: MACAddress? = nil, masterIndex: Int32? = nil, up: Bool = true) {
        self.name = name
        self.kind = kind
        self.mtu = mtu
        self.address = address
        self.masterIndex = masterIndex
        self.up = up
    }
}

/// The other end of a veth pair. It is created down (see linkAdd).
public struct VethPeer: Sendable {
    public var name: String
    /// The namespace the peer is created in (IFLA_NET_NS_FD), or nil for the same one.
    public var namespaceFD: Int32?
    public var mtu: Int?
    /// The peer's MAC (IFLA_ADDRESS), or nil for a random one.
    public var address: MACAddress?

    public init(name: String, namespaceFD: Int32? = nil, mtu: Int? = nil, address: MACAddress? = nil) {
        self.name = name
        self.namespaceFD = namespaceFD
        self.mtu = mtu
        self.address = address
    }
}

public struct VXLANSettings: Sendable {
    public var vni: UInt32
    public var local: UInt32 // network order
    public var deviceIndex: Int32?
    public var port: UInt16
    public var learning: Bool

    /// `local` is an IPv4 address in network byte order.
    public init(vni: UInt32, local: UInt32, deviceIndex: Int32?, port: UInt16, learning: Bool) {
        self.vni = vni
        self.local = local
        self.deviceIndex = deviceIndex
        self.port = port
        self.learning = learning
    }
}

/// A link as the kernel reports it.
public struct LinkInfo: Sendable {
    public var index: Int32
    public var name: String
    public var kind: String?
    public var masterIndex: Int32?
    public var mtu: Int
    public var isUp: Bool
    public var address: MACAddress?
}

/// An IPv4 route, as `ip route` describes it.
public struct RouteSpec: Sendable {
    /// Destination (network order) and prefix; prefix 0 is the default route.
    public var destination: UInt32
    public var prefix: Int
    public var gateway: UInt32?
    public var outputIndex: Int32?
    /// `onlink`: the gateway is reachable on the device even if no prefix covers it.
    public var onlink: Bool

    public init(destination: UInt32, prefix: Int, gateway: UInt32? = nil, outputIndex: Int32? = nil, onlink: Bool = false) {
        self.destination = destination
        self.prefix = prefix
        self.gateway = gateway
        self.outputIndex = outputIndex
        self.onlink = onlink
    }
}

extension NetlinkSocket {
    static let createExcl = Int32(NLM_F_CREATE) | Int32(NLM_F_EXCL)
    static let createReplace = Int32(NLM_F_CREATE) | Int32(NLM_F_REPLACE)

    private func ifinfo(index: Int32 = 0, up: Bool? = nil) -> ifinfomsg {
        var ifi = ifinfomsg()
        ifi.ifi_family = UInt8(AF_UNSPEC)
        ifi.ifi_index = index
        if let up {
            ifi.ifi_change = UInt32(IFF_UP)
            ifi.ifi_flags = up ? UInt32(IFF_UP) : 0
        }
        return ifi
    }

    /// `ip link add NAME type KIND [mtu M] [address MAC] [master B] [up]`, for veth with
    /// `peer name P netns NS`. Fails with EEXIST when a link of that name exists.
    public func linkAdd(_ link: LinkSpec) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_NEWLINK, flags: NetlinkSocket.createExcl)
        m.header(ifinfo(up: link.up ? true : nil))
        m.put(IFLA_IFNAME, string: link.name)
        if let mtu = link.mtu { m.put(IFLA_MTU, u32: UInt32(mtu)) }
        if let mac = link.address { m.put(IFLA_ADDRESS, bytes: mac.bytes) }
        if let master = link.masterIndex { m.put(IFLA_MASTER, u32: UInt32(bitPattern: master)) }
        m.nest(IFLA_LINKINFO) {
            switch link.kind {
            case .bridge:
                m.put(IFLA_INFO_KIND, string: "bridge")
            case .dummy:
                m.put(IFLA_INFO_KIND, string: "dummy")
            case .veth(let peer):
                m.put(IFLA_INFO_KIND, string: "veth")
                m.nest(IFLA_INFO_DATA) {
                    m.nest(VETH_INFO_PEER) {
                        // The peer's own ifinfomsg, then its attributes. The peer cannot be
                        // brought up in this request: veth_open() fails with ENOTCONN
                        // until both ends are paired, which happens after the peer is
                        // configured. Bring it up with linkSetUp in its namespace.
                        m.header(ifinfo())
                        m.put(IFLA_IFNAME, string: peer.name)
                        if let mtu = peer.mtu { m.put(IFLA_MTU, u32: UInt32(mtu)) }
                        if let mac = peer.address { m.put(IFLA_ADDRESS, bytes: mac.bytes) }
                        if let fd = peer.namespaceFD { m.put(IFLA_NET_NS_FD, u32: UInt32(bitPattern: fd)) }
                    }
                }
            case .vxlan(let v):
                m.put(IFLA_INFO_KIND, string: "vxlan")
                m.nest(IFLA_INFO_DATA) {
                    m.put(IFLA_VXLAN_ID, u32: v.vni)
                    m.put(IFLA_VXLAN_LOCAL, ipv4: v.local)
                    if let dev = v.deviceIndex { m.put(IFLA_VXLAN_LINK, u32: UInt32(bitPattern: dev)) }
                    m.put(IFLA_VXLAN_PORT, u16: v.port.bigEndian)
                    m.put(IFLA_VXLAN_LEARNING, u8: v.learning ? 1 : 0)
                }
            }
        }
        try request(m, "ip link add \(link.name)")
    }

    /// `ip link del NAME`. Fails with ENODEV when it does not exist.
    public func linkDel(name: String) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_DELLINK, flags: 0)
        m.header(ifinfo())
        m.put(IFLA_IFNAME, string: name)
        try request(m, "ip link del \(name)")
    }

    /// `ip link set dev INDEX up|down`.
    public func linkSetUp(index: Int32, up: Bool = true) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_NEWLINK, flags: 0)
        m.header(ifinfo(index: index, up: up))
        try request(m, "ip link set index \(index) \(up ? "up" : "down")")
    }

    /// `ip link show NAME`: nil when there is no such link.
    public func linkGet(name: String) throws(NetlinkError) -> LinkInfo? {
        let m = NetlinkMessage(type: RTM_GETLINK, flags: 0)
        m.header(ifinfo())
        m.put(IFLA_IFNAME, string: name)
        do {
            return try query(m, "ip link show \(name)").first.flatMap(Self.linkInfo)
        } catch let e where e.isNotFound {
            return nil
        }
    }

    private static func linkInfo(_ r: NetlinkReply) -> LinkInfo? {
        guard let ifi = r.headerAs(ifinfomsg.self), let name = r.string(IFLA_IFNAME) else { return nil }
        let kind = r.attributes[UInt16(IFLA_LINKINFO)]
            .flatMap { NetlinkReply.nested($0)[UInt16(IFLA_INFO_KIND)] }
            .map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let mac = r.attributes[UInt16(IFLA_ADDRESS)].flatMap { $0.count == 6 ? MACAddress($0) : nil }
        return LinkInfo(index: ifi.ifi_index, name: name, kind: kind,
                        masterIndex: r.u32(IFLA_MASTER).map { Int32(bitPattern: $0) },
                        mtu: Int(r.u32(IFLA_MTU) ?? 0), isUp: ifi.ifi_flags & UInt32(IFF_UP) != 0,
                        address: mac)
    }

    /// `ip addr add A/P dev INDEX`. Fails with EEXIST when the address is there.
    public func addrAdd(index: Int32, address: UInt32, prefix: Int) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_NEWADDR, flags: NetlinkSocket.createExcl)
        var ifa = ifaddrmsg()
        ifa.ifa_family = UInt8(AF_INET)
        ifa.ifa_prefixlen = UInt8(prefix)
        ifa.ifa_index = UInt32(bitPattern: index)
        m.header(ifa)
        m.put(IFA_LOCAL, ipv4: address)
        m.put(IFA_ADDRESS, ipv4: address)
        if prefix < 31 {
            let hostMask: UInt32 = prefix == 0 ? .max : (UInt32.max >> UInt32(prefix))
            let broadcast = UInt32(bigEndian: address) | hostMask
            m.put(IFA_BROADCAST, ipv4: broadcast.bigEndian)
        }
        try request(m, "ip addr add \(Self.ipString(address))/\(prefix) dev \(index)")
    }

    private func routeMessage(_ r: RouteSpec, flags: Int32, type: Int) -> NetlinkMessage {
        let m = NetlinkMessage(type: type, flags: flags)
        var rt = rtmsg()
        rt.rtm_family = UInt8(AF_INET)
        rt.rtm_dst_len = UInt8(r.prefix)
        rt.rtm_table = UInt8(RT_TABLE_MAIN.rawValue)
        rt.rtm_protocol = UInt8(RTPROT_STATIC)
        rt.rtm_scope = UInt8(r.gateway == nil ? RT_SCOPE_LINK.rawValue : RT_SCOPE_UNIVERSE.rawValue)
        rt.rtm_type = UInt8(RTN_UNICAST)
        if r.onlink { rt.rtm_flags = UInt32(RTNH_F_ONLINK) }
        m.header(rt)
        if r.prefix > 0 { m.put(Int(RTA_DST.rawValue), ipv4: r.destination) }
        if let gw = r.gateway { m.put(Int(RTA_GATEWAY.rawValue), ipv4: gw) }
        if let oif = r.outputIndex { m.put(Int(RTA_OIF.rawValue), u32: UInt32(bitPattern: oif)) }
        return m
    }

    private static func routeText(_ r: RouteSpec) -> String {
        var s = r.prefix == 0 ? "default" : "\(ipString(r.destination))/\(r.prefix)"
        if let gw = r.gateway { s += " via \(ipString(gw))" }
        if let oif = r.outputIndex { s += " dev \(oif)" }
        if r.onlink { s += " onlink" }
        return s
    }

    /// `ip route add ROUTE`. Fails with EEXIST when a route to that prefix exists.
    public func routeAdd(_ r: RouteSpec) throws(NetlinkError) {
        try request(routeMessage(r, flags: NetlinkSocket.createExcl, type: RTM_NEWROUTE), "ip route add \(Self.routeText(r))")
    }

    /// `ip route replace ROUTE`: creates it or overwrites the route to that prefix.
    public func routeReplace(_ r: RouteSpec) throws(NetlinkError) {
        try request(routeMessage(r, flags: NetlinkSocket.createReplace, type: RTM_NEWROUTE), "ip route replace \(Self.routeText(r))")
    }

    /// `ip route del ROUTE`. Fails with ESRCH when there is no such route.
    public func routeDel(_ r: RouteSpec) throws(NetlinkError) {
        try request(routeMessage(r, flags: 0, type: RTM_DELROUTE), "ip route del \(Self.routeText(r))")
    }

    /// `bridge link set dev INDEX hairpin on`: the bridge may send a frame back out of the
    /// port it came in on (a pod reaching itself through a service), as the CNI bridge
    /// plugin's hairpinMode does.
    public func bridgePortHairpin(index: Int32, on: Bool = true) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_SETLINK, flags: 0)
        var ifi = ifinfomsg()
        ifi.ifi_family = UInt8(AF_BRIDGE)
        ifi.ifi_index = index
        m.header(ifi)
        m.nest(IFLA_PROTINFO) {
            m.put(Int(IFLA_BRPORT_MODE), u8: on ? 1 : 0)
        }
        try request(m, "bridge link set dev \(index) hairpin \(on ? "on" : "off")")
    }

    /// `ip neigh replace IP lladdr MAC dev INDEX nud permanent`: creates or overwrites.
    public func neighReplace(index: Int32, address: UInt32, mac: MACAddress) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_NEWNEIGH, flags: NetlinkSocket.createReplace)
        var nd = ndmsg()
        nd.ndm_family = UInt8(AF_INET)
        nd.ndm_ifindex = index
        nd.ndm_state = UInt16(NUD_PERMANENT)
        m.header(nd)
        m.put(NDA_DST, ipv4: address)
        m.put(NDA_LLADDR, bytes: mac.bytes)
        try request(m, "ip neigh replace \(Self.ipString(address)) lladdr \(mac) dev \(index)")
    }

    /// `bridge fdb replace MAC dev INDEX dst IP self permanent`: the VXLAN forwarding entry
    /// for a remote VTEP; creates or overwrites the entry for that MAC.
    public func fdbReplace(index: Int32, mac: MACAddress, destination: UInt32) throws(NetlinkError) {
        let m = NetlinkMessage(type: RTM_NEWNEIGH, flags: NetlinkSocket.createReplace)
        var nd = ndmsg()
        nd.ndm_family = UInt8(AF_BRIDGE)
        nd.ndm_ifindex = index
        nd.ndm_state = UInt16(NUD_PERMANENT)
        nd.ndm_flags = UInt8(NTF_SELF)
        m.header(nd)
        m.put(NDA_LLADDR, bytes: mac.bytes)
        m.put(NDA_DST, ipv4: destination)
        try request(m, "bridge fdb replace \(mac) dev \(index) dst \(Self.ipString(destination))")
    }

    static func ipString(_ networkOrder: UInt32) -> String {
        let v = UInt32(bigEndian: networkOrder)
        return "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
    }
}
