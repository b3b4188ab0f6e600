// The simulated underlay: one namespace holding a bridge (br-<cluster>, the cluster's
// "docker network"), with one veth per node whose other end is eth0 inside the node.
// The bridge holds the subnet's first address, like a docker network's gateway; nothing
// of it ever reaches the host's root namespace.
import Foundation
import MinikNetlink
import MinikSpec

public enum Underlay {
    /// Creates the underlay namespace and its bridge; returns both.
    public static func create(cluster: String, subnet: IPv4CIDR, mtu: Int) throws(RuntimeError) -> (NetNamespace, Int32) {
        let ns = try NetNamespace.create(Naming.underlayNetns(cluster))
        let sock = try ns.netlink
        let bridge = Naming.underlayBridge(cluster)
        let index = try nl("\(ns.name): \(bridge)") { () throws(NetlinkError) -> Int32 in
            try sock.linkSetUp(index: 1)
            try sock.linkAdd(LinkSpec(name: bridge, kind: .bridge, mtu: mtu, up: true))
            guard let link = try sock.linkGet(name: bridge) else { throw NetlinkError("ip link show \(bridge)", errno: ENODEV) }
            try sock.addrAdd(index: link.index, address: subnet.address(1).networkOrder, prefix: subnet.prefix)
            return link.index
        }
        return (ns, index)
    }

    /// Plugs a node into the underlay: veth "<cluster>-<index>" on the bridge, eth0 in the
    /// node with its underlay address. Returns eth0's ifindex in the node.
    /// `pathMTU`: the underlay port's MTU, when the network is narrower than eth0.
    public static func attach(node: NetNamespace, spec: NodeSpec, cluster: String, subnet: IPv4CIDR, mtu: Int, pathMTU: Int? = nil,
                              underlay: NetNamespace, bridgeIndex: Int32) throws(RuntimeError) -> Int32 {
        let port = Naming.underlayPort(cluster, nodeIndex: spec.index)
        let usock = try underlay.netlink
        try nl("\(underlay.name): \(port)") { () throws(NetlinkError) in
            try usock.linkAdd(LinkSpec(
                name: port, kind: .veth(peer: VethPeer(name: Naming.nodeUplink, namespaceFD: node.fd, mtu: mtu)),
                mtu: pathMTU ?? mtu, masterIndex: bridgeIndex, up: true))
        }
        let sock = try node.netlink
        return try nl("\(node.name): eth0") { () throws(NetlinkError) -> Int32 in
            try sock.linkSetUp(index: 1)
            guard let eth0 = try sock.linkGet(name: Naming.nodeUplink) else {
                throw NetlinkError("ip link show eth0", errno: ENODEV)
            }
            try sock.linkSetUp(index: eth0.index)
            try sock.addrAdd(index: eth0.index, address: spec.internalIP.networkOrder, prefix: subnet.prefix)
            // Like a kind node's default route to the docker network's gateway. The
            // gateway is the underlay bridge, a dead end: nothing leaves the underlay.
            // Nodes need it to reach ClusterIPs (routed before they are DNATed).
            try sock.routeAdd(RouteSpec(destination: 0, prefix: 0, gateway: subnet.address(1).networkOrder, outputIndex: eth0.index))
            return eth0.index
        }
    }
}
