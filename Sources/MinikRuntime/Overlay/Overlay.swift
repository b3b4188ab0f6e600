// The overlay between nodes, flannel style.
//
// vxlan: each node has flannel.1 (VNI 1, UDP 8472, local = its underlay address,
// nolearning) holding its podCIDR's network address as a /32. For every remote node it
// gets, in flannel's order: a permanent neighbour entry (remote VTEP address -> remote
// VTEP MAC), an FDB entry (remote VTEP MAC -> remote underlay address), and last the
// route to the remote podCIDR via the remote VTEP address, onlink (the route goes last
// because it makes the kernel ARP for the gateway, which the neighbour entry answers).
// host-gw: a plain route to each remote podCIDR via the remote node's underlay address.
// The plan is pure; apply() turns it into netlink requests.
import Foundation
import MinikNetlink
import MinikSpec

public struct OverlayPlan: Equatable, Sendable {
    public enum Device: Equatable, Sendable { case vxlan, uplink }

    public enum Step: Equatable, Sendable {
        case neighbour(address: IPv4Address, mac: [UInt8])
        case fdb(mac: [UInt8], destination: IPv4Address)
        case route(destination: IPv4CIDR, via: IPv4Address, device: Device, onlink: Bool)
    }

    public var backend: OverlayBackend
    /// flannel.1's own MAC and address (vxlan only).
    public var vtepMAC: [UInt8]
    public var vtepAddress: IPv4Address
    public var steps: [Step]

    public static func make(for node: NodeSpec, in spec: ClusterSpec) -> OverlayPlan {
        var steps: [Step] = []
        for peer in spec.nodes where peer.name != node.name {
            switch spec.network.backend {
            case .vxlan:
                let mac = Naming.vtepMAC(nodeIndex: peer.index)
                steps.append(.neighbour(address: peer.podCIDR.network, mac: mac))
                steps.append(.fdb(mac: mac, destination: peer.internalIP))
                steps.append(.route(destination: peer.podCIDR, via: peer.podCIDR.network, device: .vxlan, onlink: true))
            case .hostGW:
                steps.append(.route(destination: peer.podCIDR, via: peer.internalIP, device: .uplink, onlink: false))
            }
        }
        return OverlayPlan(backend: spec.network.backend, vtepMAC: Naming.vtepMAC(nodeIndex: node.index),
                           vtepAddress: node.podCIDR.network, steps: steps)
    }

    /// Creates flannel.1 (vxlan) and programs every step in the node's namespace.
    public func apply(node: NetNamespace, uplinkIndex: Int32, underlayIP: IPv4Address, mtu: Int) throws(RuntimeError) {
        let sock = try node.netlink
        var vxlanIndex: Int32 = 0
        if backend == .vxlan {
            let ctx = "\(node.name): \(Naming.vxlanDevice)"
            try nl(ctx) { () throws(NetlinkError) in
                try sock.linkAdd(LinkSpec(
                    name: Naming.vxlanDevice,
                    kind: .vxlan(VXLANSettings(vni: Naming.vxlanVNI, local: underlayIP.networkOrder,
                                               deviceIndex: uplinkIndex, port: Naming.vxlanPort, learning: false)),
                    mtu: mtu - NetworkSettings.vxlanOverhead, address: MACAddress(vtepMAC), up: true))
                guard let link = try sock.linkGet(name: Naming.vxlanDevice) else {
                    throw NetlinkError("ip link show \(Naming.vxlanDevice)", errno: ENODEV)
                }
                vxlanIndex = link.index
                try sock.addrAdd(index: link.index, address: vtepAddress.networkOrder, prefix: 32)
            }
        }
        for step in steps {
            try nl("\(node.name): overlay") { () throws(NetlinkError) in
                switch step {
                case .neighbour(let a, let mac):
                    try sock.neighReplace(index: vxlanIndex, address: a.networkOrder, mac: MACAddress(mac))
                case .fdb(let mac, let dst):
                    try sock.fdbReplace(index: vxlanIndex, mac: MACAddress(mac), destination: dst.networkOrder)
                case .route(let dst, let via, let device, let onlink):
                    try sock.routeReplace(RouteSpec(destination: dst.network.networkOrder, prefix: dst.prefix,
                                                    gateway: via.networkOrder,
                                                    outputIndex: device == .vxlan ? vxlanIndex : uplinkIndex,
                                                    onlink: onlink))
                }
            }
        }
    }
}
